"""A person chats through the frontend page in headless Chromium while the stack fails under them.

One HA stack for the module (3 `web` replicas, 2 `frontend` Nginx replicas, Traefik). The browser
is pinned to one web replica by Traefik's `ha_sticky` cookie; that replica is SIGKILLed mid-chat,
every API replica is frozen for a few seconds, the frontend replicas are killed, and `hactl
rollout` replaces every web replica while the person keeps typing. Each time: every message is
shown exactly once with its reply, stored exactly once, and no error is shown. Screenshots of the
page go to results/frontend/ (also when a test fails).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from python_on_whales import Container, DockerClient, DockerException
from selenium.webdriver.common.keys import Keys

from tests.support.browser import ChatPage, Shown, start_chromium
from tests.support.stack import REPO, Stack, ha_files, wait_for
from tests.support.timings import record_timing

pytestmark = pytest.mark.e2e

RESULTS = REPO / "results" / "frontend"
HACTL = str(Path(sys.executable).parent / "hactl")
V2 = "compose-ha/web:fe-v2"
V2_DOCKERFILE = "FROM {base}\nENV APP_VERSION=2.0.0-fe\n"
FRONTEND_REPLICAS = 2
# An origin allowed by CORS_ALLOW_ORIGINS (headers only: nothing is ever sent to it).
OTHER_ORIGIN = "https://chat.example.test"


# --- stack and browser -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(docker_engine: DockerClient) -> Iterator[Stack]:
    env = {"WEB_REPLICAS": "3", "FRONTEND_REPLICAS": "2", "CORS_ALLOW_ORIGINS": OTHER_ORIGIN}
    s = Stack("fe", ha_files(), env=env)
    try:
        s.up()
        s.wait_in_rotation(3)
        wait_frontends_up(s, FRONTEND_REPLICAS)
        yield s
    finally:
        s.down()


def wait_frontends_up(stack: Stack, n: int, timeout: float = 60) -> None:
    wait_for(
        lambda: list(stack.traefik_servers("frontend@docker").values()) == ["UP"] * n,
        timeout,
        f"{n} frontend replicas UP in Traefik",
    )


@pytest.fixture
def page(stack: Stack, request: pytest.FixtureRequest) -> Iterator[ChatPage]:
    """A fresh browser (no cookie, empty session storage); a screenshot when the test ends."""
    driver = start_chromium()
    chat = ChatPage(driver, stack.base_url)
    try:
        yield chat
    finally:
        chat.screenshot(RESULTS / f"{request.node.name}.png")
        driver.quit()


def signed_in_conversation(page: ChatPage, stack: Stack) -> None:
    page.open()
    page.sign_in(stack.api_token)
    page.signed_in()
    page.start_conversation()


# --- what was shown and what was stored --------------------------------------------------------
def assert_each_once_with_reply(shown: list[Shown], sent: list[str]) -> None:
    """The transcript is exactly: each sent text once, in order, each followed by its reply."""
    users = [m.content for m in shown if m.role == "user"]
    doubles = {text: n for text, n in Counter(users).items() if n > 1}
    assert not doubles, f"shown twice: {doubles}"
    assert users == sent, f"missing or out of order: {sorted(set(sent) - set(users))}"
    assert len(shown) == 2 * len(sent), [m.content for m in shown]
    for user, reply in zip(shown[::2], shown[1::2], strict=True):
        assert (user.role, reply.role) == ("user", "assistant")
        assert f"Echo: {user.content} [ref" in reply.content, (user, reply)
        assert len({m.id for m in shown}) == len(shown)


def get_with_retries(
    client: httpx.Client, path: str, params: dict[str, str | int], attempts: int = 10
) -> httpx.Response:
    """The test's own reads, retried like the page's on 502-504: the API answers 503 +
    Retry-After when its database deadline passes (a loaded host, a replica just killed)."""
    for attempt in range(1, attempts + 1):
        r = client.get(path, params=params)
        if r.status_code not in (502, 503, 504) or attempt == attempts:
            r.raise_for_status()
            return r
        time.sleep(0.5)
    raise AssertionError("unreachable")


def stored_messages(stack: Stack, conversation_id: str) -> list[dict[str, str]]:
    """Every message the API stored for the conversation, page by page (keyset cursor)."""
    items: list[dict[str, str]] = []
    cursor = None
    with httpx.Client(base_url=stack.base_url, headers=stack.auth_headers(), timeout=10) as c:
        for _ in range(100):  # bounded: 100 pages of 200
            params: dict[str, str | int] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            r = get_with_retries(c, f"/api/v1/conversations/{conversation_id}/messages", params)
            items += r.json()["items"]
            cursor = r.json()["next_cursor"]
            if not cursor:
                return items
    raise AssertionError("more than 100 pages of messages")


def assert_stored_once(stack: Stack, page: ChatPage, sent: list[str]) -> None:
    conversation_id = str(page.js("return sessionStorage.getItem('conversationId');"))
    stored = stored_messages(stack, conversation_id)
    users = Counter(m["content"] for m in stored if m["role"] == "user")
    assert users == Counter(sent), f"stored: {users - Counter(sent)}; lost: {Counter(sent) - users}"
    assert sum(m["role"] == "assistant" for m in stored) == len(sent)


def pinned_replica(stack: Stack, cookie: str) -> str:
    """The replica the browser's `ha_sticky` cookie pins: the one answering most of a few
    whoami calls sent with that cookie (a slow pinned attempt may be answered elsewhere)."""
    with httpx.Client(base_url=stack.base_url, cookies={"ha_sticky": cookie}, timeout=10) as c:
        answers = Counter(c.get("/api/v1/whoami").json()["replica"] for _ in range(7))
    return answers.most_common(1)[0][0]


def web_by_hostname(stack: Stack) -> dict[str, Container]:
    """The page's badge shows X-Replica, which is the replica's hostname (its short id)."""
    return {c.config.hostname: c for c in stack.containers("web")}


def freeze(container: Container, attempts: int = 3) -> None:
    """`docker pause`, tried again when the cgroup freezer gives up ("unable to freeze"), which
    it does now and then on an overloaded host."""
    for attempt in range(1, attempts + 1):
        try:
            container.pause()
            return
        except DockerException:
            if attempt == attempts:
                raise
            time.sleep(0.5)


# --- tests -------------------------------------------------------------------------------------
def test_a_person_signs_in_chats_and_pages_through_history_by_keyboard(
    page: ChatPage, stack: Stack
) -> None:
    page.open()
    # A wrong token: a clear 401 message, still on the sign-in form.
    page.sign_in("not-a-valid-token")
    wait_for(page.error, 30, "the 401 message")
    assert "401" in page.error() and "token" in page.error().lower()
    assert page.focused_id() == "token"
    page.type_into_focused(Keys.CONTROL + "a")  # select the wrong token; typed over below
    page.sign_in(stack.api_token)
    page.signed_in()
    assert not page.error()
    assert stack.api_token not in page.driver.current_url
    page.start_conversation()
    sent = [f"hello {i} {secrets.token_hex(2)}" for i in range(3)]
    for i, text in enumerate(sent, start=1):
        page.send(text)
        page.wait_sent(i)
    shown = page.messages()
    assert_each_once_with_reply(shown, sent)
    # Every badge names a replica of this stack, and the browser holds a sticky cookie. (Not
    # always the same replica: a pinned attempt slower than PINNED_RESPONSE_TIMEOUT is answered
    # by another replica through the failover service, by design; docs/failover.md.)
    assert {m.replica for m in shown} <= set(web_by_hostname(stack))
    assert page.sticky_cookie()

    # 60 more messages through the API: the history is longer than one page (50).
    conversation_id = str(page.js("return sessionStorage.getItem('conversationId');"))
    with httpx.Client(base_url=stack.base_url, headers=stack.auth_headers(), timeout=10) as c:
        for i in range(30):
            text = f"via api {i}"
            for _attempt in range(10):  # same key each time: stored once
                r = c.post(
                    "/api/v1/chat",
                    json={"conversation_id": conversation_id, "message": text},
                    headers={"Idempotency-Key": f"fe-history-{conversation_id}-{i}"},
                )
                if r.status_code not in (502, 503, 504):
                    break
                time.sleep(0.5)
            assert r.status_code == 201, r.text
            sent.append(text)
    page.open()  # reload: still signed in (session storage), history from the first page
    wait_for(lambda: len(page.messages()) == 50, 30, "the first page of history")
    assert page.js("return !document.getElementById('load-more').hidden;")
    wait_for(lambda: page.focused_id() == "message", 10, "the focus in the message field")
    page.type_into_focused(Keys.SHIFT + Keys.TAB)  # back to "Load more messages"
    assert page.focused_id() == "load-more"
    page.type_into_focused(Keys.ENTER)
    wait_for(lambda: len(page.messages()) == 2 * len(sent), 30, "the second page")
    assert page.js("return document.getElementById('load-more').hidden;")
    assert_each_once_with_reply(page.messages(), sent)
    assert_stored_once(stack, page, sent)

    # Every field has a label; no horizontal scrolling at phone width (375 px).
    assert page.js(
        "return Array.from(document.querySelectorAll('input, textarea'))"
        ".every(f => f.labels && f.labels.length > 0);"
    )
    page.driver.set_window_size(375, 812)
    assert page.js("return document.documentElement.scrollWidth <= window.innerWidth;")
    page.screenshot(RESULTS / "phone-width.png")
    page.driver.set_window_size(1280, 900)

    # The page satisfies its CSP, and the CSP is enforced: an injected inline script is refused.
    assert page.console_csp_violations() == []
    page.js(
        "const s = document.createElement('script'); s.textContent = 'window.__inline = 1;';"
        "document.body.append(s);"
    )
    assert page.js("return window.__inline === undefined;")
    wait_for(page.console_csp_violations, 10, "the CSP violation of the injected script")


def test_a_frontend_replica_killed_mid_traffic_is_invisible(page: ChatPage, stack: Stack) -> None:
    signed_in_conversation(page, stack)
    frontends = stack.containers("frontend")
    assert len(frontends) == FRONTEND_REPLICAS
    victim = frontends[0]
    failures: list[str] = []
    killed = threading.Event()
    fetched = Counter[str]()

    def fetch_page_files() -> None:  # bounded: 12 s, one page load (4 files) at a time
        deadline = time.monotonic() + 12
        with httpx.Client(base_url=stack.base_url, timeout=5) as client:
            while time.monotonic() < deadline:
                for path in ("/", "/assets/app.js", "/assets/chat-core.js", "/assets/app.css"):
                    try:
                        r = client.get(path)
                        if r.status_code != 200:
                            failures.append(f"{path}: {r.status_code}")
                    except httpx.HTTPError as exc:
                        failures.append(f"{path}: {exc!r}")
                    fetched["after kill" if killed.is_set() else "before kill"] += 1
                time.sleep(0.05)

    traffic = threading.Thread(target=fetch_page_files)
    traffic.start()
    wait_for(lambda: fetched["before kill"] >= 8, 10, "page fetches before the kill")
    victim.kill("SIGKILL")
    killed.set()
    # The person reloads the page three times and keeps chatting.
    sent = []
    for i in range(3):
        page.open()
        wait_for(lambda: page.focused_id() == "message", 10, "the reloaded page")
        text = f"after frontend kill {i}"
        page.send(text)
        sent.append(text)
        page.wait_sent(i + 1)
    traffic.join(timeout=30)
    total = sum(fetched.values())
    assert fetched["after kill"] >= 20, fetched  # the fetches covered the kill
    assert failures == [], f"{len(failures)} of {total} page fetches failed: {failures[:10]}"
    assert_each_once_with_reply(page.messages(), sent)
    assert page.console_csp_violations() == []
    victim.start()
    wait_frontends_up(stack, FRONTEND_REPLICAS)


def test_chat_survives_sigkill_of_the_pinned_web_replica(page: ChatPage, stack: Stack) -> None:
    signed_in_conversation(page, stack)
    sent: list[str] = []

    def say(text: str) -> None:
        page.send(text)
        sent.append(text)

    for i in range(2):
        say(f"before kill {i}")
        page.wait_sent(len(sent))
    cookie = page.sticky_cookie()
    assert cookie
    pinned = pinned_replica(stack, cookie)
    webs = web_by_hostname(stack)
    assert pinned in webs, (cookie, pinned, sorted(webs))
    victim = webs[pinned]
    try:
        # The kill lands while this message is on its way (or just before it): either way the
        # pinned replica is gone for it and for every later one.
        say(f"during kill {secrets.token_hex(2)}")
        started = time.monotonic()
        victim.kill("SIGKILL")
        page.wait_sent(len(sent))
        record_timing(
            "browser: send spanning a SIGKILL of the pinned replica",
            time.monotonic() - started,
            replica=pinned,
        )
        for i in range(5):
            say(f"after kill {i}")
            page.wait_sent(len(sent))
        shown = page.messages()
        assert_each_once_with_reply(shown, sent)
        assert_stored_once(stack, page, sent)
        # Failover is visible: no badge after the kill names the victim, and Traefik pinned
        # the browser to another replica (a new cookie).
        after = {m.replica for m in shown[6:]}
        assert pinned not in after and after <= set(web_by_hostname(stack)), after
        assert page.sticky_cookie() != cookie
        assert page.console_csp_violations() == []
    finally:
        victim.start()
        stack.wait_in_rotation(3)


def test_retrying_is_shown_while_every_api_replica_is_frozen(page: ChatPage, stack: Stack) -> None:
    signed_in_conversation(page, stack)
    page.send("before the freeze")
    page.wait_sent(1)
    stack.wait_in_rotation(3)
    webs = stack.containers("web")
    paused: list[Container] = []
    try:
        for web in webs:
            freeze(web)
            paused.append(web)
        page.send("during the freeze")
        wait_for(page.retrying, 30, "the page's retrying state")
        assert "Retrying" in page.status()
        assert page.js("return !!document.querySelector('#transcript li.pending.retrying');")
        page.screenshot(RESULTS / "retrying.png")
    finally:
        for web in paused:
            web.unpause()
    page.wait_sent(2)
    assert not page.retrying()
    sent = ["before the freeze", "during the freeze"]
    assert_each_once_with_reply(page.messages(), sent)
    assert_stored_once(stack, page, sent)
    stack.wait_in_rotation(3)


def test_chat_survives_a_rollout_of_every_web_replica(
    page: ChatPage, stack: Stack, docker_engine: DockerClient, tmp_path: Path
) -> None:
    base = stack.containers("web")[0].config.image
    (tmp_path / "Dockerfile").write_text(V2_DOCKERFILE.format(base=base))
    docker_engine.legacy_build(tmp_path, tags=[V2])
    stack.wait_in_rotation(3)
    old = set(web_by_hostname(stack))
    signed_in_conversation(page, stack)
    command = [
        HACTL,
        "--project",
        stack.project,
        "--rollout-env-file",
        str(tmp_path / "env.rollout"),
        "rollout",
        "--image",
        V2,
        "--timeout",
        "120",
    ]
    sent: list[str] = []
    started = time.monotonic()
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            # Keep chatting until the rollout is over; bounded in messages and time.
            while proc.poll() is None and len(sent) < 150 and time.monotonic() - started < 300:
                text = f"during rollout {len(sent)}"
                page.send(text)
                sent.append(text)
                page.wait_sent(len(sent))
                time.sleep(0.2)
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    record_timing(
        "browser: hactl rollout 3 replicas while chatting",
        time.monotonic() - started,
        messages=len(sent),
    )
    assert proc.returncode == 0, f"hactl rollout failed: {out}\n{err}"
    for i in range(2):
        page.send(f"after rollout {i}")
        sent.append(f"after rollout {i}")
        page.wait_sent(len(sent))
    shown = page.messages()
    assert len(sent) >= 10, "the rollout ended before the person could chat through it"
    assert_each_once_with_reply(shown, sent)
    assert_stored_once(stack, page, sent)
    new = set(web_by_hostname(stack))
    assert not old & new
    badges = [m.replica for m in shown]
    assert badges[0] in old and badges[-1] in new, (badges[0], badges[-1], old, new)
    assert page.console_csp_violations() == []


def test_cors_answers_only_the_configured_origin(stack: Stack) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
    }
    with httpx.Client(base_url=stack.base_url, timeout=10) as c:
        allowed = c.options("/api/v1/chat", headers={"Origin": OTHER_ORIGIN, **preflight})
        other = c.options("/api/v1/chat", headers={"Origin": "https://evil.test", **preflight})
        read = c.get("/api/v1/whoami", headers={"Origin": OTHER_ORIGIN})
        same_origin_page = c.get("/")
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == OTHER_ORIGIN
    assert "idempotency-key" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers
    assert "access-control-allow-origin" not in other.headers
    assert read.headers["access-control-allow-origin"] == OTHER_ORIGIN
    assert "x-replica" in read.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in same_origin_page.headers
