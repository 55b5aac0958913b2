"""Static checks of the monitoring configuration that need no Docker: every alert is complete
and has a firing and a quiet promtool unit test, the scrape config finds replicas by DNS, and
Alertmanager takes its secrets from files. promtool/amtool themselves run in
tests/integration/test_monitoring_config.py."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "prometheus"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict]:
    rules: list[dict] = []
    for f in sorted((PROMETHEUS / "rules").glob("*.yml")):
        for group in load(f)["groups"]:
            rules += [r for r in group["rules"] if "alert" in r]
    return rules


def alert_test_cases() -> list[dict]:
    cases: list[dict] = []
    for f in sorted((PROMETHEUS / "tests").glob("*.yml")):
        for test in load(f)["tests"]:
            cases += test.get("alert_rule_test", [])
    return cases


def test_the_alerts_the_design_asks_for_exist() -> None:
    names = {r["alert"] for r in alert_rules()}
    assert {
        "WebReplicaDown",
        "WebReplicasBelowDesired",
        "TraefikServiceNoServerUp",
        "WebHighErrorRatio",
        "TraefikServiceHighErrorRatio",
        "WebLatencyP99AboveSLO",
        "TraefikServiceLatencyP99AboveSLO",
        "WebNotReadyAnywhere",
        "WebReplicaMemoryHigh",
    } <= names


def test_every_alert_has_severity_and_annotations() -> None:
    names = [r["alert"] for r in alert_rules()]
    assert len(set(names)) == len(names), "alert names must be unique"
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]
        assert "for" in rule, f"{rule['alert']} fires on a single evaluation"


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in alert_test_cases():
        (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    for rule in alert_rules():
        assert rule["alert"] in fires, f"no promtool test where {rule['alert']} fires"
        assert rule["alert"] in quiet, f"no promtool test where {rule['alert']} stays quiet"


def test_no_server_up_sums_server_states_instead_of_counting_servers() -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == "TraefikServiceNoServerUp"]
    # A server is up when either Traefik instance sees it up (max over the instances of each
    # url), then the service's up servers are summed, not counted.
    expr = " ".join(rule["expr"].split())
    assert "sum by (service) (max by (service, url) (traefik_service_server_up))" in expr
    assert "count" not in expr


def test_desired_replicas_is_a_recording_rule_with_an_override() -> None:
    rules = {
        r["record"]: r["expr"]
        for group in load(PROMETHEUS / "rules" / "replicas.yml")["groups"]
        for r in group["rules"]
    }
    expr = rules["compose_ha:web_desired_replicas"]
    assert 'compose_ha_web_desired_replicas{source="override"}' in expr
    assert 'compose_ha_web_desired_replicas{source="env"}' in expr
    assert "vector(3)" in expr  # the default matches WEB_REPLICAS in docker-compose.ha.yml
    compose = load(REPO / "compose" / "monitoring.yml")
    env = compose["services"]["prometheus"]["environment"]
    assert env["WEB_DESIRED_REPLICAS"] == "${WEB_REPLICAS:-3}"


def test_scrape_config_finds_every_replica_by_dns() -> None:
    config = load(PROMETHEUS / "prometheus.yml")
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) >= {"web", "traefik", "prometheus", "node", "alertmanager"}
    (sd,) = jobs["web"]["dns_sd_configs"]
    assert sd["names"] == ["web"]
    assert sd["type"] == "A"
    assert sd["port"] == 8000
    assert jobs["traefik"]["static_configs"][0]["targets"] == ["traefik:8082", "traefik:8083"]
    assert "/etc/prometheus/rules/*.yml" in config["rule_files"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]

    def seconds(d: str) -> int:
        return int(d[:-1]) * {"s": 1, "m": 60}[d[-1]]

    for job in jobs.values():
        interval = seconds(job.get("scrape_interval", config["global"]["scrape_interval"]))
        assert 5 <= interval <= 15, job["job_name"]


def test_alertmanager_receivers_take_secrets_from_files() -> None:
    config = load(PROMETHEUS / "alertmanager.yml")
    receivers = {r["name"]: r for r in config["receivers"]}
    assert set(receivers) == {"webhook", "slack", "pagerduty", "email"}
    assert config["route"]["receiver"] == "webhook"
    assert config["global"]["slack_api_url_file"].startswith("/etc/alertmanager/secrets/")
    assert config["global"]["smtp_auth_password_file"].startswith("/etc/alertmanager/secrets/")
    (pd,) = receivers["pagerduty"]["pagerduty_configs"]
    assert pd["routing_key_file"].startswith("/etc/alertmanager/secrets/")
    text = (PROMETHEUS / "alertmanager.yml").read_text()
    for secret in ("api_url:", "routing_key:", "service_key:", "auth_password:"):
        assert secret not in text, f"{secret} written into the config instead of a file"


def test_all_replicas_down_inhibits_single_replica_down() -> None:
    config = load(PROMETHEUS / "alertmanager.yml")
    assert any(
        'alertname="WebAllReplicasDown"' in rule["source_matchers"]
        and "WebReplicaDown" in rule["target_matchers"][0]
        for rule in config["inhibit_rules"]
    )


def test_compose_services_are_local_only_non_root_and_image_configurable() -> None:
    compose = load(REPO / "compose" / "monitoring.yml")
    services = compose["services"]
    assert set(services) >= {"prometheus", "alertmanager", "node-exporter", "grafana"}
    assert services["grafana"]["profiles"] == ["grafana"]
    for name in ("prometheus", "alertmanager", "node-exporter"):
        assert "profiles" not in services[name], f"{name} must start with `up`"
    for name, svc in services.items():
        assert svc["image"].startswith("${"), f"{name}: image not from a variable"
        assert not str(svc["user"]).startswith("0"), f"{name} runs as root"
        assert svc["read_only"] is True, f"{name} has a writable root filesystem"
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:${"), f"{name} publishes {port} beyond localhost"
        assert "healthcheck" in svc, name
    retention = " ".join(services["prometheus"]["command"])
    assert "--storage.tsdb.retention.time=${PROMETHEUS_RETENTION:-15d}" in retention
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"]
