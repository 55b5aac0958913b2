"""`hactl rollout`: options and output; hactl.ops.rollout does the work."""

from __future__ import annotations

import typer

from hactl import output
from hactl.commands.common import Options
from hactl.errors import InvalidInputError
from hactl.ops.rollout import rollout as run_rollout
from hactl.ops.traefik_rollout import TraefikRolloutResult, rollout_traefik_stack
from hactl.stack.running import RunningStack


def rollout(
    ctx: typer.Context,
    image: str | None = typer.Option(None, "--image", help="image to roll out (must exist)"),
    build: bool = typer.Option(False, "--build", help="build web's image through compose first"),
    batch: int = typer.Option(1, "--batch", help="replicas replaced per batch"),
    timeout: float = typer.Option(
        120, "--timeout", help="seconds for new replicas to get in rotation before rolling back"
    ),
    migrate: bool = typer.Option(
        True, "--migrate/--no-migrate", help="run the migrate service on the new image first"
    ),
    service: str = typer.Option(
        "web", "--service", help="web (the replicas) or traefik (its instances, one at a time)"
    ),
) -> None:
    """Rolling update of web (start-first) or of the Traefik instances (one at a time); rolls
    back by itself if the new image never gets ready."""
    opts: Options = ctx.obj
    running = RunningStack.connect(opts.stack())
    if service == "traefik":
        if build:
            raise InvalidInputError("--build is for web; give --image for traefik (or nothing)")
        _print_traefik(opts, rollout_traefik_stack(running, image, timeout))
        return
    if service != "web":
        raise InvalidInputError(f"unknown service {service!r}: choose web or traefik")
    result = run_rollout(running, image, build, batch, timeout, migrate)
    data = {
        "image": result.image,
        "previous_image": result.previous_image,
        "started": result.started,
        "stopped": [{"name": s.name, "exit_code": s.exit_code} for s in result.stopped],
        "batch_seconds": [round(s, 1) for s in result.batch_seconds],
        "seconds": round(result.seconds, 1),
    }
    if opts.json:
        output.print_json(data)
    else:
        output.console.print(
            f"rolled out {result.image} (was {result.previous_image}) to "
            f"{len(result.started)} replicas in {result.seconds:.1f}s "
            f"({len(result.batch_seconds)} batches)"
        )
    unclean = [s for s in result.stopped if s.exit_code != 0]
    if unclean:
        output.warn(
            "old replicas did not exit 0: "
            + ", ".join(f"{s.name} (exit {s.exit_code})" for s in unclean)
        )


def _print_traefik(opts: Options, result: TraefikRolloutResult) -> None:
    data = {
        "service": "traefik",
        "image": result.image,
        "previous_image": result.previous_image,
        "replaced": [
            {
                "service": r.service,
                "old": r.old_container,
                "new": r.new_container,
                "seconds": round(r.seconds, 1),
            }
            for r in result.replaced
        ],
        "seconds": round(result.seconds, 1),
    }
    if opts.json:
        output.print_json(data)
        return
    output.console.print(
        f"rolled out Traefik {result.image} (was {result.previous_image}) to "
        f"{len(result.replaced)} instances, one at a time, in {result.seconds:.1f}s"
    )
