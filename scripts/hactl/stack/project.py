"""Which compose files, env files and project name make the stack, and its DockerClient.

Discovery order, most explicit first:
1. `--compose-file` / `--env-file` options given to hactl;
2. the labels Compose wrote on the project's running containers
   (`com.docker.compose.project.config_files`, `...environment_file`, `...working_dir`), so that
   hactl drives the stack with the same model it was started with;
3. the repository defaults: `docker-compose.yml` + `docker-compose.ha.yml`, and the env files
   listed in `compose/env-files` (the list the Makefile reads too), in that order.

The rollout env file (default `<project dir>/.env.rollout`, or `HACTL_ROLLOUT_ENV_FILE`) is always
appended last when it exists: it is where hactl records `WEB_IMAGE` and `WEB_REPLICAS` so that a
later `docker compose up` (or `make up-ha`) keeps what hactl rolled out instead of reverting it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import Container, DockerClient, client_config

from hactl.stack.envfile import read_env_file

# python-on-whales runs `docker inspect` again on every attribute read of a Container whose
# inspect result is older than 10 ms. Reading one replica's facts touches ~10 attributes, and the
# waits poll every second: that was dozens of `docker` processes per second on a 2-core host.
# hactl takes a fresh Container object (fresh inspect) on every poll, so 1 s of caching is safe.
client_config.CACHE_VALIDITY_PERIOD = 1.0

DEFAULT_PROJECT = "compose-ha"
# The compose services hactl addresses (docker-compose*.yml, compose/monitoring.yml).
WEB_SERVICE = "web"
TRAEFIK_SERVICE = "traefik"
# Every Traefik instance, in rollout order (docker-compose.ha.yml; the first is TRAEFIK_SERVICE),
# and the network namespace they share, which publishes the ports (docs/load-balancer.md).
TRAEFIK_SERVICES = (TRAEFIK_SERVICE, "traefik-b")
TRAEFIK_NETNS_SERVICE = "traefik-net"
# The load balancer as a whole: what its cost (CPU, memory) adds up.
LB_SERVICES = (*TRAEFIK_SERVICES, TRAEFIK_NETNS_SERVICE)
POSTGRES_SERVICE = "postgres"
PROMETHEUS_SERVICE = "prometheus"
# Where verbs write their results, under the project directory.
RESULTS_DIR = Path("results")
DEFAULT_COMPOSE_FILES = ("docker-compose.yml", "docker-compose.ha.yml")
ENV_ORDER_FILE = "compose/env-files"
ROLLOUT_ENV_FILENAME = ".env.rollout"

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_CONFIG_FILES = "com.docker.compose.project.config_files"
LABEL_ENV_FILE = "com.docker.compose.project.environment_file"
LABEL_WORKING_DIR = "com.docker.compose.project.working_dir"


class StackNotRunningError(RuntimeError):
    """The project has no running container of the service hactl needs."""


@dataclass(frozen=True)
class Stack:
    """Everything needed to address one compose project."""

    project: str
    project_dir: Path
    compose_files: tuple[Path, ...]
    env_files: tuple[Path, ...]
    rollout_env_file: Path

    @property
    def all_env_files(self) -> tuple[Path, ...]:
        """Env files in the order compose reads them (later ones win), existing ones only."""
        files = [f for f in self.env_files if f.is_file()]
        if self.rollout_env_file.is_file() and self.rollout_env_file not in files:
            files.append(self.rollout_env_file)
        return tuple(files)

    def env(self) -> dict[str, str]:
        """Variables as compose resolves them: env files in order, then the process environment."""
        merged: dict[str, str] = {}
        for path in self.all_env_files:
            merged.update(read_env_file(path))
        merged.update(os.environ)
        return merged

    def env_value(self, name: str, default: str) -> str:
        value = self.env().get(name, "")
        return value if value else default

    def path_from_env(self, name: str, default: str) -> Path:
        """A path variable, resolved against the project directory like compose does."""
        path = Path(self.env_value(name, default))
        return path if path.is_absolute() else self.project_dir / path

    def docker(self) -> DockerClient:
        return DockerClient(
            compose_files=list(self.compose_files),
            compose_env_files=list(self.all_env_files),
            compose_project_name=self.project,
            compose_project_directory=self.project_dir,
        )


@contextlib.contextmanager
def process_env(variables: Mapping[str, str]) -> Iterator[None]:
    """Set variables in os.environ for the duration (compose ranks them above any env file)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def project_containers(
    docker: DockerClient, project: str, service: str | None = None, include_stopped: bool = False
) -> list[Container]:
    filters = [("label", f"{LABEL_PROJECT}={project}")]
    if service:
        filters.append(("label", f"{LABEL_SERVICE}={service}"))
    containers = docker.container.list(all=include_stopped, filters=filters)
    return [c for c in containers if c.config.labels.get(LABEL_ONEOFF, "False") != "True"]


def container_number(container: Container) -> int:
    try:
        return int(container.config.labels.get(LABEL_NUMBER, "0"))
    except ValueError:
        return 0


def _split_label(value: str | None) -> tuple[Path, ...]:
    if not value:
        return ()
    return tuple(Path(part) for part in value.split(",") if part)


def default_env_files(directory: Path) -> tuple[Path, ...]:
    """The env files of `compose/env-files`, in order (later ones win); none outside the repo."""
    try:
        lines = (directory / ENV_ORDER_FILE).read_text().splitlines()
    except OSError:
        return ()
    names = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return tuple(directory / name for name in names)


def discover_stack(
    project: str | None = None,
    compose_files: list[Path] | None = None,
    env_files: list[Path] | None = None,
    project_dir: Path | None = None,
    rollout_env_file: Path | None = None,
) -> Stack:
    """Build the Stack from options, then container labels, then repository defaults."""
    name = project or os.environ.get("COMPOSE_PROJECT_NAME") or DEFAULT_PROJECT
    labels: Mapping[str, str] = {}
    try:
        running = project_containers(DockerClient(), name)
    except Exception:  # no engine: commands fail later with a clearer message
        running = []
    if running:  # the newest container knows the latest compose files (e.g. monitoring added)
        labels = max(running, key=lambda c: c.created).config.labels
    directory = project_dir or (
        Path(labels[LABEL_WORKING_DIR]) if LABEL_WORKING_DIR in labels else Path.cwd()
    )
    files = (
        tuple(compose_files or ())
        or _split_label(labels.get(LABEL_CONFIG_FILES))
        or tuple(directory / f for f in DEFAULT_COMPOSE_FILES)
    )
    envs = (
        tuple(env_files or ())
        or _split_label(labels.get(LABEL_ENV_FILE))
        or default_env_files(directory)
    )
    rollout_file = rollout_env_file or Path(
        os.environ.get("HACTL_ROLLOUT_ENV_FILE") or directory / ROLLOUT_ENV_FILENAME
    )
    return Stack(
        project=name,
        project_dir=directory,
        compose_files=files,
        env_files=tuple(p for p in envs if p != rollout_file),
        rollout_env_file=rollout_file,
    )
