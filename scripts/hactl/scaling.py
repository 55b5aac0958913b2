"""`hactl scale N`: add replicas and wait until they are in rotation, or drain and remove some.

Scaling down removes replicas that are out of rotation first, then the highest-numbered ones
(those Compose itself would pick), after draining them, so no request fails; Compose is then
told the new count and has nothing to do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from hactl.draining import StoppedReplica, drain_and_remove
from hactl.endpoints import stack_endpoints
from hactl.errors import HactlError
from hactl.preflight import require_no_label_drift, require_running
from hactl.replicas import Replica
from hactl.rotation import current_replicas, wait_count_in_rotation
from hactl.selfheal.record import holds_operation_lease
from hactl.stack import Stack
from hactl.validation import validate_replica_count
from hactl.waiting import WaitFailedError
from hactl.web_service import compose_scale_web, record_state


@dataclass(frozen=True)
class ScaleResult:
    before: int
    after: int
    started: list[str]
    removed: list[StoppedReplica]
    seconds: float


def pick_victims(replicas: Sequence[Replica], count: int) -> list[str]:
    """Which replicas to remove to keep `count`: out of rotation first, then highest number."""
    ranked = sorted(replicas, key=lambda r: (r.in_rotation, -r.number))
    return [r.name for r in ranked[: max(len(replicas) - count, 0)]]


@holds_operation_lease("hactl scale")  # the self-healing controller stands off meanwhile
def scale(stack: Stack, count: int, timeout: float) -> ScaleResult:
    validate_replica_count(count)
    docker = stack.docker()
    require_running(stack, docker)
    endpoints = stack_endpoints(stack)
    start = time.monotonic()
    current = current_replicas(stack, endpoints, docker)
    removed: list[StoppedReplica] = []
    if count < len(current):
        victims = pick_victims(current, count)
        removed = drain_and_remove(stack, endpoints, victims, timeout, docker)
    if count > len(current):
        require_no_label_drift(stack, docker)
    started = compose_scale_web(stack, count, docker=docker)
    record_state(stack, WEB_REPLICAS=str(count))
    try:
        wait_count_in_rotation(stack, endpoints, count, timeout, docker)
    except WaitFailedError as error:
        raise HactlError(
            f"scaled to {count} but not all replicas are in rotation: {error.detail}",
            "see `hactl status` and `docker logs` of the replicas that are not healthy",
        ) from error
    return ScaleResult(len(current), count, started, removed, time.monotonic() - start)
