"""The outage gate: which errors open it, that it fails requests fast while open, and that the
first successful probe closes it. Unit level (the probe is a function); the PostgreSQL restart
itself is tests/e2e/test_chaos_e2e.py's db-restart scenario."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.db import Database, DatabaseUnavailable
from app.outage import OutageGate
from app.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the backend runs on uvicorn's asyncio loop


class FlakyProbe:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionRefusedError("down")


async def wait_closed(gate: OutageGate, within_s: float = 2.0) -> None:
    async with asyncio.timeout(within_s):
        while gate.is_open:
            await asyncio.sleep(0.005)


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="probe_interval_s"):
        OutageGate(FlakyProbe(0), 0)


async def test_gate_stays_open_until_a_probe_succeeds() -> None:
    probe = FlakyProbe(failures=3)
    gate = OutageGate(probe, probe_interval_s=0.01)
    assert not gate.is_open
    gate.open("refused")
    gate.open("refused again")  # idempotent: still one prober
    assert gate.is_open
    await wait_closed(gate)
    assert probe.calls == 4


async def test_close_stops_the_prober() -> None:
    probe = FlakyProbe(failures=10**9)
    gate = OutageGate(probe, probe_interval_s=0.01)
    gate.open("refused")
    async with asyncio.timeout(2.0):
        while probe.calls < 2:  # probing, and past its first interval
            await asyncio.sleep(0.005)
    await gate.close()
    calls = probe.calls
    await asyncio.sleep(0.05)  # five probe intervals: none may start after close()
    assert not gate.is_open
    assert probe.calls == calls


class ScriptedPool:
    """Stands in for asyncpg's pool only to raise a chosen acquire error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def acquire(self, timeout: float) -> None:
        raise self.error


def database_with(error: BaseException, probe_failures: int) -> tuple[Database, FlakyProbe]:
    db = Database(Settings(db_outage_probe_interval_s=0.01))
    probe = FlakyProbe(probe_failures)
    db.gate = OutageGate(probe, 0.01)
    db.pool = ScriptedPool(error)  # type: ignore[assignment]
    return db, probe


async def use(db: Database) -> None:
    async with db.connection():
        pass


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError("refused"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ],
)
async def test_a_lost_server_opens_the_gate_and_requests_fail_fast(error: Exception) -> None:
    db, _ = database_with(error, probe_failures=10**9)
    with pytest.raises(DatabaseUnavailable):
        await use(db)
    assert db.gate.is_open
    db.pool = ScriptedPool(AssertionError("an open gate must not touch the pool"))  # type: ignore[assignment]
    with pytest.raises(DatabaseUnavailable, match="failing fast"):
        await use(db)
    await db.gate.close()


async def test_a_busy_pool_does_not_open_the_gate() -> None:
    # TimeoutError is an OSError: a timed-out acquire must still not count as a lost server.
    db, _ = database_with(TimeoutError(), probe_failures=0)
    with pytest.raises(DatabaseUnavailable):
        await use(db)
    assert not db.gate.is_open
