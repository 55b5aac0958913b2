"""Fail fast while the database is known to be down (a circuit breaker, one per worker).

Without it, during a PostgreSQL restart every request of a worker queues on the pool while the
pool's connections retry the dead server one at a time, and answers 503 only when its connection
deadline runs out: measured p90 1.2 s in the outage, and a few answers past Traefik's 1.5 s
response-header bound (504). With it, the first lost connection opens the gate: requests answer
503 + Retry-After at once while a background probe opens a fresh session every probe interval,
and the first probe that gets one closes the gate. A false alarm (one stale connection) costs
one probe, a few milliseconds.

Only errors that say the server is gone open the gate. A pool that is merely busy (an acquire
that times out) does not: that is load, and answering it with 503s would turn a replica
restart's load shift into failed requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("app.db")


class OutageGate:
    def __init__(self, probe: Callable[[], Awaitable[None]], probe_interval_s: float) -> None:
        if probe_interval_s <= 0:
            raise ValueError(f"probe_interval_s must be > 0, got {probe_interval_s}")
        self._probe = probe
        self._interval = probe_interval_s
        self._prober: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self._prober is not None

    def open(self, reason: str) -> None:
        """A connection was refused or lost. Idempotent: one prober runs at a time."""
        if self._prober is None:
            log.warning(
                "database lost, failing fast until a probe reaches it", extra={"error": reason}
            )
            self._prober = asyncio.create_task(self._probe_until_back())

    async def _probe_until_back(self) -> None:
        attempts = 0
        while True:
            attempts += 1
            try:
                await self._probe()
            except Exception:  # any failure means "not back yet"
                await asyncio.sleep(self._interval)
                continue
            log.info("database reachable again", extra={"probes": attempts})
            self._prober = None
            return

    async def close(self) -> None:
        """Stop probing (shutdown)."""
        prober, self._prober = self._prober, None
        if prober is not None:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
