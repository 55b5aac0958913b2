"""The real local cluster of `make k8s-up` (scripts/k8s/cluster.py) as the HA tests see it.

A load target for tests.support.load.BackgroundLoad (the ingress on 127.0.0.1, the dev
overlay's API token, PostgreSQL's rows read with psql in its pod) and the few cluster facts
the tests assert on: which backend pods are ready, on which node.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hactl.loadgen.write_check import parse_psql_rows, stored_messages_sql

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "k8s"))

import cluster  # noqa: E402  (scripts/k8s, path set above)

NAMESPACE = "jackcwf-dev"
DEPLOYMENT = "jackcwf-backend"
BACKEND_SELECTOR = "app.kubernetes.io/name=jackcwf-backend"
TOKENS = REPO / cluster.REPO_TOKENS


@dataclass(frozen=True)
class BackendPod:
    name: str
    node: str
    ready: bool
    terminating: bool


class LocalCluster:
    """kubectl against the k8sn cluster; raises (never skips) when it is not up."""

    def __init__(self) -> None:
        kubeconfig = cluster.STATE / "kubeconfig"
        if not kubeconfig.exists():
            raise AssertionError(f"no cluster: {kubeconfig} is missing; run `make k8s-up` first")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{cluster.INGRESS_PORT}"

    @property
    def api_token(self) -> str:
        return TOKENS.read_text().split()[0]

    def kubectl(self, *args: str) -> str:
        return cluster.kubectl(*args)

    def psql(self, sql: str) -> str:
        """`psql -At -F '|'` as the dev overlay's user, inside the PostgreSQL pod."""
        return self.kubectl(
            "-n", NAMESPACE, "exec", "postgres-0", "--",
            "psql", "-U", "app", "-d", "app", "-At", "-F", "|", "-c", sql,
        )  # fmt: skip

    def stored_writes(self, run_id: str) -> dict[str, list[str]]:
        return parse_psql_rows(self.psql(stored_messages_sql(run_id)))

    def backend_pods(self) -> list[BackendPod]:
        items = json.loads(
            self.kubectl("-n", NAMESPACE, "get", "pods", "-l", BACKEND_SELECTOR, "-o", "json")
        )["items"]
        pods = []
        for pod in items:
            conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
            pods.append(
                BackendPod(
                    name=pod["metadata"]["name"],
                    node=pod["spec"].get("nodeName", ""),
                    ready=conditions.get("Ready") == "True",
                    terminating="deletionTimestamp" in pod["metadata"],
                )
            )
        return pods

    def ready_backends(self) -> list[BackendPod]:
        return [p for p in self.backend_pods() if p.ready and not p.terminating]

    def nodes_ready(self) -> list[str]:
        return cluster.ready_nodes()

    def wait_steady(self, replicas: int = 3, timeout: float = 180) -> list[BackendPod]:
        """Every node Ready, `replicas` backend pods ready and none terminating."""

        def steady() -> bool:
            pods = self.backend_pods()
            return (
                len(self.nodes_ready()) == cluster.NODE_COUNT
                and len([p for p in pods if p.ready and not p.terminating]) >= replicas
                and not any(p.terminating for p in pods)
            )

        cluster.wait_for(f"{replicas} backend pods ready, all nodes Ready", steady, timeout, 1)
        return self.ready_backends()

    def spread_one_per_node(self, timeout: float = 180) -> list[BackendPod]:
        """One ready backend pod on each node. Pods never move back by themselves (after a drain
        or a node loss two share a node); a rollout restart schedules them afresh under the
        Deployment's topology spread."""
        pods = self.wait_steady(timeout=timeout)
        if len({p.node for p in pods}) < cluster.NODE_COUNT:
            self.kubectl("-n", NAMESPACE, "rollout", "restart", f"deployment/{DEPLOYMENT}")
            self.kubectl(
                "-n",
                NAMESPACE,
                "rollout",
                "status",
                f"deployment/{DEPLOYMENT}",
                f"--timeout={timeout:.0f}s",
            )
            pods = self.wait_steady(timeout=timeout)
        nodes = sorted(p.node for p in pods)
        assert nodes == sorted(n.name for n in cluster.NODES), f"pods not one per node: {nodes}"
        return pods


@dataclass
class ReadyWatch:
    """Samples the ready backend pods every `interval` s in a thread: the minimum seen and when
    each new pod first became ready (what a PDB and a rescheduling promise)."""

    cluster: LocalCluster
    interval: float = 0.5
    samples: list[tuple[float, int]] = field(default_factory=list)
    first_ready: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ReadyWatch:
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="ready-watch", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready = self.cluster.ready_backends()
                now = time.monotonic() - self.t0
                self.samples.append((now, len(ready)))
                for pod in ready:
                    self.first_ready.setdefault(pod.name, now)
            except Exception as exc:  # a slow API answer is a gap, reported, not a crash
                self.errors.append(repr(exc))
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def minimum(self) -> int:
        assert self.samples, f"no sample of the ready pods was taken: {self.errors[:3]}"
        return min(count for _, count in self.samples)
