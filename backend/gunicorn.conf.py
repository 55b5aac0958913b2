"""gunicorn settings for the backend: uvicorn workers, graceful drain on SIGTERM, multi-worker
Prometheus metrics. Every value comes from the environment with a safe default."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app import state  # stdlib-only module; needs the path above


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


STATE_DIR = Path(os.environ.get("APP_STATE_DIR", "/run/app"))
# Set before any worker imports prometheus_client; an empty dir per start (see on_starting).
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(STATE_DIR / "prometheus"))
MULTIPROC_DIR = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])

# Time /readyz answers 503 while the workers keep serving, before gunicorn starts to stop.
# Traefik's active health check probes every 1 s and its provider throttle is 0.2 s (Docker's
# HEALTHCHECK: 1 s x 2 retries); 5 s lets the balancer see the 503 and drop us with margin.
DRAIN_SECONDS = _env_float("DRAIN_SECONDS", 5.0)

bind = os.environ.get("WEB_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_WORKERS", "2"))
# uvicorn's worker, sending each small response in one write (app/server.py).
worker_class = "app.server.Worker"
# After the drain: how long in-flight requests may take before workers are killed.
# stop_grace_period in compose must exceed DRAIN_SECONDS + graceful_timeout.
graceful_timeout = int(_env_float("GRACEFUL_TIMEOUT", 15))
timeout = int(_env_float("WORKER_TIMEOUT", 30))
# Idle keep-alive must outlive Traefik's idle connection timeout to the backend (30 s, set by
# the lead in traefik's serversTransport): otherwise we close a connection Traefik is about to
# reuse and the request racing that close becomes a 502.
keepalive = int(_env_float("KEEPALIVE_SECONDS", 75))
# Behind Traefik the peer is always the proxy: trust its X-Forwarded-* so logs show the client.
# Only Traefik (or 127.0.0.1 in the single-replica setup) can reach the port.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
# Heartbeat files in RAM: works with a read-only root filesystem and avoids disk stalls.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Our app writes one JSON access line per request itself.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# The control socket would need a writable $HOME or XDG_RUNTIME_DIR; we do not use it.
control_socket_disable = True
proc_name = "compose-ha-web"

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s %(process)d",
            "timestamp": "time",
            "rename_fields": {
                "levelname": "level",
                "name": "logger",
                "process": "pid",
            },
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        }
    },
    "root": {"level": loglevel.upper(), "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
    },
}


def on_starting(server) -> None:  # type: ignore[no-untyped-def]
    # A fresh master is not draining, and old workers' metric files would be counted forever.
    try:
        state.clear_flag(state.DRAINING, STATE_DIR)
    except OSError as exc:  # e.g. a read-only state dir: report, do not refuse to start
        server.log.warning("cannot clear %s/draining: %s", STATE_DIR, exc)
    shutil.rmtree(MULTIPROC_DIR, ignore_errors=True)
    MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
    _install_drain(server)


def _install_drain(server) -> None:  # type: ignore[no-untyped-def]
    """First SIGTERM: write `draining` (so /readyz is 503), keep serving for DRAIN_SECONDS (or
    what is left of an operator's earlier `app.control drain`), then run gunicorn's own
    graceful stop (close listeners, let in-flight requests finish, exit 0).

    gunicorn's signal handler only queues the signal; the main loop then calls
    `server.handle_term`, which we replace on the instance. The timer re-sends SIGTERM with
    `released` set, so the second pass goes to the original handler in the main loop."""
    original = server.handle_term
    phase = {"draining": False, "released": False}

    def release() -> None:
        phase["released"] = True
        os.kill(os.getpid(), signal.SIGTERM)

    def handle_term() -> None:
        if phase["released"]:
            original()  # raises StopIteration: gunicorn's graceful stop
            return
        if phase["draining"]:
            server.log.info("already draining; SIGINT or SIGQUIT stops at once")
            return
        phase["draining"] = True
        remaining = state.drain_remaining(DRAIN_SECONDS, STATE_DIR)
        try:
            if not state.is_set(state.DRAINING, STATE_DIR):
                state.set_flag(state.DRAINING, state.BY_SIGTERM, STATE_DIR)
        except OSError as exc:
            # Readiness cannot flip, but stopping gracefully still beats crashing the master.
            server.log.error("cannot write %s/draining: %s", STATE_DIR, exc)
        server.log.info("SIGTERM: draining for %.1fs before graceful stop", remaining)
        timer = threading.Timer(remaining, release)
        timer.daemon = True
        timer.start()

    server.handle_term = handle_term


def child_exit(server, worker) -> None:  # type: ignore[no-untyped-def]
    # Drop the dead worker's live gauges from the merged view (livesum/livemax).
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
