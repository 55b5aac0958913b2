"""The Docker socket proxy of docker-compose.ha.yml against the real engine.

Only the `socket-proxy` service of the HA overlay is started, exactly as compose defines it. The
proxy is not published, so every request comes from a throwaway container on its internal network
(python3 urllib in the python-base image).
"""

from __future__ import annotations

import json
import secrets
import textwrap
import time
from collections.abc import Iterator

import pytest
from python_on_whales import Container, DockerClient

from hactl.stack.envfile import read_env_file
from tests.support.stack import IMAGES_ENV, Stack, ha_files, wait_for

pytestmark = pytest.mark.integration

PROXY = "http://socket-proxy:2375"

# (method, path) -> status through the proxy. The allowed reads answer as the engine does.
ALLOWED = [
    ("GET", "/_ping"),
    ("HEAD", "/_ping"),
    ("GET", "/version"),
    ("GET", "/v1.41/version"),
    ("GET", "/containers/json"),
    ("GET", "/v1.41/containers/json?all=1"),
    ("GET", "/containers/{id}/json"),
    ("GET", "/v1.41/containers/{id}/json"),
]
DENIED = [
    ("POST", "/containers/create"),
    ("POST", "/v1.41/containers/create"),
    ("DELETE", "/containers/{id}"),
    ("DELETE", "/v1.41/containers/{id}?force=1"),
    ("POST", "/containers/{id}/stop"),
    ("POST", "/containers/{id}/exec"),
    ("GET", "/containers/{id}/logs?stdout=1"),
    ("GET", "/containers/{id}/archive?path=/"),
    ("GET", "/containers/{id}/export"),
    ("GET", "/images/json"),
    ("GET", "/info"),  # host details Traefik's Docker provider does not need
    ("POST", "/images/create?fromImage=x"),
    ("GET", "/volumes"),
    ("GET", "/networks"),
    ("GET", "/secrets"),
    ("POST", "/build"),
    ("PUT", "/containers/{id}/archive?path=/"),
    ("GET", "/containers/../images/json"),
    ("GET", "/containers/%2e%2e/json"),
]

PROBE = textwrap.dedent(
    """
    import json, sys, urllib.request, urllib.error
    out = []
    for method, path in json.loads(sys.argv[1]):
        body = b"{}" if method in ("POST", "PUT") else None
        req = urllib.request.Request(sys.argv[2] + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                out.append([method, path, r.status])
        except urllib.error.HTTPError as e:
            out.append([method, path, e.code])
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def proxy_stack(docker_engine: DockerClient) -> Iterator[Stack]:
    stack = Stack("sockproxy", ha_files())
    try:
        stack.docker.compose.up(["socket-proxy"], detach=True, wait=True, wait_timeout=60)
        yield stack
    finally:
        stack.down()


def proxy_container(stack: Stack) -> Container:
    (proxy,) = stack.containers("socket-proxy")
    return proxy


def network(stack: Stack) -> str:
    return f"{stack.project}_docker-api"


def python_image() -> str:
    return read_env_file(IMAGES_ENV)["PYTHON_BASE_IMAGE"]


def probe(stack: Stack, requests: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    out = stack.docker.run(
        python_image(),
        ["python3", "-c", PROBE, json.dumps(requests), PROXY],
        remove=True,
        networks=[network(stack)],
    )
    return {(m, p): status for m, p, status in json.loads(str(out))}


def test_reads_traefik_needs_pass_everything_else_is_403(proxy_stack: Stack) -> None:
    target = proxy_container(proxy_stack).id  # any real container: the proxy itself
    allowed = [(m, p.format(id=target)) for m, p in ALLOWED]
    denied = [(m, p.format(id=target)) for m, p in DENIED]
    statuses = probe(proxy_stack, allowed + denied)
    assert {k: statuses[k] for k in allowed} == dict.fromkeys(allowed, 200)
    assert {k: statuses[k] for k in denied} == dict.fromkeys(denied, 403)
    # The proxy survived the DELETE and POST /stop attempts on itself.
    proxy = proxy_container(proxy_stack)
    proxy.reload()
    assert proxy.state.running


def test_create_is_403_and_nothing_is_created(proxy_stack: Stack, docker_engine: DockerClient):
    name = f"chatest-sockproxy-created-{secrets.token_hex(3)}"
    statuses = probe(proxy_stack, [("POST", f"/containers/create?name={name}")])
    assert list(statuses.values()) == [403]
    assert not docker_engine.container.exists(name)


def test_proxy_is_unpublished_internal_read_only_and_unprivileged(
    proxy_stack: Stack, docker_engine: DockerClient
) -> None:
    proxy = proxy_container(proxy_stack)
    assert not proxy.host_config.port_bindings, proxy.host_config.port_bindings
    assert all(not bindings for bindings in (proxy.network_settings.ports or {}).values())
    assert set(proxy.network_settings.networks) == {network(proxy_stack)}
    assert docker_engine.network.inspect(network(proxy_stack)).internal is True
    assert proxy.host_config.readonly_rootfs is True
    assert [c.removeprefix("CAP_") for c in proxy.host_config.cap_drop] == ["ALL"]
    assert {c.removeprefix("CAP_") for c in proxy.host_config.cap_add or []} <= {"SETUID", "SETGID"}
    assert "no-new-privileges:true" in (proxy.host_config.security_opt or [])
    (sock,) = [m for m in proxy.mounts if m.destination == "/var/run/docker.sock"]
    assert sock.rw is False
    # HAProxy serves as the haproxy user in the socket's group, with no capability left.
    status = docker_engine.execute(proxy, ["cat", "/proc/1/status"])
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    uids = fields["Uid"].split()
    assert uids and all(u != "0" for u in uids), fields["Uid"]
    assert int(fields["CapEff"].strip(), 16) == 0, fields["CapEff"]


def test_event_stream_survives_a_long_silence(
    proxy_stack: Stack, docker_engine: DockerClient
) -> None:
    """Traefik learns about start/die/health through one long GET /events: it must not be cut."""
    token = secrets.token_hex(4)
    filters = json.dumps({"label": [f"chatest.events={token}"]})
    watcher_script = textwrap.dedent(
        f"""
        import json, time, urllib.parse, urllib.request
        url = {PROXY!r} + "/events?filters=" + urllib.parse.quote({filters!r})
        t0 = time.monotonic()
        with urllib.request.urlopen(url, timeout=120) as r:
            print("open", r.status, flush=True)
            line = r.readline()
        print("event", round(time.monotonic() - t0), json.loads(line)["Action"], flush=True)
        """
    )
    watcher = docker_engine.run(
        python_image(),
        ["python3", "-u", "-c", watcher_script],
        detach=True,
        networks=[network(proxy_stack)],
        name=f"chatest-sockproxy-events-{token}",
    )
    created: Container | None = None
    try:
        wait_for(lambda: "open 200" in docker_engine.logs(watcher), 30, "the event stream")
        time.sleep(40)  # silence: longer than any usual proxy timeout (30 s and less)
        watcher.reload()
        assert watcher.state.running, f"stream cut: {docker_engine.logs(watcher)}"
        created = docker_engine.container.create(
            python_image(), ["true"], labels={"chatest.events": token}
        )
        wait_for(lambda: "event" in docker_engine.logs(watcher), 30, "the event to arrive")
        assert "create" in docker_engine.logs(watcher).split("event", 1)[1]
    finally:
        watcher.remove(force=True)
        if created is not None:
            created.remove(force=True)
