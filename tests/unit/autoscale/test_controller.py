"""The autoscale controller loop without Docker: a fake metrics source, a fake scaler, a fake
clock. Checks the JSON decision log, that a scale runs beside the syncs (which keep recording
recommendations against the count being scaled to) and that every failed scale is logged,
counted and retried."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from python_on_whales.exceptions import DockerException

from hactl.autoscale.controller import AutoscalerMetrics, Controller
from hactl.autoscale.hpa import MetricReading, ReplicaUsage
from hactl.autoscale.policy import load_policy
from hactl.errors import HactlError
from hactl.ops.scaling import ScaleResult
from hactl.waiting import WaitTimeoutError

REPO = Path(__file__).resolve().parents[3]
POLICY = load_policy(REPO / "compose" / "autoscale-policy.yml")


class FakeSource:
    def __init__(self) -> None:
        self.running = 3
        self.cpu = 0.5  # cores used per replica, of a 1-core limit

    def read(self) -> tuple[int, dict[str, MetricReading]]:
        usages = tuple(ReplicaUsage(f"web-{i}", self.cpu, 1.0) for i in range(self.running))
        mem = tuple(ReplicaUsage(f"web-{i}", 100.0, 1000.0) for i in range(self.running))
        return self.running, {
            "cpu": MetricReading("cpu", replicas=usages),
            "memory": MetricReading("memory", replicas=mem),
        }


class FakeScaler:
    def __init__(self, source: FakeSource, fail: Exception | None = None) -> None:
        self.source, self.fail = source, fail
        self.calls: list[int] = []
        self.release = threading.Event()

    def __call__(self, stack: object, count: int, timeout: float) -> ScaleResult:
        self.calls.append(count)
        self.release.wait(5)
        if self.fail is not None:
            raise self.fail
        before, self.source.running = self.source.running, count
        return ScaleResult(before, count, [f"web-{count}"], [], 0.1)


def make(
    fail: Exception | None = None,
) -> tuple[Controller, FakeSource, FakeScaler, io.StringIO, list]:
    source, log, now = FakeSource(), io.StringIO(), [0.0]
    scaler = FakeScaler(source, fail)
    controller = Controller(
        running=None,  # type: ignore[arg-type]
        policy=POLICY,
        source=source,  # type: ignore[arg-type]
        metrics=AutoscalerMetrics(),
        log=log,
        clock=lambda: now[0],
        scaler=scaler,
    )
    return controller, source, scaler, log, now


def events(log: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in log.getvalue().splitlines()]


def test_decisions_are_json_lines_and_a_scale_runs_beside_the_syncs() -> None:
    controller, source, scaler, log, now = make()
    assert controller.sync().desired == 3  # 50 % of the limit: on target
    source.cpu = 1.0  # asks for 6
    decision = controller.sync()
    assert (decision.current, decision.desired) == (3, 6)
    now[0] = 15.0
    during = controller.sync()  # the scale is still running: evaluated against 6, no new scale
    assert controller.scaling and during.current == 6 and scaler.calls == [6]
    scaler.release.set()
    controller.wait_idle(5)
    lines = events(log)
    decisions = [e for e in lines if e["event"] == "decision"]
    assert [(e["from"], e["to"]) for e in decisions] == [(3, 3), (3, 6), (6, 6)]
    assert decisions[1]["rule"] == "DesiredWithinRange"
    assert decisions[1]["metrics"][0] == {
        "name": "cpu",
        "value": 100,
        "target": 50.0,
        "replicas": 6,
        "note": "",
    }
    assert decisions[2]["scale_in_progress"] is True
    scaled = [e for e in lines if e["event"] == "scaled"]
    assert [(e["from"], e["to"]) for e in scaled] == [(3, 6)]
    assert controller.metrics.desired._value.get() == 6
    assert controller.metrics.last_scale._value.get() > 0
    # The recommendation made during the scale is in the window: a dip right after the scale
    # does not scale down (300 s scale-down stabilization).
    source.cpu = 0.1
    now[0] = 30.0
    assert controller.sync().desired == 6


SCALE_FAILURES = [
    HactlError("scaled but not all replicas are in rotation", "see hactl status"),
    # What drain_and_remove raises when Traefik keeps a draining replica UP past the timeout:
    # before the fix it killed the scale thread without an event.
    WaitTimeoutError("web-4 out of rotation", 180, "web-4 still UP in Traefik"),
    DockerException(["docker", "stop", "web-4"], 1, stderr=b"no such container"),
    RuntimeError("anything else"),
]


@pytest.mark.parametrize("failure", SCALE_FAILURES, ids=lambda e: type(e).__name__)
def test_every_failed_scale_is_an_event_a_metric_and_a_retry(failure: Exception) -> None:
    controller, source, scaler, log, now = make(fail=failure)
    source.cpu = 1.0
    scaler.release.set()
    controller.sync()
    controller.wait_idle(5)
    assert not controller.scaling
    errors = [e for e in events(log) if e["event"] == "error"]
    assert len(errors) == 1, events(log)
    assert errors[0]["stage"] == "scale" and (errors[0]["from"], errors[0]["to"]) == (3, 6)
    assert errors[0]["error"] and errors[0]["retry"] == "next sync"
    assert controller.metrics.errors.labels("scale")._value.get() == 1
    # The next sync, inside the same 15 s rate-limit period, tries the whole step again: the
    # failed scale is not counted as done (a counted +3 would cap this step at 3 → 4).
    now[0] = 5.0
    retry = controller.sync()
    assert (retry.current, retry.desired) == (3, 6)
    controller.wait_idle(5)
    assert scaler.calls == [6, 6]
    assert controller.metrics.errors.labels("scale")._value.get() == 2
