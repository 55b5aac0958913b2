"""The asyncpg pool, with connect, acquire and command timeouts so that a dead or paused
database turns into a quick 503 instead of a hung request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

import asyncpg

from app.outage import OutageGate
from app.settings import Settings

log = logging.getLogger("app.db")

# Errors meaning "the database is not available right now" (mapped to 503 + Retry-After).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.QueryCanceledError,
    # A pooled connection left mid-operation by a lost server ("another operation is in
    # progress"): unusable, so dropped and answered like an outage.
    asyncpg.InternalClientError,
)


# Errors meaning "the server is gone or refuses sessions" (not "busy"): they open the outage gate.
SERVER_GONE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


class DatabaseUnavailable(Exception):
    """Raised when the pool cannot hand out a working connection in time."""


# A lost database connection, wherever it surfaces, is an outage (503), never a bug (500).
_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    DatabaseUnavailable,
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


def caused_by_database_outage(exc: BaseException | None) -> bool:
    """True when `exc`, its causes/contexts or the members of an exception group say the
    database went away. Seen live: a query cut by PostgreSQL's restart occasionally reached
    the catch-all handler instead of the DatabaseUnavailable one."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, _OUTAGE_ERRORS):
            return True
        if isinstance(exc, BaseExceptionGroup):
            return any(caused_by_database_outage(e) for e in exc.exceptions)
        exc = exc.__cause__ or exc.__context__
    return False


# When the request being served must be done with the database (time.monotonic()): its
# connection acquired and its statements answered. Set by RequestContextMiddleware; None outside
# a request (migrations, the purge task).
connection_deadline: ContextVar[float | None] = ContextVar("connection_deadline", default=None)


def request_time_left() -> float | None:
    """Seconds until the request's deadline (at least 50 ms), None outside a request."""
    deadline = connection_deadline.get()
    if deadline is None:
        return None
    return max(0.05, deadline - time.monotonic())


class PooledConnection(asyncpg.Connection):
    """A connection that knows how long it has sat idle in the pool."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._returned_at = time.monotonic()

    def mark_returned(self) -> None:
        self._returned_at = time.monotonic()

    def idle_s(self) -> float:
        return time.monotonic() - self._returned_at


class Database:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.pool: asyncpg.Pool | None = None
        self.gate = OutageGate(self._probe, settings.db_outage_probe_interval_s)
        self._releasing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        # min_size defaults to 0, so this does not connect: the process serves /healthz and
        # answers /readyz 503 while the database is still down.
        self.pool = await asyncpg.create_pool(
            self._settings.dsn,
            min_size=self._settings.db_pool_min,
            max_size=self._settings.db_pool_max,
            timeout=self._settings.db_connect_timeout,
            command_timeout=self._settings.db_command_timeout,
            max_inactive_connection_lifetime=60.0,
            server_settings=self._server_settings(),
            connection_class=PooledConnection,
        )

    def _server_settings(self) -> dict[str, str]:
        return {
            "idle_in_transaction_session_timeout": str(
                self._settings.db_idle_in_transaction_timeout_ms
            ),
            # A replica killed, crashed or cut off never closes its sessions: without
            # keepalives PostgreSQL keeps them (and their max_connections slots) for hours.
            # With these it drops them about 11 s after they fell silent.
            "tcp_keepalives_idle": "5",
            "tcp_keepalives_interval": "2",
            "tcp_keepalives_count": "3",
        }

    async def _probe(self) -> None:
        """One fresh session, outside the pool, bounded like a pooled connect."""
        conn = await asyncpg.connect(
            self._settings.dsn,
            timeout=self._settings.db_connect_timeout,
            command_timeout=self._settings.db_connect_timeout,
            server_settings=self._server_settings(),
        )
        try:
            await conn.fetchval("SELECT 1")
        finally:
            conn.terminate()

    async def stop(self) -> None:
        await self.gate.close()
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), timeout=5.0)
            except (TimeoutError, *UNAVAILABLE_ERRORS):
                self.pool.terminate()
            self.pool = None

    def raise_if_known_down(self) -> None:
        if self.pool is None:
            raise DatabaseUnavailable("database pool not started")
        if self.gate.is_open:
            raise DatabaseUnavailable("database unavailable: failing fast until a probe reaches it")

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[asyncpg.Connection]:
        self.raise_if_known_down()
        try:
            async with asyncio.timeout(request_time_left()):
                async with self._connection(timeout) as conn:
                    yield conn
        except TimeoutError as exc:
            # The request's deadline passed while it waited on the database (a slow reconnect,
            # a lock, a statement): the API answers 503 before Traefik's bound answers 504.
            raise DatabaseUnavailable("database unavailable: request deadline passed") from exc

    @asynccontextmanager
    async def _connection(self, timeout: float | None) -> AsyncIterator[asyncpg.Connection]:
        try:
            conn = await self._acquire(timeout or self._settings.db_acquire_timeout)
        except UNAVAILABLE_ERRORS as exc:
            self._note_failure(exc)
            raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}") from exc
        try:
            yield conn
        except asyncio.CancelledError:
            # The request's deadline (or its end) cut it mid-statement; asyncpg is cancelling
            # the statement on the server. The pool's release waits for that and resets the
            # session (ROLLBACK), or terminates it when that takes over a second (a server
            # gone silent): done in the background, the 503 does not wait for it. Terminating
            # at once made the next request pay a new session (fork, SCRAM, statements
            # prepared again) on a host already saturated: the chaos runs that collapsed under
            # a CPU hog opened 138-168 new sessions each, those that did not 11-26.
            self._release_in_background(conn)
            raise
        except UNAVAILABLE_ERRORS as exc:
            # The connection failed: asyncpg may already have detached it; drop it at once.
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
            await self._release(conn)
            self._note_failure(exc)
            raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}") from exc
        except BaseException:
            await self._release(conn)
            raise
        else:
            await self._release(conn)

    async def _acquire(self, timeout: float) -> asyncpg.Connection:
        """A pooled connection, checked first if it sat idle long enough to be dead unnoticed.

        A replica cut off from the network longer than the server's keepalives (about 11 s)
        comes back with pooled sessions that PostgreSQL has dropped without a word reaching it
        (no FIN got through); the first statement on one meets a reset, and the request would
        answer 503. Such a connection is found by one round trip before any statement of the
        request is sent, so replacing it is safe for every request, writes included. Only a
        connection that says it is dead is replaced, one at a time: a check that is merely slow
        (a busy server) is waited for like any statement: a version that counted slowness as
        death and renewed the pool failed a CI run's replica kill under load (1,146 failed
        requests, most likely a reconnect storm; not proven)."""
        for _ in range(self._settings.db_pool_max + 1):
            conn = await self.pool.acquire(timeout=timeout)  # type: ignore[union-attr]
            idle_s = conn.idle_s()
            if idle_s < self._settings.db_check_idle_after_s:
                return conn
            try:
                await conn.execute("SELECT 1", timeout=request_time_left())
            except (asyncio.CancelledError, TimeoutError):
                # Slow, not dead: the request's own deadline policy applies, and the
                # connection goes back to the pool as after any statement cut short.
                self._release_in_background(conn)
                raise
            except UNAVAILABLE_ERRORS as exc:
                with contextlib.suppress(asyncpg.InterfaceError):
                    conn.terminate()
                await self._release(conn)
                log.warning(
                    "pooled connection dead after %.1f s idle; replaced",
                    idle_s,
                    extra={"error": f"{exc.__class__.__name__}: {exc}"},
                )
                continue  # the next idle one is checked too; a fresh one when none is left
            return conn
        raise DatabaseUnavailable("database unavailable: every pooled connection was dead")

    def _note_failure(self, exc: BaseException) -> None:
        # TimeoutError is an OSError, but a timed-out acquire means a busy pool, not a lost server.
        if isinstance(exc, SERVER_GONE_ERRORS) and not isinstance(exc, TimeoutError):
            self.gate.open(f"{exc.__class__.__name__}: {exc}")

    def _release_in_background(self, conn: asyncpg.Connection) -> None:
        task = asyncio.get_running_loop().create_task(self._release(conn))
        self._releasing.add(task)  # a task nobody references can be collected mid-flight
        task.add_done_callback(self._releasing.discard)

    async def _release(self, conn: asyncpg.Connection) -> None:
        # On failure asyncpg terminates the connection itself; nothing else to do.
        with contextlib.suppress(Exception):
            conn.mark_returned()
            await self.pool.release(conn, timeout=1.0)  # type: ignore[union-attr]

    def pool_stats(self) -> tuple[int, int]:
        """(connections in use, connections open)."""
        if self.pool is None:
            return 0, 0
        size = self.pool.get_size()
        return size - self.pool.get_idle_size(), size
