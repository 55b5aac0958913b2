"""compose/traefik-net/steer_listeners.py against this kernel: the oldest listener of a port
takes every new connection, the next one takes over when it closes, a newcomer gets none.

Plain sockets on a free port stand for the two Traefik instances (the kernel's reuseport group
is the same whoever listens); the stack itself is checked end to end by
tests/e2e/test_chaos_e2e.py (a restarted instance takes no connection while the other serves).
"""

from __future__ import annotations

import importlib.util
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "compose" / "traefik-net" / "steer_listeners.py"


def _load() -> ModuleType:
    sys.path.insert(0, str(SCRIPT.parent))  # as in the container: its sibling drain_config
    spec = importlib.util.spec_from_file_location("steer_listeners", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


steer = _load()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listener(port: int) -> socket.socket:
    """A listener as Traefik's: the wildcard address, SO_REUSEPORT."""
    sock = steer.wildcard_socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("::" if sock.family == socket.AF_INET6 else "0.0.0.0", port))
    sock.listen(64)
    sock.setblocking(False)
    return sock


@contextmanager
def listeners(port: int, n: int) -> Iterator[list[socket.socket]]:
    socks = [listener(port) for _ in range(n)]
    try:
        yield socks
    finally:
        for s in socks:
            s.close()


def who_accepts(port: int, socks: list[socket.socket], n: int = 20) -> list[int]:
    """Connect n times; how many connections each listener got."""
    got = [0] * len(socks)
    clients = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=2)
        clients.append(c)
        ready, _, _ = select.select(socks, [], [], 2)
        assert ready, "no listener got the connection"
        for s in ready:
            while True:
                try:
                    conn, _ = s.accept()
                except BlockingIOError:
                    break
                conn.close()
                got[socks.index(s)] += 1
    for c in clients:
        c.close()
    return got


def test_without_the_program_the_kernel_spreads_connections() -> None:
    """The peer figure: what a fresh instance would get without steering."""
    port = free_port()
    with listeners(port, 2) as socks:
        got = who_accepts(port, socks, 40)
    assert sum(got) == 40 and min(got) > 0, got


def test_the_oldest_listener_takes_every_new_connection_and_the_next_one_takes_over() -> None:
    port = free_port()
    with listeners(port, 2) as (old, standby):
        steer.attach(port, 0)
        assert who_accepts(port, [old, standby]) == [20, 0]
        old.close()  # the serving instance stops or dies
        newcomer = listener(port)  # and comes back: a fresh instance, no routes yet
        try:
            assert who_accepts(port, [standby, newcomer]) == [20, 0]
        finally:
            newcomer.close()


BAD_ARGV = [
    [],
    ["9190"],
    ["9190", "http"],
    ["0", "80"],
    ["9190", "70000"],
    ["9190/tls", "80"],
    ["9190", "80/udp"],
]


@pytest.mark.parametrize("argv", BAD_ARGV)
def test_bad_ports_are_refused_with_usage(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert steer.main(argv) == 2
    assert "usage" in capsys.readouterr().err


def test_a_slot_other_than_the_oldest_can_take_every_new_connection() -> None:
    port = free_port()
    with listeners(port, 2) as socks:
        steer.attach(port, 1)
        assert who_accepts(port, socks) == [0, 20]


@contextmanager
def named_instances(port: int, names: list[str]) -> Iterator[None]:
    """Listeners that answer every request as an instance's identity router does: with its
    name in X-LB-Instance (each accepts in a thread of its own, like a Traefik)."""
    drain = sys.modules["drain_config"]
    socks = [listener(port) for _ in names]
    stop = threading.Event()

    def serve(sock: socket.socket, name: str) -> None:
        while not stop.is_set():
            ready, _, _ = select.select([sock], [], [], 0.05)
            if not ready:
                continue
            try:
                conn, _ = sock.accept()
            except BlockingIOError:
                continue
            with conn:
                conn.settimeout(2)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                conn.sendall(
                    f"HTTP/1.1 418 I'm a teapot\r\n{drain.IDENTITY_HEADER}: {name}\r\n"
                    "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
                )

    threads = [
        threading.Thread(target=serve, args=pair, daemon=True)
        for pair in zip(socks, names, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(2)
        for sock in socks:
            sock.close()


def answered_by(port: int, n: int = 10) -> set[str]:
    """Who answers n requests, each on a new connection (as after a drain's Connection: close)."""
    import httpx

    drain = sys.modules["drain_config"]
    names = set()
    for _ in range(n):
        with httpx.Client(timeout=2) as client:
            names.add(client.get(f"http://127.0.0.1:{port}/").headers[drain.IDENTITY_HEADER])
    return names


def test_the_slot_of_a_draining_instance_is_found_by_asking_each_slot() -> None:
    port = free_port()
    with named_instances(port, ["traefik", "traefik-b"]):
        target = steer.Port(port)
        assert steer.slot_avoiding(target, {"traefik"}) == 1
        assert steer.slot_avoiding(target, {"traefik-b"}) == 0
        assert steer.slot_avoiding(target, {"traefik", "traefik-b"}) is None


def test_new_connections_leave_a_draining_instance_and_come_back_after(tmp_path: Path) -> None:
    """The loop as the container runs it: the oldest instance serves; once the entrypoint
    script marks it draining, every new connection goes to the other one within the poll
    period; with the mark gone (the instance restarted), to the oldest again."""
    port = free_port()
    stop = threading.Event()
    with named_instances(port, ["traefik", "traefik-b"]):
        loop = threading.Thread(
            target=steer.steer_forever, args=([steer.Port(port)], tmp_path, stop), daemon=True
        )
        loop.start()
        try:
            assert wait_until(lambda: answered_by(port) == {"traefik"})
            (tmp_path / "drain-traefik").touch()
            assert wait_until(lambda: answered_by(port) == {"traefik-b"})
            (tmp_path / "drain-traefik").unlink()
            assert wait_until(lambda: answered_by(port) == {"traefik"})
        finally:
            stop.set()
            loop.join(5)


def wait_until(condition: Callable[[], bool], timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_an_instance_drains_only_while_its_mark_exists(tmp_path: Path) -> None:
    """The drain middleware each instance polls: a no-op, or Connection: close while draining,
    served over real HTTP as Traefik's http provider reads it."""
    import httpx

    drain = sys.modules["drain_config"]
    server = drain.serve_in_background(0, tmp_path)
    base = f"http://127.0.0.1:{server.server_address[1]}/dynamic"
    try:
        quiet = httpx.get(f"{base}/traefik-b", timeout=5).json()["http"]
        noop = {"customResponseHeaders": {"X-Traefik-Draining": ""}}
        assert quiet["middlewares"]["drain"] == {"headers": noop}
        # Its identity router: only from the namespace's loopback, on every shared entrypoint.
        name = {"customResponseHeaders": {drain.IDENTITY_HEADER: "traefik-b"}}
        assert quiet["middlewares"]["lb-instance"] == {"headers": name}
        routers = quiet["routers"]
        assert {ep for r in routers.values() for ep in r["entryPoints"]} == {
            "web",
            "websecure",
            "traefik",
        }
        for router in routers.values():
            assert router["rule"].startswith("ClientIP(`127.0.0.1`) && ")
            assert router["middlewares"] == ["lb-instance"]
        assert "tls" in routers["lb-instance-tls"] and "tls" not in routers["lb-instance"]
        (tmp_path / "drain-traefik-b").touch()
        draining = httpx.get(f"{base}/traefik-b", timeout=5).json()["http"]
        headers = draining["middlewares"]["drain"]["headers"]
        assert headers == {"customResponseHeaders": {"Connection": "close"}}
        assert drain.draining_instances(tmp_path) == {"traefik-b"}
        # The other instance is not draining.
        other = httpx.get(f"{base}/traefik", timeout=5).json()["http"]
        assert other["middlewares"]["drain"] == {"headers": noop}
        assert httpx.get(f"{base}/../etc", timeout=5).status_code == 404
    finally:
        server.shutdown()
