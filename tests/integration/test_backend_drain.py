"""Graceful shutdown of a real web container: `docker stop` while requests flow.

The client plays the load balancer: it keeps sending until it has seen `/readyz` answer 503
and then for one more health-check interval (Traefik probes every second), then stops
starting new requests. A long request started late in the drain must still finish after
gunicorn has closed its listener. Nothing may fail, and the container must exit 0.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from python_on_whales import DockerClient

from tests.support.stack import BASE_FILE, REPO, Stack, wait_for

pytestmark = pytest.mark.integration

DRAIN_SECONDS = 5.0  # the compose default; the long request below is timed against it
# Generous so that a CPU-starved machine (shared CI cores) cannot turn "in-flight requests
# finish" into a SIGKILL at the graceful deadline; docker stop waits longer still.
GRACEFUL_TIMEOUT = 40
STOP_TIMEOUT = 60
LB_REACTION_S = 1.0  # Traefik's active health-check interval
STREAM_THREADS = 4
MAX_REQUESTS = 3000  # bound of the stream, whatever happens


@pytest.fixture(scope="module")
def drain_stack(docker_engine: DockerClient) -> Iterator[Stack]:
    env = {"DRAIN_SECONDS": str(int(DRAIN_SECONDS)), "GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT)}
    stack = Stack("bedrain", [BASE_FILE], env=env)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


def test_sigterm_drains_then_exits_cleanly(drain_stack: Stack) -> None:
    stack = drain_stack
    base = stack.base_url
    headers = stack.auth_headers()
    wait_for(lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200, 60, "/readyz 200")
    (web,) = stack.containers("web")
    with httpx.Client(base_url=base, headers=headers, timeout=10) as c:
        cid = c.post("/api/v1/conversations", json={"title": "drain"}).json()["id"]

    results: list[tuple[float, str, int | str]] = []  # (t since SIGTERM, what, status/error)
    lock = threading.Lock()
    stop_sending = threading.Event()
    saw_503 = threading.Event()
    sent = [0]
    t_sigterm = [float("inf")]

    def record(what: str, outcome: int | str) -> None:
        with lock:
            results.append((time.monotonic() - t_sigterm[0], what, outcome))

    def stream(worker: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=20) as c:
            i = 0
            while not stop_sending.is_set():
                with lock:
                    if sent[0] >= MAX_REQUESTS:
                        return
                    sent[0] += 1
                i += 1
                try:
                    if i % 2:
                        r = c.get("/api/v1/whoami")
                    else:
                        r = c.post(
                            f"/api/v1/conversations/{cid}/messages",
                            json={"content": f"drain {worker}-{i}"},
                            headers={"Idempotency-Key": str(uuid.uuid4())},
                        )
                    record("stream", r.status_code)
                except httpx.HTTPError as exc:
                    record("stream", repr(exc))
                time.sleep(0.01)

    def probe() -> None:
        # Fresh connections, like a health checker; stops once the LB would have reacted.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not stop_sending.is_set():
            try:
                r = httpx.get(f"{base}/readyz", timeout=2)
                draining = r.status_code == 503 and r.json().get("reason") == "draining"
                if draining and not saw_503.is_set():
                    record("readyz-503", 503)
                    saw_503.set()
                    threading.Timer(LB_REACTION_S, stop_sending.set).start()
            except httpx.HTTPError as exc:
                record("probe", repr(exc))
            time.sleep(0.05)

    def long_request() -> None:
        # Starts about a second before the listener closes (the drain is counted from when
        # gunicorn got SIGTERM, a little after t=0 here) and burns 1.5 s of CPU: in flight at
        # the close.
        time.sleep(DRAIN_SECONDS - 1.0)
        with httpx.Client(base_url=base, headers=headers, timeout=GRACEFUL_TIMEOUT + 10) as c:
            try:
                r = c.post("/api/v1/work", params={"cpu_ms": 1500})
                record("long", r.status_code)
            except httpx.HTTPError as exc:
                record("long", repr(exc))

    with ThreadPoolExecutor(max_workers=STREAM_THREADS + 2) as pool:
        streams = [pool.submit(stream, n) for n in range(STREAM_THREADS)]
        # Traffic is flowing: the streams have had 4 answers each on average before the SIGTERM.
        wait_for(lambda: len(results) >= 4 * STREAM_THREADS, 30, "the streams' first answers")
        t_sigterm[0] = time.monotonic()
        prober = pool.submit(probe)
        long = pool.submit(long_request)
        stack.docker.stop(web, time=STOP_TIMEOUT)  # SIGTERM; SIGKILL only at the deadline
        t_exit = time.monotonic() - t_sigterm[0]
        stop_sending.set()
        for f in [*streams, prober, long]:
            f.result(timeout=STOP_TIMEOUT)

    web.reload()
    failures = [r for r in results if r[1] in ("stream", "long") and r[2] not in (200, 201)]
    stream_after = [r for r in results if r[1] == "stream" and r[0] > 0]
    summary = {
        "sigterm_to_exit_s": round(t_exit, 2),
        "first_503_s": next((round(r[0], 3) for r in results if r[1] == "readyz-503"), None),
        "requests": len([r for r in results if r[1] == "stream"]),
        "served_after_sigterm": len(stream_after),
        "last_served_after_sigterm_s": round(max((r[0] for r in stream_after), default=0), 2),
        "long_request": [r[2] for r in results if r[1] == "long"],
        "failures": failures[:10],
        "probe_errors": [r for r in results if r[1] == "probe"][:5],
        "exit_code": web.state.exit_code,
    }
    out = REPO / "results" / "backend-drain.json"
    Path(out).parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(summary)

    assert saw_503.is_set(), "/readyz never answered 503 draining"
    assert failures == [], summary
    assert summary["long_request"] == [200], summary
    assert len(stream_after) > 0 and summary["last_served_after_sigterm_s"] >= LB_REACTION_S, (
        summary
    )
    assert web.state.exit_code == 0, summary
    assert not web.state.oom_killed


def test_sigterm_after_an_operator_drain_waits_only_the_remainder(drain_stack: Stack) -> None:
    """`app.control drain` first (hactl's pre-stop step), then SIGTERM once the drain period
    has passed: gunicorn must not drain a second time, only stop gracefully."""
    stack = drain_stack
    (web,) = stack.containers("web", all_states=True)
    web.reload()
    if not web.state.running:
        stack.docker.start(web)
    base = stack.base_url
    wait_for(lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200, 60, "/readyz 200")
    stack.docker.execute(web, ["python3", "-m", "app.control", "drain"])
    assert httpx.get(f"{base}/readyz", timeout=2).json()["reason"] == "draining"
    time.sleep(DRAIN_SECONDS + 0.5)
    # Still serving while drained.
    assert httpx.get(f"{base}/api/v1/whoami", timeout=10).status_code == 200
    stack.docker.stop(web, time=STOP_TIMEOUT)
    web.reload()
    assert web.state.exit_code == 0
    logs = stack.docker.logs(web)
    assert "SIGTERM: draining for 0.0s before graceful stop" in logs, logs[-2000:]
