"""The HPA acting on real metrics: the controller-manager's HPA reads pod CPU from metrics-server,
which scrapes kwok's simulated kubelet metrics; kwok reports each pod's CPU use from an
annotation this test sets (a fixed total load spread over the pods, as a Service spreads traffic).

Compared step by step with `hactl autoscale`'s HPA replaying the same timeline
(tests/k8s/replay.py), so Compose and Kubernetes are shown to scale alike. The 300 s scale-down
window takes about 9 minutes: that test is in the slow tier (`make test-slow`).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from tests.k8s.manifests import NAMESPACES, one
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


def _cores(quantity: str) -> float:
    units = {"n": 1e-9, "u": 1e-6, "m": 1e-3}
    return float(quantity[:-1]) * units[quantity[-1]] if quantity[-1] in units else float(quantity)


def _wait_load_seen(cluster: ControlPlane, load: KwokLoad) -> None:
    """Until metrics-server reports the load for every pod with a sample the HPA counts (taken
    one metric window after the pod became ready: its CPU-initialization rule)."""

    def seen() -> bool:
        pods = load.apply()
        raw = cluster.kubectl(
            "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{NAMESPACE}/pods"
        ).stdout
        samples = {m["metadata"]["name"]: m for m in json.loads(raw)["items"]}
        ready = {
            p["metadata"]["name"]: next(
                c["lastTransitionTime"] for c in p["status"]["conditions"] if c["type"] == "Ready"
            )
            for p in cluster.get_json("pods", "-n", NAMESPACE, "-l", BACKEND)["items"]
        }
        if len(samples) != pods or set(samples) != set(ready):
            return False
        for name, sample in samples.items():
            taken = datetime.fromisoformat(sample["timestamp"].replace("Z", "+00:00"))
            window = float(sample["window"].rstrip("s"))
            since = datetime.fromisoformat(ready[name].replace("Z", "+00:00"))
            cpu = _cores(sample["containers"][0]["usage"]["cpu"])
            if (taken - since).total_seconds() < window or cpu < 0.95 * load.total_cpu / pods:
                return False
        return True

    wait_for("metrics-server reporting the load for every pod", seen, 240, interval=3)


def scale_up(cluster: ControlPlane, hpa: dict) -> list[Rescale]:
    """The load first, then the HPA: its first sync sees the whole load (a sample that spans
    the change would show part of it and scale by less, as any HPA would)."""
    _wait_metrics_flowing(cluster)
    cluster.kubectl("delete", HPA, "-n", NAMESPACE)
    load = KwokLoad(cluster, SCALE_UP_LOAD)
    _wait_load_seen(cluster, load)
    before = len(rescales(cluster))
    cluster.kubectl("apply", "-f", "-", input=json.dumps(hpa))
    reasons = drive(cluster, load, target=10, timeout=300)
    steps = rescales(cluster)[before:]
    expected = replay(3, [(0, SCALE_UP_LOAD)], duration=120)
    assert [s.replicas for s in steps] == [s.replicas for s in expected] == [7, 10]
    # The controller's limits are hactl's rules: +4 pods (not +100 %) to 7, maxReplicas at 10.
    assert [reasons.get(s.replicas) for s in steps] == [s.rule for s in expected]
    assert all(
        "cpu resource utilization" in s.message and "above target" in s.message for s in steps
    )
    return steps


def test_hpa_scales_kwok_pods_3_to_7_to_10_on_metrics_server_cpu(applied, overlay_docs):
    deployment = applied.get_json("deployment/jackcwf-backend", "-n", NAMESPACE)
    assert deployment["spec"]["replicas"] == 3
    steps = scale_up(applied, one(overlay_docs["prod"], "HorizontalPodAutoscaler"))
    # Within one 15 s period the policy allows no second step (event times are whole seconds).
    assert (steps[1].at - steps[0].at).total_seconds() >= 14
    pods = applied.get_json("pods", "-n", NAMESPACE, "-l", BACKEND)["items"]
    assert len([p for p in pods if not p["metadata"].get("deletionTimestamp")]) == 10
    assert applied.get_json(HPA, "-n", NAMESPACE)["status"]["desiredReplicas"] == 10


@pytest.mark.slow
def test_hpa_scales_kwok_pods_down_after_the_300_s_window_to_3(applied, overlay_docs):
    if applied.get_json("deployment/jackcwf-backend", "-n", NAMESPACE)["spec"]["replicas"] != 10:
        scale_up(applied, one(overlay_docs["prod"], "HorizontalPodAutoscaler"))
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
