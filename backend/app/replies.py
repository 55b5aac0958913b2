"""The assistant's reply: deterministic, derived from the user's text (no external model), so
that a replayed or retried chat request always yields the same answer (pure logic)."""

from __future__ import annotations

import hashlib

PREVIEW_CHARS = 200


def assistant_reply(text: str) -> str:
    words = len(text.split())
    preview = text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "..."
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return (
        f"You said {words} word{'s' if words != 1 else ''} "
        f"({len(text)} characters). Echo: {preview} [ref {digest}]"
    )


def title_from_message(text: str, limit: int = 60) -> str:
    """A conversation title for `POST /chat` without a conversation: the first line, shortened."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
