"""Run hactl's open-loop load generator in a background thread while a test injects a fault."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol

from hactl.loadgen.generator import LoadConfig, LoadGenerator, LoadResult, WorkloadMix
from hactl.loadgen.write_check import WriteCheck, check_write_set
from hactl.waiting import WaitAbortedError
from tests.support.stack import wait_for

# GETs and idempotent POSTs, as the HA and chaos tests ask for.
GETS_AND_WRITES = WorkloadMix(whoami=0.6, write=0.3, read=0.1)


class LoadTarget(Protocol):
    """What the load needs of a deployment: the Compose Stack, the k8s cluster (tests/k8s_e2e)."""

    @property
    def base_url(self) -> str: ...

    @property
    def api_token(self) -> str: ...

    def stored_writes(self, run_id: str) -> dict[str, list[str]]: ...


class BackgroundLoad:
    """`with BackgroundLoad(stack, rate, duration) as load: ...; result = load.result()`."""

    def __init__(
        self,
        stack: LoadTarget,
        rate: float,
        duration_s: float,
        mix: WorkloadMix = GETS_AND_WRITES,
        sticky: bool = False,
        clients: int = 20,
    ) -> None:
        self.stack = stack
        self.generator = LoadGenerator(
            LoadConfig(
                base_url=stack.base_url,
                token=stack.api_token,
                rate=rate,
                duration_s=duration_s,
                mix=mix,
                sticky=sticky,
                clients=clients,
                timeout_s=5.0,
            )
        )
        self._result: LoadResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        try:
            self._result = asyncio.run(self.generator.run())
        except BaseException as exc:  # surfaced by result()
            self._error = exc

    def __enter__(self) -> BackgroundLoad:
        self._thread.start()

        def started() -> bool:
            if self._error is not None:
                raise WaitAbortedError(f"load failed: {self._error!r}")
            return self.generator.started.is_set()

        # Conversations are created before t0; wait for the open loop itself to start.
        wait_for(started, 90, "the load generator to start", interval=0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=self.generator.config.hard_deadline_s() + 30)

    def elapsed(self) -> float:
        return self.generator.elapsed()

    def finish(self, after_s: float) -> None:
        """Send nothing more ``after_s`` seconds from now (the operation under test is done; the
        tail shows the stack after it); the configured duration stays the upper bound."""
        self.generator.finish_at(self.elapsed() + after_s)

    def wait_until(self, t: float) -> None:
        """Sleep until `t` seconds after the load's start (the moment to inject a fault)."""
        time.sleep(max(0.0, t - self.elapsed()))

    def result(self) -> LoadResult:
        self._thread.join(timeout=self.generator.config.hard_deadline_s() + 30)
        if self._error is not None:
            raise AssertionError(f"load generator failed: {self._error!r}") from self._error
        assert self._result is not None, "the load generator did not finish"
        return self._result

    def write_check(self) -> WriteCheck:
        stored = self.stack.stored_writes(self.generator.config.run_id)
        return check_write_set(self.result().records, stored)


def failures(result: LoadResult) -> list[str]:
    """Readable lines for every failed request, for assertion messages."""
    return [
        f"#{r.seq} {r.method} {r.path} at {r.intended_s:.2f}s: {r.failure_kind} {r.error or ''}"
        for r in result.records
        if not r.ok
    ][:20]
