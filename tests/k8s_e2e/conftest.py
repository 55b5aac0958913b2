"""The real cluster of `make k8s-up` for the HA tests: fails (never skips) when it is not up."""

from __future__ import annotations

import pytest

from tests.support.kube import LocalCluster


@pytest.fixture(scope="package")
def kube() -> LocalCluster:
    cluster = LocalCluster()
    # Three nodes Ready and the backend's three pods ready, or the fixture fails with the wait.
    cluster.wait_steady(replicas=3, timeout=120)
    return cluster
