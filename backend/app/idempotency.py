"""Idempotent writes: the same `Idempotency-Key` and body yield the stored response, once.

The key row and the write share one transaction. A concurrent duplicate's
`INSERT ... ON CONFLICT DO NOTHING` blocks on the primary key until the first transaction
ends; if it committed, the duplicate reads and replays the stored response; if it rolled back
(e.g. 404), the duplicate inserts and does the work itself. So nothing is stored twice and a
failed request stores nothing.
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


async def run_once(
    conn: Any, principal: str, key: str | None, fingerprint: str, work: Work
) -> StoredResponse:
    """Run `work(conn)` (which returns status and JSON text) in one transaction, at most once
    per (principal, key). `conn` is an asyncpg connection."""
    if key is None:
        async with conn.transaction():
            status, body = await work(conn)
        return StoredResponse(status, body)
    for _ in range(3):  # a duplicate whose leader rolled back inserts on the next round
        async with conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO idempotency_keys (principal, key, request_hash) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING RETURNING true",
                principal,
                key,
                fingerprint,
            )
            if inserted:
                status, body = await work(conn)
                await conn.execute(
                    "UPDATE idempotency_keys SET status_code = $3, response_body = $4 "
                    "WHERE principal = $1 AND key = $2",
                    principal,
                    key,
                    status,
                    body,
                )
                return StoredResponse(status, body)
            row = await conn.fetchrow(
                "SELECT request_hash, status_code, response_body FROM idempotency_keys "
                "WHERE principal = $1 AND key = $2",
                principal,
                key,
            )
        if row is None:
            continue
        if row["request_hash"] != fingerprint:
            raise IdempotencyConflict(key)
        return StoredResponse(row["status_code"], row["response_body"], replayed=True)
    raise RuntimeError("idempotency key kept disappearing")
