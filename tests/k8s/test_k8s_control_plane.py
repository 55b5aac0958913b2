"""k8s/ against a real API server and real controllers (nodes and pod status simulated by kwok).

What a schema cannot show: the server's own validation and admission (Pod Security, quotas,
strict decoding), the controllers' results (ReplicaSet, pods scheduled onto nodes, PDB status),
and the Eviction API honouring the PDB.
"""

from __future__ import annotations

import copy
import json

import pytest

from tests.k8s.manifests import NAMESPACES, OVERLAYS, one

from control_plane import ControlPlane, wait_for  # isort: skip (path set by manifests)

pytestmark = pytest.mark.k8s

BACKEND = "app.kubernetes.io/name=jackcwf-backend"
PDB_REFUSAL = "Cannot evict pod as it would violate the pod's disruption budget"


def _pods(cluster: ControlPlane, namespace: str, selector: str = BACKEND) -> list[dict]:
    items = cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _ready(pod: dict) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def _wait_ready_backends(cluster: ControlPlane, namespace: str, count: int) -> list[dict]:
    def ready() -> bool:
        pods = _pods(cluster, namespace)
        return len(pods) == count and all(_ready(p) for p in pods)

    wait_for(f"{count} ready backend pods in {namespace}", ready, 120, interval=0.5)
    return _pods(cluster, namespace)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_server_dry_run_accepts_every_object(cluster, overlay_docs, overlay_files, overlay):
    docs = overlay_docs[overlay]
    # A dry run creates no Namespace, and the objects in it would fail: create it for real.
    cluster.kubectl("apply", "-f", "-", input=json.dumps(one(docs, "Namespace")))
    out = cluster.kubectl(
        "apply", "--dry-run=server", "-f", str(overlay_files[overlay]), check=False
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(docs)
    assert all(line.endswith("(server dry run)") for line in lines), out.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_real_apply_creates_every_object(applied, overlay_docs, overlay):
    for doc in overlay_docs[overlay]:
        kind, name = doc["kind"], doc["metadata"]["name"]
        args = [f"{kind}.{doc['apiVersion'].split('/')[0]}" if "/" in doc["apiVersion"] else kind]
        namespace = [] if kind == "Namespace" else ["-n", NAMESPACES[overlay]]
        got = applied.get_json(f"{args[0]}/{name}", *namespace)
        assert got["metadata"]["uid"], f"{kind}/{name}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kwok_nodes_run_three_backend_pods_of_one_replicaset(applied, overlay):
    namespace = NAMESPACES[overlay]
    pods = _wait_ready_backends(applied, namespace, 3)
    sets = applied.get_json("replicasets", "-n", namespace, "-l", BACKEND)["items"]
    assert len(sets) == 1
    replica_set = sets[0]
    assert replica_set["metadata"]["ownerReferences"][0]["name"] == "jackcwf-backend"
    assert replica_set["status"]["readyReplicas"] == 3
    assert {p["metadata"]["ownerReferences"][0]["name"] for p in pods} == {
        replica_set["metadata"]["name"]
    }
    nodes = [p["spec"]["nodeName"] for p in pods]
    assert all(n.startswith("kwok-node-") for n in nodes)
    # The topology spread: one pod per node.
    assert len(set(nodes)) == 3
    # Each pod has the migrate init container; kwok reports it completed (nothing runs here).
    for pod in pods:
        init = pod["status"]["initContainerStatuses"]
        assert [s["name"] for s in init] == ["migrate"]
        assert init[0]["state"]["terminated"]["exitCode"] == 0
    deployment = applied.get_json("deployment/jackcwf-backend", "-n", namespace)
    assert deployment["status"]["availableReplicas"] == 3


def test_kwok_runs_dev_postgres_with_a_bound_volume(applied):
    namespace = NAMESPACES["dev"]

    def running() -> bool:
        pods = _pods(applied, namespace, "app.kubernetes.io/name=postgres")
        return len(pods) == 1 and _ready(pods[0])

    wait_for("dev postgres pod ready", running, 120, interval=0.5)
    claim = applied.get_json("pvc/data-postgres-0", "-n", namespace)
    assert claim["status"]["phase"] == "Bound"


def test_pdb_status_with_three_ready_kwok_pods(applied):
    namespace = NAMESPACES["prod"]
    _wait_ready_backends(applied, namespace, 3)

    def settled() -> bool:
        status = applied.get_json("pdb/jackcwf-backend-pdb", "-n", namespace)["status"]
        return status.get("currentHealthy") == 3 and status.get("disruptionsAllowed") == 1

    wait_for("PDB status 3 healthy / 1 allowed", settled, 60, interval=0.5)
    status = applied.get_json("pdb/jackcwf-backend-pdb", "-n", namespace)["status"]
    assert status["expectedPods"] == 3
    assert status["desiredHealthy"] == 2
    assert status["disruptionsAllowed"] == 1


def _evict(cluster: ControlPlane, namespace: str, pod: str):
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": namespace},
    }
    return cluster.kubectl(
        "create", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction", "-f", "-",
        input=json.dumps(body), check=False,
    )  # fmt: skip


def test_eviction_api_refuses_to_go_below_two_on_kwok(applied):
    namespace = NAMESPACES["prod"]
    pods = _wait_ready_backends(applied, namespace, 3)
    nodes = [n["metadata"]["name"] for n in applied.get_json("nodes")["items"]]
    # Cordoned nodes: the evicted pod's replacement cannot be scheduled, so the count stays
    # at 2 for the second eviction (no race with a fast replacement).
    applied.kubectl("cordon", *nodes)
    try:
        first = _evict(applied, namespace, pods[0]["metadata"]["name"])
        assert first.returncode == 0, first.stderr
        second = _evict(applied, namespace, pods[1]["metadata"]["name"])
        assert second.returncode != 0
        assert PDB_REFUSAL in second.stderr
        alive = {p["metadata"]["name"] for p in _pods(applied, namespace) if _ready(p)}
        assert pods[1]["metadata"]["name"] in alive and len(alive) == 2
    finally:
        applied.kubectl("uncordon", *nodes)
    _wait_ready_backends(applied, namespace, 3)


def test_hpa_spec_read_back_equals_the_diagrams(applied, overlay_docs):
    for overlay in OVERLAYS:
        hpa = applied.get_json("hpa/jackcwf-backend-hpa", "-n", NAMESPACES[overlay])
        assert hpa["spec"] == one(overlay_docs[overlay], "HorizontalPodAutoscaler")["spec"]
        spec = hpa["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 10)
        assert spec["behavior"]["scaleUp"]["policies"] == [
            {"type": "Percent", "value": 100, "periodSeconds": 15},
            {"type": "Pods", "value": 4, "periodSeconds": 15},
        ]
        assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
        assert spec["behavior"]["scaleDown"]["policies"] == [
            {"type": "Percent", "value": 50, "periodSeconds": 60},
            {"type": "Pods", "value": 2, "periodSeconds": 60},
        ]


def _pdb_with_both(docs):
    pdb = copy.deepcopy(one(docs, "PodDisruptionBudget"))
    pdb["spec"]["maxUnavailable"] = 1
    return pdb


def _hpa_max_below_min(docs):
    hpa = copy.deepcopy(one(docs, "HorizontalPodAutoscaler"))
    hpa["spec"]["maxReplicas"] = 2
    return hpa


def _probe_with_two_handlers(docs):
    deployment = copy.deepcopy(one(docs, "Deployment"))
    backend = deployment["spec"]["template"]["spec"]["containers"][0]
    backend["readinessProbe"]["exec"] = {"command": ["true"]}
    return deployment


def _unknown_field(docs):
    deployment = copy.deepcopy(one(docs, "Deployment"))
    deployment["spec"]["replica"] = 3
    return deployment


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (_pdb_with_both, "minAvailable and maxUnavailable cannot be both set"),
        (_hpa_max_below_min, "must be greater than or equal to `minReplicas`"),
        (_probe_with_two_handlers, "may not specify more than 1 handler type"),
        (_unknown_field, 'unknown field "spec.replica"'),
    ],
    ids=["pdb-min-and-max", "hpa-max-below-min", "probe-two-handlers", "unknown-field"],
)
def test_server_rejects_known_mistakes(cluster, overlay_docs, mistake, message):
    docs = overlay_docs["prod"]
    cluster.kubectl("apply", "-f", "-", input=json.dumps(one(docs, "Namespace")))
    bad = mistake(docs)
    out = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(bad), check=False
    )
    assert out.returncode != 0, f"the server accepted {bad['kind']}: {out.stdout}"
    assert message in out.stderr
