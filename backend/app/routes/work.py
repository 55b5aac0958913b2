"""`POST /api/v1/work?cpu_ms=N`: burn CPU on demand, for autoscaling and load tests."""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Depends, Query, Request

from app.auth import require_principal
from app.contract import responses
from app.schemas import WorkResult
from app.settings import get_settings

router = APIRouter(dependencies=[Depends(require_principal)], tags=["load"])
# Read once, like the body limits in app.schemas: the published maximum is the enforced one.
MAX_CPU_MS = get_settings().work_max_cpu_ms


def _burn(cpu_ms: int) -> float:
    """Spin until this thread used `cpu_ms` of CPU time; return the CPU time used (ms)."""
    start = time.thread_time()
    target = start + cpu_ms / 1000
    acc = 0
    while time.thread_time() < target:
        for i in range(2000):
            acc += i * i
    return (time.thread_time() - start) * 1000


@router.post("/api/v1/work", response_model=WorkResult, responses=responses(401, 422))
def work(request: Request, cpu_ms: int = Query(..., ge=0, le=MAX_CPU_MS)) -> dict[str, object]:
    # A plain `def`: FastAPI runs it in a thread, so the event loop keeps answering probes
    # while a burn runs (the GIL still makes it cost this worker's CPU, which is the point).
    started = time.perf_counter()
    used = _burn(cpu_ms)
    return {
        "cpu_ms_requested": cpu_ms,
        "cpu_ms_used": round(used, 2),
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
        "pid": os.getpid(),
        "replica_id": request.app.state.settings.replica_id,
    }
