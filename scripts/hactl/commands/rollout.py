"""`hactl rollout`: options and output; hactl.ops.rollout (rolling update) and hactl.ops.canary
(`--canary`) do the work."""

from __future__ import annotations

import typer
from rich.table import Table

from hactl import output
from hactl.commands.common import Options
from hactl.errors import InvalidInputError
from hactl.ops.canary import (
    CanaryAbortedError,
    CanaryResult,
    abort_canary,
    canary_rollout,
    settings_from_options,
)
from hactl.ops.canary_analysis import Thresholds
from hactl.ops.rollout import rollout as run_rollout
from hactl.ops.traefik_rollout import TraefikRolloutResult, rollout_traefik_stack
from hactl.stack.running import RunningStack

DEFAULTS = Thresholds()


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
    canary: str | None = typer.Option(
        None,
        "--canary",
        help="canary steps, percent of new clients on the new image, ending at 100 "
        "(e.g. 10,50,100; 100 alone is blue/green); each step is judged on Traefik's metrics",
    ),
    step_seconds: float = typer.Option(
        60, "--step-seconds", help="canary: how long each step is watched before promoting it"
    ),
    max_error_ratio: float = typer.Option(
        DEFAULTS.max_error_ratio,
        "--max-error-ratio",
        help="canary: tolerated excess of its 5xx ratio over the stable side's (0.01 = 1 point)",
    ),
    max_p99_ms: float = typer.Option(
        DEFAULTS.max_p99_ms,
        "--max-p99-ms",
        help=f"canary: p99 ceiling (also aborted at {DEFAULTS.max_p99_ratio:g} x stable's p99)",
    ),
    min_requests: int = typer.Option(
        DEFAULTS.min_requests,
        "--min-requests",
        help="canary: requests it must have answered before a step is promoted",
    ),
    abort: bool = typer.Option(
        False, "--abort-canary", help="switch all traffic back and remove a running canary"
    ),
    service: str = typer.Option(
        "web", "--service", help="web (the replicas) or traefik (its instances, one at a time)"
    ),
) -> None:
    """Start-first rolling update of web, a canary judged on its own traffic (--canary), or
    the Traefik instances one at a time (--service traefik); rolls back by itself if the new
    image never gets ready."""
    opts: Options = ctx.obj
    if service not in ("web", "traefik"):
        raise InvalidInputError(f"unknown service {service!r}: choose web or traefik")
    if service == "traefik" and (canary is not None or abort):
        raise InvalidInputError("--canary and --abort-canary are for web, not traefik")
    if abort:
        stopped = abort_canary(RunningStack.connect(opts.stack()))
        output.console.print(f"canary removed ({len(stopped)} replicas); all traffic on web")
        return
    if canary is not None:
        if build or not image:
            raise InvalidInputError("--canary needs --image TAG (build the image first)")
        settings = settings_from_options(
            canary, step_seconds, max_error_ratio, max_p99_ms, min_requests, batch, timeout, migrate
        )
        running = RunningStack.connect(opts.stack())
        try:
            result = canary_rollout(running, image, settings)
        except CanaryAbortedError as aborted:
            _print_canary(aborted.result, opts.json)
            raise
        _print_canary(result, opts.json)
        return
    running = RunningStack.connect(opts.stack())
    if service == "traefik":
        if build:
            raise InvalidInputError("--build is for web; give --image for traefik (or nothing)")
        _print_traefik(opts, rollout_traefik_stack(running, image, timeout))
        return
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


def _print_canary(result: CanaryResult, as_json: bool) -> None:
    if as_json:
        output.print_json(result.as_dict())
        return
    table = Table(title=f"canary {result.image} (stable {result.previous_image})")
    for column in (
        "step",
        "share",
        "seconds",
        "canary 5xx",
        "canary p99",
        "stable 5xx",
        "stable p99",
        "decision",
    ):
        table.add_column(column)
    for step in result.steps:
        row = step.as_dict()
        c, s = row["canary"], row["stable"]
        table.add_row(
            str(row["step"]),
            f"{row['weight']} %",
            f"{row['seconds']:.0f}",
            f"{c['errors_5xx']}/{c['requests']}",
            "-" if c["p99_ms"] is None else f"{c['p99_ms']:.0f} ms",
            f"{s['errors_5xx']}/{s['requests']}",
            "-" if s["p99_ms"] is None else f"{s['p99_ms']:.0f} ms",
            "; ".join([row["decision"], *row["reasons"]]),
        )
    output.console.print(table)
    verb = "promoted" if result.promoted else "aborted"
    output.console.print(f"canary {verb} after {result.seconds:.1f}s")


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
