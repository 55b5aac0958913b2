"""Pure logic of the backend (no Docker, no database): idempotency hashing, cursors, replies,
token parsing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.cursor import CURSOR_PATTERN, MAX_POSITION, decode_cursor, encode_cursor
from app.idempotency import KEY_PATTERN, principal_id, request_fingerprint, validate_key
from app.replies import assistant_reply, title_from_message
from app.tokens import load_tokens, parse_token_list


class TestRequestFingerprint:
    def test_same_request_same_hash_regardless_of_key_order(self) -> None:
        a = request_fingerprint("post", "/api/v1/chat", {"message": "hi", "conversation_id": None})
        b = request_fingerprint("POST", "/api/v1/chat", {"conversation_id": None, "message": "hi"})
        assert a == b

    @pytest.mark.parametrize(
        ("method", "path", "payload"),
        [
            ("POST", "/api/v1/chat", {"message": "hi!", "conversation_id": None}),
            ("PUT", "/api/v1/chat", {"message": "hi", "conversation_id": None}),
            (
                "POST",
                "/api/v1/conversations/x/messages",
                {"message": "hi", "conversation_id": None},
            ),
            ("POST", "/api/v1/chat", {"message": "hi"}),
        ],
    )
    def test_any_difference_changes_the_hash(self, method: str, path: str, payload: dict) -> None:
        base = request_fingerprint(
            "POST", "/api/v1/chat", {"message": "hi", "conversation_id": None}
        )
        assert request_fingerprint(method, path, payload) != base

    def test_unicode_is_hashed_not_escaped_away(self) -> None:
        assert request_fingerprint("POST", "/p", {"c": "é"}) != request_fingerprint(
            "POST", "/p", {"c": "e"}
        )


class TestIdempotencyKey:
    @pytest.mark.parametrize("key", ["a", "k" * 255, "order-42:retry/1", "two words", "~!"])
    def test_valid_keys(self, key: str) -> None:
        assert validate_key(key) == key
        assert re.fullmatch(KEY_PATTERN, key)

    @pytest.mark.parametrize(
        "key",
        ["", "k" * 256, "tab\tinside", "new\nline", "trailing\n", " lead", "trail ", "é", "\x7f"],
    )
    def test_invalid_keys(self, key: str) -> None:
        with pytest.raises(ValueError, match="Idempotency-Key"):
            validate_key(key)

    def test_principal_is_a_hash_not_the_token(self) -> None:
        pid = principal_id("secret-token")
        assert "secret" not in pid
        assert pid == principal_id("secret-token")
        assert pid != principal_id("other-token")


class TestCursor:
    @pytest.mark.parametrize("seq", [0, 1, 42, 2**62, MAX_POSITION])
    def test_round_trip(self, seq: int) -> None:
        cursor = encode_cursor(seq)
        assert re.fullmatch(CURSOR_PATTERN, cursor)
        assert decode_cursor(cursor) == seq

    def test_every_cursor_the_pattern_allows_decodes_within_bigint(self) -> None:
        assert decode_cursor("9" * 19) == MAX_POSITION
        assert decode_cursor("007") == 7

    @pytest.mark.parametrize("cursor", ["", "zzz", "-1", "1" * 20, "12\n", "1 2", "bTE6NQ"])
    def test_malformed(self, cursor: str) -> None:
        with pytest.raises(ValueError):
            decode_cursor(cursor)

    @pytest.mark.parametrize("seq", [-1, MAX_POSITION + 1])
    def test_positions_outside_bigint_have_no_cursor(self, seq: int) -> None:
        with pytest.raises(ValueError):
            encode_cursor(seq)


class TestReplies:
    def test_deterministic(self) -> None:
        assert assistant_reply("hello world") == assistant_reply("hello world")

    def test_depends_on_the_text(self) -> None:
        assert assistant_reply("hello") != assistant_reply("hello!")
        assert "2 words" in assistant_reply("hello world")
        assert "1 word " in assistant_reply("hello")

    def test_long_text_is_shortened(self) -> None:
        reply = assistant_reply("x" * 5000)
        assert len(reply) < 400
        assert "..." in reply

    def test_title_from_message(self) -> None:
        assert title_from_message("  hi\n there ") == "hi there"
        title = title_from_message("word " * 50)
        assert len(title) == 60
        assert title.endswith("...")


class TestTokens:
    def test_comma_separated(self) -> None:
        assert parse_token_list(" a, b ,,a,c ") == ["a", "b", "c"]

    def test_empty(self) -> None:
        assert parse_token_list(None) == []
        assert parse_token_list("") == []

    def test_file_one_per_line_with_comments(self, tmp_path: Path) -> None:
        f = tmp_path / "api_tokens"
        f.write_text("# tokens\ntok1\n\n  tok2  \ntok1\n")
        assert load_tokens("tok0,tok2", str(f)) == ["tok0", "tok2", "tok1"]

    def test_missing_file_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            load_tokens("", str(tmp_path / "nope"))
