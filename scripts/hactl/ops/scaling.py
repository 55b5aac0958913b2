"""`hactl scale N`: add replicas and wait until they are in rotation, or drain and remove some.

Scaling down removes replicas that are out of rotation first, then the highest-numbered ones
(those Compose itself would pick), after draining them, so no request fails; Compose is then
told the new count and has nothing to do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from hactl.errors import HactlError
from hactl.ops.draining import StoppedReplica, drain_and_remove
from hactl.ops.preflight import require_no_label_drift, require_running
from hactl.ops.rotation import current_replicas, wait_count_in_rotation
from hactl.stack.replicas import Replica
from hactl.stack.running import RunningStack
from hactl.stack.web_service import compose_scale_web, record_state
from hactl.validation import validate_replica_count
from hactl.waiting import WaitFailedError


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


def scale(running: RunningStack, count: int, timeout: float) -> ScaleResult:
    validate_replica_count(count)
    require_running(running)
    start = time.monotonic()
    current = current_replicas(running)
    removed: list[StoppedReplica] = []
    if count < len(current):
        victims = pick_victims(current, count)
        try:
            removed = drain_and_remove(running, victims, timeout)
        except WaitFailedError as error:
            raise HactlError(
                f"could not drain {', '.join(victims)}: {error}",
                "they were told to drain but none was removed; see `hactl status`, then scale "
                "again (a drained replica stays out of rotation until it is removed)",
            ) from error
    if count > len(current):
        require_no_label_drift(running)
    started = compose_scale_web(running, count)
    record_state(running.stack, WEB_REPLICAS=str(count))
    try:
        wait_count_in_rotation(running, count, timeout)
    except WaitFailedError as error:
        raise HactlError(
            f"scaled to {count} but not all replicas are in rotation: {error.detail}",
            "see `hactl status` and `docker logs` of the replicas that are not healthy",
        ) from error
    return ScaleResult(len(current), count, started, removed, time.monotonic() - start)
