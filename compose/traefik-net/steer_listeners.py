"""Hold the load balancer's network namespace and steer new connections to the oldest listener
(and serve each instance's drain middleware: drain_config.py).

Runs as the only process of `traefik-net` (docker-compose.ha.yml), whose namespace the two
Traefik instances share. Both listen on the published ports with SO_REUSEPORT. Left alone, the
kernel hashes each new connection onto any listener of the port, a Traefik that has just started
included - and a fresh Traefik answers 404 until its providers deliver the routes (it binds its
entrypoints first). So for each port this process attaches a one-instruction classic BPF program
to the port's reuseport group, "return 0": every new connection goes to the group's socket 0,
the oldest listener still open (the kernel fills a closed listener's slot with the newest one
only when the oldest leaves). A restarted or upgraded instance therefore takes no connection
while the other one lives; when the serving one closes or dies, the other, warm one takes them
all at once. Active/standby, with the standby a live Traefik with the same routes and health
state. docs/load-balancer.md has the mechanism and the kernel source it rests on.

The program belongs to the group, which the kernel frees when its last listener closes (both
instances down at once). So this process attaches it again every second. To reach the group it
joins it for a moment: a socket bound to the same address with SO_REUSEPORT, from the same user
as Traefik's (root; no capability: the namespace lets anyone bind low ports), which never gets a
connection while a Traefik listens (it is never socket 0) and is closed at once. A few system
calls a second: no reading of the socket tables, whose cost grows with the connections.

While an instance drains before it stops (traefik/render-config.sh marks it), new connections
must go to the other one: Traefik hangs a connection accepted in the moment its HTTP server
shuts down (the entrypoint's accept loop hands it to a server that no longer takes any,
`httpForwarder.ServeTCP` in pkg/server/server_entrypoint_tcp.go: measured, clients timed out
at the stop), and the drain's `Connection: close` makes every client open a new connection.
The program is then "return k" with k the slot of a live, non-draining instance, found by
asking each slot in turn which instance it is (drain_config.py's identity router).

Standard library only: it runs on the plain Python image.
"""

from __future__ import annotations

import ctypes
import http.client
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from drain_config import (
    IDENTITY_HEADER,
    IDENTITY_PATH,
    MARKS_DIR,
    draining_instances,
    serve_in_background,
)

SO_ATTACH_REUSEPORT_CBPF = 51  # include/uapi/asm-generic/socket.h
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant k
REATTACH_S = 1.0  # the program dies with the group: attach it again this often
MARKS_POLL_S = 0.2  # a drain must move new connections well before its 2 s are over
PROBE_TIMEOUT_S = 0.5
MAX_SLOTS = 3  # two instances, and a moment with a third (the replacement of one)


@dataclass(frozen=True)
class Port:
    number: int
    tls: bool = False  # the probe of the identity router speaks TLS on this one


def attach(port: int, slot: int = 0) -> None:
    """Attach "return `slot`" to the reuseport group of the wildcard address on `port`: every
    new connection goes to that slot (a slot the group does not have: the kernel's hash)."""
    # The whole program, struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}, and
    # struct sock_fprog {len; filter*} pointing at it (kept alive through the call).
    program = (ctypes.c_ubyte * 8)(*struct.pack("HBBI", BPF_RET_K, 0, 0, slot))
    fprog = struct.pack("HP", 1, ctypes.addressof(program))
    with wildcard_socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("::" if sock.family == socket.AF_INET6 else "0.0.0.0", port))
        sock.listen(1)  # a member of the group: the program can be attached through it
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def wildcard_socket() -> socket.socket:
    """A socket of the family Traefik's ":PORT" listeners have: Go listens dual-stack (IPv6
    with IPV6_V6ONLY off) where the namespace has IPv6, IPv4 otherwise. The kernel keeps one
    reuseport group per family, so the family must be the same."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        return sock
    except OSError:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def instance_at(port: Port, slot: int) -> str | None:
    """Steer `port` to `slot` and ask the instance there its name (a new connection, so the
    program picks it); None if nothing says."""
    attach(port.number, slot)
    if port.tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # our own listener on loopback: only its name counts
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port.number, timeout=PROBE_TIMEOUT_S, context=context
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port.number, timeout=PROBE_TIMEOUT_S)
    try:
        conn.request("GET", IDENTITY_PATH)
        response = conn.getresponse()
        response.read()
        return response.getheader(IDENTITY_HEADER)
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def slot_avoiding(port: Port, draining: set[str]) -> int | None:
    """The first slot whose instance is not draining, or None when no slot says so."""
    for slot in range(MAX_SLOTS):
        name = instance_at(port, slot)
        if name is not None and name not in draining:
            return slot
    return None


def _stop(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def steer_forever(
    ports: list[Port], marks_dir: Path = MARKS_DIR, stop: threading.Event | None = None
) -> None:
    """Keep every port's group steered: to the oldest listener (slot 0), or while an instance
    drains, to a slot of another one; attached again every second, until `stop` (never in the
    container: it is the namespace's PID 1)."""
    stop = stop or threading.Event()
    print(
        f"steering new connections on {[p.number for p in ports]} to the oldest listener",
        flush=True,
    )
    failing: dict[int, str] = {}
    slots = {port.number: 0 for port in ports}
    draining: set[str] = set()
    attached_at = 0.0
    while not stop.is_set():
        now_draining = draining_instances(marks_dir)
        changed = now_draining != draining
        if changed:
            print(f"draining: {sorted(now_draining) or 'none'}", flush=True)
        if changed or time.monotonic() - attached_at >= REATTACH_S:
            for port in ports:
                try:
                    if changed:
                        found = slot_avoiding(port, now_draining) if now_draining else 0
                        slots[port.number] = 0 if found is None else found
                        if now_draining:
                            print(
                                f"port {port.number}: new connections to slot {found}", flush=True
                            )
                    attach(port.number, slots[port.number])
                # Never exit: this is the namespace's PID 1; the instances' network goes with it.
                except Exception as exc:  # said once per new problem, not every second
                    if failing.get(port.number) != str(exc):
                        print(f"port {port.number}: cannot attach ({exc})", flush=True)
                    failing[port.number] = str(exc)
                else:
                    if failing.pop(port.number, None) is not None:
                        print(f"port {port.number}: attached again", flush=True)
            draining, attached_at = now_draining, time.monotonic()
        stop.wait(MARKS_POLL_S)


def parse_port(text: str) -> Port:
    """PORT or PORT/tls."""
    number, _, kind = text.partition("/")
    if not number.isdigit() or not 0 < int(number) < 65536 or kind not in ("", "tls"):
        raise ValueError(text)
    return Port(int(number), tls=kind == "tls")


def main(argv: list[str]) -> int:
    """steer_listeners.py DRAIN_PORT PORT[/tls] [PORT[/tls]...]: serve the instances' dynamic
    configuration on 127.0.0.1:DRAIN_PORT (drain_config.py), steer the published PORTs (/tls:
    the instances speak TLS there)."""
    try:
        if len(argv) < 2:
            raise ValueError("too few arguments")
        drain_port = parse_port(argv[0])
        ports = [parse_port(a) for a in argv[1:]]
        if drain_port.tls:
            raise ValueError(argv[0])
    except ValueError:
        print("usage: steer_listeners.py DRAIN_PORT PORT[/tls] [PORT[/tls]...]", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop)
    serve_in_background(drain_port.number)
    steer_forever(ports)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
