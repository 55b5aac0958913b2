"""Liveness and readiness, as Docker's HEALTHCHECK and Traefik's health check see them."""

from __future__ import annotations

import asyncio

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app import state
from app.contract import UNREADY
from app.db import DatabaseUnavailable
from app.schemas import Alive, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Alive)
async def healthz() -> dict[str, str]:
    # Liveness only: touching the database here would get healthy replicas restarted
    # whenever PostgreSQL blips.
    return {"status": "ok"}


def _unready(reason: str, **extra: object) -> JSONResponse:
    return JSONResponse({"status": "unready", "reason": reason, **extra}, status_code=503)


def _local_unready(request: Request) -> JSONResponse | None:
    """Files first: they cost nothing and must win even when the database is fine."""
    base = request.app.state.settings.app_state_dir
    if state.is_set(state.DRAINING, base):
        return _unready("draining")
    if state.is_set(state.UNREADY, base):
        return _unready("forced_unready")
    return None


@router.get("/readyz/routing", responses={200: {"model": Ready}, **UNREADY})
async def readyz_routing(request: Request) -> JSONResponse:
    """Readiness as the load balancer and Docker's HEALTHCHECK see it.

    Like /readyz, but the database only has to have answered, at the expected schema, once in
    this process's life. The database is shared: were an outage to fail this check, every
    replica would leave the rotation at once and clients would get Traefik's bare 404/503;
    instead they keep reaching replicas that answer 503 + Retry-After and recover by themselves.
    """
    if (local := _local_unready(request)) is not None:
        return local
    if request.app.state.schema_verified:
        return JSONResponse({"status": "ready", "scope": "routing"})
    return await readyz(request)


@router.get("/readyz", responses={200: {"model": Ready}, **UNREADY})
async def readyz(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    if (local := _local_unready(request)) is not None:
        return local
    expected = request.app.state.expected_schema_version
    try:
        async with asyncio.timeout(settings.ready_db_timeout):
            async with request.app.state.db.connection(timeout=settings.ready_db_timeout) as conn:
                await conn.fetchval("SELECT 1")
                version = await conn.fetchval(
                    "SELECT coalesce(max(version), 0) FROM schema_migrations"
                )
    except asyncpg.UndefinedTableError:
        return _unready("migrations_missing", expected_schema_version=expected)
    except (TimeoutError, DatabaseUnavailable):
        return _unready("database_unavailable")
    # `>=`: during a rollout the new image may migrate ahead (expand-only migrations); the old
    # replicas keep serving until they are replaced.
    if version < expected:
        return _unready(
            "migrations_pending", schema_version=version, expected_schema_version=expected
        )
    request.app.state.schema_verified = True
    return JSONResponse({"status": "ready", "schema_version": version})
