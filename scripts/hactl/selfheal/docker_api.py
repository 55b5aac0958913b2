"""The Docker Engine API calls the self-healing controller makes, and nothing else.

Seven calls, the list the controller's socket proxy allows (compose/selfheal/haproxy.cfg):
  GET  /_ping                          liveness of the engine (start-up check)
  GET  /containers/json                the project's containers (label filter)
  GET  /containers/{id}/json           a sibling to clone
  POST /containers/create              a replacement for a removed replica
  POST /containers/{id}/start          an exited replica, or the new one
  POST /containers/{id}/restart        a replica failing its liveness probe (paused ones too)
  POST /networks/{id}/connect          a replacement's second network, if the service has one
Unversioned paths: the engine answers in its own API version (1.41 on Debian's 20.10; newer
engines refuse old version prefixes).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

import httpx

TIMEOUT = httpx.Timeout(10.0, connect=3.0)


def health_of(status: str) -> str:
    """The health in a container list entry's Status text ("Up 3 seconds (health: starting)"):
    healthy, unhealthy, starting, or "none" without a health check."""
    for marker, health in (
        ("(healthy)", "healthy"),
        ("(unhealthy)", "unhealthy"),
        ("(health: starting)", "starting"),
    ):
        if marker in status:
            return health
    return "none"


def addresses_of(container: dict[str, Any]) -> tuple[str, ...]:
    """The IPs of a list entry or an inspect answer, one per network it has an address on."""
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    return tuple(n["IPAddress"] for n in networks.values() if n.get("IPAddress"))


class DockerApiError(RuntimeError):
    def __init__(self, call: str, status: int, message: str) -> None:
        super().__init__(f"{call}: HTTP {status}: {message}")
        self.status = status


def client_for(docker_host: str) -> httpx.Client:
    """unix:///var/run/docker.sock or tcp://host:port (a socket proxy) -> an httpx client."""
    url = urlparse(docker_host)
    if url.scheme == "unix":
        transport = httpx.HTTPTransport(uds=url.path)
        return httpx.Client(transport=transport, base_url="http://docker", timeout=TIMEOUT)
    if url.scheme in ("tcp", "http"):
        return httpx.Client(base_url=f"http://{url.netloc}", timeout=TIMEOUT)
    raise ValueError(f"unsupported Docker host {docker_host!r} (unix:// or tcp://)")


class DockerApi:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise DockerApiError(f"{method} {path}", response.status_code, message.strip())
        return response

    def ping(self) -> None:
        self._call("GET", "/_ping")

    def project_containers(self, project: str) -> list[dict[str, Any]]:
        filters = json.dumps({"label": [f"com.docker.compose.project={project}"]})
        return self._call("GET", "/containers/json", params={"all": "1", "filters": filters}).json()

    def inspect(self, container_id: str) -> dict[str, Any]:
        return self._call("GET", f"/containers/{container_id}/json").json()

    def create(self, name: str, body: dict[str, Any]) -> str:
        response = self._call("POST", "/containers/create", params={"name": name}, json=body)
        return str(response.json()["Id"])

    def start(self, container_id: str) -> None:
        self._call("POST", f"/containers/{container_id}/start")

    def restart(self, container_id: str, stop_timeout: int) -> None:
        self._call("POST", f"/containers/{container_id}/restart", params={"t": str(stop_timeout)})

    def connect(self, network: str, container_id: str, endpoint: dict[str, Any]) -> None:
        body = {"Container": container_id, "EndpointConfig": endpoint}
        self._call("POST", f"/networks/{network}/connect", json=body)
