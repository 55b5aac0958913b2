"""Input validation, env-file recording, label drift and the pure parts of verify."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from hactl.errors import InvalidInputError
from hactl.ops.verify import prometheus_web_targets, spread_within_tolerance
from hactl.stack.envfile import parse_env_text, read_env_file, update_env_file
from hactl.stack.label_drift import traefik_label_drift
from hactl.validation import (
    max_replicas,
    validate_batch_size,
    validate_replica_count,
    validate_timeout,
)


@pytest.mark.parametrize("count", [0, -1, -50])
def test_zero_or_negative_replicas_rejected(count: int) -> None:
    with pytest.raises(InvalidInputError, match="at least 1"):
        validate_replica_count(count, limit=10)


def test_above_maximum_rejected_and_maximum_accepted() -> None:
    with pytest.raises(InvalidInputError, match="above the maximum of 10"):
        validate_replica_count(11, limit=10)
    assert validate_replica_count(10, limit=10) == 10
    assert validate_replica_count(1, limit=10) == 1


def test_maximum_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HACTL_MAX_REPLICAS", raising=False)
    assert max_replicas() == 10
    monkeypatch.setenv("HACTL_MAX_REPLICAS", "4")
    assert max_replicas() == 4
    with pytest.raises(InvalidInputError):
        validate_replica_count(5)
    monkeypatch.setenv("HACTL_MAX_REPLICAS", "many")
    with pytest.raises(InvalidInputError, match="not a whole number"):
        max_replicas()


def test_batch_and_timeout_must_be_positive() -> None:
    with pytest.raises(InvalidInputError):
        validate_batch_size(0)
    with pytest.raises(InvalidInputError):
        validate_timeout(0)
    assert validate_batch_size(2) == 2
    assert validate_timeout(1.5) == 1.5


def test_rollout_env_file_keeps_other_lines(tmp_path: Path) -> None:
    path = tmp_path / ".env.rollout"
    update_env_file(path, {"WEB_IMAGE": "compose-ha/web:v1"}, header="written by hactl")
    path.write_text(path.read_text() + "# mine\nOTHER='x y'\n")
    update_env_file(path, {"WEB_IMAGE": "compose-ha/web:v2", "WEB_REPLICAS": "5"})
    assert read_env_file(path) == {
        "WEB_IMAGE": "compose-ha/web:v2",
        "OTHER": "x y",
        "WEB_REPLICAS": "5",
    }
    assert path.read_text().startswith("# written by hactl\n")
    assert "# mine" in path.read_text()


def test_env_parsing_matches_compose_basics() -> None:
    text = '# c\n\nA=1\nexport B="two"\nC=\nbad line\nD=a=b\n'
    assert parse_env_text(text) == {"A": "1", "B": "two", "C": "", "D": "a=b"}
    assert read_env_file(Path("/nonexistent/.env")) == {}


def test_traefik_label_drift_ignores_other_labels() -> None:
    running = {"traefik.enable": "true", "traefik.x.timeout": "800ms", "other": "1"}
    model = {
        "traefik.enable": "true",
        "traefik.x.timeout": "1500ms",
        "other": "2",
        "traefik.y": "new",
    }
    assert traefik_label_drift(model, running) == [
        "traefik.x.timeout: '800ms' -> '1500ms'",
        "traefik.y: '<unset>' -> 'new'",
    ]
    assert traefik_label_drift(running, dict(running, other="3")) == []


def test_spread_within_tolerance() -> None:
    ok, _ = spread_within_tolerance(Counter(a=20, b=19, c=21), ["a", "b", "c"], 0.5)
    assert ok
    lopsided, detail = spread_within_tolerance(Counter(a=50, b=5, c=5), ["a", "b", "c"], 0.5)
    assert not lopsided
    assert "a=50" in detail
    missing, _ = spread_within_tolerance(Counter(a=30, b=30), ["a", "b", "c"], 0.5)
    assert not missing
    stranger, detail = spread_within_tolerance(Counter(a=30, z=1), ["a"], 0.5)
    assert not stranger
    assert "unexpected" in detail
    assert spread_within_tolerance(Counter(), ["a"], 0.5)[0] is False


def test_prometheus_targets_keep_replica_port_only() -> None:
    targets = {
        "status": "success",
        "data": {
            "activeTargets": [
                {"labels": {"instance": "172.27.0.4:8000", "job": "web"}, "health": "up"},
                {"labels": {"instance": "172.27.0.5:8000", "job": "web"}, "health": "down"},
                {"labels": {"instance": "traefik:8082", "job": "traefik"}, "health": "up"},
            ]
        },
    }
    assert prometheus_web_targets(targets) == {"172.27.0.4": "up", "172.27.0.5": "down"}
    assert prometheus_web_targets({}) == {}
