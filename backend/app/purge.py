"""Periodic purge of expired idempotency keys (retries come within minutes; a day is plenty).

Every worker of every replica runs it; concurrent DELETEs of the same rows are harmless, and a
random start spreads them out.
"""

from __future__ import annotations

import asyncio
import logging
import random

from app.db import Database

log = logging.getLogger("app.purge")


async def purge_once(db: Database, ttl_hours: float) -> int:
    async with db.connection() as conn:
        status = await conn.execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
            ttl_hours * 3600.0,
        )
    return int(status.split()[-1])


async def purge_loop(db: Database, ttl_hours: float, interval_s: float) -> None:
    await asyncio.sleep(random.uniform(0, interval_s))
    while True:
        try:
            deleted = await purge_once(db, ttl_hours)
            if deleted:
                log.info("purged expired idempotency keys", extra={"deleted": deleted})
        except Exception as exc:  # housekeeping must never kill a worker
            log.warning("idempotency key purge failed", extra={"error": repr(exc)})
        await asyncio.sleep(interval_s)
