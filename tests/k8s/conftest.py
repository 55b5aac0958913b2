"""A real control plane (scripts/k8s/control_plane.py) shared by the k8s tests of one session.

No skip: when a binary is missing the fixture fails with the build command to run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.manifests import NAMESPACES, OVERLAYS, REPO, one, prepared_tree, render

from control_plane import Binaries, ControlPlane, wait_for, wait_for_build  # isort: skip (path set by manifests)

SERVICEMONITOR_CRD = REPO / "tests/k8s/data/crds/monitoring.coreos.com_servicemonitors.yaml"


@pytest.fixture(scope="session")
def k8s_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared_tree(tmp_path_factory.mktemp("k8s"))


@pytest.fixture(scope="session")
def overlay_docs(k8s_tree: Path) -> dict[str, list[dict]]:
    return {name: render(k8s_tree / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="session")
def overlay_files(overlay_docs: dict[str, list[dict]], k8s_tree: Path) -> dict[str, Path]:
    """Each overlay rendered to one file (what `kubectl apply -k` would send)."""
    files = {}
    for name, docs in overlay_docs.items():
        path = k8s_tree.parent / f"{name}.json"
        path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
        files[name] = path
    return files


# Package scope: the control plane (apiserver, etcd, controllers, kwok, metrics-server: ~15 % of a
# core) stops after the last k8s test instead of running beside the Compose stacks that follow.
@pytest.fixture(scope="package")
def cluster() -> Iterator[ControlPlane]:
    # CI builds the binaries in the background; `make test` runs these tests before the stacks.
    waited = wait_for_build(float(os.environ.get("K8S_BUILD_WAIT_SECONDS", "3600")))
    if waited > 1:
        print(f"\nwaited {waited:.0f} s for scripts/k8s/build-binaries.sh")
    plane = ControlPlane(Binaries.from_cache(), nodes=3)
    try:
        plane.start()
        print(f"\ncontrol plane up in {plane.timings['start_s']:.1f} s ({plane.workdir})")
        # The prometheus-operator's own CRD, so the server checks the ServiceMonitor for real.
        plane.kubectl("apply", "--server-side", "-f", str(SERVICEMONITOR_CRD))
        # (Polled: `kubectl wait` errors while the CRD has no conditions yet.)
        wait_for(
            "ServiceMonitor CRD established",
            lambda: any(
                c["type"] == "Established" and c["status"] == "True"
                for c in plane.get_json("crd/servicemonitors.monitoring.coreos.com")
                .get("status", {})
                .get("conditions", [])
            ),
            60,
        )
        yield plane
    finally:
        plane.stop()
        assert not plane.leftovers(), f"left behind: {plane.leftovers()}"


@pytest.fixture(scope="package")
def applied(
    cluster: ControlPlane, overlay_docs: dict[str, list[dict]], overlay_files: dict[str, Path]
) -> ControlPlane:
    """Both overlays applied for real (after their server-side dry runs passed)."""
    for name in OVERLAYS:
        namespace = one(overlay_docs[name], "Namespace")
        assert namespace["metadata"]["name"] == NAMESPACES[name]
        cluster.kubectl("apply", "-f", "-", input=json.dumps(namespace))
        cluster.kubectl("apply", "--dry-run=server", "-f", str(overlay_files[name]))
        cluster.kubectl("apply", "-f", str(overlay_files[name]))
    return cluster
