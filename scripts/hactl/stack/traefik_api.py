"""Read Traefik's API: which servers a service balances over, and whether each one is UP.

`GET /api/http/services` returns a list of services; the one for the compose `web` service is
`web@docker`. Each has `loadBalancer.servers[].url` (the servers Traefik knows) and `serverStatus`
(`{url: "UP" | "DOWN"}`, filled by the active health check). A container that is not in
`servers` is not in rotation at all (Traefik left it out: health starting/unhealthy, or stopped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx

WEB_SERVICE_NAME = "web@docker"


class ServerState(StrEnum):
    UP = "UP"
    DOWN = "DOWN"
    ABSENT = "absent"


class TraefikApiError(RuntimeError):
    """Traefik's API did not answer or answered something unexpected."""


@dataclass(frozen=True)
class ServerStatus:
    url: str
    state: ServerState

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


def find_service(services: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    for service in services:
        if service.get("name") == name:
            return service
    return None


def parse_server_states(service: Mapping[str, Any] | None) -> dict[str, ServerStatus]:
    """Server URL -> state for one service from /api/http/services. Missing service -> empty.

    A server listed in `servers` without a `serverStatus` entry counts as UP: Traefik only writes
    a status when it has a verdict, and balances over every listed server until then.
    """
    if not service:
        return {}
    balancer = service.get("loadBalancer") or {}
    statuses: Mapping[str, str] = service.get("serverStatus") or {}
    result: dict[str, ServerStatus] = {}
    for server in balancer.get("servers") or []:
        url = server.get("url")
        if not url:
            continue
        raw = str(statuses.get(url, "UP")).upper()
        result[url] = ServerStatus(url, ServerState.DOWN if raw == "DOWN" else ServerState.UP)
    for url, raw in statuses.items():
        if url not in result:
            state = ServerState.UP if str(raw).upper() == "UP" else ServerState.DOWN
            result[url] = ServerStatus(url, state)
    return result


def states_by_ip(servers: Mapping[str, ServerStatus]) -> dict[str, ServerState]:
    return {status.host: status.state for status in servers.values()}


def merged_states_by_ip(services: Sequence[Mapping[str, Any]]) -> dict[str, ServerState]:
    """Container IP -> state over every service that balances to it (the HTTP and the HTTPS
    router have a service each): UP only when every such service has it UP, else DOWN.
    Whether a draining replica still gets traffic from any service: `ips_up_anywhere`."""
    merged: dict[str, ServerState] = {}
    for service in services:
        for ip, state in states_by_ip(parse_server_states(service)).items():
            if merged.get(ip) is ServerState.DOWN:
                continue
            merged[ip] = state
    return merged


def ips_up_anywhere(services: Sequence[Mapping[str, Any]]) -> set[str]:
    """IPs that at least one service still sends traffic to."""
    return {
        ip
        for service in services
        for ip, state in states_by_ip(parse_server_states(service)).items()
        if state is ServerState.UP
    }


@dataclass(frozen=True)
class TraefikApi:
    """A small client for Traefik's API entrypoint (basic auth)."""

    base_url: str
    username: str = "admin"
    password: str = ""
    timeout: float = 3.0

    def _get(self, path: str) -> Any:
        auth = (self.username, self.password) if self.password else None
        try:
            response = httpx.get(
                self.base_url.rstrip("/") + path,
                auth=auth,
                timeout=self.timeout,
                params={"per_page": 1000},
            )
        except httpx.HTTPError as error:
            raise TraefikApiError(f"Traefik API at {self.base_url} unreachable: {error}") from error
        if response.status_code == 401:
            raise TraefikApiError(f"Traefik API at {self.base_url} refused the dashboard password")
        if response.status_code != 200:
            raise TraefikApiError(f"Traefik API {path} answered HTTP {response.status_code}")
        return response.json()

    def http_services(self) -> list[dict[str, Any]]:
        return list(self._get("/api/http/services"))

    def http_routers(self) -> list[dict[str, Any]]:
        return list(self._get("/api/http/routers"))

    def server_states(self) -> dict[str, ServerState]:
        """Container IP -> UP/DOWN over all HTTP services; IPs not in the result are absent."""
        return merged_states_by_ip(self.http_services())

    def ips_receiving_traffic(self) -> set[str]:
        return ips_up_anywhere(self.http_services())
