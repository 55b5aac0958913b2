"""Reading Traefik's /api/http/services: server states per container IP."""

from __future__ import annotations

import copy
import json

from hactl.stack.traefik_api import (
    ServerState,
    find_service,
    ips_up_anywhere,
    merged_states_by_ip,
    parse_server_states,
)

# Captured from a live Traefik 3.7.15 of the HA stack (3 replicas, all UP), trimmed to the
# services that matter: an internal one without a load balancer and the two web services.
LIVE_SERVICES = json.loads(r"""
[
    {
        "status": "enabled",
        "usedBy": [
            "dashboard@file"
        ],
        "name": "api@internal",
        "provider": "internal"
    },
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
                    "url": "http://172.27.0.4:8000"
                },
                {
                    "url": "http://172.27.0.6:8000"
                },
                {
                    "url": "http://172.27.0.5:8000"
                }
            ],
            "strategy": "wrr",
            "healthCheck": {
                "mode": "http",
                "path": "/readyz",
                "interval": "1s",
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
            "serversTransport": "backend@file"
        },
        "status": "enabled",
        "usedBy": [
            "web-secure@docker"
        ],
        "name": "web-secure@docker",
        "provider": "docker",
        "type": "loadbalancer",
        "serverStatus": {
            "http://172.27.0.4:8000": "UP",
            "http://172.27.0.5:8000": "UP",
            "http://172.27.0.6:8000": "UP"
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
                    "url": "http://172.27.0.4:8000"
                },
                {
                    "url": "http://172.27.0.6:8000"
                },
                {
                    "url": "http://172.27.0.5:8000"
                }
            ],
            "strategy": "wrr",
            "healthCheck": {
                "mode": "http",
                "path": "/readyz",
                "interval": "1s",
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
            "serversTransport": "backend@file"
        },
        "status": "enabled",
        "usedBy": [
            "web@docker"
        ],
        "name": "web@docker",
        "provider": "docker",
        "type": "loadbalancer",
        "serverStatus": {
            "http://172.27.0.4:8000": "UP",
            "http://172.27.0.5:8000": "UP",
            "http://172.27.0.6:8000": "UP"
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
        "172.27.0.4": ServerState.UP,
        "172.27.0.5": ServerState.UP,
        "172.27.0.6": ServerState.UP,
    }


def test_parse_single_service_urls_and_hosts() -> None:
    servers = parse_server_states(find_service(LIVE_SERVICES, "web@docker"))
    assert set(servers) == {f"http://172.27.0.{i}:8000" for i in (4, 5, 6)}
    assert {s.host for s in servers.values()} == {"172.27.0.4", "172.27.0.5", "172.27.0.6"}


def test_down_in_one_service_is_down_but_still_receiving_traffic() -> None:
    services = services_with({"http://172.27.0.5:8000": "DOWN"}, ("web@docker",))
    assert merged_states_by_ip(services)["172.27.0.5"] is ServerState.DOWN
    # web-secure@docker still routes to it: not yet drained
    assert "172.27.0.5" in ips_up_anywhere(services)


def test_down_everywhere_is_out_of_rotation() -> None:
    services = services_with(
        {"http://172.27.0.5:8000": "DOWN"}, ("web@docker", "web-secure@docker")
    )
    assert merged_states_by_ip(services)["172.27.0.5"] is ServerState.DOWN
    assert ips_up_anywhere(services) == {"172.27.0.4", "172.27.0.6"}


def test_server_missing_from_servers_is_absent() -> None:
    services = copy.deepcopy(LIVE_SERVICES)
    for service in services:
        if "loadBalancer" in service:
            service["loadBalancer"]["servers"] = [
                s for s in service["loadBalancer"]["servers"] if "172.27.0.6" not in s["url"]
            ]
            service["serverStatus"].pop("http://172.27.0.6:8000")
    assert "172.27.0.6" not in merged_states_by_ip(services)


def test_server_listed_without_status_counts_as_up() -> None:
    service = {"name": "web@docker", "loadBalancer": {"servers": [{"url": "http://10.0.0.2:8000"}]}}
    assert parse_server_states(service)["http://10.0.0.2:8000"].state is ServerState.UP


def test_missing_service_and_internal_services_give_nothing() -> None:
    assert parse_server_states(find_service(LIVE_SERVICES, "nope@docker")) == {}
    assert parse_server_states(find_service(LIVE_SERVICES, "api@internal")) == {}
    assert merged_states_by_ip([]) == {}
