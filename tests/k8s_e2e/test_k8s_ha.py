"""HA on real Kubernetes pods, end to end: the three-node cluster of `make k8s-up` (kind's design,
scripts/k8s/cluster.py) under the same open-loop load and write-set check as the Compose chaos
suite: 100 requests/s through the Traefik ingress on 127.0.0.1, 30 % of them idempotent writes.

Each test proves its fault happened (the pod is gone, the node is drained or down) and asserts
counts: failed requests, lost and duplicated writes, ready pods. Times (how long until a lost
node's pods run elsewhere) are written to results/k8s/, not asserted (DESIGN.md).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from hactl.loadgen.generator import LoadResult
from hactl.loadgen.write_check import WriteCheck
from tests.support.kube import DEPLOYMENT, NAMESPACE, LocalCluster, ReadyWatch, cluster
from tests.support.load import GETS_AND_WRITES, BackgroundLoad, failures

pytestmark = [pytest.mark.k8s_nodes, pytest.mark.timeout(900)]

RATE = 100.0
FAULT_AT_S = 5.0
RESULTS = Path(__file__).resolve().parents[2] / "results" / "k8s"


def record(name: str, data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2))
    print(f"{name}: {json.dumps(data)} -> {path}")


def load(kube: LocalCluster, duration_s: float) -> BackgroundLoad:
    return BackgroundLoad(kube, rate=RATE, duration_s=duration_s, mix=GETS_AND_WRITES, clients=20)


def assert_shape(result: LoadResult, duration_s: float) -> None:
    """The load really ran: its whole schedule, about 30 % writes."""
    summary = result.summary()
    assert summary.total >= RATE * duration_s * 0.99, f"only {summary.total} requests"
    writes = sum(1 for r in result.records if r.kind == "write")
    assert writes >= 0.25 * summary.total, f"{writes} writes of {summary.total}"


def assert_nothing_failed(result: LoadResult, check: WriteCheck) -> None:
    summary = result.summary()
    # The generator's send lag says whether the host itself was starved (measured: beside the
    # Compose chaos suite, p50 140-265 ms, and the backend's pool deadline answered 503s).
    assert summary.failed == 0, (
        f"{summary.failed} of {summary.total} failed ({summary.failures_by_kind}; load "
        f"generator send lag {summary.send_lag_ms}): {failures(result)}"
    )
    assert not check.lost, f"acknowledged writes lost: {check.lost[:10]}"
    assert not check.duplicated, f"writes stored twice: {check.duplicated}"
    assert check.acknowledged > 0, "no write was acknowledged: the check proves nothing"


def test_delete_a_pod_fails_no_request(kube: LocalCluster) -> None:
    victim = kube.wait_steady()[0]
    duration = 30.0
    with load(kube, duration) as running:
        running.wait_until(FAULT_AT_S)
        kube.kubectl("-n", NAMESPACE, "delete", "pod", victim.name, "--wait=false")
        cluster.wait_for(
            "a replacement pod ready",
            lambda: len([p for p in kube.ready_backends() if p.name != victim.name]) >= 3,
            90,
            1,
        )
    result, check = running.result(), running.write_check()
    assert victim.name not in {p.name for p in kube.backend_pods()}, "the pod was not deleted"
    record("delete-pod", {"victim": victim.name, **asdict(result.summary()), **check.to_json()})
    assert_shape(result, duration)
    assert_nothing_failed(result, check)


def test_rolling_update_fails_and_loses_nothing(kube: LocalCluster) -> None:
    before = {p.name for p in kube.wait_steady()}
    duration = 120.0
    with load(kube, duration) as running:
        running.wait_until(FAULT_AT_S)
        started = running.elapsed()
        kube.kubectl("-n", NAMESPACE, "rollout", "restart", f"deployment/{DEPLOYMENT}")
        kube.kubectl(
            "-n", NAMESPACE, "rollout", "status", f"deployment/{DEPLOYMENT}", "--timeout=100s"
        )
        rolled_s = running.elapsed() - started
        running.finish(after_s=5.0)
    result, check = running.result(), running.write_check()
    after = {p.name for p in kube.ready_backends()}
    summary = asdict(result.summary())
    record("rolling-update", {"rollout_s": rolled_s, **summary, **check.to_json()})
    assert not before & after, f"old pods still serve: {before & after}"
    assert len(after) >= 3, f"only {len(after)} new pods ready"
    assert result.summary().total >= RATE * (FAULT_AT_S + rolled_s) * 0.99
    assert_nothing_failed(result, check)


def test_drain_a_node_keeps_two_ready_and_fails_nothing(kube: LocalCluster) -> None:
    pods = kube.spread_one_per_node()
    # A node with a backend pod that is not the infra node (PostgreSQL, Traefik, DNS live there).
    node = next(p.node for p in pods if p.node != cluster.NODES[0].name)
    duration = 60.0
    try:
        with ReadyWatch(kube) as watch, load(kube, duration) as running:
            running.wait_until(FAULT_AT_S)
            drain = subprocess.run(
                [cluster.kubectl_path(), f"--kubeconfig={cluster.STATE / 'kubeconfig'}",
                 "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s"],
                capture_output=True, text=True, timeout=150,
            )  # fmt: skip
            cluster.wait_for(
                "3 backend pods ready off the drained node",
                lambda: len([p for p in kube.ready_backends() if p.node != node]) >= 3,
                120,
                1,
            )
            running.finish(after_s=5.0)
        result, check = running.result(), running.write_check()
        left = [p.name for p in kube.backend_pods() if p.node == node]
    finally:
        kube.kubectl("uncordon", node)
    record(
        "drain-node",
        {
            "node": node,
            "min_ready": watch.minimum(),
            "drain_rc": drain.returncode,
            **asdict(result.summary()),
            **check.to_json(),
        },
    )
    assert drain.returncode == 0, f"kubectl drain failed: {drain.stderr[-2000:]}"
    assert not left, f"backend pods still on the drained node: {left}"
    assert watch.minimum() >= 2, f"ready pods fell to {watch.minimum()} (PDB minAvailable 2)"
    assert_nothing_failed(result, check)


def test_stop_a_node_container_replaces_its_pods(kube: LocalCluster) -> None:
    pods = kube.spread_one_per_node()
    victim = next(n for n in cluster.NODES if not n.infra and any(p.node == n.name for p in pods))
    lost = {p.name for p in pods if p.node == victim.name}
    marks: dict[str, float] = {}
    duration = 240.0
    try:
        with ReadyWatch(kube) as watch, load(kube, duration) as running:
            running.wait_until(FAULT_AT_S)
            marks["stop"] = running.elapsed()
            subprocess.run(["docker", "stop", victim.name], check=True, capture_output=True)
            cluster.wait_for(
                f"{victim.name} NotReady",
                lambda: victim.name not in kube.nodes_ready(),
                120,
                1,
            )
            marks["node_not_ready"] = running.elapsed()
            cluster.wait_for(
                "3 backend pods ready on the other nodes",
                lambda: len([p for p in kube.ready_backends() if p.node != victim.name]) >= 3,
                200,
                1,
            )
            marks["replaced"] = running.elapsed()
            running.finish(after_s=5.0)
        result, check = running.result(), running.write_check()
    finally:
        subprocess.run(["docker", "start", victim.name], capture_output=True)
        # A restarted node container has a new network namespace: its routes are gone.
        cluster.wire_pod_network()
        cluster.wait_for(
            f"{victim.name} Ready again", lambda: victim.name in kube.nodes_ready(), 120, 1
        )
    summary = result.summary()
    record(
        "stop-node",
        {
            "node": victim.name,
            "lost_pods": sorted(lost),
            "node_not_ready_after_s": marks["node_not_ready"] - marks["stop"],
            "replaced_after_s": marks["replaced"] - marks["stop"],
            "min_ready": watch.minimum(),
            "requests": summary.total,
            "failed": summary.failed,
            "failures_by_kind": summary.failures_by_kind,
            "latency_ms": summary.latency_ms,
            "send_lag_ms": summary.send_lag_ms,
            **check.to_json(),
        },
    )
    assert lost, "the stopped node ran no backend pod: nothing was proven"
    replacements = [p for p in kube.ready_backends() if p.name not in lost]
    assert len(replacements) >= 3, f"only {len(replacements)} pods ready after the node loss"
    # Failed requests are reported (the ingress keeps sending to the lost pods until the node is
    # declared NotReady); writes it acknowledged must still all be stored once.
    assert not check.lost, f"acknowledged writes lost: {check.lost[:10]}"
    assert not check.duplicated, f"writes stored twice: {check.duplicated}"
