"""Which env files a stack uses, in which order, and how variables resolve (no Docker)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hactl.stack.endpoints import stack_endpoints
from hactl.stack.project import ROLLOUT_ENV_FILENAME, Stack, default_env_files, discover_stack

REPO = Path(__file__).resolve().parents[3]


def make_stack(tmp_path: Path, **files: str) -> Stack:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return Stack(
        project="hx-unit",
        project_dir=tmp_path,
        compose_files=(tmp_path / "docker-compose.yml",),
        env_files=(tmp_path / "images.env", tmp_path / "user.env", tmp_path / "missing.env"),
        rollout_env_file=tmp_path / "rollout.env",
    )


def test_rollout_env_file_is_read_last_and_missing_files_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEB_IMAGE", raising=False)
    stack = make_stack(
        tmp_path,
        **{"images.env": "WEB_IMAGE=a:1\n", "user.env": "WEB_IMAGE=b:1\nHTTP_PORT=8081\n"},
    )
    assert stack.all_env_files == (tmp_path / "images.env", tmp_path / "user.env")
    assert stack.env_value("WEB_IMAGE", "") == "b:1"
    (tmp_path / "rollout.env").write_text("WEB_IMAGE=c:2\n")
    assert stack.all_env_files[-1] == tmp_path / "rollout.env"
    assert stack.env_value("WEB_IMAGE", "") == "c:2"


def test_process_environment_wins_like_in_compose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack(tmp_path, **{"images.env": "HTTP_PORT=1\n", "user.env": ""})
    monkeypatch.setenv("HTTP_PORT", "2")
    assert stack.env_value("HTTP_PORT", "80") == "2"
    monkeypatch.delenv("HTTP_PORT")
    assert stack.env_value("HTTP_PORT", "80") == "1"
    assert stack.env_value("NOT_SET_ANYWHERE_X", "dflt") == "dflt"


def test_endpoints_from_env_and_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PORT", "TRAEFIK_API_PORT", "SECRETS_DIR", "PROMETHEUS_PORT"):
        monkeypatch.delenv(var, raising=False)
    secrets = tmp_path / "s"
    secrets.mkdir()
    (secrets / "dashboard_password").write_text("pw\n")
    (secrets / "api_tokens").write_text("tok1\ntok2\n")
    stack = make_stack(
        tmp_path,
        **{
            "images.env": "",
            "user.env": "HTTP_PORT=18080\nTRAEFIK_API_PORT=18081\nSECRETS_DIR=s\n",
        },
    )
    endpoints = stack_endpoints(stack)
    assert endpoints.load_balancer_url == "http://127.0.0.1:18080"
    assert endpoints.traefik_api_url == "http://127.0.0.1:18081"
    assert endpoints.prometheus_url == "http://127.0.0.1:9090"
    assert endpoints.dashboard_password == "pw"
    assert endpoints.api_token == "tok1"


def test_hactl_and_the_makefile_read_one_env_file_order() -> None:
    """compose/env-files is the one definition: .env.images, then .env, then hactl's rollout file
    (hactl used to read .env first, so .env.images overrode the user's WEB_IMAGE)."""
    show = "--eval=print-order: ; @echo $(ENV_FILE_ORDER)"
    make = subprocess.run(
        ["make", "-s", "--no-print-directory", show, "print-order"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    names = [p.name for p in default_env_files(REPO)]
    assert make.stdout.split() == names
    assert names == [".env.images", ".env", ROLLOUT_ENV_FILENAME]


def test_discovered_stack_reads_env_files_in_the_makefile_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEB_IMAGE", raising=False)
    monkeypatch.delenv("HACTL_ROLLOUT_ENV_FILE", raising=False)
    (tmp_path / "compose").mkdir()
    (tmp_path / "compose" / "env-files").write_text((REPO / "compose" / "env-files").read_text())
    (tmp_path / ".env.images").write_text("WEB_IMAGE=local/web:built\n")
    (tmp_path / ".env").write_text("WEB_IMAGE=mine/web:1\n")
    stack = discover_stack("hx-unit-no-such-stack", project_dir=tmp_path)
    assert stack.all_env_files == (tmp_path / ".env.images", tmp_path / ".env")
    assert stack.env_value("WEB_IMAGE", "") == "mine/web:1"  # the user's .env wins
    (tmp_path / ".env.rollout").write_text("WEB_IMAGE=rolled/web:2\n")
    assert stack.all_env_files[-1] == tmp_path / ".env.rollout"
    assert stack.env_value("WEB_IMAGE", "") == "rolled/web:2"
