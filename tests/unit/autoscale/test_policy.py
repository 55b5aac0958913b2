"""The autoscale policy file: bad input is refused with a clear message before anything starts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hactl.autoscale.metrics import cpu_limit_of, memory_limit_of, utilization_reading
from hactl.autoscale.policy import load_policy, parse_bytes, parse_policy
from hactl.cli import app
from hactl.errors import InvalidInputError

REPO = Path(__file__).resolve().parents[3]
DEFAULT_FILE = REPO / "compose" / "autoscale-policy.yml"
DEFAULT = yaml.safe_load(DEFAULT_FILE.read_text())


def changed(path: str, value: Any) -> dict[str, Any]:
    """The default policy with one key (dotted path, list indexes as numbers) set or deleted."""
    data = copy.deepcopy(DEFAULT)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is KeyError:
        del node[key]
    else:
        node[key] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("minReplicas", 11, "minReplicas 11 is above maxReplicas 10"),
        ("minReplicas", -1, "`minReplicas` must be at least 1"),
        ("maxReplicas", 0, "`maxReplicas` must be at least 1"),
        ("minReplicas", 2.5, "`minReplicas` must be a whole number"),
        ("tolerance", -0.1, "`tolerance` must be at least 0"),
        ("syncPeriodSeconds", -15, "`syncPeriodSeconds` must be at least 0.1"),
        ("metrics.0.name", "gpu", "unknown metric 'gpu'"),
        ("metrics.0.target.averageUtilization", -50, "`averageUtilization` must be at least 1"),
        ("metrics.0.target.type", "AverageValue", "cpu takes type Utilization"),
        ("metrics", [], "at least one metric"),
        ("behavior.scaleUp.policies.0.value", -100, "`value` must be at least 1"),
        ("behavior.scaleUp.policies.0.type", "Replicas", "`type` must be Pods or Percent"),
        ("behavior.scaleDown.policies.1.periodSeconds", 0, "`periodSeconds` must be at least 1"),
        ("behavior.scaleDown.stabilizationWindowSeconds", -300, "must be at least 0"),
        ("behavior.scaleDown.selectPolicy", "Largest", "must be Max, Min or Disabled"),
        ("behavior.scaleDown", KeyError, "needs both scaleUp and scaleDown"),
        ("replicas", 3, "unknown key(s) replicas"),
        ("limits.memory", "lots", "not a size"),
    ],
)
def test_bad_policy_is_refused(path: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidInputError) as error:
        parse_policy(changed(path, value))
    assert message in error.value.message


def test_a_metric_listed_twice_is_refused() -> None:
    data = copy.deepcopy(DEFAULT)
    data["metrics"].append(data["metrics"][0])
    with pytest.raises(InvalidInputError, match="listed twice"):
        parse_policy(data)


def test_requests_per_second_and_limits_parse() -> None:
    data = changed(
        "metrics",
        [{"name": "requests_per_second", "target": {"type": "AverageValue", "averageValue": 25}}],
    )
    data["limits"] = {"cpu": 0.5, "memory": "512Mi"}
    policy = parse_policy(data)
    assert policy.spec.metrics[0].value == 25
    assert (policy.limits.cpu, policy.limits.memory) == (0.5, 512 * 2**20)
    assert [parse_bytes(v, "x") for v in ("1Gi", "2G", 1024, "10MiB")] == [
        2**30,
        2 * 10**9,
        1024,
        10 * 2**20,
    ]


@pytest.mark.parametrize(
    ("content", "exit_code", "message"),
    [
        ("minReplicas: 5\nmaxReplicas: 2\n", 2, "minReplicas 5 is above maxReplicas 2"),
        ("{not yaml", 2, "not valid YAML"),
        (None, 2, "cannot read it"),
    ],
)
def test_cli_refuses_bad_policy_before_touching_the_stack(
    tmp_path: Path, content: str | None, exit_code: int, message: str
) -> None:
    policy = tmp_path / "policy.yml"
    if content is not None:
        policy.write_text(content)
    result = CliRunner().invoke(
        app,
        [
            "--project",
            "hx-unit-no-such-stack",
            "autoscale",
            "--policy",
            str(policy),
            "--metrics-port",
            "0",
        ],
    )
    assert result.exit_code == exit_code, result.output
    assert message in " ".join(result.output.split())


def test_cli_refuses_max_above_hactl_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HACTL_MAX_REPLICAS", "5")
    policy = tmp_path / "policy.yml"
    policy.write_text(DEFAULT_FILE.read_text())
    result = CliRunner().invoke(
        app,
        [
            "--project",
            "hx-unit-no-such-stack",
            "autoscale",
            "--policy",
            str(policy),
            "--metrics-port",
            "0",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "maxReplicas 10 is above hactl's limit of 5" in " ".join(result.output.split())


def test_default_policy_file_loads() -> None:
    policy = load_policy(DEFAULT_FILE)
    assert policy.sync_period_seconds == 15
    assert policy.limits.cpu == 0


class HostConfig:
    def __init__(
        self, nano_cpus: int = 0, cpu_quota: int = 0, cpu_period: int = 0, memory: int = 0
    ) -> None:
        self.nano_cpus, self.cpu_quota, self.cpu_period, self.memory = (
            nano_cpus,
            cpu_quota,
            cpu_period,
            memory,
        )


def test_docker_limits() -> None:
    assert cpu_limit_of(HostConfig(nano_cpus=500_000_000)) == 0.5
    assert cpu_limit_of(HostConfig(cpu_quota=25_000, cpu_period=100_000)) == 0.25
    assert cpu_limit_of(HostConfig()) is None
    assert memory_limit_of(HostConfig(memory=256 * 2**20)) == 256 * 2**20
    assert memory_limit_of(HostConfig()) is None


def test_replica_without_limit_makes_the_metric_invalid_unless_the_policy_has_one() -> None:
    from hactl.autoscale.metrics import ReplicaLimits

    limits = [ReplicaLimits("web-1", True, None, None)]
    reading = utilization_reading("cpu", limits, {"web-1": 0.2}, fallback=0)
    assert reading.error and "no cpu limit" in reading.error
    reading = utilization_reading("cpu", limits, {"web-1": 0.2}, fallback=0.5)
    assert reading.error is None and reading.replicas[0].limit == 0.5


def test_e2e_test_policy_keeps_the_diagrams_scale_up_with_short_windows() -> None:
    test_policy = load_policy(REPO / "tests" / "e2e" / "autoscale-test-policy.yml")
    assert test_policy.spec.scale_up == load_policy(DEFAULT_FILE).spec.scale_up
    assert test_policy.spec.scale_down.stabilization_window_seconds == 20
    assert test_policy.spec.scale_down.select_policy.value == "Min"
