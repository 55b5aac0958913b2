"""Idempotent writes: the same `Idempotency-Key` and body yield the stored response, once.

The key row and the write share one transaction, and the key row is written **last**, with the
response it stores, just before COMMIT. A concurrent duplicate does its own work, then its
`INSERT ... ON CONFLICT DO NOTHING` of the key waits for the first transaction to end: if that
committed, the duplicate rolls its work back and replays the stored response; if it rolled back
(e.g. 404), the duplicate's key goes in and its work stands. So nothing is stored twice and a
failed request stores nothing.

Why last: a writer can be lost in the middle of its transaction (its replica frozen or cut off
the network), and whatever it locked stays locked until PostgreSQL ends its session. Between
two messages of one statement (asyncpg prepares a statement with Parse/Describe/Flush, then
binds it) a session is neither idle in a transaction nor cancellable by `statement_timeout`:
measured here, its locks were held until the server's keepalives dropped it, 11 s later, and
every retry of that write on another replica waited on the key and answered 503. Written last,
the key is locked only between its own INSERT and the COMMIT, where the session *is* idle in a
transaction and `idle_in_transaction_session_timeout` (1.5 s) ends it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_KEY_LENGTH = 255
# Visible ASCII, inner spaces allowed: what an HTTP header carries unchanged (a leading or
# trailing space would be stripped in transit, a control character refused).
KEY_PATTERN = rf"^[!-~]([ -~]{{0,{MAX_KEY_LENGTH - 2}}}[!-~])?$"
_KEY_RE = re.compile(KEY_PATTERN)


class IdempotencyConflict(Exception):
    """The key was used before with a different request."""


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: str
    replayed: bool = False


def validate_key(key: str) -> str:
    """The rule the route's header declaration enforces (and publishes), as a function."""
    if not _KEY_RE.fullmatch(key):
        raise ValueError(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters "
            "(inner spaces allowed)"
        )
    return key


def request_fingerprint(method: str, path: str, payload: Mapping[str, Any]) -> str:
    """Hash of what the request asks for. The payload is the validated body, serialised with
    sorted keys, so formatting and key order do not matter but any value change does."""
    canonical = json.dumps(
        {"method": method.upper(), "path": path, "body": payload},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def principal_id(token: str) -> str:
    """Keys are scoped per client; store a hash, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


Work = Callable[[Any], Awaitable[tuple[int, str]]]


class _KeyTaken(Exception):
    """Another request stored this key first: roll this one's work back."""


async def run_once(
    conn: Any, principal: str, key: str | None, fingerprint: str, work: Work
) -> StoredResponse:
    """Run `work(conn)` (which returns status and JSON text) in one transaction, at most once
    per (principal, key). `conn` is an asyncpg connection."""
    if key is None:
        async with conn.transaction():
            status, body = await work(conn)
        return StoredResponse(status, body)
    for _ in range(3):  # the stored row can vanish between rounds (purged): do the work again
        # A retry of a write already stored (the common duplicate) replays without working.
        stored = await _stored(conn, principal, key, fingerprint)
        if stored is not None:
            return stored
        try:
            async with conn.transaction():
                status, body = await work(conn)
                inserted = await conn.fetchval(
                    "INSERT INTO idempotency_keys "
                    "(principal, key, request_hash, status_code, response_body) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
                    principal,
                    key,
                    fingerprint,
                    status,
                    body,
                )
                if not inserted:
                    raise _KeyTaken
            return StoredResponse(status, body)
        except _KeyTaken:
            continue  # another request stored it first: the next round replays its response
    raise RuntimeError("idempotency key kept disappearing")


async def _stored(conn: Any, principal: str, key: str, fingerprint: str) -> StoredResponse | None:
    """The response stored under the key (committed), None when there is none."""
    row = await conn.fetchrow(
        "SELECT request_hash, status_code, response_body FROM idempotency_keys "
        "WHERE principal = $1 AND key = $2",
        principal,
        key,
    )
    if row is None:
        return None
    if row["request_hash"] != fingerprint:
        raise IdempotencyConflict(key)
    return StoredResponse(row["status_code"], row["response_body"], replayed=True)
