"""Where a stack's published endpoints are: Traefik's API, the load balancer, Prometheus.

All come from the same variables the compose files use (`TRAEFIK_API_PORT`, `HTTP_PORT`,
`PROMETHEUS_PORT`, `SECRETS_DIR`), resolved like compose does (env files, then the environment).
hactl always talks to 127.0.0.1: the stack publishes its ports there.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from hactl.stack.project import Stack
from hactl.stack.traefik_api import TraefikApi

HOST = "127.0.0.1"
STICKY_COOKIE = "ha_sticky"


def free_port() -> int:
    """A port nothing listens on at 127.0.0.1 now, for a stack started beside others."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _read_secret(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Endpoints:
    traefik_api_url: str
    dashboard_password: str
    load_balancer_url: str
    prometheus_url: str
    api_token: str

    def traefik(self) -> TraefikApi:
        return TraefikApi(self.traefik_api_url, password=self.dashboard_password)


def stack_endpoints(stack: Stack) -> Endpoints:
    secrets = stack.path_from_env("SECRETS_DIR", "./secrets")
    tokens = _read_secret(secrets / "api_tokens").splitlines()
    return Endpoints(
        traefik_api_url=f"http://{HOST}:{stack.env_value('TRAEFIK_API_PORT', '8080')}",
        dashboard_password=_read_secret(secrets / "dashboard_password"),
        load_balancer_url=f"http://{HOST}:{stack.env_value('HTTP_PORT', '80')}",
        prometheus_url=f"http://{HOST}:{stack.env_value('PROMETHEUS_PORT', '9090')}",
        api_token=tokens[0].strip() if tokens else "",
    )
