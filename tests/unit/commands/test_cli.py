"""Bad input is refused before hactl touches Docker: clear message, exit code 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hactl.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scale", "0"], "at least 1"),
        (["scale", "--", "-3"], "at least 1"),
        (["scale", "11"], "above the maximum of 10"),
        (["rollout"], "exactly one of --image TAG or --build"),
        (["rollout", "--image", "x:y", "--build"], "exactly one of --image TAG or --build"),
        (["rollout", "--image", "x:y", "--batch", "0"], "--batch must be at least 1"),
        (["rollout", "--image", "x:y", "--timeout", "0"], "--timeout must be positive"),
        (["rollout", "--service", "db", "--image", "x:y"], "unknown service 'db'"),
        (["rollout", "--service", "traefik", "--build"], "--build is for web"),
        (["rollout", "--service", "traefik", "--timeout", "0"], "--timeout must be positive"),
        (
            ["rollout", "--service", "traefik", "--image", "x:y", "--canary", "10,100"],
            "--canary and --abort-canary are for web",
        ),
        (["chaos", "--scenario", "disconnect", "--repeat", "0"], "--repeat must be at least 1"),
        (["chaos", "--scenario", "nope"], "nope"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HACTL_MAX_REPLICAS", raising=False)
    result = runner.invoke(app, ["--project", "hx-unit-no-such-stack", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_max_replicas_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HACTL_MAX_REPLICAS", "2")
    result = runner.invoke(app, ["--project", "hx-unit-no-such-stack", "scale", "3"])
    assert result.exit_code == 2
    assert "above the maximum of 2" in " ".join(result.output.split())
