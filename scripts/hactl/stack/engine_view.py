"""A project's containers as the engine lists them, in one API call: what hactl's polling waits
read while a fault or a rollout runs under load.

python-on-whales runs one `docker` process per call, and an object older than 10 ms inspects
itself again: one check of a Traefik instance's routing ran 15 of them (about 25 ms of CPU
each), and polled every 0.5 s during a rollout the wait took half a core of the two the stack
serves from (measured: docs/failover.md, seventh session). `GET /containers/json` answers the
same questions (state, health, addresses, labels) in one request on the engine's socket.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Any

from python_on_whales import DockerClient

from hactl.selfheal.docker_api import DockerApi, addresses_of, client_for, health_of
from hactl.stack.project import LABEL_ONEOFF, LABEL_SERVICE

DEFAULT_HOST = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class ContainerView:
    id: str
    name: str
    service: str
    state: str  # running, restarting, paused, exited, created, dead
    health: str  # healthy, unhealthy, starting; "none" without a health check
    ips: frozenset[str]

    @property
    def running(self) -> bool:
        return self.state == "running"


def view_of(entry: dict[str, Any]) -> ContainerView:
    labels = entry.get("Labels") or {}
    return ContainerView(
        id=str(entry["Id"]),
        name=(entry.get("Names") or ["/" + str(entry["Id"])[:12]])[0].lstrip("/"),
        service=labels.get(LABEL_SERVICE, ""),
        state=str(entry.get("State", "")),
        health=health_of(str(entry.get("Status") or "")),
        ips=frozenset(addresses_of(entry)),
    )


@cache
def engine_api(host: str) -> DockerApi:
    return DockerApi(client_for(host))


def engine_of(docker: DockerClient) -> DockerApi:
    """The API of the engine `docker` talks to (its host, else DOCKER_HOST, else the socket)."""
    host = docker.client_config.host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    return engine_api(str(host))


def project_view(docker: DockerClient, project: str) -> list[ContainerView]:
    """Every container of the project but one-off runs, stopped ones included, by name."""
    entries = engine_of(docker).project_containers(project)
    views = [
        view_of(e) for e in entries if (e.get("Labels") or {}).get(LABEL_ONEOFF, "False") != "True"
    ]
    return sorted(views, key=lambda v: v.name)


# The states `docker ps` lists (python-on-whales' `container.list()` without `all`).
LISTED_STATES = frozenset({"running", "paused", "restarting"})


def listed(views: list[ContainerView], service: str) -> list[ContainerView]:
    """The service's containers `docker ps` would list, by name."""
    return [v for v in views if v.service == service and v.state in LISTED_STATES]


def container_env(docker: DockerClient, container_id: str) -> list[str]:
    return list(engine_of(docker).inspect(container_id)["Config"].get("Env") or [])


def restart_count(docker: DockerClient, container_id: str) -> int:
    return int(engine_of(docker).inspect(container_id).get("RestartCount") or 0)
