"""A real web container cut off from its network longer than PostgreSQL's keepalives, then
reconnected: the server has dropped the replica's pooled sessions, and nothing of that reached
the replica (no FIN got through). Its requests must not pay for those dead sessions.

Before app/db.py checked long-idle connections, the first statement on each stale one met a
reset and the request answered 503 (the chaos suite's network cut failed 2 of 4,500 requests in
one run of six so, 0.7 and 1.6 s after the reconnect). The test proves its own precondition:
the replica held sessions before the cut, PostgreSQL dropped every one of them during it, and
the replica found the dead ones afterwards (its log says so).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from python_on_whales import Container, DockerClient

from tests.support.stack import BASE_FILE, Stack, wait_for

pytestmark = pytest.mark.integration

# tcp_keepalives_idle + interval x count, as app/db.py asks of the server: silent that long,
# a session is dropped.
KEEPALIVE_DROP_S = 5 + 2 * 3
WARM_REQUESTS = 64
WARM_THREADS = 8  # several connections in each worker's pool
AFTER_REQUESTS = 40


@pytest.fixture(scope="module")
def cut_stack(docker_engine: DockerClient) -> Iterator[Stack]:
    stack = Stack("becut", [BASE_FILE], env={"WEB_WORKERS": "2"})
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


def sessions_from(stack: Stack, ip: str) -> int:
    """PostgreSQL's own count of the sessions whose client is `ip`."""
    (postgres,) = stack.containers("postgres")
    query = f"SELECT count(*) FROM pg_stat_activity WHERE client_addr = '{ip}'"
    out = stack.docker.execute(postgres, ["psql", "-U", "app", "-d", "app", "-tAc", query])
    return int(str(out).strip())


def create_conversations(stack: Stack, count: int, threads: int) -> list[int]:
    """`count` database writes through the published port; their status codes."""

    def one(i: int) -> int:
        with httpx.Client(base_url=stack.base_url, headers=stack.auth_headers(), timeout=10) as c:
            return c.post("/api/v1/conversations", json={"title": f"cut {i}"}).status_code

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def test_requests_after_a_long_network_cut_do_not_fail_on_dropped_sessions(
    cut_stack: Stack,
) -> None:
    stack = cut_stack
    wait_for(
        lambda: httpx.get(f"{stack.base_url}/readyz", timeout=2).status_code == 200,
        60,
        "/readyz 200",
    )
    warm = create_conversations(stack, WARM_REQUESTS, WARM_THREADS)
    assert set(warm) == {201}, warm
    (web,) = stack.containers("web")
    network = f"{stack.project}_backend"
    ip = stack.container_ip(web)
    held = sessions_from(stack, ip)
    assert held >= 2, f"the replica holds {held} sessions before the cut"

    stack.docker.network.disconnect(network, web, force=True)
    try:
        # The server's keepalives go unanswered: it drops every session of the replica.
        wait_for(
            lambda: sessions_from(stack, ip) == 0,
            KEEPALIVE_DROP_S + 20,
            "PostgreSQL to drop the cut replica's sessions",
        )
    finally:
        stack.docker.network.connect(network, web, alias="web")
    reachable(stack, web)

    after = create_conversations(stack, AFTER_REQUESTS, 4)
    logs = stack.docker.container.logs(web)
    found = logs.count("pooled connection dead")
    assert after.count(201) == AFTER_REQUESTS, f"statuses after the cut: {after}"
    assert found >= 1, "no dead pooled session was found: the precondition did not hold"


def reachable(stack: Stack, web: Container) -> None:
    """The published port answers again (/healthz needs no database, so it uses no session)."""
    wait_for(
        lambda: httpx.get(f"{stack.base_url}/healthz", timeout=2).status_code == 200,
        30,
        f"{web.name} reachable on its published port after the reconnect",
    )
