"""The canary's routing file (pure parts) and Traefik's per-service counters."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from hactl.stack.canary_routing import (
    RELEASE_COOKIE,
    SMOKE_HEADER,
    find_routed_failovers,
    render_routing,
    routing_file,
    write_atomically,
)
from hactl.stack.traefik_metrics import add_samples, parse_service_samples, side

RULE = "(PathPrefix(`/`)) && !PathPrefix(`/metrics`)"
# Shaped like Traefik 3.7's /api/http/routers and /api/http/services for the HA overlay.
ROUTERS: list[dict[str, Any]] = [
    {
        "name": "web@docker",
        "rule": RULE,
        "entryPoints": ["web"],
        "middlewares": ["ratelimit@file", "security-headers@file", "retry@file"],
        "service": "web-failover@file",
        "status": "enabled",
    },
    {
        "name": "web-secure@docker",
        "rule": RULE,
        "entryPoints": ["websecure"],
        "middlewares": ["ratelimit@file", "security-headers@file", "retry@file"],
        "service": "web-secure-failover@file",
        "tls": {},
        "status": "enabled",
    },
    {
        "name": "frontend@docker",
        "rule": "Path(`/`)",
        "priority": 10000,
        "entryPoints": ["web"],
        "service": "frontend",
        "status": "enabled",
    },
    {"name": "dashboard@file", "rule": "PathPrefix(`/api`)", "service": "api@internal"},
]
ERRORS = {"status": ["503"], "maxRequestBodyBytes": 65536}
SERVICES: list[dict[str, Any]] = [
    {
        "name": "web-failover@file",
        "failover": {"service": "web@docker", "fallback": "web-any@docker", "errors": ERRORS},
    },
    {
        "name": "web-secure-failover@file",
        "failover": {
            "service": "web-secure@docker",
            "fallback": "web-any@docker",
            "errors": ERRORS,
        },
    },
    {"name": "frontend@docker", "loadBalancer": {"servers": []}},
]


def rendered(project: str, weight: int) -> dict[str, Any]:
    routed = find_routed_failovers(ROUTERS, SERVICES)
    text = render_routing(project, routed, weight, "tok123")
    head, _, rest = text.partition('{{ if eq (env "COMPOSE_PROJECT") "' + project + '" }}\n')
    assert rest.endswith("{{ end }}\n"), text
    assert all(line.startswith("#") for line in head.splitlines())
    return yaml.safe_load(rest.removesuffix("{{ end }}\n"))


def test_only_routers_over_a_failover_of_the_stable_services_are_split() -> None:
    routed = find_routed_failovers(ROUTERS, SERVICES)
    assert [r.router for r in routed] == ["web", "web-secure"]
    assert routed[0].priority == len(RULE)
    assert routed[1].tls == {}


def test_the_canary_router_copies_the_label_router_one_priority_higher() -> None:
    config = rendered("p1", 10)["http"]
    router = config["routers"]["web-canary"]
    assert router["rule"] == RULE
    assert router["entryPoints"] == ["web"]
    assert router["middlewares"] == ["ratelimit@file", "security-headers@file", "retry@file"]
    assert router["priority"] == len(RULE) + 1
    assert router["service"] == "web-release"
    assert config["routers"]["web-secure-canary"]["tls"] == {}


def test_weights_split_new_clients_with_a_sticky_release_cookie() -> None:
    services = rendered("p1", 10)["http"]["services"]
    release = services["web-release"]["weighted"]
    assert release["services"] == [
        {"name": "web-failover@file", "weight": 90},
        {"name": "web-canary-failover@file", "weight": 10},
    ]
    assert release["sticky"]["cookie"]["name"] == RELEASE_COOKIE
    assert "secure" not in release["sticky"]["cookie"]
    assert services["web-secure-release"]["weighted"]["sticky"]["cookie"]["secure"] is True


def test_the_canary_fails_over_inside_its_version_then_to_the_stable_replicas() -> None:
    services = rendered("p1", 50)["http"]["services"]
    assert services["web-canary-failover"]["failover"] == {
        "service": "web-canary@docker",
        "fallback": "web-canary-any-failover@file",
        "errors": ERRORS,
    }
    assert services["web-canary-any-failover"]["failover"] == {
        "service": "web-canary-any@docker",
        "fallback": "web-any@docker",
        "errors": ERRORS,
    }
    assert services["web-secure-canary-failover"]["failover"]["service"] == (
        "web-canary-secure@docker"
    )


def test_at_full_weight_the_stable_side_is_left_out() -> None:
    services = rendered("p1", 100)["http"]["services"]
    assert services["web-release"]["weighted"] == {
        "services": [{"name": "web-canary-failover@file", "weight": 100}]
    }


def test_at_zero_weight_no_release_cookie_pins_clients_to_the_stable_side() -> None:
    services = rendered("p1", 0)["http"]["services"]
    assert services["web-release"]["weighted"] == {
        "services": [{"name": "web-failover@file", "weight": 100}]
    }


def test_the_smoke_router_needs_the_run_token_and_reaches_only_the_canary() -> None:
    router = rendered("p1", 10)["http"]["routers"]["web-canary-smoke"]
    assert router["rule"] == f"({RULE}) && Header(`{SMOKE_HEADER}`, `tok123`)"
    assert router["service"] == "web-canary-failover"
    assert router["priority"] == len(RULE) + 2


def test_the_file_is_per_project_and_replaced_atomically(tmp_path: Path) -> None:
    path = routing_file(tmp_path, "p1")
    assert path.name == "canary-p1.yml"
    write_atomically(path, "one\n")
    write_atomically(path, "two\n")
    assert path.read_text() == "two\n"
    assert [p.name for p in tmp_path.iterdir()] == ["canary-p1.yml"]


def test_the_gitignore_covers_the_routing_file() -> None:
    ignore = (Path(__file__).resolve().parents[3] / ".gitignore").read_text()
    assert re.search(r"^traefik/dynamic/canary-\*\.yml$", ignore, re.MULTILINE)


# A trimmed scrape of Traefik 3.7 with two services (one canary), other families ignored.
METRICS = (Path(__file__).parent / "traefik-metrics.txt").read_text()


def test_service_counters_add_up_codes_and_methods() -> None:
    samples = parse_service_samples(METRICS)
    stable = samples["web@docker"]
    assert (stable.requests, stable.errors) == (100.0, 2.0)
    assert stable.buckets == ((0.1, 95.0), (math.inf, 100.0))
    canary = samples["web-canary@docker"]
    assert (canary.requests, canary.errors) == (10.0, 3.0)
    assert set(samples) == {"web@docker", "web-canary@docker"}


def test_a_side_adds_its_services_and_ignores_missing_ones() -> None:
    samples = parse_service_samples(METRICS)
    stable = side(samples, ("web@docker", "web-secure@docker"))
    assert stable.requests == 100.0
    assert side(samples, ("nothing@docker",)).requests == 0.0


def test_two_instances_counters_add_up_service_by_service() -> None:
    one = parse_service_samples(METRICS)
    only_stable = {"web@docker": one["web@docker"]}
    both = add_samples([one, only_stable])
    assert (both["web@docker"].requests, both["web@docker"].errors) == (200.0, 4.0)
    assert both["web@docker"].buckets == ((0.1, 190.0), (math.inf, 200.0))
    assert both["web-canary@docker"].requests == 10.0
