"""The Grafana provisioning files are what Grafana accepts, and every panel queries the
provisioned Prometheus with a non-empty PromQL expression. That each query returns data from a
live Prometheus is checked end to end (tests/e2e/test_monitoring_e2e.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
RULE_FILES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))
# Panels that hold no query.
LAYOUT_PANEL_TYPES = {"row", "text"}


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def datasources() -> list[dict]:
    found: list[dict] = []
    for f in sorted((GRAFANA / "provisioning" / "datasources").glob("*.yml")):
        found += load_yaml(f).get("datasources", [])
    return found


def all_panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))  # a collapsed row keeps its panels


def dashboards() -> list[tuple[Path, dict]]:
    return [(f, json.loads(f.read_text())) for f in DASHBOARD_FILES]


def recorded_names() -> set[str]:
    names: set[str] = set()
    for f in RULE_FILES:
        for group in load_yaml(f)["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


def test_both_dashboards_exist() -> None:
    assert {f.name for f in DASHBOARD_FILES} >= {"backend.json", "traefik.json"}


def test_prometheus_datasource_is_provisioned_with_a_fixed_uid() -> None:
    by_uid = {d["uid"]: d for d in datasources()}
    prom = by_uid["prometheus"]
    assert prom["type"] == "prometheus"
    assert prom["url"] == "http://prometheus:9090"
    assert prom["isDefault"] is True
    assert sum(1 for d in datasources() if d.get("isDefault")) == 1
    assert len(by_uid) == len(datasources()), "datasource uids must be unique"


def test_dashboard_provider_points_at_the_mounted_dashboards() -> None:
    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    assert [p["type"] for p in providers] == ["file"]
    assert providers[0]["options"]["path"] == "/etc/grafana/dashboards"
    compose = load_yaml(REPO / "compose" / "monitoring.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert "./grafana/dashboards:/etc/grafana/dashboards:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_dashboard_uids_are_unique_and_valid() -> None:
    uids = [d["uid"] for _, d in dashboards()]
    assert len(set(uids)) == len(uids)
    for uid in uids:
        # Grafana: at most 40 characters, letters, digits, - and _.
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid), uid
    titles = [d["title"] for _, d in dashboards()]
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_is_what_provisioning_accepts(path: Path) -> None:
    dash = json.loads(path.read_text())
    # A provisioned dashboard has no numeric id of its own (Grafana assigns it).
    assert dash.get("id") is None
    assert isinstance(dash["schemaVersion"], int)
    assert isinstance(dash["panels"], list) and dash["panels"]
    ids = [p["id"] for p in all_panels(dash["panels"])]
    assert len(set(ids)) == len(ids), f"duplicate panel ids in {path.name}"
    for panel in all_panels(dash["panels"]):
        assert panel["title"], panel["id"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_every_panel_queries_the_provisioned_prometheus(path: Path) -> None:
    uids = {d["uid"] for d in datasources()}
    dash = json.loads(path.read_text())
    for panel in all_panels(dash["panels"]):
        if panel["type"] in LAYOUT_PANEL_TYPES:
            continue
        title = panel["title"]
        assert panel["datasource"]["uid"] in uids, title
        assert panel["datasource"]["uid"] == "prometheus", title
        assert panel["targets"], f"panel {title!r} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), title
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == "prometheus", title
            assert target.get("expr", "").strip(), f"panel {title!r} has a target without expr"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_recording_rules_used_by_panels_exist(path: Path) -> None:
    """A `level:metric:operation` name in a panel is recorded in prometheus/rules/."""
    recorded = recorded_names()
    dash = json.loads(path.read_text())
    for panel in all_panels(dash["panels"]):
        for target in panel.get("targets", []):
            for name in re.findall(r"[a-zA-Z_]\w*:[\w:]+", target["expr"]):
                assert name in recorded, f"{panel['title']!r} uses {name}, which no rule records"


def test_backend_dashboard_covers_what_operators_look_at() -> None:
    dash = json.loads((GRAFANA / "dashboards" / "backend.json").read_text())
    exprs = " ".join(t["expr"] for p in all_panels(dash["panels"]) for t in p.get("targets", []))
    for needle in (
        "instance:http_requests:rate1m",  # request rate per replica
        "instance:http_requests_5xx:ratio_rate1m",  # error ratio
        "instance:http_request_duration_seconds:p99_1m",  # latency per replica
        "app_requests_in_flight",
        "app_db_pool_connections_in_use",
        "compose_ha:web_healthy_replicas",  # replica count
    ):
        assert needle in exprs, needle
    # Room for the autoscaler's panels.
    assert any(p["type"] == "row" and "utoscal" in p["title"] for p in dash["panels"])


def test_traefik_dashboard_covers_what_operators_look_at() -> None:
    dash = json.loads((GRAFANA / "dashboards" / "traefik.json").read_text())
    exprs = " ".join(t["expr"] for p in all_panels(dash["panels"]) for t in p.get("targets", []))
    for needle in (
        "service:traefik_service_requests:rate1m",
        "traefik_service_server_up",
        "service:traefik_service_retries:rate1m",
        "service:traefik_service_request_duration_seconds:p99_1m",
    ):
        assert needle in exprs, needle
