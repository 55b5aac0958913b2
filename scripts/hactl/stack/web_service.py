"""Compose calls on the `web` service, and where hactl records what it changed.

What Compose 5.6.1 does here (measured with real runs, engine 20.10):
- `up --no-recreate --scale web=N` keeps every existing container even when its config differs
  from the current model (another image), and creates new ones from the current model. So a new
  image is started beside the old ones by setting WEB_IMAGE for that one call.
- New containers get the next numbers after the highest in use; gaps are not refilled.
- When scaling down, Compose picks the victims itself (with `--no-recreate`: the highest numbers;
  without it: containers with an outdated config first) and stops them without any drain.
  So hactl never lets Compose scale down: it drains, stops and removes the replicas it chose, and
  only then calls `up --scale web=<remaining>`, which then has nothing to do.
- A plain `up` (recreate allowed) recreates every container whose config differs, all at once:
  a full outage. That is why hactl records WEB_IMAGE and WEB_REPLICAS in the rollout env file
  (`.env.rollout`, read by the Makefile after `.env.images`): a later `make up-ha` sees a model that
  matches the running containers and changes nothing.
- Compose counts stopped containers of the service as replicas and restarts them rather than
  creating new ones, so hactl removes exited `web` containers before asking for more.
- `--no-deps` keeps the call from touching postgres, the one-shot migrate or traefik;
  `--pull never --no-build` keeps it from fetching or building anything.
"""

from __future__ import annotations

from collections.abc import Mapping

from python_on_whales import DockerClient

from hactl.stack.envfile import update_env_file
from hactl.stack.project import WEB_SERVICE, Stack, process_env, project_containers
from hactl.stack.running import RunningStack

MIGRATE_SERVICE = "migrate"
STATE_HEADER = "written by hactl: what `hactl rollout` / `hactl scale` last set (keep it)"


def web_names(running: RunningStack, service: str = WEB_SERVICE) -> set[str]:
    return {c.name for c in project_containers(running.docker, running.project, service)}


def remove_stopped_web(running: RunningStack, service: str = WEB_SERVICE) -> list[str]:
    """Remove exited/created `web` containers: Compose would restart them (old config and all)
    instead of creating new ones when asked for more replicas. They serve nothing."""
    stopped = [
        c
        for c in project_containers(running.docker, running.project, service, include_stopped=True)
        if c.state.status in ("exited", "created", "dead")
    ]
    if stopped:
        running.docker.container.remove(stopped, force=True)
    return [c.name for c in stopped]


def compose_scale_web(running: RunningStack, count: int, image: str | None = None) -> list[str]:
    """`up --no-recreate --no-deps --scale web=count`; returns the names of created containers."""
    overrides: Mapping[str, str] = {"WEB_IMAGE": image} if image else {}
    return compose_scale(
        running, running.docker, WEB_SERVICE, count, {**overrides, "WEB_REPLICAS": str(count)}
    )


def compose_scale(
    running: RunningStack,
    docker: DockerClient,
    service: str,
    count: int,
    variables: Mapping[str, str],
) -> list[str]:
    """`up --no-recreate --no-deps --scale <service>=count` through `docker` (whose compose files
    define the service) with `variables` set; returns the names of created containers."""
    remove_stopped_web(running, service)
    before = web_names(running, service)
    with process_env(variables):
        docker.compose.up(
            services=[service],
            scales={service: count},
            detach=True,
            recreate=False,
            dependencies=False,
            no_build=True,
            pull="never",
            quiet=True,
            color=False,
        )
    return sorted(web_names(running, service) - before)


def compose_services(running: RunningStack) -> set[str]:
    model = running.docker.compose.config(return_json=True)
    return set(model.get("services", {})) if isinstance(model, dict) else set()


def run_migrations(running: RunningStack, image: str) -> bool:
    """Run the one-shot `migrate` service on `image` (`run --rm --no-deps`); False if none.

    Migrations are expand-only and take an advisory lock, so running them while the old
    replicas serve is safe; the new image's replicas need them to pass /readyz.
    """
    if MIGRATE_SERVICE not in compose_services(running):
        return False
    with process_env({"WEB_IMAGE": image}):
        running.docker.compose.run(MIGRATE_SERVICE, remove=True, dependencies=False, tty=False)
    return True


def record_state(stack: Stack, **variables: str) -> None:
    update_env_file(stack.rollout_env_file, variables, header=STATE_HEADER)
