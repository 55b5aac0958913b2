"""Fixtures shared by the integration and end-to-end tests.

They run the real thing: a Docker engine, the images named in .env.images, compose stacks under
their own project names. When the engine or an image is missing they fail; they never skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from python_on_whales import DockerClient

from tests.support.stack import (
    BASE_FILE,
    IMAGES_ENV,
    Stack,
    ensure_secrets,
    ha_files,
)

WEB_IMAGE = "compose-ha/web:latest"


@pytest.fixture(scope="session")
def docker_engine() -> DockerClient:
    docker = DockerClient()
    assert docker.info().server_version, "no Docker engine answers: run `make bootstrap`"
    assert IMAGES_ENV.exists(), ".env.images is missing: run `make bootstrap`"
    assert docker.image.exists(WEB_IMAGE), f"{WEB_IMAGE} is missing: run `make build`"
    ensure_secrets()
    return docker


def _started(stack: Stack, replicas: int | None) -> Iterator[Stack]:
    try:
        stack.up()
        if replicas:
            stack.wait_in_rotation(replicas)
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def base_stack(docker_engine: DockerClient) -> Iterator[Stack]:
    """The single-replica setup (docker-compose.yml): postgres, migrate, one web on WEB_PORT."""
    yield from _started(Stack("base", [BASE_FILE]), replicas=None)


@pytest.fixture(scope="module")
def ha_stack(docker_engine: DockerClient) -> Iterator[Stack]:
    """The HA setup: Traefik in front of 3 replicas, all in rotation before the tests run."""
    yield from _started(Stack("ha", ha_files(), env={"WEB_REPLICAS": "3"}), replicas=3)
