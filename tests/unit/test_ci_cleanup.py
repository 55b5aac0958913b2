"""`.ci/run` cleans only this repository's leftovers: never another project's containers."""

from __future__ import annotations

import re

import pytest

from tests.support.stack import REPO, is_own_container


@pytest.mark.parametrize(
    ("project", "name"),
    [
        ("compose-ha", "compose-ha-web-1"),  # `make up-ha`
        ("compose-ha-dev", "compose-ha-dev-traefik-1"),
        ("chatest-ha-3f2a1b", "chatest-ha-3f2a1b-web-2"),  # tests/support/stack.py
        ("hx-image-build", "hx-image-build-web-run-1"),
        ("", "chatest-airgap-a1b2c3-traefik"),  # `docker run` by the integration tests
        ("", "/be-schema-0a1b2c"),
    ],
)
def test_this_repositorys_containers_are_removed(project: str, name: str) -> None:
    assert is_own_container(project, name)


@pytest.mark.parametrize(
    ("project", "name"),
    [
        ("", "postgres"),  # a container someone started by hand
        ("h-k8s-dev", "h-k8s-dev-web-1"),  # another engineer's stack
        ("myapp", "myapp-db-1"),
        ("other-compose-ha", "other-compose-ha-web-1"),
        ("", "kind-control-plane"),
    ],
)
def test_other_containers_are_left_alone(project: str, name: str) -> None:
    assert not is_own_container(project, name)


def test_ci_run_removes_no_container_by_listing_them_all() -> None:
    script = (REPO / ".ci" / "run").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"docker\s+ps\s+-a?q", code), "lists every container on the engine"
    assert not re.search(r"docker\s+(container\s+)?rm\s+-f\s+\$", code)
    assert "remove_own_containers()" in code
