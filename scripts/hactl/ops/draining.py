"""Take replicas out of service without failing a request: drain, wait for Traefik, stop, remove.

1. `python3 -m app.control drain` inside each replica: `/readyz` turns 503 while it keeps serving.
   (If that command is unavailable, SIGTERM does the same: the app drains on SIGTERM.)
2. Wait until Traefik's health check shows each one DOWN (or drops it).
3. `docker stop` with the container's own grace period: gunicorn finishes in-flight requests and
   the container exits 0. Then `docker rm`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from hactl.ops.rotation import wait_out_of_rotation
from hactl.stack.running import RunningStack

DRAIN_COMMAND = ("python3", "-m", "app.control", "drain")
DEFAULT_STOP_GRACE = 30


@dataclass(frozen=True)
class StoppedReplica:
    name: str
    exit_code: int | None


def start_draining(docker: DockerClient, names: Sequence[str]) -> None:
    for name in names:
        try:
            docker.container.execute(name, list(DRAIN_COMMAND))
        except DockerException:
            # no app.control in the image: SIGTERM drains too; gone or stopped: nothing to drain
            with contextlib.suppress(DockerException):
                docker.container.kill(name, signal="TERM")


def stop_and_remove(docker: DockerClient, names: Sequence[str]) -> list[StoppedReplica]:
    if not names:
        return []
    grace = max(
        (docker.container.inspect(n).config.stop_timeout or DEFAULT_STOP_GRACE) for n in names
    )
    with contextlib.suppress(DockerException):  # some already exited: exit codes read below
        docker.container.stop(list(names), time=grace)
    stopped = []
    for name in names:
        try:
            exit_code = docker.container.inspect(name).state.exit_code
        except DockerException:
            exit_code = None
        stopped.append(StoppedReplica(name, exit_code))
    docker.container.remove(list(names), force=True)
    return stopped


def drain_and_remove(
    running: RunningStack, names: Sequence[str], timeout: float
) -> list[StoppedReplica]:
    """Drain, wait until Traefik no longer routes to them, then stop gracefully and remove."""
    start_draining(running.docker, names)
    wait_out_of_rotation(running, names, timeout)
    return stop_and_remove(running.docker, names)
