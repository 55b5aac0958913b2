"""Operational timings: scaling until in rotation, a rolling update, an unready replica leaving.

Scaling and rollouts go through hactl's own `scale` and `rollout` (drain-aware, waiting for the
truth: Docker healthy AND Traefik UP), so what is measured is what an operator waits for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from hactl.errors import HactlError
from hactl.ops.rollout import rollout as run_rollout
from hactl.ops.scaling import scale as run_scale
from hactl.stack.endpoints import Endpoints
from hactl.stack.project import container_number
from hactl.stack.replicas import container_facts, web_containers
from hactl.stack.running import RunningStack
from hactl.stack.traefik_api import ServerState, parse_server_states, states_by_ip
from hactl.waiting import WaitTimeoutError, wait_for

CONTROL = ("python3", "-m", "app.control")
ROLLOUT_TAGS = ("bench-rollout-a", "bench-rollout-b")


@dataclass
class ScaleTiming:
    before: int
    after: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RolloutTiming:
    image: str
    previous_image: str
    replicas: int
    seconds: float
    batch_seconds: list[float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class UnreadyTiming:
    replica: str
    exec_seconds: float  # how long `docker exec ... unready` itself took
    leave_seconds: float  # from the start of that exec until no Traefik service routes to it
    return_seconds: float  # from the start of `ready` until every service lists it UP again

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def timed_scale(running: RunningStack, count: int, timeout: float) -> ScaleTiming:
    # Connected now: the env files as they are now (a timed rollout wrote .env.rollout).
    result = run_scale(RunningStack.connect(running.stack), count, timeout)
    return ScaleTiming(result.before, result.after, round(result.seconds, 2))


def rollout_tag(current_image: str) -> str:
    """A new tag for the same image, alternating between two so that runs do not pile up tags."""
    repository = (
        current_image.rsplit(":", 1)[0]
        if ":" in current_image.rsplit("/", 1)[-1]
        else current_image
    )
    tag = ROLLOUT_TAGS[1] if current_image.endswith(":" + ROLLOUT_TAGS[0]) else ROLLOUT_TAGS[0]
    return f"{repository}:{tag}"


def timed_rollout(running: RunningStack, timeout: float, image: str | None = None) -> RolloutTiming:
    """Roll out `image`, or the running image under a new tag (same bits, new containers)."""
    replicas = sorted(web_containers(running), key=container_number)
    if not replicas:
        raise HactlError("no web replicas to roll out", "start the stack with `make up-ha`")
    if image is None:
        image = rollout_tag(replicas[0].config.image)
        running.docker.image.tag(replicas[0].image, image)
    now = RunningStack.connect(running.stack)
    result = run_rollout(now, image, build=False, batch_size=1, timeout=timeout, migrate=True)
    return RolloutTiming(
        result.image,
        result.previous_image,
        len(replicas),
        round(result.seconds, 2),
        [round(s, 2) for s in result.batch_seconds],
    )


def _routed(endpoints: Endpoints, ips: set[str]) -> tuple[bool, bool]:
    """(any service still routes to one of `ips`, every service that lists them has one UP).
    Only the services of this replica count: the stack has others (the frontend's)."""
    services = endpoints.traefik().http_services()
    per_service = [
        states
        for s in services
        if any(ip in (states := states_by_ip(parse_server_states(s))) for ip in ips)
    ]
    up_somewhere = any(states.get(ip) is ServerState.UP for states in per_service for ip in ips)
    up_everywhere = bool(per_service) and all(
        any(states.get(ip) is ServerState.UP for ip in ips) for states in per_service
    )
    return up_somewhere, up_everywhere


def _poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """wait_for, polled every 50 ms: the times measured here are a few hundred ms."""
    try:
        wait_for(what, lambda: (condition(), "not yet"), timeout, interval=0.05)
    except WaitTimeoutError as error:
        raise HactlError(
            str(error), "see `hactl status`; the replica may need `python3 -m app.control ready`"
        ) from error


def timed_unready(running: RunningStack, name: str, timeout: float) -> UnreadyTiming:
    """Flip one replica unready, time until Traefik stops routing to it; then ready again."""
    docker, endpoints = running.docker, running.endpoints
    ips = set(container_facts(docker.container.inspect(name)).ips)
    start = time.monotonic()
    docker.container.execute(name, [*CONTROL, "unready"])
    exec_seconds = time.monotonic() - start
    try:
        _poll(lambda: not _routed(endpoints, ips)[0], timeout, f"Traefik to drop {name}")
        leave = time.monotonic() - start
    finally:
        back_start = time.monotonic()
        docker.container.execute(name, [*CONTROL, "ready"])
    _poll(lambda: _routed(endpoints, ips)[1], timeout, f"Traefik to route to {name} again")
    return UnreadyTiming(
        name, round(exec_seconds, 3), round(leave, 3), round(time.monotonic() - back_start, 3)
    )
