"""Parsing of API bearer tokens from the environment or a secret file (pure logic)."""

from __future__ import annotations

from pathlib import Path


def parse_token_list(raw: str | None, separator: str = ",") -> list[str]:
    """Split, strip and de-duplicate tokens; blank entries and `#` comment lines are dropped."""
    if not raw:
        return []
    seen: dict[str, None] = {}
    for part in raw.split(separator):
        token = part.strip()
        if token and not token.startswith("#"):
            seen.setdefault(token, None)
    return list(seen)


def load_tokens(env_value: str | None, file_path: str | None) -> list[str]:
    """Tokens from API_TOKENS (comma-separated) plus API_TOKENS_FILE (one per line)."""
    tokens = parse_token_list(env_value, ",")
    if file_path:
        tokens += parse_token_list(Path(file_path).read_text(), "\n")
    return list(dict.fromkeys(tokens))
