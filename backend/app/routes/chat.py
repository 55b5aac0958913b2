"""The chat API: conversations, messages (keyset pagination) and `POST /chat`.

Writes go through `idempotency.run_once`, so a retried POST with the same Idempotency-Key is
stored once and answered with the byte-identical stored response.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response

from app.auth import require_principal
from app.contract import REPLAYED, responses
from app.cursor import CURSOR_PATTERN, decode_cursor, encode_cursor
from app.idempotency import (
    KEY_PATTERN,
    MAX_KEY_LENGTH,
    StoredResponse,
    request_fingerprint,
    run_once,
)
from app.replies import assistant_reply, title_from_message
from app.schemas import (
    ChatReply,
    ChatRequest,
    Conversation,
    ConversationCreate,
    Message,
    MessageCreate,
    MessagePage,
)

router = APIRouter(prefix="/api/v1", tags=["chat"])

IDEMPOTENCY_KEY = Header(
    default=None,
    alias="Idempotency-Key",
    min_length=1,
    max_length=MAX_KEY_LENGTH,
    pattern=KEY_PATTERN,
    description="A retried request with the same key and body is stored once and answered "
    "with the stored response; the same key with another body is a 409.",
)


def _created(model: type, *errors: int) -> dict[int | str, dict[str, Any]]:
    """201 with `model` (also the replayed answer of an Idempotency-Key) plus the error statuses."""
    ok = {201: {"model": model, "description": "Created (or replayed).", "headers": REPLAYED}}
    return {**ok, **responses(*errors)}


MESSAGE_COLUMNS = "seq, id, conversation_id, role, content, created_at"


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dump(payload: Any) -> str:
    return json.dumps(payload, default=_json_default, separators=(",", ":"), ensure_ascii=False)


def _message(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "role": row["role"],
        "content": row["content"],
        "created_at": row["created_at"],
    }


def _conversation(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "title": row["title"], "created_at": row["created_at"]}


def _reply(stored: StoredResponse) -> Response:
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else None
    return Response(stored.body, stored.status_code, headers=headers, media_type="application/json")


async def _insert_message(conn: Any, conversation_id: uuid.UUID, role: str, content: str) -> Any:
    return await conn.fetchrow(
        f"INSERT INTO messages (id, conversation_id, role, content) VALUES ($1, $2, $3, $4) "
        f"RETURNING {MESSAGE_COLUMNS}",
        uuid.uuid4(),
        conversation_id,
        role,
        content,
    )


async def _require_conversation(conn: Any, conversation_id: uuid.UUID, lock: bool = False) -> None:
    # FOR KEY SHARE would be taken by the FK anyway; doing it here gives a clean 404 first.
    suffix = " FOR KEY SHARE" if lock else ""
    found = await conn.fetchval(
        f"SELECT true FROM conversations WHERE id = $1{suffix}", conversation_id
    )
    if not found:
        raise HTTPException(404, detail=f"conversation {conversation_id} not found")


async def _write(
    request: Request, principal: str, key: str | None, payload: dict[str, Any], work: Any
) -> Response:
    fingerprint = request_fingerprint(request.method, request.url.path, payload)
    async with request.app.state.db.connection() as conn:
        stored = await run_once(conn, principal, key, fingerprint, work)
    return _reply(stored)


@router.post(
    "/conversations", status_code=201, responses=_created(Conversation, 401, 409, 415, 422, 503)
)
async def create_conversation(
    request: Request,
    body: ConversationCreate | None = None,
    principal: str = Depends(require_principal),
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Response:
    body = body or ConversationCreate()

    async def work(conn: Any) -> tuple[int, str]:
        row = await conn.fetchrow(
            "INSERT INTO conversations (id, title) VALUES ($1, $2) RETURNING id, title, created_at",
            uuid.uuid4(),
            body.title,
        )
        return 201, dump(_conversation(row))

    return await _write(request, principal, idempotency_key, body.model_dump(mode="json"), work)


@router.get(
    "/conversations/{conversation_id}",
    responses={200: {"model": Conversation}, **responses(401, 404, 422, 503)},
)
async def get_conversation(
    request: Request, conversation_id: uuid.UUID, principal: str = Depends(require_principal)
) -> Response:
    async with request.app.state.db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT id, title, created_at FROM conversations WHERE id = $1", conversation_id
        )
    if row is None:
        raise HTTPException(404, detail=f"conversation {conversation_id} not found")
    return Response(dump(_conversation(row)), media_type="application/json")


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=201,
    responses=_created(Message, 401, 404, 409, 415, 422, 503),
)
async def post_message(
    request: Request,
    conversation_id: uuid.UUID,
    body: MessageCreate,
    principal: str = Depends(require_principal),
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Response:
    async def work(conn: Any) -> tuple[int, str]:
        await _require_conversation(conn, conversation_id, lock=True)
        row = await _insert_message(conn, conversation_id, "user", body.content)
        return 201, dump(_message(row))

    return await _write(request, principal, idempotency_key, body.model_dump(mode="json"), work)


@router.get(
    "/conversations/{conversation_id}/messages",
    responses={200: {"model": MessagePage}, **responses(401, 404, 422, 503)},
)
async def list_messages(
    request: Request,
    conversation_id: uuid.UUID,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(
        None, pattern=CURSOR_PATTERN, description="The `next_cursor` of the previous page."
    ),
    principal: str = Depends(require_principal),
) -> Response:
    after = 0 if cursor is None else decode_cursor(cursor)
    async with request.app.state.db.connection() as conn:
        await _require_conversation(conn, conversation_id)
        # Keyset pagination on the strictly increasing `seq`: stable under concurrent inserts,
        # no OFFSET scans. One extra row tells whether a next page exists.
        rows = await conn.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 "
            "ORDER BY seq LIMIT $3",
            conversation_id,
            after,
            limit + 1,
        )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]["seq"]) if len(rows) > limit else None
    return Response(
        dump({"items": [_message(r) for r in page], "next_cursor": next_cursor}),
        media_type="application/json",
    )


@router.post("/chat", status_code=201, responses=_created(ChatReply, 401, 404, 409, 415, 422, 503))
async def chat(
    request: Request,
    body: ChatRequest,
    principal: str = Depends(require_principal),
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Response:
    # The model's thinking time, outside any transaction: no connection or lock is held while
    # the assistant "thinks" (ASSISTANT_LATENCY_MS, 0 by default; load tests set it so that as
    # many requests are in flight as with a real model behind the API).
    latency_ms = request.app.state.settings.assistant_latency_ms
    if latency_ms:
        # A turn that cannot be stored is not worth thinking about: during a database outage
        # answer 503 now, not after the model's latency.
        request.app.state.db.raise_if_known_down()
        await asyncio.sleep(latency_ms / 1000)

    async def work(conn: Any) -> tuple[int, str]:
        conversation_id = body.conversation_id
        if conversation_id is None:
            conversation_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO conversations (id, title) VALUES ($1, $2)",
                conversation_id,
                title_from_message(body.message),
            )
        else:
            await _require_conversation(conn, conversation_id, lock=True)
        user = await _insert_message(conn, conversation_id, "user", body.message)
        assistant = await _insert_message(
            conn, conversation_id, "assistant", assistant_reply(body.message)
        )
        return 201, dump(
            {
                "conversation_id": conversation_id,
                "user_message": _message(user),
                "assistant_message": _message(assistant),
            }
        )

    return await _write(request, principal, idempotency_key, body.model_dump(mode="json"), work)
