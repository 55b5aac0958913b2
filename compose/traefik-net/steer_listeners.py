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

Standard library only: it runs on the plain Python image.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import struct
import sys
import time
from types import FrameType

from drain_config import serve_in_background

SO_ATTACH_REUSEPORT_CBPF = 51  # include/uapi/asm-generic/socket.h
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant k
PERIOD_S = 1.0


# "return 0", the whole program: struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}.
PROGRAM = (ctypes.c_ubyte * 8)(*struct.pack("HBBI", BPF_RET_K, 0, 0, 0))
FPROG = struct.pack("HP", 1, ctypes.addressof(PROGRAM))  # struct sock_fprog {len; filter*}


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


def attach_oldest_first(port: int) -> None:
    """Attach "return 0" to the reuseport group of the wildcard address on `port`."""
    with wildcard_socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("::" if sock.family == socket.AF_INET6 else "0.0.0.0", port))
        sock.listen(1)  # a member of the group: the program can be attached through it
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, FPROG)


def _stop(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def steer_forever(ports: list[int]) -> None:
    """Attach the program to every port's group, every second, forever."""
    print(f"steering new connections on {ports} to the oldest listener", flush=True)
    failing: dict[int, str] = {}
    while True:
        for port in ports:
            try:
                attach_oldest_first(port)
            # Never exit: this is the namespace's PID 1; the instances' network goes with it.
            except Exception as exc:  # said once per new problem, not every second
                if failing.get(port) != str(exc):
                    print(f"port {port}: cannot attach ({exc})", flush=True)
                failing[port] = str(exc)
            else:
                if failing.pop(port, None) is not None:
                    print(f"port {port}: attached again", flush=True)
        time.sleep(PERIOD_S)


def main(argv: list[str]) -> int:
    """steer_listeners.py DRAIN_PORT PORT [PORT...]: serve the instances' drain middleware on
    127.0.0.1:DRAIN_PORT (drain_config.py), steer the published PORTs."""
    if len(argv) < 2 or not all(a.isdigit() and 0 < int(a) < 65536 for a in argv):
        print("usage: steer_listeners.py DRAIN_PORT PORT [PORT...]", file=sys.stderr)
        return 2
    drain_port, *ports = (int(a) for a in argv)
    signal.signal(signal.SIGTERM, _stop)
    serve_in_background(drain_port)
    steer_forever(ports)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
