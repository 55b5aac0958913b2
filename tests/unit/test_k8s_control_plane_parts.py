"""The parts of scripts/k8s/control_plane.py that need no Kubernetes binary: the PKI, the
version file shared with the build script, the missing-binary error, the wait for a build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.k8s.manifests import REPO

sys.path.insert(0, str(REPO / "scripts" / "k8s"))
import control_plane as cp


def test_versions_are_the_ones_the_build_script_sources() -> None:
    shell = subprocess.run(
        ["bash", "-c", f". {cp.VERSIONS_FILE} && echo $K8S_VERSION $ETCD_VERSION $KWOK_VERSION"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    versions = cp.read_versions()
    assert shell == [versions["K8S_VERSION"], versions["ETCD_VERSION"], versions["KWOK_VERSION"]]
    assert versions["K8S_VERSION"] == "v1.37.2" and versions["ETCD_VERSION"] == "v3.7.3"


def test_missing_binaries_fail_with_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"build-binaries\.sh"):
        cp.Binaries.from_cache(tmp_path)


def test_pki_chains_to_the_cluster_ca_with_loopback_names(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    cp.make_pki(pki)
    for name, ca in (("serving", "ca"), ("admin", "ca"), ("front-proxy-client", "front-proxy-ca")):
        verify = subprocess.run(
            ["openssl", "verify", "-CAfile", str(pki / f"{ca}.crt"), str(pki / f"{name}.crt")],
            capture_output=True,
            text=True,
        )
        assert verify.returncode == 0, verify.stderr
    text = subprocess.run(
        ["openssl", "x509", "-in", str(pki / "serving.crt"), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:kubernetes.default.svc" in text
    subject = subprocess.run(
        ["openssl", "x509", "-in", str(pki / "admin.crt"), "-noout", "-subject"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "O = system:masters" in subject


def test_kwok_nodes_are_managed_by_kwok_and_serve_their_metrics_path() -> None:
    node = cp.kwok_node(1)
    notes = node["metadata"]["annotations"]
    assert notes[cp.KWOK_NODE_ANNOTATION] == "fake"
    assert notes["metrics.k8s.io/resource-metrics-path"] == (
        "/metrics/nodes/kwok-node-1/metrics/resource"
    )
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "kwok-node-1"


def test_waits_while_a_build_holds_the_lock(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("K8S_CACHE_DIR", str(tmp_path))
    assert cp.wait_for_build(timeout=1) == 0.0  # no build ever ran here
    lock = tmp_path / ".build.lock"
    lock.touch()
    holder = subprocess.Popen(
        ["flock", str(lock), "sh", "-c", "echo locked && sleep 3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout and holder.stdout.readline().strip() == "locked"
        with pytest.raises(TimeoutError):
            cp.wait_for_build(timeout=0.5)
        assert cp.wait_for_build(timeout=30) >= 1
    finally:
        holder.wait(timeout=30)
