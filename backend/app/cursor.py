"""Opaque keyset-pagination cursors: base64url of a versioned position (pure logic)."""

from __future__ import annotations

import base64
import binascii

_PREFIX = "m1:"


def encode_cursor(seq: int) -> str:
    raw = f"{_PREFIX}{seq}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The message position after which the next page starts. ValueError on anything else."""
    if not cursor or len(cursor) > 64:
        raise ValueError("malformed cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("malformed cursor") from exc
    if not raw.startswith(_PREFIX) or not raw[len(_PREFIX) :].isdigit():
        raise ValueError("malformed cursor")
    return int(raw[len(_PREFIX) :])
