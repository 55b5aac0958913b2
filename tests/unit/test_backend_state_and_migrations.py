"""Replica state files (drain/unready switches) and migration file ordering (pure logic)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from app import control, state
from app.migration_files import discover, expected_version, parse_name

BACKEND = Path(__file__).resolve().parents[2] / "backend"


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("APP_STATE_DIR", str(tmp_path))
    return tmp_path


class TestDrainRemaining:
    def test_full_drain_when_not_draining_yet(self, state_dir: Path) -> None:
        assert state.drain_remaining(5.0) == 5.0

    def test_only_the_remainder_after_an_earlier_drain(self, state_dir: Path) -> None:
        path = state.set_flag(state.DRAINING, state.BY_CONTROL)
        past = time.time() - 3.0
        os.utime(path, (past, past))
        assert 1.5 < state.drain_remaining(5.0) <= 2.0

    def test_never_negative(self, state_dir: Path) -> None:
        path = state.set_flag(state.DRAINING, state.BY_CONTROL)
        os.utime(path, (0, 0))
        assert state.drain_remaining(5.0) == 0.0


class TestControl:
    def _status(self, capsys: pytest.CaptureFixture[str]) -> dict:
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    def test_drain_unready_ready(self, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert control.main(["drain"]) == 0
        assert self._status(capsys)["draining"] is True
        assert (state_dir / "draining").read_text() == state.BY_CONTROL
        assert control.main(["unready"]) == 0
        assert self._status(capsys)["unready"] is True
        assert control.main(["ready"]) == 0
        st = self._status(capsys)
        assert st["draining"] is False
        assert st["unready"] is False

    def test_ready_never_undoes_a_sigterm_drain(
        self, state_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        state.set_flag(state.DRAINING, state.BY_SIGTERM)
        assert control.main(["ready"]) == 1
        assert (state_dir / "draining").exists()

    def test_drain_keeps_the_first_timestamp(self, state_dir: Path) -> None:
        path = state.set_flag(state.DRAINING, state.BY_CONTROL)
        os.utime(path, (1000, 1000))
        control.main(["drain"])
        assert path.stat().st_mtime == 1000

    @pytest.mark.parametrize("argv", [[], ["bogus"], ["drain", "extra"]])
    def test_usage(self, state_dir: Path, argv: list[str]) -> None:
        assert control.main(argv) == 2


class TestMigrationFiles:
    def test_parse_name(self) -> None:
        assert parse_name("0007_add_index.sql") == (7, "add_index")
        assert parse_name("7_add_index.sql") is None
        assert parse_name("0007-add.sql") is None

    def test_ordered_by_version_not_by_listing(self, tmp_path: Path) -> None:
        for name in ("0010_c.sql", "0002_b.sql", "0001_a.sql", "README.md"):
            (tmp_path / name).write_text("SELECT 1;")
        assert [m.version for m in discover(tmp_path)] == [1, 2, 10]
        assert expected_version(tmp_path) == 10

    def test_duplicate_version_is_an_error(self, tmp_path: Path) -> None:
        (tmp_path / "0001_a.sql").write_text("")
        (tmp_path / "0001_b.sql").write_text("")
        with pytest.raises(ValueError, match="two migrations"):
            discover(tmp_path)

    def test_badly_named_sql_is_an_error(self, tmp_path: Path) -> None:
        (tmp_path / "init.sql").write_text("")
        with pytest.raises(ValueError, match=r"0001_name\.sql"):
            discover(tmp_path)

    def test_no_migrations_is_version_zero(self, tmp_path: Path) -> None:
        assert expected_version(tmp_path) == 0

    def test_the_shipped_migrations_parse(self) -> None:
        migrations = discover(BACKEND / "migrations")
        assert migrations[0].version == 1
        assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
        assert "idempotency_keys" in "".join(m.sql() for m in migrations)
