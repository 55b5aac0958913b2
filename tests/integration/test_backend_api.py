"""The backend against the real PostgreSQL image and the real web image (docker-compose.yml):
every endpoint, auth, bad input, idempotency under concurrent duplicates, pagination,
multi-worker metrics, operator switches, migrations and a database outage."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.stack import REPO, SECRETS_DIR, Stack, free_port, wait_for

pytestmark = pytest.mark.integration

WHOAMI_COUNTER = re.compile(
    r'^http_requests_total\{handler="/api/v1/whoami",method="GET",status="2xx"\} (\S+)$', re.M
)


@pytest.fixture(scope="module")
def stack(base_stack: Stack) -> Stack:
    wait_for(
        lambda: httpx.get(f"{base_stack.base_url}/readyz", timeout=2).status_code == 200,
        60,
        "web /readyz 200",
    )
    return base_stack


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, headers=stack.auth_headers(), timeout=30) as c:
        yield c


@pytest.fixture
def anon(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=30) as c:
        yield c


def new_conversation(api: httpx.Client, title: str | None = None) -> str:
    r = api.post("/api/v1/conversations", json={"title": title} if title else None)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def messages_of(api: httpx.Client, cid: str) -> list[dict]:
    items: list[dict] = []
    cursor = None
    for _ in range(100):
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        r = api.get(f"/api/v1/conversations/{cid}/messages", params=params)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def web_container(stack: Stack):  # type: ignore[no-untyped-def]
    (container,) = stack.containers("web")
    return container


def psql(stack: Stack, sql: str) -> str:
    (pg,) = stack.containers("postgres")
    return str(stack.docker.execute(pg, ["psql", "-U", "app", "-d", "app", "-At", "-c", sql]))


def assert_json_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] and body["message"], body
    return body


# --- health, identity, request ids ------------------------------------------------------------
def test_healthz_and_readyz(anon: httpx.Client) -> None:
    assert anon.get("/healthz").json() == {"status": "ok"}
    r = anon.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"
    assert r.json()["schema_version"] >= 1


def test_whoami_needs_no_token_and_names_the_container(stack: Stack, anon: httpx.Client) -> None:
    r = anon.get("/api/v1/whoami")
    assert r.status_code == 200
    body = r.json()
    container = web_container(stack)
    assert body["replica_id"] == container.config.hostname == body["replica"]
    assert r.headers["x-replica"] == body["replica_id"]
    assert isinstance(body["pid"], int)
    assert body["version"]
    assert body["started_at"]


def test_request_id_is_taken_or_made_and_logged(stack: Stack, anon: httpx.Client) -> None:
    mine = f"test-{uuid.uuid4().hex}"
    assert (
        anon.get("/api/v1/whoami", headers={"X-Request-ID": mine}).headers["x-request-id"] == mine
    )
    made = anon.get("/api/v1/whoami").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    evil = anon.get("/api/v1/whoami", headers={"X-Request-ID": "x" * 500}).headers["x-request-id"]
    assert evil != "x" * 500

    def logged() -> bool:
        logs = stack.docker.logs(web_container(stack))
        return any(mine in line and '"request_id"' in line for line in logs.splitlines())

    wait_for(logged, 10, "the request id in the JSON access log")


# --- auth --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["missing", "wrong", "not-bearer"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/conversations"),
        ("GET", f"/api/v1/conversations/{uuid.uuid4()}"),
        ("GET", f"/api/v1/conversations/{uuid.uuid4()}/messages"),
        ("POST", "/api/v1/chat"),
        ("POST", "/api/v1/work?cpu_ms=1"),
    ],
)
def test_auth_required(anon: httpx.Client, headers: dict, method: str, path: str) -> None:
    r = anon.request(method, path, headers=headers, json={"message": "x"})
    assert_json_error(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/conversations",
        f"/api/v1/conversations/{uuid.uuid4()}/messages",
        "/api/v1/chat",
        "/api/v1/conversations/not-a-uuid/messages",
    ],
)
@pytest.mark.parametrize(
    "body",
    [b'{"content": "unterminated', b"x" * 70_000, b"not json, no content type"],
    ids=["malformed-json", "too-large", "not-json"],
)
def test_authentication_comes_before_the_body(
    stack: Stack, anon: httpx.Client, path: str, body: bytes
) -> None:
    """A wrong token gets 401 whatever the body: not 400 malformed_json, 413 or 415/422."""
    json_ct = {"Content-Type": "application/json"} if body.startswith(b"{") else {}
    r = anon.post(path, content=body, headers={"Authorization": "Bearer wrong", **json_ct})
    assert_json_error(r, 401)
    assert r.json()["message"] == "invalid bearer token"
    # The same request with the valid token does reach the body rules.
    served = anon.post(path, content=body, headers={**stack.auth_headers(), **json_ct})
    assert served.status_code in {400, 413, 415, 422}, served.text


def test_a_body_that_is_not_json_is_415(api: httpx.Client) -> None:
    for headers in ({"Content-Type": "text/plain"}, {}):
        r = api.post("/api/v1/chat", content=b'{"message": "hi"}', headers=headers)
        assert_json_error(r, 415)
    assert api.post("/api/v1/chat", json={"message": "hi"}).status_code == 201


def test_method_not_allowed_names_every_method_of_the_path(api: httpx.Client) -> None:
    r = api.delete(f"/api/v1/conversations/{uuid.uuid4()}/messages")
    assert_json_error(r, 405)
    assert r.headers["allow"] == "GET, POST"


def test_openapi_document_declares_the_bearer_scheme(anon: httpx.Client) -> None:
    doc = anon.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A token of API_TOKENS",
    }
    chat = doc["paths"]["/api/v1/chat"]["post"]
    assert chat["security"] == [{"bearer": []}]
    assert {"201", "400", "401", "404", "409", "413", "415", "422", "429", "503"} == set(
        chat["responses"]
    )
    assert "security" not in doc["paths"]["/api/v1/whoami"]["get"]


# --- conversations, messages, chat -------------------------------------------------------------
def test_conversation_create_and_get(api: httpx.Client) -> None:
    r = api.post("/api/v1/conversations", json={"title": "hello"})
    assert r.status_code == 201
    conv = r.json()
    uuid.UUID(conv["id"])
    assert conv["title"] == "hello"
    assert api.get(f"/api/v1/conversations/{conv['id']}").json() == conv
    untitled = api.post("/api/v1/conversations")
    assert untitled.status_code == 201
    assert untitled.json()["title"] is None


def test_post_message_and_list(api: httpx.Client) -> None:
    cid = new_conversation(api)
    r = api.post(f"/api/v1/conversations/{cid}/messages", json={"content": "first"})
    assert r.status_code == 201
    msg = r.json()
    assert set(msg) == {"id", "conversation_id", "role", "content", "created_at"}
    assert (msg["conversation_id"], msg["role"], msg["content"]) == (cid, "user", "first")
    assert messages_of(api, cid) == [msg]


def test_pagination_is_ordered_and_complete(api: httpx.Client) -> None:
    cid = new_conversation(api)
    sent = [f"m{i}" for i in range(7)]
    for text in sent:
        assert (
            api.post(f"/api/v1/conversations/{cid}/messages", json={"content": text}).status_code
            == 201
        )
    pages = []
    cursor = None
    for _ in range(10):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = api.get(f"/api/v1/conversations/{cid}/messages", params=params).json()
        pages.append([m["content"] for m in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == [["m0", "m1", "m2"], ["m3", "m4", "m5"], ["m6"]]
    empty = api.get(f"/api/v1/conversations/{new_conversation(api)}/messages").json()
    assert empty == {"items": [], "next_cursor": None}


def test_chat_creates_conversation_and_deterministic_reply(api: httpx.Client) -> None:
    r = api.post("/api/v1/chat", json={"message": "hello there"})
    assert r.status_code == 201
    body = r.json()
    cid = body["conversation_id"]
    assert body["user_message"]["role"] == "user"
    assert body["user_message"]["content"] == "hello there"
    assert body["assistant_message"]["role"] == "assistant"
    reply = body["assistant_message"]["content"]
    again = api.post("/api/v1/chat", json={"message": "hello there", "conversation_id": cid})
    assert again.status_code == 201
    assert again.json()["conversation_id"] == cid
    assert again.json()["assistant_message"]["content"] == reply
    assert [m["role"] for m in messages_of(api, cid)] == ["user", "assistant"] * 2
    assert api.get(f"/api/v1/conversations/{cid}").json()["title"] == "hello there"


# --- idempotency -------------------------------------------------------------------------------
def test_idempotent_replay_and_conflict(api: httpx.Client) -> None:
    cid = new_conversation(api)
    path = f"/api/v1/conversations/{cid}/messages"
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = api.post(path, json={"content": "once"}, headers=key)
    # Same body, other formatting: still the same request.
    replay = api.post(
        path, content=b'{ "content" : "once" }', headers={**key, "Content-Type": "application/json"}
    )
    assert first.status_code == replay.status_code == 201
    assert first.content == replay.content
    assert replay.headers.get("idempotent-replayed") == "true"
    conflict = api.post(path, json={"content": "other"}, headers=key)
    assert_json_error(conflict, 409)
    assert [m["content"] for m in messages_of(api, cid)] == ["once"]


def test_idempotency_key_on_a_failed_request_stores_nothing(api: httpx.Client) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    missing = f"/api/v1/conversations/{uuid.uuid4()}/messages"
    assert_json_error(api.post(missing, json={"content": "x"}, headers=key), 404)
    cid = new_conversation(api)
    # The key was not consumed by the failure.
    ok = api.post(f"/api/v1/conversations/{cid}/messages", json={"content": "x"}, headers=key)
    assert ok.status_code == 201


def _concurrently(n: int, fn) -> list[httpx.Response]:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(n)

    def call(_: int) -> httpx.Response:
        barrier.wait(timeout=30)
        return fn()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(call, range(n)))


def test_concurrent_duplicates_store_one_message(stack: Stack, api: httpx.Client) -> None:
    cid = new_conversation(api)
    key = f"dup-{uuid.uuid4()}"

    def post() -> httpx.Response:
        # A fresh connection each: the duplicates really run in parallel, on both workers.
        with httpx.Client(base_url=stack.base_url, headers=stack.auth_headers(), timeout=30) as c:
            return c.post(
                f"/api/v1/conversations/{cid}/messages",
                json={"content": "exactly once"},
                headers={"Idempotency-Key": key},
            )

    responses = _concurrently(20, post)
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1
    assert len(messages_of(api, cid)) == 1
    assert (
        psql(stack, f"SELECT count(*) FROM messages WHERE conversation_id = '{cid}'").strip() == "1"
    )


def test_concurrent_duplicate_chats_create_one_conversation(
    stack: Stack, api: httpx.Client
) -> None:
    key = f"chat-{uuid.uuid4()}"
    text = f"concurrent chat {uuid.uuid4()}"

    def post() -> httpx.Response:
        with httpx.Client(base_url=stack.base_url, headers=stack.auth_headers(), timeout=30) as c:
            return c.post("/api/v1/chat", json={"message": text}, headers={"Idempotency-Key": key})

    responses = _concurrently(20, post)
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    cid = responses[0].json()["conversation_id"]
    assert len(messages_of(api, cid)) == 2
    stored = psql(stack, f"SELECT count(*) FROM messages WHERE content = '{text}'").strip()
    assert stored == "1"


# --- bad input: a clear JSON error and nothing stored -----------------------------------------
def test_bad_message_input_stores_nothing(api: httpx.Client, stack: Stack) -> None:
    cid = new_conversation(api)
    path = f"/api/v1/conversations/{cid}/messages"
    json_ct = {"Content-Type": "application/json"}
    max_chars = 5000
    cases: list[tuple[int, dict]] = [
        (400, {"content": b'{"content": "unterminated', "headers": json_ct}),
        (400, {"content": b"not json at all", "headers": json_ct}),
        (422, {"json": {"content": 123}}),
        (422, {"json": {"content": None}}),
        (422, {"json": ["content"]}),
        (422, {"json": {}}),
        (422, {"json": {"content": ""}}),
        (422, {"json": {"content": "   \n\t"}}),
        (422, {"json": {"content": "\u3000\x1c\u2028"}}),
        (422, {"json": {"content": "nul \x00 inside"}}),
        (422, {"json": {"content": "x" * (max_chars + 1)}}),
        (422, {"json": {"content": "ok"}, "headers": {"Idempotency-Key": "k" * 300}}),
        (413, {"json": {"content": "x" * 70_000}}),
    ]
    for status, kwargs in cases:
        assert_json_error(api.post(path, **kwargs), status)

    def chunked() -> Iterator[bytes]:
        yield b'{"content": "'
        for _ in range(20):
            yield b"y" * 4096
        yield b'"}'

    # No Content-Length: the limit must count the streamed bytes.
    assert_json_error(api.post(path, content=chunked(), headers=json_ct), 413)
    assert messages_of(api, cid) == []
    # At the limit is fine.
    ok = api.post(path, json={"content": "x" * max_chars})
    assert ok.status_code == 201
    # The longest message, escaped the longest way JSON allows (12 bytes a character), still
    # fits the body limit: a schema-valid request never gets 413.
    widest = json.dumps({"content": "\U0001f600" * max_chars}).encode()
    assert len(widest) > 12 * max_chars
    assert api.post(path, content=widest, headers=json_ct).status_code == 201


def test_bad_ids_cursors_and_unknown_conversations(api: httpx.Client) -> None:
    cid = new_conversation(api)
    unknown = uuid.uuid4()
    assert_json_error(api.get("/api/v1/conversations/not-a-uuid"), 422)
    assert_json_error(api.post("/api/v1/conversations/123/messages", json={"content": "x"}), 422)
    assert_json_error(api.get("/api/v1/conversations/zz/messages"), 422)
    assert_json_error(api.get(f"/api/v1/conversations/{unknown}"), 404)
    assert_json_error(api.get(f"/api/v1/conversations/{unknown}/messages"), 404)
    assert_json_error(
        api.post(f"/api/v1/conversations/{unknown}/messages", json={"content": "x"}), 404
    )
    assert_json_error(
        api.post("/api/v1/chat", json={"message": "x", "conversation_id": "nope"}), 422
    )
    assert_json_error(
        api.post("/api/v1/chat", json={"message": "x", "conversation_id": str(unknown)}), 404
    )
    assert_json_error(api.post("/api/v1/chat", json={"message": ""}), 422)
    assert_json_error(api.post("/api/v1/chat", json={"message": 5}), 422)
    assert_json_error(api.post("/api/v1/conversations", json={"title": ["x"]}), 422)
    assert_json_error(api.post("/api/v1/conversations", json={"title": "t" * 201}), 422)
    assert_json_error(api.post("/api/v1/conversations", json={"title": "a\x00b"}), 422)
    bad_cursors = ({"cursor": "garbage!"}, {"cursor": "1" * 20}, {"cursor": "-1"})
    for params in (*bad_cursors, {"limit": 0}, {"limit": 1000}, {"limit": "x"}):
        assert_json_error(api.get(f"/api/v1/conversations/{cid}/messages", params=params), 422)
    assert messages_of(api, cid) == []


# --- CPU work ----------------------------------------------------------------------------------
def test_work_burns_cpu_within_bounds(api: httpx.Client) -> None:
    r = api.post("/api/v1/work", params={"cpu_ms": 50})
    assert r.status_code == 200
    body = r.json()
    assert body["cpu_ms_requested"] == 50
    assert body["cpu_ms_used"] >= 50
    assert body["elapsed_ms"] >= body["cpu_ms_used"] * 0.9
    for bad in ({"cpu_ms": 2001}, {"cpu_ms": -1}, {"cpu_ms": "x"}, {}):
        assert_json_error(api.post("/api/v1/work", params=bad), 422)


# --- metrics across workers --------------------------------------------------------------------
def whoami_count(anon: httpx.Client) -> float:
    match = WHOAMI_COUNTER.search(anon.get("/metrics").text)
    return float(match.group(1)) if match else 0.0


def test_metrics_are_summed_over_workers(stack: Stack, anon: httpx.Client) -> None:
    before = whoami_count(anon)
    pids: dict[int, int] = {}
    sent = 0
    # New connection per request so the kernel spreads them over both workers' accept().
    while sent < 300 and (len(pids) < 2 or sent < 40):
        r = httpx.get(
            f"{stack.base_url}/api/v1/whoami", timeout=10, headers={"Connection": "close"}
        )
        assert r.status_code == 200
        pids[r.json()["pid"]] = pids.get(r.json()["pid"], 0) + 1
        sent += 1
    assert len(pids) == 2, f"only one worker answered {sent} requests: {pids}"
    # The instrumentator counts a request once its response has gone out, so the last one may
    # be counted a moment after the client has it: poll until every request is counted.
    wait_for(lambda: whoami_count(anon) - before == sent, 10, f"{sent} whoami requests counted")

    text = anon.get("/metrics").text
    container = web_container(stack)
    assert re.search(
        rf'^app_build_info\{{replica_id="{container.config.hostname}",version="[^"]+"\}} 1\.0$',
        text,
        re.M,
    ), text
    for name in ("app_draining 0.0", "app_forced_unready 0.0"):
        assert re.search(rf"^{name}$", text, re.M), name
    size = float(re.search(r"^app_db_pool_connections (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert size >= 1
    assert re.search(r"^app_db_pool_connections_in_use \S+$", text, re.M)
    assert re.search(r"^app_db_pool_max_connections 10\.0$", text, re.M)  # 5 per worker


def test_in_flight_gauge_sees_a_running_request(stack: Stack, anon: httpx.Client) -> None:
    # Generous timeouts: on a CPU-starved machine a 1.5 s burn can take many seconds of wall time.
    slow_client = httpx.Client(base_url=stack.base_url, headers=stack.auth_headers(), timeout=120)
    with slow_client, ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(slow_client.post, "/api/v1/work", params={"cpu_ms": 1500})

        def seen() -> bool:
            text = httpx.get(f"{stack.base_url}/metrics", timeout=30).text
            m = re.search(r"^app_requests_in_flight (\S+)$", text, re.M)
            return bool(m) and float(m.group(1)) >= 2  # the scrape itself + the burn

        wait_for(seen, 60, "app_requests_in_flight >= 2", interval=0.1)
        assert slow.result(timeout=120).status_code == 200


# --- operator switches, migrations -------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "reason"), [("unready", "forced_unready"), ("drain", "draining")]
)
def test_control_switches_flip_readiness_but_keep_serving(
    stack: Stack, api: httpx.Client, anon: httpx.Client, command: str, reason: str
) -> None:
    web = web_container(stack)
    try:
        stack.docker.execute(web, ["python3", "-m", "app.control", command])
        r = anon.get("/readyz")
        assert r.status_code == 503
        assert r.json() == {"status": "unready", "reason": reason}
        # Operator switches and drains take the replica out of the load balancer too.
        routing = anon.get("/readyz/routing")
        assert (routing.status_code, routing.json()["reason"]) == (503, reason)
        assert anon.get("/healthz").status_code == 200
        assert api.post("/api/v1/conversations").status_code == 201
        flag = "app_forced_unready" if command == "unready" else "app_draining"
        wait_for(lambda: f"\n{flag} 1.0" in anon.get("/metrics").text, 10, f"{flag} 1")
        status = stack.docker.execute(web, ["python3", "-m", "app.control", "status"])
        assert '"unready": true' in str(status) or '"draining": true' in str(status)
    finally:
        stack.docker.execute(web, ["python3", "-m", "app.control", "ready"])
    assert anon.get("/readyz").status_code == 200


def test_migrate_twice_at_once_is_safe(stack: Stack, anon: httpx.Client) -> None:
    web = web_container(stack)
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(
            pool.map(
                lambda _: stack.docker.execute(web, ["python3", "-m", "app.migrate"]), range(2)
            )
        )
    assert all("migrations complete" in str(out) for out in runs)
    versions = psql(stack, "SELECT version FROM schema_migrations ORDER BY version").split()
    assert versions == sorted(set(versions)) and versions[0] == "1"
    assert anon.get("/readyz").status_code == 200


def test_readiness_follows_the_schema_version(stack: Stack, docker_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A replica is unready until the database holds every migration its image ships."""
    db = f"be_fresh_{uuid.uuid4().hex[:8]}"
    psql(stack, f"CREATE DATABASE {db}")
    # This "image" ships one migration more than the stack's database has.
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for f in (REPO / "backend" / "migrations").glob("*.sql"):
        (migrations / f.name).write_text(f.read_text())
    (migrations / "0999_future.sql").write_text("CREATE TABLE future_probe (id integer);\n")
    for p in (tmp_path, migrations, *migrations.iterdir()):
        p.chmod(0o755)
    port = free_port()
    (web,) = stack.containers("web")
    name = f"be-schema-{uuid.uuid4().hex[:6]}"
    container = docker_engine.run(
        web.config.image,
        name=name,
        detach=True,
        networks=[f"{stack.project}_backend"],
        publish=[(f"127.0.0.1:{port}", 8000)],
        envs={
            "DATABASE_HOST": "postgres",
            "DATABASE_NAME": db,
            "DATABASE_PASSWORD": (SECRETS_DIR / "postgres_password").read_text().strip(),
            "MIGRATIONS_DIR": "/migrations",
            "API_TOKENS": "t",
        },
        volumes=[(str(migrations), "/migrations", "ro")],
        read_only=True,
        tmpfs=["/run/app:uid=10001,gid=10001", "/tmp"],
    )
    url = f"http://127.0.0.1:{port}/readyz"

    def reason() -> str | None:
        r = httpx.get(url, timeout=5)
        return "ready" if r.status_code == 200 else r.json()["reason"]

    try:
        wait_for(lambda: reason() == "migrations_missing", 60, "readyz 503 migrations_missing")
        shipped = "MIGRATIONS_DIR=/app/migrations"
        docker_engine.execute(container, ["env", shipped, "python3", "-m", "app.migrate"])
        shipped_version = max(int(f.name[:4]) for f in migrations.glob("0[0-8]*.sql"))
        body = httpx.get(url, timeout=5).json()
        assert body == {
            "status": "unready",
            "reason": "migrations_pending",
            "schema_version": shipped_version,
            "expected_schema_version": 999,
        }
        docker_engine.execute(container, ["python3", "-m", "app.migrate"])
        assert reason() == "ready"
        assert httpx.get(url, timeout=5).json()["schema_version"] == 999
    finally:
        docker_engine.container.remove(container, force=True)
        psql(stack, f"DROP DATABASE IF EXISTS {db}")


# --- database outage (last: it pauses the module's PostgreSQL) ---------------------------------
def test_database_outage_is_a_quick_503_then_recovers(
    stack: Stack, api: httpx.Client, anon: httpx.Client
) -> None:
    (pg,) = stack.containers("postgres")
    cid = new_conversation(api)
    stack.docker.pause(pg)
    try:
        r = anon.get("/readyz")
        assert r.status_code == 503
        assert r.json()["reason"] == "database_unavailable"
        assert anon.get("/healthz").status_code == 200
        # The shared database is down for every replica alike: they stay routable.
        assert anon.get("/readyz/routing").json() == {"status": "ready", "scope": "routing"}
        assert anon.get("/api/v1/whoami").status_code == 200
        for call in (
            lambda: api.post("/api/v1/conversations"),
            lambda: api.get(f"/api/v1/conversations/{cid}/messages"),
            lambda: api.post("/api/v1/chat", json={"message": "db down"}),
        ):
            r = call()  # the client timeout (30 s) bounds "never hangs"
            assert_json_error(r, 503)
            assert r.headers["retry-after"].isdigit()
            # Sized, not chunked: Traefik's failover would flush a chunked 503 to the client
            # as an empty 200 (docs/failover.md, tests/integration/test_failover_flush.py).
            assert int(r.headers["content-length"]) == len(r.content)
    finally:
        stack.docker.unpause(pg)
    wait_for(lambda: anon.get("/readyz").status_code == 200, 30, "/readyz 200 after the outage")
    assert (
        api.post(f"/api/v1/conversations/{cid}/messages", json={"content": "back"}).status_code
        == 201
    )
