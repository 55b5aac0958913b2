"""The HPA acting on real metrics: the controller-manager's HPA reads pod CPU from metrics-server,
which scrapes kwok's simulated kubelet metrics; kwok reports each pod's CPU use from an
annotation this test sets (a fixed total load spread over the pods, as a Service spreads traffic).

Compared step by step with `hactl autoscale`'s HPA replaying the same timeline
(tests/k8s/replay.py), so Compose and Kubernetes are shown to scale alike. The 300 s scale-down
window takes about 9 minutes: that test is in the slow tier (`make test-slow`).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from tests.k8s.manifests import NAMESPACES
from tests.k8s.replay import IDLE_LOAD, POD_MEMORY_USE, SCALE_UP_LOAD, replay

from control_plane import ControlPlane, wait_for  # isort: skip (path set by manifests)

pytestmark = pytest.mark.k8s

NAMESPACE = NAMESPACES["prod"]
BACKEND = "app.kubernetes.io/name=jackcwf-backend"
HPA = "hpa/jackcwf-backend-hpa"
CPU_ANNOTATION = "kwok.x-k8s.io/usage-cpu"
MEMORY_ANNOTATION = "kwok.x-k8s.io/usage-memory"


@dataclass
class KwokLoad:
    """A total CPU load spread evenly over the backend pods through kwok's usage annotations."""

    cluster: ControlPlane
    total_cpu: float
    seen: dict[str, str] = field(default_factory=dict)

    def apply(self) -> int:
        pods = [
            p["metadata"]["name"]
            for p in self.cluster.get_json("pods", "-n", NAMESPACE, "-l", BACKEND)["items"]
            if not p["metadata"].get("deletionTimestamp")
        ]
        if not pods:
            return 0
        cpu = f"{round(self.total_cpu * 1000 / len(pods))}m"
        stale = [p for p in pods if self.seen.get(p) != cpu]
        if stale:
            self.cluster.kubectl(
                "annotate", "--overwrite", "-n", NAMESPACE, "pod", *stale,
                f"{CPU_ANNOTATION}={cpu}", f"{MEMORY_ANNOTATION}={POD_MEMORY_USE // 2**20}Mi",
            )  # fmt: skip
            self.seen.update(dict.fromkeys(stale, cpu))
        return len(pods)


@dataclass(frozen=True)
class Rescale:
    at: datetime
    replicas: int
    message: str


def rescales(cluster: ControlPlane) -> list[Rescale]:
    """The HPA's own record of its decisions (events 'SuccessfulRescale'), oldest first."""
    events = cluster.get_json(
        "events", "-n", NAMESPACE,
        "--field-selector", "involvedObject.name=jackcwf-backend-hpa,reason=SuccessfulRescale",
    )["items"]  # fmt: skip
    found = []
    for event in events:
        stamp = event.get("lastTimestamp") or event.get("eventTime")
        size = int(event["message"].split("New size: ")[1].split(";")[0])
        found.append(
            Rescale(datetime.fromisoformat(stamp.replace("Z", "+00:00")), size, event["message"])
        )
    return sorted(found, key=lambda r: r.at)


def _limited_reason(hpa: dict) -> str | None:
    for condition in hpa.get("status", {}).get("conditions", []):
        if condition["type"] == "ScalingLimited" and condition["status"] == "True":
            return condition["reason"]
    return None


def drive(cluster: ControlPlane, load: KwokLoad, target: int, timeout: float) -> dict[int, str]:
    """Keep the load on until the Deployment has `target` replicas and the HPA says so; the
    ScalingLimited reason the HPA reported for each count it set (its status after the scale)."""
    reasons: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        load.apply()
        hpa = cluster.get_json(HPA, "-n", NAMESPACE)
        desired = hpa.get("status", {}).get("desiredReplicas")
        if desired is not None and desired not in reasons:
            # First sight of a new count: the status the deciding sync wrote (the next sync
            # comes 15 s later, the loop polls every second).
            reasons[desired] = _limited_reason(hpa) or "DesiredWithinRange"
        replicas = cluster.get_json("deployment/jackcwf-backend", "-n", NAMESPACE)["spec"][
            "replicas"
        ]
        if replicas == target and desired == target:
            return reasons
        time.sleep(1)
    raise TimeoutError(f"the HPA did not reach {target} replicas in {timeout:.0f} s: {reasons}")


def _wait_metrics_flowing(cluster: ControlPlane) -> None:
    def active() -> bool:
        hpa = cluster.get_json(HPA, "-n", NAMESPACE)
        return len(hpa.get("status", {}).get("currentMetrics") or []) == 2

    wait_for("HPA reading cpu and memory from metrics-server", active, 180, interval=2)


def scale_up(cluster: ControlPlane) -> list[Rescale]:
    _wait_metrics_flowing(cluster)
    before = len(rescales(cluster))
    reasons = drive(cluster, KwokLoad(cluster, SCALE_UP_LOAD), target=10, timeout=300)
    steps = rescales(cluster)[before:]
    expected = replay(3, [(0, SCALE_UP_LOAD)], duration=120)
    assert [s.replicas for s in steps] == [s.replicas for s in expected] == [7, 10]
    # The controller's limits are hactl's rules: +4 pods (not +100 %) to 7, maxReplicas at 10.
    assert [reasons.get(s.replicas) for s in steps] == [s.rule for s in expected]
    assert all(
        "cpu resource utilization" in s.message and "above target" in s.message for s in steps
    )
    return steps


def test_hpa_scales_kwok_pods_3_to_7_to_10_on_metrics_server_cpu(applied):
    deployment = applied.get_json("deployment/jackcwf-backend", "-n", NAMESPACE)
    assert deployment["spec"]["replicas"] == 3
    steps = scale_up(applied)
    # Within one 15 s period the policy allows no second step (event times are whole seconds).
    assert (steps[1].at - steps[0].at).total_seconds() >= 14
    pods = applied.get_json("pods", "-n", NAMESPACE, "-l", BACKEND)["items"]
    assert len([p for p in pods if not p["metadata"].get("deletionTimestamp")]) == 10
    assert applied.get_json(HPA, "-n", NAMESPACE)["status"]["desiredReplicas"] == 10


@pytest.mark.slow
def test_hpa_scales_kwok_pods_down_after_the_300_s_window_to_3(applied):
    if applied.get_json("deployment/jackcwf-backend", "-n", NAMESPACE)["spec"]["replicas"] != 10:
        scale_up(applied)
    before = len(rescales(applied))
    idle = KwokLoad(applied, IDLE_LOAD)
    idle.apply()
    idle_since = datetime.now().astimezone()
    drive(applied, idle, target=3, timeout=900)
    steps = rescales(applied)[before:]
    expected = replay(3, [(0, SCALE_UP_LOAD), (60, IDLE_LOAD)], duration=1000)[2:]
    assert [s.replicas for s in steps] == [s.replicas for s in expected] == [8, 6, 4, 3]
    assert all("below target" in s.message for s in steps[:1])
    # Nothing before the 300 s stabilization window has passed since the load dropped.
    assert (steps[0].at - idle_since).total_seconds() >= 300 - 1
    # At most one step per 60 s period (whole-second event times).
    for earlier, later in itertools.pairwise(steps):
        assert (later.at - earlier.at).total_seconds() >= 59
