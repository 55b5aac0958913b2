"""`hactl selfheal`: the controller in the foreground; `pause` / `resume`: the maintenance switch.

Registered in hactl/cli.py. The record is the stack's rollout env file (`--rollout-env-file`,
HACTL_ROLLOUT_ENV_FILE, default `<project dir>/.env.rollout`), the same one `hactl scale` writes.
"""

from __future__ import annotations

import signal
import threading

import typer

from hactl.selfheal.config import ConfigError, config_from_env
from hactl.selfheal.controller import run
from hactl.selfheal.record import read_record, set_paused
from hactl.stack.project import Stack

app = typer.Typer(
    help="Keep the recorded web replicas running and restart hung ones (Kubernetes-style).",
    invoke_without_command=True,
)


def _stack(ctx: typer.Context) -> Stack:
    return ctx.find_root().obj.stack()  # hactl.cli.Options


@app.callback()
def selfheal(
    ctx: typer.Context,
    metrics_port: int | None = typer.Option(
        None, help="Prometheus metrics port [env SELFHEAL_METRICS_PORT, default 9109]"
    ),
    metrics_addr: str | None = typer.Option(
        None, help="metrics listen address [env SELFHEAL_METRICS_ADDR, default 127.0.0.1]"
    ),
    max_seconds: float | None = typer.Option(None, help="stop after this long (tests)"),
) -> None:
    """Run the controller in the foreground until Ctrl-C (settings: SELFHEAL_* variables)."""
    if ctx.invoked_subcommand is not None:
        return
    stack = _stack(ctx)
    try:
        cfg = config_from_env(
            project=stack.project,
            record_file=stack.rollout_env_file,
            default_replicas=int(stack.env_value("WEB_REPLICAS", "3")),
            metrics_port=metrics_port,
            metrics_addr=metrics_addr,
        )
    except (ConfigError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(cfg, stop, max_seconds)


@app.command()
def pause(ctx: typer.Context) -> None:
    """Maintenance: the controller keeps observing but changes nothing (SELFHEAL_PAUSED=1)."""
    path = _stack(ctx).rollout_env_file
    set_paused(path, True)
    typer.echo(f"self-healing paused (SELFHEAL_PAUSED=1 in {path})")


@app.command()
def resume(ctx: typer.Context) -> None:
    """End maintenance: the controller acts again from its next sync."""
    path = _stack(ctx).rollout_env_file
    set_paused(path, False)
    state = read_record(path)
    typer.echo(f"self-healing resumed (desired replicas: {state.replicas or 'WEB_REPLICAS'})")
