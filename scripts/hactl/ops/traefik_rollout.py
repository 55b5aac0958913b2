"""`hactl rollout --service traefik`: replace the Traefik instances one at a time.

The two instances share the published ports with SO_REUSEPORT (docs/load-balancer.md), so one
can go while the other serves everything. Per instance, in TRAEFIK_SERVICES order:
1. `compose up --no-deps --force-recreate <instance>` (TRAEFIK_IMAGE set to the new image for
   that one call): Compose stops the old container with SIGTERM and Traefik drains it (closes
   its listeners, so the kernel sends new connections to the other instance; finishes the
   requests in flight; exits), then starts the new container in the same namespace.
2. Wait until the new instance's own API shows the web routers enabled and every healthy replica
   UP (hactl.stack.traefik_instances), then that it stays so for a moment (a crash right after
   start is not a success). Docker's health check is not asked: it pings, and /ping answers
   before the routes are loaded (traefik#10151).
3. Only then the next instance. If an instance does not get there within `timeout` (a bad
   image, a bad configuration it reads at start), it is recreated on the previous image and the
   rollout stops with "rolled back": the other instance was never touched and kept serving.

The same command with no --image restarts both instances on the image they run (to apply a
changed static configuration or environment one instance at a time).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from hactl.errors import HactlError, RolledBackError
from hactl.ops.preflight import require_image
from hactl.selfheal.record import holds_operation_lease
from hactl.stack.engine_view import ContainerView, listed, project_view, restart_count
from hactl.stack.project import TRAEFIK_SERVICES, process_env
from hactl.stack.running import RunningStack
from hactl.stack.traefik_instances import (
    healthy_web_ips,
    instance_containers,
    instance_problems,
    read_instance_view,
)
from hactl.stack.web_service import record_state
from hactl.validation import validate_timeout
from hactl.waiting import WaitAbortedError, WaitFailedError, WaitResult, wait_for

IMAGE_VARIABLE = "TRAEFIK_IMAGE"
# A new instance must stay healthy and routing this long before the next one is touched.
STEADY_S = 2.0
CRASH_LOOP_RESTARTS = 2

Mark = Callable[[str], None]


@dataclass
class InstanceReplaced:
    service: str
    old_container: str
    new_container: str
    seconds: float


@dataclass
class TraefikRolloutResult:
    image: str
    previous_image: str
    replaced: list[InstanceReplaced] = field(default_factory=list)
    seconds: float = 0.0


def _no_mark(_: str) -> None:
    return None


def require_all_serving(docker: DockerClient, project: str, timeout: float) -> dict[str, str]:
    """Every instance running and routing before one is taken away (waited for: a replica that
    just turned healthy reaches each instance's configuration a moment later); service -> image."""

    def check() -> tuple[bool, str]:
        problems = [
            f"{service}: {'; '.join(found)}"
            for service in TRAEFIK_SERVICES
            if (found := routing_problems(docker, project, service))
        ]
        return not problems, ", ".join(problems) or "every instance routes"

    try:
        wait_for("every Traefik instance routing", check, timeout, 0.5)
    except WaitFailedError as error:
        raise HactlError(
            f"not every Traefik instance routes: {error.detail}",
            "a rollout takes one instance away: start the others first (`make up-ha`)",
        ) from error
    found = instance_containers(docker, project)
    return {service: str(c.config.image) for service, c in found.items() if c is not None}


def routing_problems(
    docker: DockerClient, project: str, service: str, views: list[ContainerView] | None = None
) -> list[str]:
    """Why `service` does not route (empty: it does), from its own API. Docker's health check
    (a ping) is not asked: it answers before the routes are loaded, and on a loaded host its
    exec times out while the instance serves. The containers come from one engine API call
    (`views`, if the caller has them), not a `docker` process each: this runs every 0.5 s
    while the stack serves (hactl.stack.engine_view)."""
    views = project_view(docker, project) if views is None else views
    instance = next((v for v in listed(views, service) if v.running), None)
    if instance is None:
        return ["not running"]
    try:
        view = read_instance_view(docker, project, instance, views)
    except (DockerException, ValueError, KeyError, RuntimeError) as error:
        return [f"its API does not answer: {str(error).strip()[:200]}"]
    return instance_problems(view, healthy_web_ips(docker, project, views))


def recreate_instance(docker: DockerClient, service: str, image: str) -> None:
    """Stop (drain) and replace one instance's container; the image comes through the same
    variable the compose file reads, set for this one call only."""
    with process_env({IMAGE_VARIABLE: image}):
        docker.compose.up(
            [service],
            detach=True,
            force_recreate=True,
            dependencies=False,
            no_build=True,
            pull="never",
            quiet=True,
            color=False,
        )


def wait_instance_routing(
    docker: DockerClient, project: str, service: str, timeout: float
) -> WaitResult:
    """The instance's own API routes every healthy replica; aborts at once when it exited or
    crash-loops."""

    def check() -> tuple[bool, str]:
        views = project_view(docker, project)
        found = listed(views, service)
        if not found:
            raise WaitAbortedError(f"{service} is not running")
        restarts = restart_count(docker, found[0].id)
        if restarts >= CRASH_LOOP_RESTARTS:
            raise WaitAbortedError(f"{service} crash-loops ({restarts} restarts)")
        problems = routing_problems(docker, project, service, views)
        return not problems, "; ".join(problems) or f"{service} routes every healthy replica"

    return wait_for(f"Traefik instance {service} routing", check, timeout, 0.5)


def _bring_up(docker: DockerClient, project: str, service: str, image: str, timeout: float) -> str:
    """Recreate `service` on `image` and wait until it routes and stays so; its container name."""
    recreate_instance(docker, service, image)
    wait_instance_routing(docker, project, service, timeout)
    first = instance_containers(docker, project)[service]
    time.sleep(STEADY_S)
    wait_instance_routing(docker, project, service, timeout=STEADY_S * 2)
    now = instance_containers(docker, project)[service]
    if first is None or now is None or first.id != now.id:
        raise WaitAbortedError(f"{service} was replaced or restarted while being checked")
    return now.name


def rollout_traefik(
    docker: DockerClient,
    project: str,
    image: str | None,
    timeout: float,
    mark: Mark = _no_mark,
) -> TraefikRolloutResult:
    """Replace every instance, one at a time; RolledBackError if one never routes."""
    images = require_all_serving(docker, project, timeout)
    previous_image = images[TRAEFIK_SERVICES[0]]
    target = image or previous_image
    result = TraefikRolloutResult(image=target, previous_image=previous_image)
    start = time.monotonic()
    try:
        for service in TRAEFIK_SERVICES:
            old = instance_containers(docker, project)[service]
            # The name now: the object re-inspects on access, and the container will be gone.
            old_name = old.name if old is not None else ""
            began = time.monotonic()
            mark(f"replace {service}")
            try:
                new = _bring_up(docker, project, service, target, timeout)
            except (WaitFailedError, DockerException) as failure:  # e.g. an image that exits
                mark(f"{service} failed: rolling back")
                done = [r.service for r in result.replaced]
                _roll_back(docker, project, [service, *done], images, timeout, failure)
            mark(f"{service} routing")
            result.replaced.append(
                InstanceReplaced(service, old_name, new, time.monotonic() - began)
            )
    finally:
        result.seconds = time.monotonic() - start
    return result


def _roll_back(
    docker: DockerClient,
    project: str,
    services: list[str],
    images: dict[str, str],
    timeout: float,
    failure: Exception,
) -> None:
    """Bring `services` (the failed instance first, then those already replaced) back on the
    image each ran before, one at a time, and raise RolledBackError."""
    failed = services[0]
    untouched = [s for s in TRAEFIK_SERVICES if s not in services]
    for service in services:
        try:
            _bring_up(docker, project, service, images[service], timeout)
        except (WaitFailedError, DockerException) as second:
            raise HactlError(
                f"Traefik instance {failed} did not route on the new image or configuration "
                f"({failure}), and {service} did not route on {images[service]} either ({second})",
                f"check `docker compose logs {service}`; the other instance(s) still serve",
            ) from second
    spared = f"; {', '.join(untouched)} never touched" if untouched else ""
    raise RolledBackError(
        f"rolled back: Traefik instance {failed} did not route on the new image or "
        f"configuration: {failure}",
        f"{', '.join(services)} run(s) the previous image again{spared}; "
        f"`docker compose logs {failed}` shows why",
    ) from failure


@holds_operation_lease("hactl rollout --service traefik")  # self-healing stands off meanwhile
def rollout_traefik_stack(
    running: RunningStack, image: str | None, timeout: float
) -> TraefikRolloutResult:
    """The verb's operation: checks the input, rolls out, records the image for `make up-ha`."""
    validate_timeout(timeout)
    if image:
        require_image(running.docker, image)
    result = rollout_traefik(running.docker, running.project, image, timeout)
    if image:
        record_state(running.stack, **{IMAGE_VARIABLE: image})
    return result
