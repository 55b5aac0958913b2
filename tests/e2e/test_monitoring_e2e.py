"""Monitoring end to end: the HA stack with compose/monitoring.yml on a real engine.

- Prometheus finds every `web` replica by DNS: after a scale to 5 it scrapes 5 targets.
- The app's metrics are merged over the gunicorn workers of a replica: the request counter of
  each replica goes up by exactly the number of requests that replica answered.
- Every Grafana panel's query returns data from the live Prometheus after some load.
- A killed replica fires WebReplicaDown, and Alertmanager delivers it to a webhook receiver that
  the test runs on the stack's network (a container with the network alias `alert-webhook`, the
  default receiver's address in prometheus/alertmanager.yml); the test reads its log.

For a test-sized wait, PROMETHEUS_EXTRA_RULES_DIR mounts one more rules file: WebReplicaDown
with its real expression but `for: 5s`, and a desired replica count of 5. Traffic goes only to
the stack's 127.0.0.1 ports; every wait is bounded.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml
from python_on_whales import Container, DockerClient

from tests.support.stack import REPO, Stack, ha_files, wait_for

pytestmark = pytest.mark.e2e

WHOAMI = "/api/v1/whoami"
WEB_IMAGE = "compose-ha/web:latest"  # has python3 for the webhook receiver
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
ALERTS_FILE = REPO / "prometheus" / "rules" / "alerts.yml"

# Prints each notification Alertmanager POSTs, one JSON document per line.
RECEIVER = textwrap.dedent(
    """
    import http.server, json, sys

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            print(json.dumps(json.loads(body)), flush=True)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("0.0.0.0", 9095), Hook).serve_forever()
    """
)


def write_test_rules(directory: Path) -> None:
    """WebReplicaDown as shipped but with a short `for`; desired replicas = 5."""
    groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == "WebReplicaDown"]
    fast = {**rule, "for": "5s", "labels": {**rule["labels"], "test_override": "e2e"}}
    doc = {
        "groups": [
            {
                "name": "e2e_overrides",
                "rules": [
                    {
                        "record": "compose_ha_web_desired_replicas",
                        "expr": "vector(5)",
                        "labels": {"source": "override"},
                    },
                    fast,
                ],
            }
        ]
    }
    directory.chmod(0o755)  # Prometheus runs as nobody
    path = directory / "e2e.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o644)


@pytest.fixture(scope="module")
def mon_stack(
    docker_engine: DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    rules_dir = tmp_path_factory.mktemp("prometheus-rules")
    write_test_rules(rules_dir)
    stack = Stack(
        "mon",
        ha_files(monitoring=True),
        env={"WEB_REPLICAS": "3", "PROMETHEUS_EXTRA_RULES_DIR": str(rules_dir)},
    )
    receiver: Container | None = None
    try:
        stack.up()
        stack.wait_in_rotation(3)
        receiver = docker_engine.run(
            WEB_IMAGE,
            ["-c", RECEIVER],
            entrypoint="python3",
            detach=True,
            name=f"{stack.project}-alert-webhook",
            networks=[f"{stack.project}_backend"],
            network_aliases=["alert-webhook"],
            labels={"com.docker.compose.project": stack.project},
        )
        yield stack
    finally:
        if receiver is not None:
            receiver.remove(force=True)
        stack.down()


@pytest.fixture(scope="module")
def receiver(mon_stack: Stack, docker_engine: DockerClient) -> Container:
    return docker_engine.container.inspect(f"{mon_stack.project}-alert-webhook")


# --- Prometheus -----------------------------------------------------------------------------
def prom_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.port('PROMETHEUS_PORT')}"


def query(stack: Stack, expr: str) -> list[dict]:
    r = httpx.get(f"{prom_url(stack)}/api/v1/query", params={"query": expr}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


def by_instance(stack: Stack, expr: str) -> dict[str, float]:
    return {s["metric"]["instance"]: float(s["value"][1]) for s in query(stack, expr)}


def web_targets(stack: Stack) -> dict[str, str]:
    r = httpx.get(f"{prom_url(stack)}/api/v1/targets", params={"state": "active"}, timeout=5)
    r.raise_for_status()
    return {
        t["labels"]["instance"]: t["health"]
        for t in r.json()["data"]["activeTargets"]
        if t["labels"]["job"] == "web"
    }


def send_whoami(stack: Stack, n: int, concurrency: int = 8) -> list[dict]:
    """n requests through Traefik, no cookie (spread over replicas), several at a time (so
    more than one worker of a replica answers)."""

    def one(_: int) -> dict:
        r = httpx.get(stack.base_url + WHOAMI, timeout=10)
        r.raise_for_status()
        return r.json()

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(n)))


def panel_exprs() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every query of every panel."""

    def walk(panels: list[dict]) -> Iterator[dict]:
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    found = []
    for path in DASHBOARDS:
        for panel in walk(json.loads(path.read_text())["panels"]):
            for target in panel.get("targets", []):
                found.append((path.name, panel["title"], target["expr"]))
    return found


# --- tests --------------------------------------------------------------------------------------
def test_scaled_replicas_are_all_scraped(mon_stack: Stack) -> None:
    mon_stack.up(scales={"web": 5})
    webs = mon_stack.wait_in_rotation(5, timeout=90)
    expected = {f"{mon_stack.container_ip(c)}:8000" for c in webs}
    assert len(expected) == 5

    def all_up() -> bool:
        return web_targets(mon_stack) == dict.fromkeys(expected, "up")

    wait_for(all_up, 60, "Prometheus to scrape the 5 web replicas", interval=1)
    assert set(by_instance(mon_stack, 'up{job="web"} == 1')) == expected
    wait_for(
        lambda: query(mon_stack, "compose_ha:web_healthy_replicas")[0]["value"][1] == "5",
        30,
        "compose_ha:web_healthy_replicas == 5",
        interval=1,
    )


def test_app_metrics_are_summed_over_workers(mon_stack: Stack) -> None:
    counter = f'sum by (instance) (http_requests_total{{job="web", handler="{WHOAMI}"}})'
    ids = by_instance_label(mon_stack)
    # A settled baseline: two consecutive scrapes agree.
    (before,) = wait_for(lambda: stable(mon_stack, counter), 30, "a settled request counter")

    sent_to: dict[str, int] = {}
    pids: dict[str, set[int]] = {}
    # Batches until some replica has answered from two workers (the point of the test), at most 5.
    for _ in range(5):
        for a in send_whoami(mon_stack, 200):
            sent_to[a["replica_id"]] = sent_to.get(a["replica_id"], 0) + 1
            pids.setdefault(a["replica_id"], set()).add(a["pid"])
        if any(len(p) > 1 for p in pids.values()):
            break
    assert any(len(p) > 1 for p in pids.values()), f"every replica answered from one worker: {pids}"

    def counted() -> dict[str, int]:
        now = by_instance(mon_stack, counter)
        return {ids[i]: round(v - before.get(i, 0.0)) for i, v in now.items() if v != before.get(i)}

    wait_for(
        lambda: counted() == sent_to, 30, f"per-replica counters to reach {sent_to}", interval=1
    )
    assert sum(counted().values()) == sum(sent_to.values())


def by_instance_label(stack: Stack) -> dict[str, str]:
    """instance (IP:port) -> replica id (container hostname), from app_build_info."""
    return {
        s["metric"]["instance"]: s["metric"]["replica_id"] for s in query(stack, "app_build_info")
    }


def stable(stack: Stack, expr: str) -> tuple[dict[str, float]] | None:
    """The values of `expr` if they are the same after Prometheus scraped every web replica
    once more ({} before the first request is also a settled value, hence the tuple)."""
    scraped = 'timestamp(up{job="web"})'  # each target's last scrape time
    first, at = by_instance(stack, expr), by_instance(stack, scraped)
    wait_for(
        lambda: all(t > at.get(i, 0.0) for i, t in by_instance(stack, scraped).items()),
        15,
        "the next scrape of every web replica",
        interval=0.5,
    )
    return (first,) if by_instance(stack, expr) == first else None


def test_every_dashboard_panel_returns_data(mon_stack: Stack) -> None:
    send_whoami(mon_stack, 200)
    exprs = panel_exprs()
    assert len(exprs) > 20

    def missing() -> list[str]:
        return [f"{d} / {title}: {e}" for d, title, e in exprs if not query(mon_stack, e)]

    # Rates need two scrapes inside their window; recording rules one more evaluation.
    try:
        wait_for(lambda: not missing(), 60, "every panel query to return data", interval=2)
    except AssertionError:
        pytest.fail("panel queries without data:\n" + "\n".join(missing()))


def test_every_rule_evaluates_without_error(mon_stack: Stack) -> None:
    r = httpx.get(f"{prom_url(mon_stack)}/api/v1/rules", timeout=5)
    r.raise_for_status()
    groups = r.json()["data"]["groups"]
    names = {g["name"] for g in groups}
    # shipped rules, the rule written from WEB_REPLICAS, and this test's overrides
    assert {"compose_ha_replicas", "compose_ha_desired_replicas", "e2e_overrides"} <= names
    broken = [
        f"{g['name']}/{rule['name']}: {rule.get('lastError')}"
        for g in groups
        for rule in g["rules"]
        if rule["health"] != "ok"
    ]
    assert not broken, broken
    (desired,) = query(mon_stack, "compose_ha:web_desired_replicas")
    assert desired["value"][1] == "5"  # the override wins over WEB_REPLICAS=3


def test_killed_replica_alert_reaches_the_webhook(
    mon_stack: Stack, docker_engine: DockerClient, receiver: Container
) -> None:
    victim = mon_stack.containers("web")[0]
    instance = f"{mon_stack.container_ip(victim)}:8000"
    # Keep it dead (a crash loop), instead of Docker restarting it within a second.
    docker_engine.container.update(victim, restart="no")
    docker_engine.container.kill(victim, signal="SIGKILL")
    victim.reload()
    assert not victim.state.running

    def delivered() -> dict | None:
        for line in docker_engine.container.logs(receiver).splitlines():
            try:
                payload = json.loads(line)
            except ValueError:
                continue
            for alert in payload.get("alerts", []):
                labels = alert["labels"]
                if (
                    labels.get("alertname") == "WebReplicaDown"
                    and labels.get("instance") == instance
                    and alert["status"] == "firing"
                ):
                    return payload
        return None

    payload = wait_for(delivered, 120, f"WebReplicaDown for {instance} at the webhook", interval=2)
    assert payload["receiver"] == "webhook"
    alert = next(a for a in payload["alerts"] if a["labels"]["instance"] == instance)
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["summary"] == f"web replica {instance} is down"
