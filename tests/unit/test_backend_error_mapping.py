"""A lost database connection maps to 503 wherever it surfaces; other errors stay 500s."""

from __future__ import annotations

import asyncpg

from app.db import DatabaseUnavailable, caused_by_database_outage


def chained(outer: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise outer from inner
    except BaseException as exc:
        return exc


def test_direct_and_chained_outages_are_recognised() -> None:
    assert caused_by_database_outage(DatabaseUnavailable("x"))
    assert caused_by_database_outage(ConnectionResetError(104, "reset"))
    shutdown = asyncpg.AdminShutdownError("terminating connection due to administrator command")
    assert caused_by_database_outage(chained(RuntimeError("wrapped"), shutdown))
    assert caused_by_database_outage(
        ExceptionGroup("tg", [ValueError("a"), DatabaseUnavailable("b")])
    )


def test_other_errors_are_not_outages() -> None:
    assert not caused_by_database_outage(ValueError("bug"))
    assert not caused_by_database_outage(chained(KeyError("k"), ZeroDivisionError()))
    assert not caused_by_database_outage(None)
