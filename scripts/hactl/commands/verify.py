"""`hactl verify`: options and the pass/fail table; hactl.ops.verify runs the checks."""

from __future__ import annotations

import typer

from hactl import output
from hactl.commands.common import Options
from hactl.ops.preflight import require_engine
from hactl.ops.verify import run_checks
from hactl.stack.running import RunningStack


def verify(
    ctx: typer.Context,
    replicas: int | None = typer.Option(
        None, "--replicas", help="desired replica count [default WEB_REPLICAS, else 3]"
    ),
    tolerance: float = typer.Option(
        0.5, "--tolerance", help="allowed deviation of each replica's share from the mean"
    ),
) -> None:
    """Pass/fail table of the stack's HA properties; exits non-zero if any check fails."""
    opts: Options = ctx.obj
    running = RunningStack.connect(opts.stack())
    require_engine(running.docker)
    desired = (
        replicas if replicas is not None else int(running.stack.env_value("WEB_REPLICAS", "3"))
    )
    checks = run_checks(running, desired, tolerance)
    failed = [c for c in checks if not c.passed]
    if opts.json:
        output.print_json(
            {
                "project": running.project,
                "passed": not failed,
                "checks": [c.as_dict() for c in checks],
            }
        )
    else:
        output.console.print(output.checks_table(checks, f"{running.project}: verify"))
    if failed:
        output.fail("failed: " + ", ".join(c.name for c in failed))
        raise typer.Exit(1)
