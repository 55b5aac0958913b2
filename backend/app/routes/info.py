"""Who answered (for distribution and stickiness checks) and the metrics scrape."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request, Response

from app import metrics
from app.schemas import Whoami

router = APIRouter()


@router.get("/api/v1/whoami", response_model=Whoami, tags=["replica"])
async def whoami(request: Request) -> dict[str, object]:
    settings = request.app.state.settings
    return {
        "replica_id": settings.replica_id,
        "replica": settings.replica_id,  # short alias used by the test support code
        "pid": os.getpid(),
        "version": settings.app_version,
        "started_at": request.app.state.started_at,
    }


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request) -> Response:
    request.app.state.refresh_gauges()
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
