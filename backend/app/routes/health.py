"""Liveness and readiness, as Docker's HEALTHCHECK and Traefik's health check see them."""

from __future__ import annotations

import asyncio

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app import state
from app.db import DatabaseUnavailable

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    # Liveness only: touching the database here would get healthy replicas restarted
    # whenever PostgreSQL blips.
    return {"status": "ok"}


def _unready(reason: str, **extra: object) -> JSONResponse:
    return JSONResponse({"status": "unready", "reason": reason, **extra}, status_code=503)


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    base = settings.app_state_dir
    # Files first: they cost nothing and must win even when the database is fine.
    if state.is_set(state.DRAINING, base):
        return _unready("draining")
    if state.is_set(state.UNREADY, base):
        return _unready("forced_unready")
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
    return JSONResponse({"status": "ready", "schema_version": version})
