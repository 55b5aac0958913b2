"""Reading Traefik's /api/http/services: server states per container IP."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hactl.stack.traefik_api import (
    ServerState,
    find_service,
    ips_up_anywhere,
    merged_states_by_ip,
    parse_server_states,
)
from tests.support.compose import load_compose

# Captured from a live Traefik 3.7.15 of the HA stack (docker-compose.yml + docker-compose.ha.yml,
# 3 replicas, all UP), trimmed to the services that matter: an internal one without a load balancer
# and the two web services. Re-capture when the labels change: the test at the end compares the
# capture with docker-compose.ha.yml.
LIVE_SERVICES = json.loads(r"""
[
    {
        "loadBalancer": {
            "sticky": {
                "cookie": {
                    "name": "ha_sticky",
                    "secure": true,
                    "httpOnly": true,
                    "sameSite": "lax",
                    "path": "/"
                }
            },
            "servers": [
                {
                    "url": "http://172.18.0.8:8000"
                },
                {
                    "url": "http://172.18.0.7:8000"
                },
                {
                    "url": "http://172.18.0.6:8000"
                }
            ],
            "strategy": "wrr",
            "healthCheck": {
                "mode": "http",
                "path": "/readyz/routing",
                "interval": "500ms",
                "timeout": "800ms",
                "followRedirects": true
            },
            "passiveHealthCheck": {
                "failureWindow": "5s",
                "maxFailedAttempts": 1
            },
            "passHostHeader": true,
            "responseForwarding": {
                "flushInterval": "100ms"
            },
            "serversTransport": "pinned@file"
        },
        "status": "enabled",
        "name": "web-secure@docker",
        "provider": "docker",
        "type": "loadbalancer",
        "serverStatus": {
            "http://172.18.0.6:8000": "UP",
            "http://172.18.0.7:8000": "UP",
            "http://172.18.0.8:8000": "UP"
        }
    },
    {
        "loadBalancer": {
            "sticky": {
                "cookie": {
                    "name": "ha_sticky",
                    "httpOnly": true,
                    "sameSite": "lax",
                    "path": "/"
                }
            },
            "servers": [
                {
                    "url": "http://172.18.0.8:8000"
                },
                {
                    "url": "http://172.18.0.7:8000"
                },
                {
                    "url": "http://172.18.0.6:8000"
                }
            ],
            "strategy": "wrr",
            "healthCheck": {
                "mode": "http",
                "path": "/readyz/routing",
                "interval": "500ms",
                "timeout": "800ms",
                "followRedirects": true
            },
            "passiveHealthCheck": {
                "failureWindow": "5s",
                "maxFailedAttempts": 1
            },
            "passHostHeader": true,
            "responseForwarding": {
                "flushInterval": "100ms"
            },
            "serversTransport": "pinned@file"
        },
        "status": "enabled",
        "name": "web@docker",
        "provider": "docker",
        "type": "loadbalancer",
        "serverStatus": {
            "http://172.18.0.6:8000": "UP",
            "http://172.18.0.7:8000": "UP",
            "http://172.18.0.8:8000": "UP"
        }
    }
]
""")


def services_with(status: dict[str, str], service_names: tuple[str, ...]) -> list[dict]:
    services = copy.deepcopy(LIVE_SERVICES)
    for service in services:
        if service["name"] in service_names:
            service["serverStatus"].update(status)
    return services


def test_live_capture_all_up() -> None:
    states = merged_states_by_ip(LIVE_SERVICES)
    assert states == {
        "172.18.0.6": ServerState.UP,
        "172.18.0.7": ServerState.UP,
        "172.18.0.8": ServerState.UP,
    }


def test_parse_single_service_urls_and_hosts() -> None:
    servers = parse_server_states(find_service(LIVE_SERVICES, "web@docker"))
    assert set(servers) == {f"http://172.18.0.{i}:8000" for i in (6, 7, 8)}
    assert {s.host for s in servers.values()} == {"172.18.0.6", "172.18.0.7", "172.18.0.8"}


def test_down_in_one_service_is_down_but_still_receiving_traffic() -> None:
    services = services_with({"http://172.18.0.7:8000": "DOWN"}, ("web@docker",))
    assert merged_states_by_ip(services)["172.18.0.7"] is ServerState.DOWN
    # web-secure@docker still routes to it: not yet drained
    assert "172.18.0.7" in ips_up_anywhere(services)


def test_down_everywhere_is_out_of_rotation() -> None:
    services = services_with(
        {"http://172.18.0.7:8000": "DOWN"}, ("web@docker", "web-secure@docker")
    )
    assert merged_states_by_ip(services)["172.18.0.7"] is ServerState.DOWN
    assert ips_up_anywhere(services) == {"172.18.0.6", "172.18.0.8"}


def test_server_missing_from_servers_is_absent() -> None:
    services = copy.deepcopy(LIVE_SERVICES)
    for service in services:
        if "loadBalancer" in service:
            service["loadBalancer"]["servers"] = [
                s for s in service["loadBalancer"]["servers"] if "172.18.0.8" not in s["url"]
            ]
            service["serverStatus"].pop("http://172.18.0.8:8000")
    assert "172.18.0.8" not in merged_states_by_ip(services)


def test_server_listed_without_status_counts_as_up() -> None:
    service = {"name": "web@docker", "loadBalancer": {"servers": [{"url": "http://10.0.0.2:8000"}]}}
    assert parse_server_states(service)["http://10.0.0.2:8000"].state is ServerState.UP


def test_missing_service_and_internal_services_give_nothing() -> None:
    assert parse_server_states(find_service(LIVE_SERVICES, "nope@docker")) == {}
    assert parse_server_states(find_service(LIVE_SERVICES, "api@internal")) == {}
    assert merged_states_by_ip([]) == {}


def test_the_capture_matches_the_compose_labels() -> None:
    """The active and passive health checks Traefik reports are the ones docker-compose.ha.yml
    configures on the sticky services (captured from a live stack)."""
    repo = Path(__file__).resolve().parents[3]
    compose = load_compose(repo / "docker-compose.ha.yml")
    labels: dict[str, str] = compose["services"]["web"]["labels"]
    for name in ("web", "web-secure"):
        prefix = f"traefik.http.services.{name}.loadbalancer."
        balancer = find_service(LIVE_SERVICES, f"{name}@docker")["loadBalancer"]
        passive = balancer["passiveHealthCheck"]
        assert passive["failureWindow"] == labels[f"{prefix}passivehealthcheck.failurewindow"]
        assert (
            str(passive["maxFailedAttempts"])
            == labels[f"{prefix}passivehealthcheck.maxfailedattempts"]
        )
        assert balancer["serversTransport"] == labels[f"{prefix}serverstransport"]
        check = balancer["healthCheck"]
        for key in ("path", "interval", "timeout"):
            assert check[key] == labels[f"{prefix}healthcheck.{key}"], (name, key)
        assert balancer["sticky"]["cookie"]["name"] == labels[f"{prefix}sticky.cookie.name"]
