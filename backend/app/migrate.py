"""Apply `migrations/NNNN_name.sql` in order: `python -m app.migrate` (the one-shot service).

Safe to run twice or twice at once: a session-level advisory lock serialises runners, each
file runs in its own transaction together with its `schema_migrations` row, so a file is
either fully applied and recorded or not at all.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

import asyncpg

from app.logging_setup import configure_logging
from app.migration_files import discover
from app.settings import get_settings

log = logging.getLogger("app.migrate")

# Arbitrary constant shared by every runner of this schema ("compose-ha" in ASCII, truncated).
ADVISORY_LOCK_ID = 0x636F6D706F7365

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def connect_with_retry(
    dsn: str, deadline_s: float, connect_timeout: float
) -> asyncpg.Connection:
    """The database may still be starting: retry until the deadline, then give up loudly."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return await asyncpg.connect(dsn, timeout=connect_timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            if time.monotonic() >= deadline:
                raise
            log.info("database not reachable yet, retrying", extra={"error": repr(exc)})
            await asyncio.sleep(1.0)


async def apply_migrations(conn: asyncpg.Connection, directory: Path) -> list[int]:
    """Apply every pending migration; return the versions applied by this run."""
    migrations = discover(directory)
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_ID)
    try:
        await conn.execute(CREATE_TABLE)
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied_now.append(migration.version)
            log.info(
                "applied migration",
                extra={"version": migration.version, "migration": migration.name},
            )
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_ID)
    return applied_now


async def run() -> int:
    settings = get_settings()
    conn = await connect_with_retry(settings.dsn, 60.0, settings.db_connect_timeout)
    try:
        applied = await apply_migrations(conn, settings.migrations_dir)
        version = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
    finally:
        await conn.close()
    log.info("migrations complete", extra={"applied": applied, "schema_version": version})
    return 0


def main() -> int:
    configure_logging(get_settings().log_level)
    try:
        return asyncio.run(run())
    except Exception:
        log.exception("migration failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
