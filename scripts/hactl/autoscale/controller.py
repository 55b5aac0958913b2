"""`hactl autoscale`: the HPA control loop for a compose-ha stack.

Every `syncPeriodSeconds`: read the metrics (autoscale_metrics), decide (hpa.decide, the pure
Kubernetes algorithm), log the decision as one JSON line on stdout, and when the count changes
scale through `hactl.ops.scaling.scale` — the drain-aware path of `hactl scale`, so a scale-down
drains replicas before stopping them and a scale-up returns once the new replicas are in
rotation. Prometheus metrics of the controller are served on `--metrics-port`.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from hactl.autoscale.hpa import (
    Decision,
    HpaState,
    align_to_count,
    decide,
    forget_scale,
    record_scale,
)
from hactl.autoscale.metrics import DockerMetricsSource
from hactl.autoscale.policy import AutoscalePolicy
from hactl.errors import GENERIC_HINT, OPERATION_ERRORS, InvalidInputError, describe
from hactl.ops.preflight import require_running
from hactl.ops.scaling import ScaleResult, scale
from hactl.stack.project import Stack
from hactl.stack.running import RunningStack
from hactl.validation import max_replicas

METRIC_PREFIX = "hactl_autoscaler"


class AutoscalerMetrics:
    """The controller's own Prometheus metrics (one registry, so tests can run several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.current = Gauge(
            f"{METRIC_PREFIX}_current_replicas", "web replicas running at the last sync", registry=r
        )
        self.desired = Gauge(
            f"{METRIC_PREFIX}_desired_replicas",
            "replica count the HPA algorithm decided at the last sync",
            registry=r,
        )
        self.min = Gauge(f"{METRIC_PREFIX}_min_replicas", "policy minReplicas", registry=r)
        self.max = Gauge(f"{METRIC_PREFIX}_max_replicas", "policy maxReplicas", registry=r)
        self.last_scale = Gauge(
            f"{METRIC_PREFIX}_last_scale_timestamp_seconds",
            "Unix time of the last completed scale (0: none yet)",
            registry=r,
        )
        self.metric_value = Gauge(
            f"{METRIC_PREFIX}_metric_value",
            "current value of each metric (utilization %, or per replica)",
            ["metric"],
            registry=r,
        )
        self.metric_target = Gauge(
            f"{METRIC_PREFIX}_metric_target", "target of each metric", ["metric"], registry=r
        )
        self.scales = Counter(
            f"{METRIC_PREFIX}_scale_events", "completed scale operations", ["direction"], registry=r
        )
        self.errors = Counter(
            f"{METRIC_PREFIX}_errors", "failed syncs or scales", ["stage"], registry=r
        )
        self.decisions = Counter(
            f"{METRIC_PREFIX}_decisions", "decisions by the rule that fired", ["rule"], registry=r
        )

    def observe(self, decision: Decision) -> None:
        self.current.set(decision.current)
        self.desired.set(decision.desired)
        self.decisions.labels(decision.rule).inc()
        for proposal in decision.proposals:
            self.metric_target.labels(proposal.name).set(proposal.target)
            if proposal.current is not None:
                self.metric_value.labels(proposal.name).set(proposal.current)


def scale_now(running: RunningStack, count: int, timeout: float) -> ScaleResult:
    """`hactl scale` as if run now: a Docker client made now sees the env files as they are
    now (an .env.rollout written by a rollout after the loop started, say)."""
    return scale(RunningStack.connect(running.stack), count, timeout)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Controller:
    """The loop's state; `sync` is one iteration (tests drive it directly).

    A scale runs in a worker thread while the syncs go on, as in Kubernetes, where the HPA sets
    the replica count and keeps evaluating every period while pods start or terminate: each sync
    records its recommendation (so stabilization windows see the whole time), with the count being
    scaled to as the current count. A change decided while a scale runs waits for the next sync
    after it finished.
    """

    running: RunningStack
    policy: AutoscalePolicy
    source: DockerMetricsSource
    metrics: AutoscalerMetrics
    log: TextIO = sys.stdout
    dry_run: bool = False
    clock: Callable[[], float] = time.monotonic
    scaler: Callable[[RunningStack, int, float], ScaleResult] = scale_now
    state: HpaState = field(default_factory=HpaState)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._target: int | None = None
        self._failed_at: float | None = None  # when the scale that failed was recorded

    def emit(self, event: str, **data: Any) -> None:
        line = json.dumps({"ts": _now_iso(), "event": event, **data}, default=str) + "\n"
        with self._lock:
            self.log.write(line)
            self.log.flush()

    @property
    def scaling(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def wait_idle(self, timeout: float | None = None) -> None:
        """Let a scale in progress finish (on shutdown)."""
        if self._worker is not None:
            self._worker.join(timeout)

    def sync(self) -> Decision | None:
        now = self.clock()
        try:
            running, readings = self.source.read()
        except Exception as error:  # the engine hiccuped: skip this sync, like a failed API read
            self.metrics.errors.labels("metrics").inc()
            self.emit("error", stage="metrics", error=f"{type(error).__name__}: {error}")
            return None
        in_progress = self.scaling
        if not in_progress and self._failed_at is not None:
            self.state = forget_scale(self.state, self._failed_at)
            self._failed_at = self._target = None
        current = self._target if in_progress and self._target is not None else running
        if current != running:
            readings = {name: align_to_count(r, current) for name, r in readings.items()}
        spec = self.policy.spec
        decision, self.state = decide(spec, self.state, now, current, readings)
        self.metrics.observe(decision)
        act = decision.scales and not self.dry_run and not in_progress
        self.emit(
            "decision",
            **{"from": decision.current, "to": decision.desired},
            rule=decision.rule,
            detail=decision.detail,
            proposed=decision.proposed,
            stabilized=decision.stabilized,
            metrics=decision.as_dict()["metrics"],
            summary=decision.metrics_text(),
            running=running,
            scale_in_progress=in_progress,
            dry_run=self.dry_run,
        )
        if act:
            # Kubernetes stores the scale event once its update call returned, i.e. at once.
            self.state = record_scale(spec, self.state, now, decision.current, decision.desired)
            self._target = decision.desired
            self.emit(
                "scaling", **{"from": decision.current, "to": decision.desired}, rule=decision.rule
            )
            self._worker = threading.Thread(
                target=self._scale, args=(decision, now), name="scale", daemon=True
            )
            self._worker.start()
        return decision

    def _scale(self, decision: Decision, recorded_at: float) -> None:
        # Any failure, not only HactlError: a thread that dies silently would leave the loop
        # believing a scale is done (the fresh-machine CI run saw `scaling 4 → 3`, then nothing).
        try:
            result = self.scaler(self.running, decision.desired, self.policy.scale_timeout_seconds)
        except Exception as error:
            self.metrics.errors.labels("scale").inc()
            message, hint = describe_failure(error)
            # Kubernetes stores a scale event only once the update succeeded: forget this one,
            # so the rate limits allow the next sync to try again.
            self._failed_at = recorded_at
            self.emit(
                "error",
                stage="scale",
                error=message,
                hint=hint,
                retry="next sync",
                **{"from": decision.current, "to": decision.desired},
            )
            return
        direction = "up" if result.after > result.before else "down"
        self.metrics.scales.labels(direction).inc()
        self.metrics.last_scale.set(time.time())
        self.metrics.current.set(result.after)
        self.emit(
            "scaled",
            **{"from": result.before, "to": result.after},
            seconds=round(result.seconds, 2),
            started=result.started,
            removed=[{"name": s.name, "exit_code": s.exit_code} for s in result.removed],
        )


def describe_failure(error: Exception) -> tuple[str, str]:
    """The message and hint of a failed scale, whatever raised it."""
    if isinstance(error, OPERATION_ERRORS):
        message, hint, _ = describe(error)
        return message, hint
    return f"{type(error).__name__}: {error}", GENERIC_HINT


def check_policy_fits(policy: AutoscalePolicy) -> None:
    limit = max_replicas()
    if policy.spec.max_replicas > limit:
        raise InvalidInputError(
            f"autoscale policy: maxReplicas {policy.spec.max_replicas} is above hactl's limit "
            f"of {limit} replicas",
            "lower maxReplicas, or raise HACTL_MAX_REPLICAS",
        )


def run(
    stack: Stack,
    policy: AutoscalePolicy,
    metrics_port: int,
    metrics_addr: str,
    dry_run: bool = False,
    max_seconds: float = 0,
    log: TextIO = sys.stdout,
) -> int:
    """Run the loop until SIGTERM/SIGINT (or `max_seconds`); returns the number of syncs."""
    check_policy_fits(policy)
    running = RunningStack.connect(stack)
    require_running(running)
    metrics = AutoscalerMetrics()
    metrics.min.set(policy.spec.min_replicas)
    metrics.max.set(policy.spec.max_replicas)
    metrics.last_scale.set(0)
    if metrics_port:
        start_http_server(metrics_port, addr=metrics_addr, registry=metrics.registry)
    source = DockerMetricsSource(running, policy)
    controller = Controller(running, policy, source, metrics, log=log, dry_run=dry_run)
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        controller.emit("stopping", signal=signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
    spec = policy.spec
    controller.emit(
        "started",
        project=stack.project,
        policy=policy.source,
        min=spec.min_replicas,
        max=spec.max_replicas,
        sync_period_seconds=policy.sync_period_seconds,
        metrics=[{"name": m.name, "target": m.value, "type": m.type.value} for m in spec.metrics],
        metrics_port=metrics_port or None,
        dry_run=dry_run,
    )
    started = time.monotonic()
    syncs = 0
    while not stop.is_set():
        tick = time.monotonic()
        controller.sync()
        syncs += 1
        if max_seconds and time.monotonic() - started >= max_seconds:
            break
        stop.wait(max(0.0, tick + policy.sync_period_seconds - time.monotonic()))
    controller.wait_idle(policy.scale_timeout_seconds * 3)
    controller.emit("stopped", syncs=syncs)
    return syncs
