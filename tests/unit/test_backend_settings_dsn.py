"""The DSN the backend connects with: built from the parts, with the sslmode asked for."""

from __future__ import annotations

import pydantic
import pytest

from app.settings import Settings


def test_without_sslmode_the_dsn_leaves_asyncpg_its_default() -> None:
    dsn = Settings(database_host="db", database_user="app", database_name="app").dsn
    assert dsn == "postgresql://app@db:5432/app"


def test_sslmode_is_carried_by_the_dsn_built_from_parts() -> None:
    dsn = Settings(database_host="db", database_sslmode="disable").dsn
    assert dsn.endswith("@db:5432/app?sslmode=disable")


def test_database_url_keeps_its_own_sslmode() -> None:
    url = "postgresql://u@remote:5432/d?sslmode=verify-full"
    assert Settings(database_url=url, database_sslmode="disable").dsn == url


def test_an_unknown_sslmode_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError):
        Settings(database_sslmode="off")
