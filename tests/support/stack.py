"""A compose-ha stack for tests: its own project name, free 127.0.0.1 ports, torn down after.

Each stack writes a small env file (ports, replica count, extra settings) that is passed to
compose after `.env.images`, so several stacks can run on one engine without touching os.environ.
"""

from __future__ import annotations

import contextlib
import secrets as pysecrets
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
from python_on_whales import Container, DockerClient
from python_on_whales.exceptions import NoSuchContainer

from hactl.loadgen.write_check import fetch_stored_writes
from hactl.stack.endpoints import free_port
from hactl.waiting import WaitAbortedError, WaitFailedError, wait_until
from hactl.waiting import wait_for as hactl_wait_for

REPO = Path(__file__).resolve().parents[2]
BASE_FILE = REPO / "docker-compose.yml"
HA_FILE = REPO / "docker-compose.ha.yml"
MONITORING_FILE = REPO / "compose" / "monitoring.yml"
# The hand-tuned plain Traefik the chaos suite and the benchmarks compare the project with.
PEER_FILE = REPO / "compose" / "peer" / "plain-traefik.yml"
IMAGES_ENV = REPO / ".env.images"
SECRETS_DIR = REPO / "secrets"
TEST_PROJECT_PREFIX = "chatest"
T = TypeVar("T")
# Whose containers a CI machine may remove: the project's own stacks (`make up-ha` uses PROJECT,
# default compose-ha), the tests' compose projects (chatest-*, hx-* for image builds) and the
# containers tests start with `docker run` (named chatest-*, or be-schema-* in the backend tests).
# Nothing else on the engine is ours to touch.
OWN_PROJECT_PREFIXES = ("compose-ha", f"{TEST_PROJECT_PREFIX}-", "hx-")
OWN_NAME_PREFIXES = (f"{TEST_PROJECT_PREFIX}-", "be-schema-")

PORT_VARS = (
    "WEB_PORT",
    "HTTP_PORT",
    "HTTPS_PORT",
    "TRAEFIK_API_PORT",
    "PROMETHEUS_PORT",
    "ALERTMANAGER_PORT",
    "GRAFANA_PORT",
)


def ensure_secrets() -> None:
    subprocess.run(["bash", str(REPO / "scripts" / "gen_secrets.sh")], check=True)


def wait_for(
    condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25
) -> T:
    """Poll until `condition()` is truthy (hactl's one wait helper); fail the test at the deadline.

    A condition that raises counts as "not yet" (its error is in the failure message); one that
    raises WaitAbortedError ends the wait at once.
    """
    try:
        return wait_until(what, condition, timeout, interval)
    except WaitFailedError as error:
        raise AssertionError(str(error)) from error


@dataclass
class Stack:
    """One running stack. `files` decides the shape: base only, HA overlay, monitoring."""

    name: str
    files: list[Path]
    env: dict[str, str] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: REPO / ".pytest_cache" / "stacks")

    def __post_init__(self) -> None:
        self.project = f"{TEST_PROJECT_PREFIX}-{self.name}-{pysecrets.token_hex(3)}"
        for var in PORT_VARS:
            self.env.setdefault(var, str(free_port()))
        self.env.setdefault("SECRETS_DIR", str(SECRETS_DIR))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env_file = self.workdir / f"{self.project}.env"
        self.write_env()

    def write_env(self) -> None:
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))

    @property
    def env_files(self) -> list[Path]:
        # .env.images is required: without it compose would try to pull upstream images.
        assert IMAGES_ENV.exists(), f"{IMAGES_ENV} is missing: run `make bootstrap` first"
        return [IMAGES_ENV, self.env_file]

    @property
    def docker(self) -> DockerClient:
        return DockerClient(
            compose_files=self.files,
            compose_env_files=self.env_files,
            compose_project_name=self.project,
            compose_project_directory=REPO,
            compose_profiles=self.profiles,
        )

    # --- addresses and credentials -------------------------------------------------------------
    def port(self, var: str) -> int:
        return int(self.env[var])

    @property
    def base_url(self) -> str:
        """Where clients reach the service: Traefik in HA stacks, the one replica otherwise."""
        if HA_FILE in self.files or PEER_FILE in self.files:
            return f"http://127.0.0.1:{self.port('HTTP_PORT')}"
        return f"http://127.0.0.1:{self.port('WEB_PORT')}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port('TRAEFIK_API_PORT')}"

    @property
    def api_token(self) -> str:
        return (SECRETS_DIR / "api_tokens").read_text().split()[0]

    @property
    def dashboard_auth(self) -> tuple[str, str]:
        return ("admin", (SECRETS_DIR / "dashboard_password").read_text().strip())

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_token}"}

    # --- lifecycle -----------------------------------------------------------------------------
    def up(self, scales: dict[str, int] | None = None, timeout: int = 180) -> None:
        """`compose up -d`, then wait until every container runs and is healthy.

        Not `up --wait`: it gives up at a container's first `unhealthy`. On a loaded host a
        replica's health check (3 s timeout, 2 retries after a 30 s start period) fails once
        and passes a few seconds later; Docker's status recovers, `--wait` does not (two e2e
        runs here failed at setup with "container ...-web-1 is unhealthy", load average 50).
        A container that exits non-zero still fails the wait at once.
        """
        self.docker.compose.up(detach=True, scales=scales or {})
        what = f"every container of {self.project} running and healthy"
        try:
            hactl_wait_for(what, self.settled, timeout)
        except WaitFailedError as error:
            raise AssertionError(str(error)) from error

    def settled(self) -> tuple[bool, str]:
        """Every container running (healthy where it has a health check), or a one-shot
        container (`migrate`) that exited 0; the detail names the others."""
        containers = self.docker.compose.ps(all=True)
        pending = []
        for container in containers:
            state = container.state
            health = state.health.status if state.health else None
            if state.status == "exited":
                if state.exit_code == 0:
                    continue
                raise WaitAbortedError(f"{container.name} exited {state.exit_code}")
            if state.status != "running" or health not in (None, "healthy"):
                pending.append(f"{container.name}={state.status}/{health}")
        return bool(containers) and not pending, ", ".join(pending) or f"{len(containers)} ok"

    def down(self) -> None:
        self.docker.compose.down(volumes=True, remove_orphans=True, timeout=5)
        self.env_file.unlink(missing_ok=True)

    # --- inspection ----------------------------------------------------------------------------
    def containers(self, service: str, all_states: bool = False) -> list[Container]:
        return [
            c
            for c in self.docker.compose.ps(services=[service], all=all_states)
            if c.config.labels.get("com.docker.compose.service") == service
        ]

    def stored_writes(self, run_id: str) -> dict[str, list[str]]:
        """The run's chat writes as PostgreSQL holds them (for the write-set check)."""
        return fetch_stored_writes(self.docker, self.containers("postgres")[0], run_id)

    def container_ip(self, container: Container) -> str:
        container.reload()
        net = container.network_settings.networks[f"{self.project}_backend"]
        return net.ip_address

    def traefik_servers(self, service: str = "web@docker") -> dict[str, str]:
        """Traefik's view: server URL -> UP/DOWN for `service` ({} when it has none)."""
        r = httpx.get(
            f"{self.api_url}/api/http/services/{service}", auth=self.dashboard_auth, timeout=2
        )
        if r.status_code == 404:
            return {}
        r.raise_for_status()
        return dict(r.json().get("serverStatus", {}))

    def wait_in_rotation(self, n: int, timeout: float = 60) -> list[Container]:
        """Wait until `n` web replicas are Docker-healthy AND listed UP by Traefik."""

        def ready() -> list[Container] | None:
            webs = [
                c
                for c in self.containers("web")
                if c.state.health and c.state.health.status == "healthy"
            ]
            up = {u for u, s in self.traefik_servers().items() if s == "UP"}
            urls = {f"http://{self.container_ip(c)}:8000" for c in webs}
            return webs if len(webs) == n and urls == up else None

        return wait_for(ready, timeout, f"{n} web replicas healthy and UP in Traefik")


def cleanup_test_projects(prefix: str = TEST_PROJECT_PREFIX) -> None:
    """Remove what an interrupted run left: test projects' containers, networks, volumes."""
    docker = DockerClient()
    projects: set[str] = {
        c.config.labels.get("com.docker.compose.project", "")
        for c in docker.container.list(all=True, filters=[("label", "com.docker.compose.project")])
    }
    for project in sorted(p for p in projects if p.startswith(prefix + "-")):
        leftover = docker.container.list(
            all=True, filters=[("label", f"com.docker.compose.project={project}")]
        )
        docker.container.remove(leftover, force=True, volumes=True)
    for net in docker.network.list(filters=[("label", "com.docker.compose.project")]):
        if net.labels.get("com.docker.compose.project", "").startswith(prefix + "-"):
            docker.network.remove(net)
    for vol in docker.volume.list(filters=[("label", "com.docker.compose.project")]):
        if vol.labels.get("com.docker.compose.project", "").startswith(prefix + "-"):
            docker.volume.remove(vol)


def is_own_container(project: str, name: str) -> bool:
    """Whether a container (its compose project label, its name) belongs to this repository."""
    return project.startswith(OWN_PROJECT_PREFIXES) or name.lstrip("/").startswith(
        OWN_NAME_PREFIXES
    )


def remove_own_containers() -> list[str]:
    """Force-remove this repository's leftover containers (never another project's); their names."""
    docker = DockerClient()
    own: dict[str, str] = {}  # id -> name, read once: a removed container can't be inspected
    for c in docker.container.list(all=True):
        try:
            project, name = c.config.labels.get("com.docker.compose.project", ""), c.name
        except NoSuchContainer:  # gone meanwhile (a stack still going down)
            continue
        if is_own_container(project, name):
            own[c.id] = name
    for container_id in own:
        with contextlib.suppress(NoSuchContainer):
            docker.container.remove(container_id, force=True)
    return sorted(own.values())


def ha_files(monitoring: bool = False) -> list[Path]:
    files = [BASE_FILE, HA_FILE]
    if monitoring:
        files.append(MONITORING_FILE)
    return files


def replica_of(response: httpx.Response) -> str:
    return response.json()["replica"]


def count_by(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts
