"""The init container `migrate` on real pods: three pods started together on an empty database
apply the migrations once (backend/app/migrate.py serialises runners with an advisory lock;
each file runs in one transaction with its schema_migrations row). Destroys the dev database's
tables: run it on the `make k8s-up` cluster only."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.kube import BACKEND_SELECTOR, NAMESPACE, LocalCluster, cluster

pytestmark = [pytest.mark.k8s_nodes, pytest.mark.timeout(600)]

MIGRATIONS = sorted(
    int(p.name.split("_")[0])
    for p in (Path(__file__).resolve().parents[2] / "backend/migrations").glob("*.sql")
)


def applied_by(kube: LocalCluster, pod: str) -> list[int]:
    """The `applied` list of the pod's "migrations complete" log line."""
    logs = kube.kubectl("-n", NAMESPACE, "logs", pod, "-c", "migrate")
    for line in logs.splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("message") == "migrations complete":
            return list(entry["applied"])
    raise AssertionError(f"{pod}: no 'migrations complete' in its migrate log:\n{logs[-2000:]}")


def test_three_pods_started_together_migrate_once(kube: LocalCluster) -> None:
    old = {p.name for p in kube.wait_steady()}
    kube.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    assert kube.psql("SELECT to_regclass('schema_migrations') IS NULL").strip() == "t"
    # All three at once: the ReplicaSet creates three new pods together.
    kube.kubectl("-n", NAMESPACE, "delete", "pods", "-l", BACKEND_SELECTOR, "--wait=false")
    cluster.wait_for(
        "3 new backend pods ready",
        lambda: len([p for p in kube.ready_backends() if p.name not in old]) >= 3,
        180,
        1,
    )
    new = [p.name for p in kube.ready_backends() if p.name not in old]
    # Started together: the three migrate containers within 2 s of each other (the API's times
    # have 1 s resolution; a quiet machine runs both migrations in under a second, so an
    # overlap of the runs themselves cannot be shown with them).
    runs = [
        json.loads(kube.kubectl("-n", NAMESPACE, "get", "pod", pod, "-o", "json"))["status"][
            "initContainerStatuses"
        ][0]["state"]["terminated"]
        for pod in new
    ]
    started = sorted(datetime.fromisoformat(r["startedAt"]) for r in runs)
    print(f"migrate runs: {[(r['startedAt'], r['finishedAt']) for r in runs]}")
    assert (started[-1] - started[0]).total_seconds() <= 2, f"not started together: {runs}"
    applied = {pod: applied_by(kube, pod) for pod in new}
    print(f"applied per pod: {applied}")
    assert sorted(v for versions in applied.values() for v in versions) == MIGRATIONS, applied
    assert sum(1 for versions in applied.values() if versions) == 1, applied
    rows = kube.psql("SELECT version FROM schema_migrations ORDER BY version").split()
    assert [int(r) for r in rows] == MIGRATIONS
