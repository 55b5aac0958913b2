"""Env files read and recorded the way Compose reads them (hactl.stack.envfile)."""

from __future__ import annotations

from pathlib import Path

from hactl.stack.envfile import parse_env_text, read_env_file, update_env_file


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
