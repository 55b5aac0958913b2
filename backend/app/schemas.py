"""Request and response bodies: the wire shapes, and every rule the server enforces on them.

Each rule is declared once and lands both in validation and in the OpenAPI document, so that a
request the schema allows is never refused (a fuzzer checks it: tests/integration/
test_api_contract.py). Strict strings: `{"content": 123}` is a 422, not a silently coerced "123".
Limits come from the settings (environment) when this module is imported, as the app does.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StrictStr, field_validator

from app.settings import Settings, get_settings

# Exactly the characters Python's str.isspace() calls whitespace, as \uXXXX ranges that ECMA
# (JSON Schema), Python `re` and the fuzzer's generator all read alike (unit tested).
WHITESPACE_CLASS = (
    r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028-\u2029\u202f\u205f\u3000"
)
# PostgreSQL text cannot hold NUL, so no stored string may contain one.
NO_NUL = r"^[^\u0000]*$"
# At least one character that is not whitespace, and no NUL.
NOT_BLANK = rf"^[^\u0000]*[^\u0000{WHITESPACE_CLASS}][^\u0000]*$"

# How much of MAX_BODY_BYTES is not the message text: keys, braces, a conversation id.
BODY_OVERHEAD_BYTES = 512
# The most bytes JSON may spend on one character: an astral one escaped as two \uXXXX.
MAX_ESCAPED_BYTES_PER_CHAR = 12


def message_char_limit(settings: Settings) -> int:
    """MAX_MESSAGE_CHARS, capped so that any message within the limit fits in MAX_BODY_BYTES
    however the client escapes it (else a schema-valid request could get 413)."""
    fits = (settings.max_body_bytes - BODY_OVERHEAD_BYTES) // MAX_ESCAPED_BYTES_PER_CHAR
    return max(1, min(settings.max_message_chars, fits))


_settings = get_settings()
MESSAGE_CHARS = message_char_limit(_settings)
TITLE_CHARS = min(_settings.max_title_chars, MESSAGE_CHARS)

_NOT_BLANK_RE = re.compile(NOT_BLANK)
_NO_NUL_RE = re.compile(NO_NUL)


def _text(value: str, field: str) -> str:
    if "\x00" in value:
        raise ValueError(f"{field} must not contain NUL characters")
    if not _NOT_BLANK_RE.fullmatch(value):
        raise ValueError(f"{field} must not be empty or only whitespace")
    return value


MessageText = Annotated[
    StrictStr,
    Field(
        min_length=1,
        max_length=MESSAGE_CHARS,
        json_schema_extra={"pattern": NOT_BLANK},
        description="Not only whitespace, no NUL character.",
    ),
]
Title = Annotated[
    StrictStr,
    Field(max_length=TITLE_CHARS, json_schema_extra={"pattern": NO_NUL}),
]


# --- requests ----------------------------------------------------------------------------------
class ConversationCreate(BaseModel):
    title: Title | None = None

    @field_validator("title")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        if value is not None and not _NO_NUL_RE.fullmatch(value):
            raise ValueError("title must not contain NUL characters")
        return value


class MessageCreate(BaseModel):
    content: MessageText

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        return _text(value, "content")


class ChatRequest(BaseModel):
    conversation_id: UUID | None = Field(
        None, description="Continue this conversation; without it a new one is created."
    )
    message: MessageText

    @field_validator("message")
    @classmethod
    def _message(cls, value: str) -> str:
        return _text(value, "message")


# --- responses ---------------------------------------------------------------------------------
class Conversation(BaseModel):
    id: UUID
    title: str | None
    created_at: datetime


class Message(BaseModel):
    id: UUID
    conversation_id: UUID
    role: Literal["user", "assistant"]
    content: str
    created_at: datetime


class MessagePage(BaseModel):
    items: list[Message]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class ChatReply(BaseModel):
    conversation_id: UUID
    user_message: Message
    assistant_message: Message


class Whoami(BaseModel):
    replica_id: str
    replica: str = Field(description="Alias of replica_id.")
    pid: int
    version: str
    started_at: datetime


class WorkResult(BaseModel):
    cpu_ms_requested: int
    cpu_ms_used: float
    elapsed_ms: float
    pid: int
    replica_id: str


class Alive(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    schema_version: int | None = Field(None, description="Set by a check that read the database.")
    scope: Literal["routing"] | None = Field(
        None, description="Set when /readyz/routing answered from this process's memory."
    )


class Unready(BaseModel):
    status: Literal["unready"]
    reason: Literal[
        "draining",
        "forced_unready",
        "migrations_missing",
        "migrations_pending",
        "database_unavailable",
    ]
    schema_version: int | None = None
    expected_schema_version: int | None = None
