"""A writer lost in the middle of its transaction must not hold a retry of the same write.

The API's own write path (`app.idempotency.run_once` over `app.db.Database`) against the real
PostgreSQL of a base stack. Writer A stops in the middle of its work, in the state a replica
frozen or cut off the network leaves its session in: asyncpg has prepared A's next statement
(Parse/Describe/Flush) and not yet bound it, so the server waits for the rest of the statement,
neither idle in a transaction nor cancellable by a timeout. Its retry B, with the same
Idempotency-Key, must be stored at once, and A, if it ever resumes, must replay B's response
rather than store a second copy. Before the key row was written last, B waited on A's key until
the server's keepalives dropped A's session (11 s measured; here, until the test gave up).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from python_on_whales import DockerClient

from app.db import Database
from app.idempotency import principal_id, request_fingerprint, run_once
from app.settings import Settings
from tests.support.stack import BASE_FILE, SECRETS_DIR, Stack

pytestmark = pytest.mark.integration

RETRY_BOUND_S = 1.0  # B's whole write; A's session is never ended by the server in that time


@pytest.fixture(scope="module")
def db_settings(docker_engine: DockerClient) -> Iterator[Settings]:
    stack = Stack("beidem", [BASE_FILE])
    try:
        stack.up()
        (postgres,) = stack.containers("postgres")
        yield Settings(
            database_host=stack.container_ip(postgres),
            database_password_file=SECRETS_DIR / "postgres_password",
        )
    finally:
        stack.down()


async def conversation(db: Database) -> uuid.UUID:
    conversation_id = uuid.uuid4()
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO conversations (id, title) VALUES ($1, 'lost writer')", conversation_id
        )
    return conversation_id


class Stall:
    """Where writer A stops: `reached` once it is there, and it waits for `resume`."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.resume = asyncio.Event()


def message_work(conversation_id: uuid.UUID, content: str, stall: Stall | None) -> Any:
    """A chat write: insert the message; with `stall`, stop mid-statement until resumed."""

    async def work(conn: Any) -> tuple[int, str]:
        message_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO messages (id, conversation_id, role, content) VALUES ($1, $2, 'user', $3)",
            message_id,
            conversation_id,
            content,
        )
        if stall is not None:
            # The next statement parsed, not bound: what a writer cut off here leaves behind.
            await conn.prepare(f"SELECT id FROM messages WHERE id = $1 -- {uuid.uuid4()}")
            stall.reached.set()
            await stall.resume.wait()
        return 201, json.dumps({"id": str(message_id), "content": content})

    return work


async def stored_copies(db: Database, content: str) -> int:
    async with db.connection() as conn:
        return await conn.fetchval("SELECT count(*) FROM messages WHERE content = $1", content)


async def lost_writer_then_retry(settings: Settings) -> None:
    db = Database(settings)
    await db.start()
    try:
        conversation_id = await conversation(db)
        content = f"turn {uuid.uuid4()}"
        principal = principal_id("test-token")
        key = f"k-{uuid.uuid4()}"
        payload = {"content": content}
        fingerprint = request_fingerprint("POST", "/api/v1/messages", payload)
        stall = Stall()

        async def writer_a() -> Any:
            async with db.connection() as conn:
                return await run_once(
                    conn, principal, key, fingerprint, message_work(conversation_id, content, stall)
                )

        a = asyncio.create_task(writer_a())
        await asyncio.wait_for(stall.reached.wait(), 10)
        async with db.connection() as conn:
            async with asyncio.timeout(RETRY_BOUND_S):
                b = await run_once(
                    conn, principal, key, fingerprint, message_work(conversation_id, content, None)
                )
        assert b.status_code == 201 and not b.replayed, b
        assert await stored_copies(db, content) == 1

        stall.resume.set()  # A resumes: it must answer B's stored response, not store its own
        resumed = await asyncio.wait_for(a, 10)
        assert resumed.replayed and resumed.body == b.body, resumed
        assert await stored_copies(db, content) == 1
    finally:
        await db.stop()


def test_a_writer_lost_mid_transaction_holds_no_retry_of_its_write(db_settings: Settings) -> None:
    asyncio.run(lost_writer_then_retry(db_settings))
