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
from collections.abc import Iterator
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
        steer.attach_oldest_first(port)
        assert who_accepts(port, [old, standby]) == [20, 0]
        old.close()  # the serving instance stops or dies
        newcomer = listener(port)  # and comes back: a fresh instance, no routes yet
        try:
            assert who_accepts(port, [standby, newcomer]) == [20, 0]
        finally:
            newcomer.close()


@pytest.mark.parametrize("argv", [[], ["9190"], ["9190", "http"], ["0", "80"], ["9190", "70000"]])
def test_bad_ports_are_refused_with_usage(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert steer.main(argv) == 2
    assert "usage" in capsys.readouterr().err


def test_an_instance_drains_only_while_its_mark_exists(tmp_path: Path) -> None:
    """The drain middleware each instance polls: a no-op, or Connection: close while draining,
    served over real HTTP as Traefik's http provider reads it."""
    import httpx

    drain = sys.modules["drain_config"]
    server = drain.serve_in_background(0, tmp_path)
    base = f"http://127.0.0.1:{server.server_address[1]}/dynamic"
    try:
        quiet = httpx.get(f"{base}/traefik-b", timeout=5).json()
        noop = {"customResponseHeaders": {"X-Traefik-Draining": ""}}
        assert quiet == {"http": {"middlewares": {"drain": {"headers": noop}}}}
        (tmp_path / "drain-traefik-b").touch()
        draining = httpx.get(f"{base}/traefik-b", timeout=5).json()
        headers = draining["http"]["middlewares"]["drain"]["headers"]
        assert headers == {"customResponseHeaders": {"Connection": "close"}}
        # The other instance is not draining.
        assert httpx.get(f"{base}/traefik", timeout=5).json() == quiet
        assert httpx.get(f"{base}/../etc", timeout=5).status_code == 404
    finally:
        server.shutdown()
