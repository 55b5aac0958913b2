"""`hactl scale N`: options and output; hactl.ops.scaling does the work."""

from __future__ import annotations

import typer

from hactl import output
from hactl.commands.common import Options
from hactl.ops.scaling import scale as run_scale
from hactl.stack.running import RunningStack


def scale(
    ctx: typer.Context,
    replicas: int = typer.Argument(..., help="desired number of web replicas"),
    timeout: float = typer.Option(120, "--timeout", help="seconds to wait for each step"),
) -> None:
    """Scale web to N replicas; removed replicas are drained first, new ones waited for."""
    opts: Options = ctx.obj
    result = run_scale(RunningStack.connect(opts.stack()), replicas, timeout)
    data = {
        "before": result.before,
        "after": result.after,
        "started": result.started,
        "removed": [{"name": s.name, "exit_code": s.exit_code} for s in result.removed],
        "seconds": round(result.seconds, 1),
    }
    if opts.json:
        output.print_json(data)
    else:
        output.console.print(
            f"scaled web {result.before} → {result.after} in {result.seconds:.1f}s; "
            f"started {', '.join(result.started) or 'none'}; removed "
            f"{', '.join(f'{s.name} (exit {s.exit_code})' for s in result.removed) or 'none'}"
        )
