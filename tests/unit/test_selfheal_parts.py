"""The self-healing controller's other parts without Docker: settings, the record and hactl's
lease, the clone request, the image's pins, and one sync of the loop against a recording fake of
the seven API calls (the real engine is in tests/e2e/test_selfheal.py)."""

from __future__ import annotations

import io
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hactl.selfheal.clone import LABEL_CLONED_FROM, LABEL_NUMBER, clone_request
from hactl.selfheal.config import ConfigError, SelfHealConfig, config_from_env
from hactl.selfheal.controller import Controller, parse_docker_time
from hactl.selfheal.record import (
    holds_operation_lease,
    lease_path,
    operation_lease,
    parse_record,
    read_record,
    set_paused,
)
from hactl.selfheal.telemetry import EventLog, SelfHealMetrics

REPO = Path(__file__).resolve().parents[2]


# --- settings -------------------------------------------------------------------------------------
def test_defaults_are_a_kubernetes_liveness_probe_and_the_kubelet_backoff() -> None:
    cfg = config_from_env({"COMPOSE_PROJECT_NAME": "p"})
    assert (cfg.liveness_period, cfg.liveness_failure_threshold, cfg.liveness_timeout) == (10, 3, 1)
    assert (cfg.backoff_base, cfg.backoff_max, cfg.backoff_reset) == (10, 300, 600)
    assert cfg.default_replicas == 3 and cfg.docker_host == "unix:///var/run/docker.sock"


def test_env_and_overrides() -> None:
    env = {
        "COMPOSE_PROJECT_NAME": "p",
        "WEB_REPLICAS": "5",
        "SELFHEAL_LIVENESS_PERIOD": "2.5",
        "SELFHEAL_DOCKER_HOST": "tcp://selfheal-proxy:2375",
        "SELFHEAL_METRICS_PORT": "",  # empty keeps the default
    }
    cfg = config_from_env(env, metrics_port=19109, metrics_addr=None)
    assert cfg.default_replicas == 5 and cfg.liveness_period == 2.5
    assert cfg.docker_host == "tcp://selfheal-proxy:2375" and cfg.metrics_port == 19109
    assert cfg.metrics_addr == "127.0.0.1"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"COMPOSE_PROJECT_NAME": "p", "WEB_REPLICAS": "three"},
        {"COMPOSE_PROJECT_NAME": "p", "WEB_REPLICAS": "-1"},
        {"COMPOSE_PROJECT_NAME": "p", "SELFHEAL_LIVENESS_FAILURE_THRESHOLD": "0"},
        {"COMPOSE_PROJECT_NAME": "p", "SELFHEAL_BACKOFF_BASE": "600"},
    ],
)
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        config_from_env(env)


def test_every_setting_is_documented_and_the_compose_service_passes_the_example_ones() -> None:
    from hactl.selfheal.config import ENV_FIELDS

    docs = (REPO / "docs" / "selfheal.md").read_text()
    for var in ENV_FIELDS:
        assert f"`{var}`" in docs, f"{var} is not in docs/selfheal.md"
    example = (REPO / ".env.example").read_text()
    service = (REPO / "compose" / "selfheal.yml").read_text()
    for var in re.findall(r"^(SELFHEAL_\w+)=", example, re.M):
        assert "${" + var in service, f"{var} (.env.example) is not used in compose/selfheal.yml"


# --- the record and the lease ---------------------------------------------------------------
def test_record_gives_count_pause_and_a_valid_lease() -> None:
    state = parse_record("# hactl\nWEB_REPLICAS=5\nSELFHEAL_PAUSED=1\n", "hactl scale\n200\n", 100)
    assert (state.replicas, state.paused, state.lease) == (5, True, "hactl scale")
    expired = parse_record("WEB_REPLICAS=bad\nSELFHEAL_PAUSED=0\n", "hactl scale\n50\n", 100)
    assert (expired.replicas, expired.paused, expired.lease) == (None, False, None)
    assert parse_record("", "garbage", 100).lease is None


def test_pause_switch_keeps_the_other_keys(tmp_path: Path) -> None:
    record = tmp_path / ".env.rollout"
    record.write_text("WEB_REPLICAS=4\nWEB_IMAGE=x:1\n")
    set_paused(record, True)
    assert read_record(record).paused and read_record(record).replicas == 4
    set_paused(record, False)
    assert not read_record(record).paused
    assert "WEB_IMAGE=x:1" in record.read_text()


def test_lease_is_held_for_the_operation_and_released(tmp_path: Path) -> None:
    record = tmp_path / ".env.rollout"
    with operation_lease(record, "hactl scale"):
        holder = read_record(record).lease
        assert holder and holder.startswith("hactl scale (pid ")
        assert not record.exists()  # the lease never rewrites the record itself
    assert read_record(record).lease is None and not lease_path(record).exists()


def test_lease_expires_when_its_holder_is_gone(tmp_path: Path) -> None:
    record = tmp_path / ".env.rollout"
    lease_path(record).write_text(f"hactl rollout (pid 1 on gone)\n{time.time() - 1:.0f}\n")
    assert read_record(record).lease is None


def test_scale_and_rollout_hold_the_lease() -> None:
    """hactl's two operations that stop and create replicas take the lease (the autoscaler
    scales through `scale`)."""
    from hactl.ops.rollout import rollout
    from hactl.ops.scaling import scale

    for operation in (scale, rollout):
        assert operation.__wrapped__, operation  # set by holds_operation_lease (functools.wraps)


def test_lease_decorator_wraps_a_stack_operation(tmp_path: Path) -> None:
    class FakeStack:
        rollout_env_file = tmp_path / ".env.rollout"

    seen: list[str | None] = []

    @holds_operation_lease("op")
    def operation(stack: FakeStack) -> int:
        seen.append(read_record(stack.rollout_env_file).lease)
        return 7

    assert operation(FakeStack()) == 7
    assert seen[0] and seen[0].startswith("op (pid")
    assert read_record(FakeStack.rollout_env_file).lease is None


# --- the clone ------------------------------------------------------------------------------------
TEMPLATE: dict[str, Any] = {
    "Id": "abcdef0123456789" * 4,
    "Name": "/p-web-2",
    "Config": {
        "Hostname": "abcdef012345",
        "Image": "compose-ha/web:latest",
        "Env": ["A=1"],
        "Labels": {
            "com.docker.compose.project": "p",
            "com.docker.compose.service": "web",
            LABEL_NUMBER: "2",
            "com.docker.compose.config-hash": "h",
        },
    },
    "HostConfig": {
        "NetworkMode": "p_backend",
        "CgroupnsMode": "host",
        "ReadonlyRootfs": True,
        "CapDrop": ["ALL"],
    },
    "NetworkSettings": {
        "Networks": {
            "p_backend": {"Aliases": ["p-web-2", "web", "abcdef012345"], "IPAddress": "10.0.0.2"},
            "p_other": {"Aliases": ["web"]},
        }
    },
}


def test_clone_copies_the_sibling_with_a_new_name_number_and_aliases() -> None:
    plan = clone_request(TEMPLATE, "p-web-1", 1)
    body = plan.body
    assert plan.name == "p-web-1" and "Hostname" not in body
    assert body["Image"] == "compose-ha/web:latest" and body["Env"] == ["A=1"]
    assert body["Labels"][LABEL_NUMBER] == "1" and body["Labels"][LABEL_CLONED_FROM] == "p-web-2"
    assert body["Labels"]["com.docker.compose.config-hash"] == "h"  # Compose sees it as current
    assert body["HostConfig"]["ReadonlyRootfs"] is True and "CgroupnsMode" not in body["HostConfig"]
    assert body["NetworkingConfig"] == {
        "EndpointsConfig": {"p_backend": {"Aliases": ["web", "p-web-1"]}}
    }
    assert plan.extra_networks == {"p_other": {"Aliases": ["web", "p-web-1"]}}
    assert TEMPLATE["Config"]["Labels"][LABEL_NUMBER] == "2"  # the template is not modified


# --- the image ------------------------------------------------------------------------------------
def test_image_pins_match_pyproject() -> None:
    pins = dict(re.findall(r'"([a-z-]+)==([0-9.]+)"', (REPO / "pyproject.toml").read_text()))
    dockerfile = (REPO / "compose" / "selfheal" / "Dockerfile").read_text()
    installed = dict(re.findall(r"([a-z-]+)==([0-9.]+)", dockerfile))
    assert installed == {k: pins[k] for k in ("httpx", "prometheus-client")}


def test_the_package_imports_nothing_the_image_lacks() -> None:
    """The image has hactl/__init__.py, envfile.py and selfheal/ only (plus httpx, prometheus)."""
    for path in (REPO / "scripts" / "hactl" / "selfheal").glob("*.py"):
        if path.name == "cli.py":  # the typer glue for `hactl selfheal`: never run in the image
            continue
        source = path.read_text()
        for module in re.findall(r"^from (hactl[.\w]*) import", source, re.M):
            assert module == "hactl.stack.envfile" or module.startswith("hactl.selfheal"), (
                path,
                module,
            )
        assert not re.search(r"^(from|import) (python_on_whales|typer)\b", source, re.M), path


# --- one sync against a recording fake of the API -------------------------------------------
class FakeApi:
    def __init__(self, containers: list[dict[str, Any]]) -> None:
        self.containers = containers
        self.calls: list[tuple[str, str]] = []

    def ping(self) -> None: ...

    def project_containers(self, project: str) -> list[dict[str, Any]]:
        return self.containers

    def inspect(self, cid: str) -> dict[str, Any]:
        self.calls.append(("inspect", cid))
        return {**TEMPLATE, "Id": cid, "State": {"StartedAt": "2026-12-01T10:00:00.123456789Z"}}

    def start(self, cid: str) -> None:
        self.calls.append(("start", cid))

    def restart(self, cid: str, stop_timeout: int) -> None:
        self.calls.append(("restart", cid))

    def create(self, name: str, body: dict[str, Any]) -> str:
        self.calls.append(("create", name))
        return "new" + "0" * 61

    def connect(self, network: str, cid: str, endpoint: dict[str, Any]) -> None:
        self.calls.append(("connect", network))


def container(number: int, state: str, service: str = "web") -> dict[str, Any]:
    return {
        "Id": f"{service}{number}".ljust(64, "0"),
        "Names": [f"/p-{service}-{number}"],
        "State": state,
        "Status": "Up 1 hour (healthy)" if state == "running" else "Exited (137) 1 second ago",
        "Created": 1,
        "Labels": {
            "com.docker.compose.project": "p",
            "com.docker.compose.service": service,
            LABEL_NUMBER: str(number),
        },
        # No IP address: no liveness probe leaves this test (probes are the e2e test's).
        "NetworkSettings": {"Networks": {"p_backend": {}}},
    }


def test_one_sync_starts_the_killed_replica_and_replaces_the_removed_one(tmp_path: Path) -> None:
    api = FakeApi([container(1, "traefik"), container(1, "running"), container(2, "exited")])
    api.containers[0]["State"] = "running"
    api.containers[0]["Labels"]["com.docker.compose.service"] = "traefik"
    out = io.StringIO()
    cfg = SelfHealConfig(project="p", record_file=tmp_path / "none", default_replicas=3)
    metrics = SelfHealMetrics()
    controller = Controller(cfg, api, metrics, EventLog(out), clock=lambda: 2_000_000_000.0)  # type: ignore[arg-type]
    controller.sync()
    assert ("start", container(2, "exited")["Id"]) in api.calls
    assert ("create", "p-web-3") in api.calls and ("connect", "p_other") in api.calls
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["event"], e["replica"], e["reason"]) for e in events] == [
        ("start", "p-web-2", "exited"),
        ("create", "p-web-3", "missing"),
    ]
    registry = metrics.registry
    assert (
        registry.get_sample_value(
            "selfheal_restarts_total", {"replica": "p-web-2", "reason": "exited"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "selfheal_restarts_total", {"replica": "p-web-1", "reason": "liveness"}
        )
        == 0
    )  # created at 0 for every replica seen, so increase() counts a first restart
    assert registry.get_sample_value("selfheal_desired_replicas") == 3
    assert registry.get_sample_value("selfheal_syncs_total") == 1
    controller.sync()
    assert registry.get_sample_value("selfheal_syncs_total") == 2


def test_docker_times() -> None:
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    expected = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC).timestamp()
    assert parse_docker_time("2026-12-01T10:00:00.123456789Z") == pytest.approx(expected + 0.123456)
