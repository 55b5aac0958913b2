"""One view per `web` replica: Docker's facts about the container joined with Traefik's state.

`ContainerFacts` is what hactl needs from `docker inspect`; `join_replicas` is pure (unit tested):
a container's Traefik state is looked up by any of its IP addresses, since Traefik names servers
`http://<container ip>:<port>`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from python_on_whales import Container, DockerClient
from python_on_whales.exceptions import DockerException

from hactl.stack.project import WEB_SERVICE, container_number, project_containers
from hactl.stack.running import RunningStack
from hactl.stack.traefik_api import ServerState

VERSION_LABELS = ("org.opencontainers.image.version", "version")
WHOAMI_URL = "http://127.0.0.1:8000/api/v1/whoami"
WHOAMI_SCRIPT = (
    "import urllib.request;"
    f"print(urllib.request.urlopen('{WHOAMI_URL}', timeout=2).read().decode())"
)


@dataclass(frozen=True)
class ContainerFacts:
    name: str
    id: str
    hostname: str
    number: int
    image: str
    status: str  # running, paused, exited, ...
    health: str  # healthy, unhealthy, starting, none
    ips: tuple[str, ...]
    started_at: datetime | None
    restarts: int
    exit_code: int | None
    label_version: str | None


@dataclass(frozen=True)
class Replica:
    name: str
    hostname: str  # what /api/v1/whoami reports as `replica`
    number: int
    image: str
    version: str
    status: str
    health: str
    traefik: ServerState
    ip: str
    uptime_seconds: float | None
    restarts: int

    @property
    def in_rotation(self) -> bool:
        """Docker says healthy AND Traefik lists it UP: the one definition hactl waits for."""
        return (
            self.status == "running"
            and self.health == "healthy"
            and (self.traefik is ServerState.UP)
        )

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["traefik"] = self.traefik.value
        data["in_rotation"] = self.in_rotation
        return data


def _env_version(env: Sequence[str] | None) -> str | None:
    for item in env or []:
        key, _, value = item.partition("=")
        if key == "APP_VERSION" and value:
            return value
    return None


def container_facts(container: Container) -> ContainerFacts:
    state = container.state
    health = state.health.status if state.health and state.health.status else "none"
    status = "paused" if state.paused else (state.status or "unknown")
    networks = container.network_settings.networks or {}
    ips = tuple(n.ip_address for n in networks.values() if n.ip_address)
    labels = container.config.labels or {}
    version = next((labels[k] for k in VERSION_LABELS if labels.get(k)), None)
    return ContainerFacts(
        name=container.name,
        id=container.id,
        hostname=container.config.hostname or "",
        number=container_number(container),
        image=container.config.image,
        status=status,
        health=health,
        ips=ips,
        started_at=state.started_at if state.running else None,
        restarts=container.restart_count or 0,
        exit_code=state.exit_code,
        label_version=version or _env_version(container.config.env),
    )


def join_replicas(
    containers: Sequence[ContainerFacts],
    traefik: Mapping[str, ServerState],
    versions: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> list[Replica]:
    """Replicas sorted by container number, each with its Traefik state (absent if not listed)."""
    versions = versions or {}
    now = now or datetime.now(UTC)
    replicas = []
    for facts in sorted(containers, key=lambda f: (f.number, f.name)):
        state = next((traefik[ip] for ip in facts.ips if ip in traefik), ServerState.ABSENT)
        ip = next((ip for ip in facts.ips if ip in traefik), facts.ips[0] if facts.ips else "")
        uptime = (now - facts.started_at).total_seconds() if facts.started_at else None
        replicas.append(
            Replica(
                name=facts.name,
                hostname=facts.hostname,
                number=facts.number,
                image=facts.image,
                version=versions.get(facts.name) or facts.label_version or "?",
                status=facts.status,
                health=facts.health,
                traefik=state,
                ip=ip,
                uptime_seconds=uptime,
                restarts=facts.restarts,
            )
        )
    return replicas


def whoami_version(docker: DockerClient, container: str) -> str | None:
    """Ask the replica itself (docker exec, no published port needed) which version it runs."""
    try:
        output = docker.container.execute(container, ["python3", "-c", WHOAMI_SCRIPT])
        return str(json.loads(str(output)).get("version")) or None
    except (DockerException, ValueError, AttributeError):
        return None


def web_containers(running: RunningStack, service: str = WEB_SERVICE) -> list[Container]:
    """The replicas of `web` (or of another service built from its image: `web-canary`)."""
    return project_containers(running.docker, running.project, service)


def collect_replicas(
    running: RunningStack,
    traefik: Mapping[str, ServerState],
    probe_versions: bool = False,
    service: str = WEB_SERVICE,
) -> list[Replica]:
    docker = running.docker
    facts = [container_facts(c) for c in web_containers(running, service)]
    versions: dict[str, str] = {}
    if probe_versions:
        for f in facts:
            if f.status == "running" and (version := whoami_version(docker, f.name)):
                versions[f.name] = version
    return join_replicas(facts, traefik, versions)
