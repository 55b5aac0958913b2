"""The app factory: `gunicorn ... "app.main:create_app()"` builds one app per worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_fastapi_instrumentator import Instrumentator

from app import contract, errors, metrics, state
from app.auth import AuthenticateFirst
from app.db import Database
from app.logging_setup import configure_logging
from app.middleware import QUIET_PATHS, BodySizeLimitMiddleware, RequestContextMiddleware
from app.migration_files import expected_version
from app.purge import purge_loop
from app.routes import chat, health, info, work
from app.settings import Settings, get_settings

log = logging.getLogger("app")

GAUGE_REFRESH_SECONDS = 1.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    db = Database(settings)

    def refresh_gauges() -> None:
        in_use, size = db.pool_stats()
        metrics.DB_POOL_IN_USE.set(in_use)
        metrics.DB_POOL_SIZE.set(size)
        metrics.DRAINING.set(int(state.is_set(state.DRAINING, settings.app_state_dir)))
        metrics.FORCED_UNREADY.set(int(state.is_set(state.UNREADY, settings.app_state_dir)))

    async def refresh_loop() -> None:
        # Each worker publishes its own pool numbers; a scrape (answered by one worker) sums them.
        while True:
            refresh_gauges()
            await asyncio.sleep(GAUGE_REFRESH_SECONDS)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await db.start()
        metrics.DB_POOL_MAX.set(settings.db_pool_max)
        metrics.BUILD_INFO.labels(settings.app_version, settings.replica_id).set(1)
        tasks = [
            asyncio.create_task(refresh_loop()),
            asyncio.create_task(
                purge_loop(
                    db, settings.idempotency_ttl_hours, settings.idempotency_purge_interval_s
                )
            ),
        ]
        if not settings.tokens:
            log.warning(
                "no API tokens configured (API_TOKENS / API_TOKENS_FILE): /api/v1 answers 401"
            )
        log.info(
            "worker ready",
            extra={"version": settings.app_version, "replica_id": settings.replica_id},
        )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks)
            await db.stop()

    # No /docs or /redoc: their assets come from a CDN, unreachable in air-gapped setups.
    app = FastAPI(
        title="compose-ha backend",
        version=settings.app_version,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        responses=contract.every_operation(),
    )
    app.state.settings = settings
    app.state.db = db
    app.state.refresh_gauges = refresh_gauges
    app.state.started_at = datetime.now(UTC).isoformat()
    app.state.expected_schema_version = expected_version(settings.migrations_dir)
    # Set by the first successful /readyz: /readyz/routing then no longer needs the database.
    app.state.schema_verified = False

    errors.install(app)
    for module in (health, info, chat, work):
        app.include_router(module.router)

    # Middleware order, outermost first: request id/access log -> CORS (when configured) ->
    # instrumentator -> auth -> body limit. Auth before the body limit: an unauthenticated body
    # is never read. CORS outside auth: a preflight carries no token.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AuthenticateFirst, openapi=app.openapi, tokens=settings.tokens)
    # Probes and scrapes are not traffic: two Traefik instances probe each replica 12 times a
    # second, which counted in the request rate and diluted the 5xx ratio (they answer 200 in a
    # database outage).
    probes = [f"^{re.escape(path)}$" for path in sorted(QUIET_PATHS)]
    Instrumentator(excluded_handlers=probes, should_group_untemplated=True).instrument(app)
    if settings.cors_origins:
        # Only for origins named in CORS_ALLOW_ORIGINS. Bearer tokens, not cookies, so no
        # credentials; the page's retry logic needs X-Replica and Idempotent-Replayed readable.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Replica", "X-Request-ID", "Idempotent-Replayed", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(
        RequestContextMiddleware,
        replica_id=settings.replica_id,
        db_deadline_s=settings.db_request_deadline_s,
    )
    return app
