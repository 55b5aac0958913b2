"""The API's contract without a database: authentication before the body, the text rules that
both validation and the OpenAPI document use, and what the document declares per operation.

The app is driven in process (Starlette's test client, lifespan not started, so no database):
every answer here is decided before a handler would touch PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.auth import Unauthorized, authenticate, protected_operations
from app.errors import allowed_methods, is_json
from app.idempotency import principal_id
from app.main import create_app
from app.schemas import NO_NUL, NOT_BLANK, WHITESPACE_CLASS, message_char_limit
from app.settings import Settings

TOKEN = "unit-test-token"
CONVERSATION = "/api/v1/conversations/00000000-0000-4000-8000-000000000000"
PROTECTED_BODY_ROUTES = ["/api/v1/conversations", f"{CONVERSATION}/messages", "/api/v1/chat"]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(Settings(api_tokens=TOKEN, replica_id="unit"))
    yield TestClient(app, raise_server_exceptions=False)


# --- authenticate: pure logic -----------------------------------------------------------------
class TestAuthenticate:
    def test_the_right_token_gives_its_principal(self) -> None:
        assert authenticate(f"Bearer {TOKEN}", [TOKEN]) == principal_id(TOKEN)
        assert authenticate(f"bearer  {TOKEN} ", ["other", TOKEN]) == principal_id(TOKEN)

    @pytest.mark.parametrize(
        ("header", "message"),
        [
            (None, "missing bearer token"),
            ("", "missing bearer token"),
            ("Bearer", "missing bearer token"),
            ("Basic dXNlcjpwYXNz", "missing bearer token"),
            ("Bearer wrong", "invalid bearer token"),
        ],
    )
    def test_anything_else_is_unauthorized(self, header: str | None, message: str) -> None:
        with pytest.raises(Unauthorized, match=message) as caught:
            authenticate(header, [TOKEN])
        assert caught.value.challenge.startswith('Bearer realm="compose-ha"')

    def test_no_tokens_configured_lets_nobody_in(self) -> None:
        with pytest.raises(Unauthorized):
            authenticate(f"Bearer {TOKEN}", [])


# --- authentication before the body ------------------------------------------------------------
@pytest.mark.parametrize("path", PROTECTED_BODY_ROUTES)
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"content": "unterminated', "application/json"),
        (b"x" * 100_000, "application/json"),
        (b'{"message": "hi"}', "text/plain"),
    ],
    ids=["malformed-json", "too-large", "not-json"],
)
def test_a_wrong_token_is_401_whatever_the_body(
    client: TestClient, path: str, body: bytes, content_type: str
) -> None:
    r = client.post(
        path, content=body, headers={"Authorization": "Bearer wrong", "Content-Type": content_type}
    )
    assert r.status_code == 401, r.text
    assert r.json() == {"error": "unauthorized", "message": "invalid bearer token"}
    assert r.headers["www-authenticate"] == 'Bearer realm="compose-ha", error="invalid_token"'
    # The body was never read, so the connection is not reused for another request.
    assert r.headers["connection"] == "close"


def test_with_the_token_the_body_rules_apply(client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    malformed = client.post(
        "/api/v1/chat",
        content=b'{"message": "unterminated',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert (malformed.status_code, malformed.json()["error"]) == (400, "malformed_json")
    large = client.post("/api/v1/chat", content=b"x" * 100_000, headers=auth)
    assert (large.status_code, large.json()["error"]) == (413, "payload_too_large")
    plain = client.post(
        "/api/v1/chat", content=b'{"message": "hi"}', headers={**auth, "Content-Type": "text/plain"}
    )
    assert (plain.status_code, plain.json()["error"]) == (415, "unsupported_media_type")
    blank = client.post("/api/v1/chat", json={"message": " \u3000"}, headers=auth)
    assert (blank.status_code, blank.json()["error"]) == (422, "validation_error")


def test_whoami_and_probes_need_no_token(client: TestClient) -> None:
    assert client.get("/api/v1/whoami").status_code == 200
    assert client.get("/healthz").status_code == 200


# --- the OpenAPI document ----------------------------------------------------------------------
def test_protected_operations_are_the_api_except_whoami(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    protected = {
        (method, regex.pattern)
        for regex, methods in protected_operations(doc)
        for method in methods
    }
    assert len(protected) == 6
    assert all("/api/v1/" in pattern and "whoami" not in pattern for _, pattern in protected)
    assert doc["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer", "description": "A token of API_TOKENS"}
    }


def test_every_operation_documents_what_it_can_answer(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    uses_database = {"/api/v1/conversations", "/api/v1/chat", "/readyz"}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            statuses = set(op["responses"])
            assert {"400", "413", "429"} <= statuses, (method, path)
            if op.get("security"):
                assert "401" in statuses, (method, path)
                assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in statuses, (method, path)
            if op.get("requestBody"):
                assert {"409", "415"} <= statuses, (method, path)
            if any(path.startswith(p) for p in uses_database):
                assert "503" in statuses, (method, path)
            assert "500" not in statuses


def test_the_document_carries_the_limits_the_server_enforces(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    content = schemas["MessageCreate"]["properties"]["content"]
    assert (content["minLength"], content["maxLength"], content["pattern"]) == (1, 5000, NOT_BLANK)
    title = schemas["ConversationCreate"]["properties"]["title"]["anyOf"][0]
    assert (title["maxLength"], title["pattern"]) == (200, NO_NUL)
    params = {
        p["name"]: p["schema"]
        for p in doc["paths"]["/api/v1/conversations/{conversation_id}/messages"]["get"][
            "parameters"
        ]
    }
    assert (params["limit"]["minimum"], params["limit"]["maximum"]) == (1, 200)
    assert params["cursor"]["anyOf"][0]["pattern"] == r"^[0-9]{1,19}$"
    key = next(
        p["schema"]["anyOf"][0]
        for p in doc["paths"]["/api/v1/chat"]["post"]["parameters"]
        if p["name"] == "Idempotency-Key"
    )
    assert (key["minLength"], key["maxLength"]) == (1, 255)
    work = doc["paths"]["/api/v1/work"]["post"]["parameters"][0]["schema"]
    assert (work["minimum"], work["maximum"]) == (0, 2000)


def test_405_names_every_method_of_the_path(client: TestClient) -> None:
    r = client.delete(f"{CONVERSATION}/messages", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (r.status_code, r.headers["allow"]) == (405, "GET, POST")
    doc = client.get("/openapi.json").json()
    assert allowed_methods(doc, "/api/v1/chat") == ["POST"]
    assert allowed_methods(doc, "/nowhere") == []


# --- text rules: one pattern for validation and for the document -------------------------------
def test_the_whitespace_class_is_exactly_what_python_calls_whitespace() -> None:
    cls = re.compile(f"[{WHITESPACE_CLASS}]")
    spaces = {chr(c) for c in range(0x110000) if chr(c).isspace()}
    assert all(cls.fullmatch(c) for c in spaces)
    sample = [chr(c) for c in range(0x3100)] + ["\ufeff", "\U0001f600"]
    assert {c for c in sample if cls.fullmatch(c)} == {c for c in sample if c.isspace()}


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        ("hi", True),
        ("  hi\n", True),
        ("\ufeff", True),  # not whitespace to Python's str.isspace()
        ("", False),
        (" \t\n\u3000\x1c\u2028", False),
        ("a\x00", False),
        ("\x00", False),
    ],
)
def test_not_blank_pattern(text: str, allowed: bool) -> None:
    assert bool(re.fullmatch(NOT_BLANK, text)) is allowed
    assert bool(re.fullmatch(NOT_BLANK, text)) is (
        "\x00" not in text and not text.isspace() and text != ""
    )


def test_a_message_at_the_limit_fits_the_body_limit_however_escaped() -> None:
    assert message_char_limit(Settings()) == 5000
    assert Settings().max_body_bytes >= 12 * 5000 + 512
    small = Settings(max_body_bytes=12 * 100 + 512)
    assert message_char_limit(small) == 100


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("text/plain", False),
        (None, False),
        ("", False),
    ],
)
def test_is_json(value: str | None, expected: bool) -> None:
    assert is_json(value) is expected
