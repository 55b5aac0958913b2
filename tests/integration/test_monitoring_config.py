"""Prometheus and Alertmanager configuration, checked by their own tools inside the images that
run them: `promtool check config|rules`, `promtool test rules` (the alert unit tests in
prometheus/tests/) and `amtool check-config` / `amtool config routes test`.

The images come from PROMETHEUS_IMAGE / ALERTMANAGER_IMAGE, else `.env.images`, else the local
builds' names. A missing image fails the test: it never skips.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from python_on_whales import DockerClient, DockerException

from hactl.stack.envfile import read_env_file
from tests.support.stack import IMAGES_ENV, REPO, wait_for

pytestmark = pytest.mark.integration

PROMETHEUS_DIR = REPO / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))


def image(var: str, default: str) -> str:
    return os.environ.get(var) or read_env_file(IMAGES_ENV).get(var) or default


PROMETHEUS_IMAGE = image("PROMETHEUS_IMAGE", "compose-ha/prometheus:2.42")
ALERTMANAGER_IMAGE = image("ALERTMANAGER_IMAGE", "compose-ha/alertmanager:0.25")


@pytest.fixture(scope="module")
def docker() -> DockerClient:
    client = DockerClient()
    assert client.info().server_version, "no Docker engine answers: run `make bootstrap`"
    for name in (PROMETHEUS_IMAGE, ALERTMANAGER_IMAGE):
        assert client.image.exists(name), f"image {name} is missing: run `make bootstrap`"
    return client


def run(
    docker: DockerClient,
    img: str,
    entrypoint: str,
    args: list[str],
    extra_volumes: list[tuple[str, str, str]] | None = None,
    **kwargs: object,
) -> str:
    """Run a tool in a throwaway container with prometheus/ mounted read-only at /src and at
    the paths the compose file uses; return its output, or fail with what it printed."""
    volumes = [
        *(extra_volumes or []),
        (str(PROMETHEUS_DIR), "/src", "ro"),
        (str(PROMETHEUS_DIR / "prometheus.yml"), "/etc/prometheus/prometheus.yml", "ro"),
        (str(PROMETHEUS_DIR / "rules"), "/etc/prometheus/rules", "ro"),
        (str(PROMETHEUS_DIR / "rules.d"), "/etc/prometheus/rules.d", "ro"),
        (str(PROMETHEUS_DIR / "alertmanager.yml"), "/etc/alertmanager/alertmanager.yml", "ro"),
    ]
    try:
        return str(
            docker.run(
                img,
                args,
                entrypoint=entrypoint,
                volumes=volumes,
                remove=True,
                networks=["none"],
                **kwargs,
            )
        )
    except DockerException as exc:
        pytest.fail(f"{entrypoint} {' '.join(args)} failed:\n{exc.stdout}\n{exc.stderr}")


def in_src(path: Path) -> str:
    return "/src/" + str(path.relative_to(PROMETHEUS_DIR))


def test_prometheus_config_is_valid(docker: DockerClient) -> None:
    out = run(
        docker,
        PROMETHEUS_IMAGE,
        "/bin/promtool",
        ["check", "config", "/etc/prometheus/prometheus.yml"],
    )
    assert "SUCCESS" in out
    # check config also loads the rule files the config names: all of them were found.
    for rule_file in RULE_FILES:
        assert f"/etc/prometheus/rules/{rule_file.name}" in out


def test_rule_files_are_valid(docker: DockerClient) -> None:
    assert RULE_FILES, "no rule files in prometheus/rules"
    out = run(
        docker, PROMETHEUS_IMAGE, "/bin/promtool", ["check", "rules", *map(in_src, RULE_FILES)]
    )
    assert out.count("SUCCESS") == len(RULE_FILES), out


def test_alert_unit_tests_pass(docker: DockerClient) -> None:
    assert RULE_TEST_FILES, "no promtool unit tests in prometheus/tests"
    out = run(
        docker, PROMETHEUS_IMAGE, "/bin/promtool", ["test", "rules", *map(in_src, RULE_TEST_FILES)]
    )
    assert "FAILED" not in out, out
    assert out.count("SUCCESS") == len(RULE_TEST_FILES), out


def test_every_dashboard_query_parses(docker: DockerClient, tmp_path: Path) -> None:
    """promtool 2.42 checks no single expression, so each panel query becomes a recording rule
    of a throwaway rules file that `promtool check rules` parses."""

    def walk(panels: list[dict]) -> list[dict]:  # a collapsed row holds its panels
        return [q for p in panels for q in (p, *walk(p.get("panels", [])))]

    rules = []
    for path in DASHBOARDS:
        for panel in walk(json.loads(path.read_text())["panels"]):
            for target in panel.get("targets", []):
                rules.append({"record": f"dashboard:query{len(rules)}", "expr": target["expr"]})
    assert len(rules) > 20
    (tmp_path / "dashboards.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]})
    )
    tmp_path.chmod(0o755)
    (tmp_path / "dashboards.yml").chmod(0o644)
    out = run(
        docker,
        PROMETHEUS_IMAGE,
        "/bin/promtool",
        ["check", "rules", "/queries/dashboards.yml"],
        extra_volumes=[(str(tmp_path), "/queries", "ro")],
    )
    assert f"SUCCESS: {len(rules)} rules found" in out


def test_alertmanager_config_is_valid(docker: DockerClient) -> None:
    out = run(
        docker,
        ALERTMANAGER_IMAGE,
        "/bin/amtool",
        ["check-config", "/etc/alertmanager/alertmanager.yml"],
    )
    assert "SUCCESS" in out
    assert "4 receivers" in out


def test_alertmanager_config_rendered_from_env_is_valid(docker: DockerClient) -> None:
    """The entrypoint writes the settings from the environment into the config; the result
    passes amtool and carries the values (including ones with sed's special characters)."""
    env = {
        "ALERT_WEBHOOK_URL": "http://hooks.internal:8080/alert?team=ops&x=1",
        "ALERT_EMAIL_TO": "pager@corp.example",
        "ALERT_EMAIL_FROM": "am@corp.example",
        "SMTP_SMARTHOST": "mail.corp.example:25",
        "SMTP_USERNAME": "am-user",
        "SLACK_CHANNEL": "#ops|alerts",
    }
    script = (
        "sh /src/alertmanager-entrypoint.sh --version >/dev/null"
        " && amtool check-config /alertmanager/alertmanager.yml"
        " && cat /alertmanager/alertmanager.yml"
    )
    out = run(docker, ALERTMANAGER_IMAGE, "/bin/sh", ["-c", script], envs=env)
    assert "SUCCESS" in out
    for value in env.values():
        assert value in out, f"{value!r} not in the rendered config"


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical"], "pagerduty,email,slack,webhook"),
        (["severity=warning"], "slack,webhook"),
        (["severity=info"], "webhook"),
        ([], "webhook"),
    ],
)
def test_alertmanager_routes_by_severity(
    docker: DockerClient, labels: list[str], receivers: str
) -> None:
    out = run(
        docker,
        ALERTMANAGER_IMAGE,
        "/bin/amtool",
        [
            "config",
            "routes",
            "test",
            "--config.file=/etc/alertmanager/alertmanager.yml",
            "alertname=Test",
            *labels,
        ],
    )
    assert out.strip().splitlines()[-1] == receivers


@pytest.mark.parametrize(
    ("source", "target", "inhibited"),
    [
        ("WebAllReplicasDown", "WebReplicaDown", True),
        ("WebAllReplicasDown", "WebReplicasBelowDesired", True),
        ("WebNotReadyAnywhere", "WebReplicasBelowDesired", True),
        ("WebNotReadyAnywhere", "WebReplicaDown", False),
    ],
)
def test_inhibit_rules_in_a_running_alertmanager(
    docker: DockerClient, source: str, target: str, inhibited: bool
) -> None:
    """Alerts sent to a real Alertmanager with our config: is the target suppressed?"""
    container = docker.run(
        ALERTMANAGER_IMAGE,
        [
            "--config.file=/etc/alertmanager/alertmanager.yml",
            "--storage.path=/tmp/alertmanager",
            "--cluster.listen-address=",
        ],
        entrypoint="/bin/alertmanager",
        volumes=[
            (str(PROMETHEUS_DIR / "alertmanager.yml"), "/etc/alertmanager/alertmanager.yml", "ro")
        ],
        networks=["none"],
        detach=True,
        remove=True,
    )
    amtool = ["amtool", "--alertmanager.url=http://127.0.0.1:9093"]
    try:
        wait_for(lambda: docker.execute(container, [*amtool, "config", "show"]), 20, "Alertmanager")
        docker.execute(
            container,
            [*amtool, "alert", "add", f"alertname={source}", "service=web", "severity=critical"],
        )
        docker.execute(
            container,
            [
                *amtool,
                "alert",
                "add",
                f"alertname={target}",
                "service=web",
                "severity=warning",
                "instance=10.0.0.2:8000",
            ],
        )

        def state() -> dict[str, str]:
            out = docker.execute(container, [*amtool, "alert", "query", "-i", "-a", "-o", "json"])
            return {a["labels"]["alertname"]: a["status"]["state"] for a in json.loads(out)}

        states = wait_for(lambda: len(state()) == 2 and state(), 20, "both alerts")
    finally:
        container.remove(force=True)
    assert states[source] == "active"
    assert states[target] == ("suppressed" if inhibited else "active")
