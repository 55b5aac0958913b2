"""`hactl autoscale`: options; hactl.autoscale.controller runs the loop."""

from __future__ import annotations

from pathlib import Path

import typer

from hactl.autoscale.controller import run as run_autoscale
from hactl.autoscale.policy import DEFAULT_POLICY_FILE, load_policy
from hactl.commands.common import Options


def autoscale(
    ctx: typer.Context,
    policy: Path = typer.Option(
        DEFAULT_POLICY_FILE,
        "--policy",
        envvar="HACTL_AUTOSCALE_POLICY",
        help="HPA policy file (relative paths: cwd, then the project directory)",
    ),
    metrics_port: int = typer.Option(
        9108,
        "--metrics-port",
        envvar="HACTL_AUTOSCALE_METRICS_PORT",
        help="serve the autoscaler's Prometheus metrics here (0: off)",
    ),
    metrics_addr: str = typer.Option(
        "127.0.0.1",
        "--metrics-addr",
        envvar="HACTL_AUTOSCALE_METRICS_ADDR",
        help="address for the metrics port (0.0.0.0 inside a container)",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="decide and log, never scale"),
    max_seconds: float = typer.Option(
        0, "--max-seconds", help="stop after this many seconds (0: until SIGTERM/SIGINT)"
    ),
) -> None:
    """Scale web like a Kubernetes HPA: CPU/memory (and requests/s) against targets, with the
    policy's stabilization windows and rate limits; one JSON line per decision on stdout."""
    opts: Options = ctx.obj
    stack = opts.stack()
    path = policy if policy.is_absolute() or policy.exists() else stack.project_dir / policy
    run_autoscale(stack, load_policy(path), metrics_port, metrics_addr, dry_run, max_seconds)
