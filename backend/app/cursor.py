"""Keyset-pagination cursors: the position of the last message of a page (pure logic).

Plain decimal digits rather than an encoded blob: every string the published pattern allows is a
cursor the server accepts (an empty page at worst), so the schema is exact. A position past
PostgreSQL's bigint is clamped to its maximum (nothing comes after it). Clients still treat the
cursor as opaque: they pass `next_cursor` back.
"""

from __future__ import annotations

import re

CURSOR_PATTERN = r"^[0-9]{1,19}$"
_CURSOR_RE = re.compile(CURSOR_PATTERN)
MAX_POSITION = 2**63 - 1  # bigint


def encode_cursor(seq: int) -> str:
    if not 0 <= seq <= MAX_POSITION:
        raise ValueError(f"position {seq} is outside bigint")
    return str(seq)


def decode_cursor(cursor: str) -> int:
    """The message position after which the next page starts. ValueError on anything else."""
    if not _CURSOR_RE.fullmatch(cursor):
        raise ValueError("malformed cursor")
    return min(int(cursor), MAX_POSITION)
