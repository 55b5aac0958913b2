"""`hactl status`: one row per web replica (Docker facts joined with Traefik's view)."""

from __future__ import annotations

import typer

from hactl import output
from hactl.commands.common import Options
from hactl.ops.preflight import require_engine
from hactl.stack.project import TRAEFIK_SERVICES, project_containers
from hactl.stack.replicas import collect_replicas
from hactl.stack.running import RunningStack
from hactl.stack.traefik_api import TraefikApiError

SPOF_WARNING = (
    "a single Traefik is a single point of failure: if it dies, every replica is "
    "unreachable until Docker restarts it (the HA stack runs two: start the other with "
    "`make up-ha`; docs/load-balancer.md)"
)


def status(ctx: typer.Context) -> None:
    """One row per web replica: image, version, Docker health, Traefik state, uptime, restarts."""
    opts: Options = ctx.obj
    running = RunningStack.connect(opts.stack())
    require_engine(running.docker)
    try:
        traefik = running.traefik.server_states()
        traefik_error = ""
    except TraefikApiError as error:
        traefik, traefik_error = {}, str(error)
    replicas = collect_replicas(running, traefik, probe_versions=True)
    project = running.project
    traefiks = sum(
        len(project_containers(running.docker, project, service)) for service in TRAEFIK_SERVICES
    )
    if not replicas:
        output.fail(
            f"stack {project!r} is not running: no web replicas",
            "start it with `make up-ha` (or pass --project for another stack)",
        )
        raise typer.Exit(1)
    if opts.json:
        output.print_json(
            {
                "project": project,
                "replicas": [r.as_dict() for r in replicas],
                "traefik_instances": traefiks,
                "traefik_error": traefik_error or None,
                "single_point_of_failure": traefiks <= 1,
            }
        )
    else:
        output.console.print(
            output.replicas_table(
                replicas,
                f"{project}: {sum(r.in_rotation for r in replicas)}/"
                f"{len(replicas)} web replicas in rotation",
            )
        )
    if traefik_error:
        output.warn(traefik_error)
    if traefiks <= 1:
        output.warn(SPOF_WARNING)
