"""An open-loop request stream in a thread, for the autoscaling tests (Compose and Kubernetes):
request i leaves at t0 + i/rate whatever the answers before it, bounded by count and time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx


@dataclass
class Outcome:
    intended_s: float
    ok: bool
    detail: str


@dataclass
class Stream:
    """An open-loop request stream in a thread: request i leaves at t0 + i/rate, until stopped,
    `max_seconds` passed or `rate * max_seconds` requests were sent."""

    base_url: str
    headers: dict[str, str]
    method: str
    path: str
    rate: float
    max_seconds: float
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stop_event = threading.Event()
        self.started_at = 0.0
        self._thread = threading.Thread(target=self._run, name=f"stream {self.path}", daemon=True)
        self._lock = threading.Lock()

    def _one(self, client: httpx.Client, intended: float) -> None:
        try:
            response = client.request(self.method, self.path, headers=self.headers)
            outcome = Outcome(
                intended, 200 <= response.status_code < 300, f"HTTP {response.status_code}"
            )
        except httpx.HTTPError as error:
            outcome = Outcome(intended, False, f"{type(error).__name__}: {error}")
        with self._lock:
            self.outcomes.append(outcome)

    def _run(self) -> None:
        limit = int(self.rate * self.max_seconds)
        with (
            httpx.Client(base_url=self.base_url, timeout=15.0) as client,
            ThreadPoolExecutor(max_workers=48) as pool,
        ):
            self.started_at = time.monotonic()
            for i in range(limit):
                due = self.started_at + i / self.rate
                if self.stop_event.wait(max(0.0, due - time.monotonic())):
                    break
                pool.submit(self._one, client, due - self.started_at)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join(timeout=self.max_seconds + 30)

    def failures(self) -> list[str]:
        """The first failures in time order, and a count by kind."""
        failed = sorted((o for o in self.outcomes if not o.ok), key=lambda o: o.intended_s)
        if not failed:
            return []
        kinds: dict[str, int] = {}
        for o in failed:
            kinds[o.detail.split(":")[0]] = kinds.get(o.detail.split(":")[0], 0) + 1
        return [f"{len(failed)}/{len(self.outcomes)} failed: {kinds}"] + [
            f"{o.intended_s:.1f}s {o.detail}" for o in failed[:12]
        ]
