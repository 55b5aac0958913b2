"""Each Traefik instance's `drain` middleware, served to it over HTTP (its `http` provider).

Why: when a Traefik stops (SIGTERM), Go's `http.Server.Shutdown` closes every idle keep-alive
connection at once, and a client that has just written its next request on one gets the close
instead of an answer (measured: 5 requests in one rollout at 150 requests/s). Traefik never
turns keep-alive off first. So the instance's entrypoint script (traefik/render-config.sh), on
SIGTERM, first marks itself draining (a file in the volume it shares with traefik-net), and this
server then gives that instance a `drain` middleware that answers `Connection: close`: every
client finishes its keep-alive connection cleanly on its next answer and opens a new one. Only
then does the script pass SIGTERM on to Traefik, which by then has no idle connection to cut.
Both web entrypoints carry `drain@http` (traefik/traefik.yml); while not draining it is a
headers middleware that changes nothing.

The same configuration gives each instance a router that says its name: `GET /__lb/instance`
from the namespace's own loopback (ClientIP 127.0.0.1: a client of the published ports comes
from the Docker bridge, never from there) is answered with `X-LB-Instance: <name>` on every
entrypoint the instances share. steer_listeners.py asks it which instance a listener slot
belongs to, to steer new connections away from a draining one.

Standard library only: it runs on the plain Python image, inside traefik-net's namespace, on its
loopback (only the two instances and traefik-net live there).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MARKS_DIR = Path("/run/lb")  # the volume shared with the instances
INSTANCE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
PATH = re.compile(r"^/dynamic/(?P<name>[^/]+)$")
IDENTITY_PATH = "/__lb/instance"
IDENTITY_HEADER = "X-LB-Instance"
# Above every route of the stack, below the range Traefik keeps for its own (MaxInt32 - 1000).
IDENTITY_PRIORITY = 2_000_000_000


def identity_router(entrypoints: list[str], tls: bool) -> dict[str, Any]:
    router: dict[str, Any] = {
        "entryPoints": entrypoints,
        "rule": f"ClientIP(`127.0.0.1`) && Path(`{IDENTITY_PATH}`)",
        "priority": IDENTITY_PRIORITY,
        "service": "noop@internal",
        "middlewares": ["lb-instance"],
    }
    if tls:
        router["tls"] = {}
    return router


def drain_config(name: str, draining: bool) -> dict[str, Any]:
    """The dynamic configuration of one instance: its `drain` middleware and the router that
    says its name."""
    # Traefik refuses an empty headers middleware ("cannot be a standalone element"); removing
    # a header no answer carries (an empty value removes it) changes nothing.
    header = {"Connection": "close"} if draining else {"X-Traefik-Draining": ""}
    return {
        "http": {
            "routers": {
                "lb-instance": identity_router(["web", "traefik"], tls=False),
                "lb-instance-tls": identity_router(["websecure"], tls=True),
            },
            "middlewares": {
                "drain": {"headers": {"customResponseHeaders": header}},
                "lb-instance": {"headers": {"customResponseHeaders": {IDENTITY_HEADER: name}}},
            },
        }
    }


def draining_instances(marks_dir: Path) -> set[str]:
    """The instances whose entrypoint script has marked them draining."""
    try:
        names = (p.name.removeprefix("drain-") for p in marks_dir.glob("drain-*"))
        return {n for n in names if INSTANCE_NAME.match(n)}
    except OSError:
        return set()


def is_draining(marks_dir: Path, name: str) -> bool:
    return (marks_dir / f"drain-{name}").exists()


def make_handler(marks_dir: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server calls
            match = PATH.match(self.path)
            if not match or not INSTANCE_NAME.match(match["name"]):
                self.send_error(404, "GET /dynamic/<instance name>")
                return
            name = match["name"]
            body = json.dumps(drain_config(name, is_draining(marks_dir, name))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # polled every half second by each instance: no log per poll

    return Handler


def serve_in_background(port: int, marks_dir: Path = MARKS_DIR) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(marks_dir))
    threading.Thread(target=server.serve_forever, name="drain-config", daemon=True).start()
    return server
