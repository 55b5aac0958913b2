"""compose/canary.yml: the canary's load-balancer services are web's, under the canary's names."""

from __future__ import annotations

from pathlib import Path

from tests.support.compose import load_compose

REPO = Path(__file__).resolve().parents[2]


def _service_labels(labels: dict[str, str], service: str) -> dict[str, str]:
    prefix = f"traefik.http.services.{service}."
    return {k.removeprefix(prefix): v for k, v in labels.items() if k.startswith(prefix)}


def test_canary_services_match_the_stable_ones() -> None:
    web = load_compose(REPO / "docker-compose.ha.yml")["services"]["web"]["labels"]
    canary = load_compose(REPO / "compose" / "canary.yml")["services"]["web-canary"]["labels"]
    assert _service_labels(canary, "web-canary") == _service_labels(web, "web")
    assert _service_labels(canary, "web-canary-secure") == _service_labels(web, "web-secure")
    assert _service_labels(canary, "web-canary-any") == _service_labels(web, "web-any")


def test_canary_has_no_router_and_keeps_its_services_while_not_running() -> None:
    canary = load_compose(REPO / "compose" / "canary.yml")["services"]["web-canary"]
    assert not [k for k in canary["labels"] if k.startswith("traefik.http.routers.")]
    assert canary["labels"]["traefik.docker.allownonrunning"] == "true"
    assert canary["ports"] == []


def test_canary_limits_are_web_limits() -> None:
    web = load_compose(REPO / "docker-compose.ha.yml")["services"]["web"]["deploy"]
    canary = load_compose(REPO / "compose" / "canary.yml")["services"]["web-canary"]["deploy"]
    assert canary["resources"] == web["resources"]
