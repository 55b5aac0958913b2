"""What the controller tells: one JSON line per event on stdout, and Prometheus metrics.

Metric names start with `selfheal_`. `selfheal_restarts_total{replica,reason}` is what the
SelfHealRestartLoop alert counts (prometheus/rules/selfheal.yml); its series are created at 0 for
every replica the controller sees, so that `increase()` counts the first restart too.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge

from hactl.selfheal.decide import Hold, Reason


class SelfHealMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.restarts = Counter(
            "selfheal_restarts",
            "replicas started, restarted or replaced by the controller",
            ["replica", "reason"],
            registry=r,
        )
        self.errors = Counter(
            "selfheal_errors", "failed Docker calls or syncs", ["stage"], registry=r
        )
        self.desired = Gauge("selfheal_desired_replicas", "the recorded replica count", registry=r)
        self.replicas = Gauge(
            "selfheal_replicas", "containers of the service by Docker state", ["state"], registry=r
        )
        self.holding = Gauge(
            "selfheal_holding",
            "1 while the controller changes nothing, by reason (paused, lease, stack-down)",
            ["reason"],
            registry=r,
        )
        self.backoff = Gauge(
            "selfheal_backoff_seconds",
            "seconds until a replica in crash-loop back-off may be restarted",
            ["replica"],
            registry=r,
        )
        self.liveness_failures = Gauge(
            "selfheal_liveness_failures",
            "consecutive failed liveness probes",
            ["replica"],
            registry=r,
        )
        self.last_sync = Gauge(
            "selfheal_last_sync_timestamp_seconds",
            "unix time of the last completed sync",
            registry=r,
        )
        # Counted, not only timed: "nothing happened during N syncs" is a condition a test can
        # wait for, where a wall-clock sleep guesses how fast a loaded host syncs.
        self.syncs = Counter("selfheal_syncs", "completed syncs", registry=r)
        for hold in Hold:
            self.holding.labels(hold.value).set(0)
        self._known: set[str] = set()

    def know_replica(self, name: str) -> None:
        """Create the replica's restart series at 0 (see the module docstring)."""
        if name in self._known:
            return
        self._known.add(name)
        for reason in Reason:
            self.restarts.labels(name, reason.value)


class EventLog:
    """JSON lines: {"ts": ISO time, "event": ..., ...}; flushed at once (docker logs)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def emit(self, event: str, **data: Any) -> None:
        now = time.time()
        millis = int(now % 1 * 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}Z"
        self.stream.write(json.dumps({"ts": stamp, "event": event, **data}, default=str) + "\n")
        self.stream.flush()
