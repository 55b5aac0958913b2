"""The peer every failover figure is measured against: a plain Traefik, tuned by hand as in
HA-MECHANICS, in front of the same backend image, the same replica count and a PostgreSQL of its
own (compose/peer/plain-traefik.yml). `hactl chaos --peer` starts it beside the stack under its
own project name on free 127.0.0.1 ports, runs the same scenarios against it in the same run,
and removes it afterwards (its volumes too): a number without its peer beside it says little on
a shared machine.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from python_on_whales import DockerClient

from hactl.chaos.runner import ChaosStack
from hactl.stack.endpoints import free_port, stack_endpoints
from hactl.stack.project import Stack
from hactl.stack.traefik_api import (
    ServerState,
    TraefikApi,
    TraefikApiError,
    find_service,
    parse_server_states,
)
from hactl.waiting import wait_until

PEER_COMPOSE_FILE = Path("compose/peer/plain-traefik.yml")
PEER_SUFFIX = "-peer"


def peer_env(replicas: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The peer's own ports (free ones, 127.0.0.1 only) and the replica count to match."""
    return {
        "HTTP_PORT": str(free_port()),
        "TRAEFIK_API_PORT": str(free_port()),
        "WEB_PORT": str(free_port()),
        "WEB_REPLICAS": str(replicas),
        **(extra or {}),
    }


def replicas_up(api: TraefikApi, replicas: int) -> bool:
    try:
        service = find_service(api.http_services(), "web@docker")
    except TraefikApiError:
        return False
    states = parse_server_states(service).values()
    return sum(1 for s in states if s.state is ServerState.UP) == replicas


@contextmanager
def peer_stack(
    stack: Stack, replicas: int, extra_env: dict[str, str] | None = None, timeout_s: float = 180
) -> Iterator[ChaosStack]:
    """Start the peer beside ``stack`` (same env files, so the same images and secrets), yield a
    chaos handle to it, and remove it whatever happens."""
    env = peer_env(replicas, extra_env)
    with tempfile.NamedTemporaryFile("w", suffix=".env", prefix="peer-") as env_file:
        env_file.write("".join(f"{k}={v}\n" for k, v in env.items()))
        env_file.flush()
        docker = DockerClient(
            compose_files=[
                stack.project_dir / "docker-compose.yml",
                stack.project_dir / PEER_COMPOSE_FILE,
            ],
            compose_env_files=[*stack.all_env_files, Path(env_file.name)],
            compose_project_name=stack.project + PEER_SUFFIX,
            compose_project_directory=stack.project_dir,
        )
        try:
            docker.compose.up(detach=True, wait=True, wait_timeout=int(timeout_s))
            api = TraefikApi(f"http://127.0.0.1:{env['TRAEFIK_API_PORT']}")
            wait_until(
                f"{replicas} peer replicas UP in the plain Traefik",
                lambda: replicas_up(api, replicas),
                timeout_s,
                interval=0.5,
            )
            yield ChaosStack(
                docker=docker,
                project=stack.project + PEER_SUFFIX,
                base_url=f"http://127.0.0.1:{env['HTTP_PORT']}",
                token=stack_endpoints(stack).api_token,
                traefik=api,
                postgres_user=stack.env_value("POSTGRES_USER", "app"),
                postgres_db=stack.env_value("POSTGRES_DB", "app"),
            )
        finally:
            docker.compose.down(volumes=True, remove_orphans=True, timeout=5)
