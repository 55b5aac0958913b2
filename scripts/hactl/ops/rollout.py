"""`hactl rollout`: start-first rolling update of `web`, with automatic rollback.

First the one-shot `migrate` service runs on the new image (skip with --no-migrate); if it fails,
nothing else happens.

Per batch (see rollout_plan.py): `up --no-recreate --scale web=<current + k>` with WEB_IMAGE set to
the new image for that one call (old containers are kept, k new ones start), wait until the new
ones are in rotation (Docker healthy AND Traefik UP), then drain, stop and remove k old ones.
If new replicas are not in rotation before `--timeout`: they are drained and removed, replicas
already replaced in earlier batches are rolled back to the old image the same way, and the
rollout fails with "rolled back: <reason>". On success WEB_IMAGE is recorded in the rollout env
file so that a later `make up-ha` keeps the new image.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from hactl.errors import HactlError, InvalidInputError, RolledBackError
from hactl.ops.draining import StoppedReplica, drain_and_remove
from hactl.ops.preflight import require_image, require_no_label_drift, require_running
from hactl.ops.rollout_plan import plan_rollout
from hactl.ops.rotation import wait_in_rotation
from hactl.selfheal.record import holds_operation_lease
from hactl.stack.project import WEB_SERVICE, container_number, process_env
from hactl.stack.replicas import web_containers
from hactl.stack.running import RunningStack
from hactl.stack.web_service import compose_scale_web, record_state, run_migrations
from hactl.validation import validate_batch_size, validate_timeout
from hactl.waiting import WaitFailedError

DEFAULT_IMAGE_REPOSITORY = "compose-ha/web"


@dataclass
class RolloutResult:
    image: str
    previous_image: str
    started: list[str] = field(default_factory=list)
    stopped: list[StoppedReplica] = field(default_factory=list)
    batch_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0


class BatchFailedError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def build_web_image(docker: DockerClient, current_image: str) -> str:
    """Build `web` through compose under a unique tag, so old and new images stay distinct."""
    repository = (
        current_image.rsplit(":", 1)[0]
        if ":" in current_image.rsplit("/", 1)[-1]
        else (current_image or DEFAULT_IMAGE_REPOSITORY)
    )
    tag = f"{repository}:rollout-{datetime.now(UTC):%Y%m%d%H%M%S}"
    with process_env({"WEB_IMAGE": tag}):
        # Build output goes to stderr: stdout stays clean for --json.
        for _source, line in docker.compose.build([WEB_SERVICE], stream_logs=True) or ():
            sys.stderr.write(line.decode(errors="replace"))
    require_image(docker, tag)
    return tag


def replace_replicas(
    running: RunningStack,
    old: Sequence[str],
    image: str,
    batch_size: int,
    timeout: float,
    result: RolloutResult,
    created: list[str],
) -> None:
    """Replace the `old` containers by new ones on `image`, batch by batch.

    `created` collects the new containers that made it into rotation (and replaced old ones),
    so that a caller can roll exactly those back.
    """
    numbers = {c.name: container_number(c) for c in web_containers(running)}
    plan = plan_rollout([(numbers.get(name, 0), name) for name in old], batch_size)
    for batch in plan.batches:
        batch_start = time.monotonic()
        total = len(web_containers(running))
        new = compose_scale_web(running, total + batch.size, image=image)
        try:
            wait_in_rotation(running, new, timeout)
        except WaitFailedError as error:
            drain_and_remove(running, new, timeout)
            raise BatchFailedError(
                f"new replicas {', '.join(new)} on {image} did not get into rotation: {error}"
            ) from error
        finally:
            result.started.extend(new)
        result.stopped.extend(drain_and_remove(running, batch.replace, timeout))
        created.extend(new)
        result.batch_seconds.append(time.monotonic() - batch_start)


def migrate_or_fail(running: RunningStack, image: str) -> None:
    try:
        run_migrations(running, image)
    except DockerException as error:
        raise HactlError(
            f"migrations on {image} failed, nothing was changed: {error.stderr or error}",
            "fix the migration (see the output above) and retry",
        ) from error


@holds_operation_lease("hactl rollout")  # the self-healing controller stands off meanwhile
def rollout(
    running: RunningStack,
    image: str | None,
    build: bool,
    batch_size: int,
    timeout: float,
    migrate: bool = True,
) -> RolloutResult:
    validate_batch_size(batch_size)
    validate_timeout(timeout)
    if bool(image) == build:
        raise InvalidInputError("give exactly one of --image TAG or --build")
    if image:
        require_image(running.docker, image)
    require_running(running)
    require_no_label_drift(running, image)
    old = sorted(web_containers(running), key=container_number)
    previous_image = old[0].config.image
    target = build_web_image(running.docker, previous_image) if build else str(image)
    result = RolloutResult(image=target, previous_image=previous_image)
    start = time.monotonic()
    if migrate:
        migrate_or_fail(running, target)
    replaced: list[str] = []
    try:
        replace_replicas(
            running,
            [c.name for c in old],
            target,
            batch_size,
            timeout,
            result,
            replaced,
        )
    except BatchFailedError as failure:
        try:
            if replaced:
                replace_replicas(
                    running,
                    replaced,
                    previous_image,
                    batch_size,
                    timeout,
                    result,
                    [],
                )
        except BatchFailedError as second:
            raise HactlError(
                f"rollout failed ({failure.reason}) and rolling back the replicas already "
                f"replaced failed too ({second.reason})",
                "check `hactl status`; the stack runs a mix of images",
            ) from second
        raise RolledBackError(
            f"rolled back: {failure.reason}",
            f"every replica runs {previous_image} again; fix the image "
            f"(`docker logs` of a new replica shows why) and retry",
        ) from failure
    finally:
        result.seconds = time.monotonic() - start
    record_state(running.stack, WEB_IMAGE=target, WEB_REPLICAS=str(len(old)))
    return result
