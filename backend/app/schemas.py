"""Request bodies. Strict strings: `{"content": 123}` is a 422, not a silently coerced "123"."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, StrictStr, ValidationInfo, field_validator

from app.settings import get_settings


def _message_text(value: str, field: str) -> str:
    if not value.strip():
        raise ValueError(f"{field} must not be empty")
    limit = get_settings().max_message_chars
    if len(value) > limit:
        raise ValueError(f"{field} must be at most {limit} characters (got {len(value)})")
    return value


class ConversationCreate(BaseModel):
    title: StrictStr | None = None

    @field_validator("title")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        limit = get_settings().max_title_chars
        if value is not None and len(value) > limit:
            raise ValueError(f"title must be at most {limit} characters")
        return value


class MessageCreate(BaseModel):
    content: StrictStr

    @field_validator("content")
    @classmethod
    def _content(cls, value: str, info: ValidationInfo) -> str:
        return _message_text(value, "content")


class ChatRequest(BaseModel):
    conversation_id: UUID | None = None
    message: StrictStr

    @field_validator("message")
    @classmethod
    def _message(cls, value: str, info: ValidationInfo) -> str:
        return _message_text(value, "message")
