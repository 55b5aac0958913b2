"""The HA overlay end to end: Traefik in front of real replicas on a real engine.

Traffic goes only to the 127.0.0.1 ports the stack publishes. Every fault test also asserts that
its fault really happened, so a no-op cannot pass. Durations are recorded, never asserted.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from http.cookies import SimpleCookie

import httpx
import pytest
from python_on_whales import Container

from tests.support.load import BackgroundLoad, failures
from tests.support.stack import SECRETS_DIR, Stack, count_by, replica_of, wait_for
from tests.support.timings import record_timing

pytestmark = pytest.mark.e2e

WHOAMI = "/api/v1/whoami"


def whoami_without_cookie(stack: Stack) -> str:
    # A fresh request each time: no cookie jar, so stickiness never applies.
    return replica_of(httpx.get(stack.base_url + WHOAMI, timeout=5))


def hostname(container: Container) -> str:
    return container.config.hostname


def server_url(stack: Stack, container: Container) -> str:
    return f"http://{stack.container_ip(container)}:8000"


def restore(stack: Stack, replicas: int = 3) -> None:
    """Bring the stack back to `replicas` in rotation for the next test."""
    stack.up(scales={"web": replicas})
    stack.wait_in_rotation(replicas, timeout=90)


@pytest.fixture
def ha(ha_stack: Stack) -> Stack:
    """The module's HA stack with 3 replicas in rotation, whatever the previous test did."""
    restore(ha_stack)
    return ha_stack


def test_distribution_without_cookie(ha: Stack) -> None:
    counts = count_by(whoami_without_cookie(ha) for _ in range(300))
    replicas = {hostname(c) for c in ha.containers("web")}
    assert set(counts) == replicas, f"served by {counts}, replicas are {replicas}"
    for replica, n in counts.items():
        assert 0.20 <= n / 300 <= 0.47, f"{replica} served {n}/300: {counts}"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_sticky_cookie_pins_a_client(ha: Stack, scheme: str) -> None:
    if scheme == "http":
        base, verify = ha.base_url, True  # type: ignore[assignment]
    else:  # websecure, verified against the certificate the stack generated
        base, verify = (
            f"https://127.0.0.1:{ha.port('HTTPS_PORT')}",
            str(SECRETS_DIR / "tls.crt"),
        )
    with httpx.Client(base_url=base, verify=verify, timeout=5) as client:
        first = client.get(WHOAMI)
        cookie = SimpleCookie(first.headers["set-cookie"])["ha_sticky"]
        assert cookie["httponly"] is True
        assert cookie["samesite"].lower() == "lax"
        assert cookie["path"] == "/"
        assert bool(cookie["secure"]) is (scheme == "https")
        pinned = replica_of(first)
        seen = count_by(replica_of(client.get(WHOAMI)) for _ in range(100))
    assert seen == {pinned: 100}


def test_unlabelled_container_is_not_routed(ha: Stack) -> None:
    """A project container without traefik.enable=true gets no route; with it, it would."""
    image = ha.containers("web")[0].config.image
    network = f"{ha.project}_backend"
    started: list[Container] = []

    def start(name: str, enable: bool) -> None:
        labels = {
            "com.docker.compose.project": ha.project,
            f"traefik.http.routers.{name}.rule": f"Host(`{name}.test`)",
            # Above the frontend's router (10000), which serves `/` for any host.
            f"traefik.http.routers.{name}.priority": "20000",
            f"traefik.http.services.{name}.loadbalancer.server.port": "9000",
        }
        if enable:
            labels["traefik.enable"] = "true"
        started.append(
            ha.docker.run(
                image,
                [
                    "python3",
                    "-c",
                    "import http.server as h; h.test(h.SimpleHTTPRequestHandler, port=9000)",
                ],
                detach=True,
                networks=[network],
                labels=labels,
                name=f"{ha.project}-{name}",
                user="10001",
                healthcheck=False,  # the image's check probes :8000/readyz, which this server lacks
            )
        )

    def routers() -> set[str]:
        r = httpx.get(f"{ha.api_url}/api/http/routers", auth=ha.dashboard_auth, timeout=2)
        return {router["name"] for router in r.json()}

    tag = secrets.token_hex(3)
    try:
        start(f"rogue{tag}", enable=False)
        start(f"control{tag}", enable=True)
        # Positive control: the enabled one is routed, so the setup can tell routed from not.
        # Who answered is told by the body: the test containers serve a directory listing.
        listing = "Directory listing for"
        wait_for(
            lambda: (
                listing
                in httpx.get(
                    ha.base_url + "/", headers={"Host": f"control{tag}.test"}, timeout=2
                ).text
            ),
            30,
            "the control container's route",
        )
        assert f"control{tag}@docker" in routers()
        assert f"rogue{tag}@docker" not in routers()
        rogue = httpx.get(ha.base_url + "/", headers={"Host": f"rogue{tag}.test"}, timeout=2)
        assert listing not in rogue.text, "the unlabelled container answered through Traefik"
    finally:
        for c in started:
            c.remove(force=True)


def test_unready_replica_leaves_rotation_and_returns(ha: Stack) -> None:
    victim = ha.containers("web")[0]
    url, name = server_url(ha, victim), hostname(victim)
    ha.docker.execute(victim, ["python3", "-m", "app.control", "unready"])
    t0 = time.monotonic()
    try:
        wait_for(lambda: ha.traefik_servers().get(url) != "UP", 10, f"{name} to leave rotation")
        left = time.monotonic() - t0
        health = wait_for(
            lambda: victim.reload() or victim.state.health.status == "unhealthy",
            10,
            "Docker to see the replica unhealthy",
        )
        assert health
        counts = count_by(whoami_without_cookie(ha) for _ in range(100))
        assert name not in counts, f"the unready replica still served: {counts}"
    finally:
        ha.docker.execute(victim, ["python3", "-m", "app.control", "ready"])
    t1 = time.monotonic()
    wait_for(lambda: ha.traefik_servers().get(url) == "UP", 30, f"{name} back in rotation")
    back = time.monotonic() - t1
    wait_for(
        lambda: name in {whoami_without_cookie(ha) for _ in range(20)},
        30,
        f"{name} serving again",
    )
    record_timing("unready_leaves_rotation", left)
    record_timing("ready_rejoins_rotation", back)


def test_scale_to_five_and_back_to_three_under_load(ha: Stack) -> None:
    before = {c.id for c in ha.containers("web")}
    t0 = time.monotonic()
    ha.up(scales={"web": 5})
    webs = ha.wait_in_rotation(5, timeout=90)
    record_timing("compose_scale_3_to_5_in_rotation", time.monotonic() - t0)
    assert len({c.id for c in webs} - before) == 2
    names = {hostname(c) for c in webs}
    wait_for(
        lambda: names <= set(count_by(whoami_without_cookie(ha) for _ in range(50))),
        30,
        "all 5 replicas to serve",
    )

    with BackgroundLoad(ha, rate=100, duration_s=20) as load:
        load.wait_until(3)
        ha.up(scales={"web": 3})  # compose stops 2 replicas: SIGTERM, they drain
    result = load.result()
    assert len(ha.containers("web")) == 3
    assert result.summary().failed == 0, failures(result)
    ha.wait_in_rotation(3)


def test_killed_replica_loses_no_request(ha: Stack) -> None:
    victim = ha.containers("web")[1]
    with BackgroundLoad(ha, rate=100, duration_s=15) as load:
        load.wait_until(5)
        ha.docker.kill(victim, signal="SIGKILL")
    result = load.result()
    victim.reload()
    assert victim.state.running is False and victim.state.exit_code == 137, (
        "the kill did not happen"
    )
    summary = result.summary()
    assert summary.total >= 1400
    assert summary.failed == 0, failures(result)
    check = load.write_check()
    assert check.lost == [] and check.duplicated == {}, check


def test_crashed_replica_loses_no_request_and_comes_back_by_itself(ha: Stack) -> None:
    victim = ha.containers("web")[2]
    url, restarts = server_url(ha, victim), victim.restart_count or 0
    with BackgroundLoad(ha, rate=100, duration_s=15) as load:
        load.wait_until(5)
        # A real crash: the main process killed from the host (docker kill would count as a
        # stop by hand, which the restart policy leaves alone).
        os.kill(victim.state.pid, signal.SIGKILL)
        t_crash = time.monotonic()
    result = load.result()
    assert result.summary().failed == 0, failures(result)
    wait_for(
        lambda: victim.reload() or (victim.restart_count or 0) > restarts,
        30,
        "the restart policy to restart the crashed replica",
    )
    wait_for(
        lambda: ha.traefik_servers().get(server_url(ha, victim)) == "UP",
        60,
        "the restarted replica back in rotation",
    )
    wait_for(
        lambda: hostname(victim) in {whoami_without_cookie(ha) for _ in range(20)},
        30,
        "the restarted replica serving",
    )
    record_timing("crashed_replica_serves_again", time.monotonic() - t_crash, url=url)
    check = load.write_check()
    assert check.lost == [] and check.duplicated == {}, check
    ha.wait_in_rotation(3)


def test_sticky_client_fails_over_with_a_new_cookie(ha: Stack) -> None:
    with httpx.Client(base_url=ha.base_url, timeout=5) as client:
        first = client.get(WHOAMI)
        pinned, old_cookie = replica_of(first), client.cookies["ha_sticky"]
        victim = next(c for c in ha.containers("web") if hostname(c) == pinned)
        ha.docker.kill(victim, signal="SIGKILL")
        victim.reload()
        assert victim.state.running is False
        after = client.get(WHOAMI)
        assert after.status_code == 200
        assert replica_of(after) != pinned
        assert "ha_sticky" in after.headers.get("set-cookie", "")
        assert client.cookies["ha_sticky"] != old_cookie
        # And the new pin holds.
        assert {replica_of(client.get(WHOAMI)) for _ in range(20)} == {replica_of(after)}


def test_metrics_are_not_published_through_traefik(ha: Stack) -> None:
    assert httpx.get(ha.base_url + WHOAMI, timeout=5).status_code == 200
    assert httpx.get(ha.base_url + "/metrics", timeout=5).status_code == 404
    # ...while each replica still serves them on the stack network, for Prometheus.
    replica = ha.containers("web")[0]
    out = ha.docker.execute(
        replica,
        [
            "python3",
            "-c",
            "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/metrics').status)",
        ],
    )
    assert str(out).strip() == "200"
