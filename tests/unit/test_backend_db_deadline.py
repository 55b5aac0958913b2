"""The request's database deadline: no database wait, connection or statement, outlives it."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from app.db import Database, DatabaseUnavailable, connection_deadline, request_time_left
from app.settings import Settings


def test_outside_a_request_there_is_no_deadline() -> None:
    assert request_time_left() is None


@pytest.mark.parametrize(("left_s", "expected"), [(0.3, 0.3), (5.0, 5.0), (-2.0, 0.05)])
def test_inside_a_request_it_is_what_is_left(left_s: float, expected: float) -> None:
    token = connection_deadline.set(time.monotonic() + left_s)
    try:
        assert request_time_left() == pytest.approx(expected, abs=0.02)
    finally:
        connection_deadline.reset(token)


class FakeConnection:
    terminated = False

    def __init__(self, idle_s: float = 0.0, ping_error: BaseException | None = None) -> None:
        self._idle_s = idle_s
        self.ping_error = ping_error
        self.pings = 0

    def terminate(self) -> None:
        self.terminated = True

    def idle_s(self) -> float:
        return self._idle_s

    def mark_returned(self) -> None:
        self._idle_s = 0.0

    async def execute(self, query: str, timeout: float) -> None:
        assert query == "SELECT 1"
        self.pings += 1
        if self.ping_error is not None:
            raise self.ping_error


class OneConnectionPool:
    """Hands out one connection at once; records its release. Only the deadline is under test."""

    def __init__(self) -> None:
        self.conn = FakeConnection()
        self.released: list[FakeConnection] = []

    async def acquire(self, timeout: float) -> FakeConnection:
        return self.conn

    async def release(self, conn: FakeConnection, timeout: float) -> None:
        self.released.append(conn)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def statement_past_a_deadline(db: Database, deadline_s: float = 0.1) -> float:
    """A request whose statement would outlive its deadline; seconds until its 503."""
    token = connection_deadline.set(time.monotonic() + deadline_s)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailable, match="request deadline"):
            async with db.connection():
                await asyncio.sleep(5)
    finally:
        connection_deadline.reset(token)
    return time.monotonic() - started


@pytest.mark.anyio
async def test_statements_past_the_request_deadline_answer_503_and_return_the_connection() -> None:
    db = Database(Settings())
    pool = OneConnectionPool()
    db.pool = pool  # type: ignore[assignment]
    assert await statement_past_a_deadline(db) < 1.0
    await asyncio.sleep(0)  # the release runs in the background, after the 503
    # The pool's release waits for asyncpg's cancellation and resets the session (or
    # terminates it itself when that fails): no new session for the next request.
    assert pool.released == [pool.conn] and not pool.conn.terminated
    assert not db.gate.is_open, "a slow statement is not a lost server"


class SlowReleasePool(OneConnectionPool):
    """Its release (asyncpg's reset) takes its whole timeout."""

    def __init__(self) -> None:
        super().__init__()
        self.done = asyncio.Event()

    async def release(self, conn: FakeConnection, timeout: float) -> None:
        await asyncio.sleep(timeout)  # the scenario: a reset as slow as allowed
        self.released.append(conn)
        self.done.set()


@pytest.mark.anyio
async def test_the_503_does_not_wait_for_the_connection_reset() -> None:
    db = Database(Settings())
    pool = SlowReleasePool()
    db.pool = pool  # type: ignore[assignment]
    assert await statement_past_a_deadline(db) < 0.5, "the answer waited for the reset"
    assert pool.released == []
    await asyncio.wait_for(pool.done.wait(), timeout=3.0)
    assert pool.released == [pool.conn], "the connection went back to the pool afterwards"


@pytest.mark.anyio
async def test_a_connection_that_failed_mid_statement_is_dropped() -> None:
    db = Database(Settings())
    pool = OneConnectionPool()
    db.pool = pool  # type: ignore[assignment]
    with pytest.raises(DatabaseUnavailable):
        async with db.connection():
            raise ConnectionResetError("reset by peer")
    assert pool.conn.terminated and pool.released == [pool.conn]
    await db.gate.close()  # the lost connection opened the outage gate: stop its probe


@pytest.mark.anyio
async def test_outside_a_request_statements_are_not_cut() -> None:
    db = Database(Settings())
    db.pool = OneConnectionPool()  # type: ignore[assignment]
    async with db.connection():
        await asyncio.sleep(0.2)


class StuckPool(OneConnectionPool):
    """Its acquire waits as long as it is allowed to (the setting's 1 s here)."""

    async def acquire(self, timeout: float) -> FakeConnection:
        await asyncio.sleep(timeout)
        raise TimeoutError


@pytest.mark.anyio
async def test_the_wait_for_a_connection_is_cut_to_what_is_left_of_the_request() -> None:
    db = Database(Settings(db_acquire_timeout=1.0))
    db.pool = StuckPool()  # type: ignore[assignment]
    token = connection_deadline.set(time.monotonic() + 0.1)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailable):
            async with db.connection():
                pass
    finally:
        connection_deadline.reset(token)
    assert time.monotonic() - started < 0.5, "the acquire outlived the request's deadline"
    assert not db.gate.is_open, "a busy pool is not a lost server"


class PoolOf(OneConnectionPool):
    """Hands out the given connections in turn."""

    def __init__(self, *conns: FakeConnection) -> None:
        super().__init__()
        self.conns = list(conns)

    async def acquire(self, timeout: float) -> FakeConnection:
        return self.conns.pop(0)


@pytest.mark.anyio
async def test_a_connection_in_steady_use_is_not_checked() -> None:
    conn = FakeConnection(idle_s=0.1, ping_error=AssertionError("must not be pinged"))
    db = Database(Settings(db_check_idle_after_s=2.0))
    db.pool = PoolOf(conn)  # type: ignore[assignment]
    async with db.connection() as got:
        assert got is conn


@pytest.mark.anyio
@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError("reset by peer"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ],
)
async def test_long_idle_connections_found_dead_are_replaced_and_the_request_goes_on(
    error: Exception,
) -> None:
    # What a replica cut off past PostgreSQL's keepalives finds: the server dropped the sessions.
    dead = [FakeConnection(idle_s=30.0, ping_error=error) for _ in "ab"]
    fresh = FakeConnection()
    db = Database(Settings(db_check_idle_after_s=2.0))
    db.pool = PoolOf(*dead, fresh)  # type: ignore[assignment]
    async with db.connection() as got:
        assert got is fresh
    assert all(d.terminated and d.pings == 1 for d in dead)
    assert fresh.pings == 0, "a fresh connection is used as it is"
    assert not db.gate.is_open, "dead sessions are not a database outage"


@pytest.mark.anyio
async def test_a_pool_of_nothing_but_dead_connections_answers_503() -> None:
    db = Database(Settings(db_check_idle_after_s=2.0, db_pool_max=2))
    dead = [FakeConnection(idle_s=30.0, ping_error=ConnectionResetError("reset")) for _ in "abc"]
    db.pool = PoolOf(*dead)  # type: ignore[assignment]
    with pytest.raises(DatabaseUnavailable, match="every pooled connection was dead"):
        async with db.connection():
            pass


@pytest.mark.anyio
async def test_a_long_idle_connection_that_answers_is_used() -> None:
    alive = FakeConnection(idle_s=30.0)
    db = Database(Settings(db_check_idle_after_s=2.0))
    db.pool = PoolOf(alive)  # type: ignore[assignment]
    async with db.connection() as got:
        assert got is alive
    assert alive.pings == 1 and not alive.terminated


@pytest.mark.anyio
async def test_a_slow_check_is_not_a_dead_connection_and_renews_nothing() -> None:
    slow = FakeConnection(idle_s=30.0, ping_error=TimeoutError())
    spare = FakeConnection()
    db = Database(Settings(db_check_idle_after_s=2.0))
    pool = PoolOf(slow, spare)
    db.pool = pool  # type: ignore[assignment]
    with pytest.raises(DatabaseUnavailable):
        async with db.connection():
            pass
    await asyncio.sleep(0)
    assert not slow.terminated and pool.released == [slow], "back to the pool, as it is alive"
    assert pool.conns == [spare], "no other connection was touched"
    assert not db.gate.is_open
