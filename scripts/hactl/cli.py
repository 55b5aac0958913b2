"""The `hactl` command line. The root only holds the global options and registers the verbs;
each verb is a thin module in hactl.commands, run under the one error policy (commands.common)."""

from __future__ import annotations

from pathlib import Path

import typer

from hactl.commands.autoscale import autoscale
from hactl.commands.bench import bench
from hactl.commands.chaos import chaos
from hactl.commands.common import Options, with_error_policy
from hactl.commands.rollout import rollout
from hactl.commands.scale import scale
from hactl.commands.status import status
from hactl.commands.verify import verify

app = typer.Typer(
    help="Operate a compose-ha stack: status, scale, rollout, verify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    project: str | None = typer.Option(
        None,
        "--project",
        "-p",
        help="compose project name [env COMPOSE_PROJECT_NAME, default compose-ha]",
    ),
    compose_file: list[Path] = typer.Option(
        [],
        "--file",
        "-f",
        help="compose file (repeatable); default: the ones the running stack was started with",
    ),
    env_file: list[Path] = typer.Option(
        [],
        "--env-file",
        help="env file (repeatable); default: the ones the running stack was started with",
    ),
    rollout_env_file: Path | None = typer.Option(
        None,
        "--rollout-env-file",
        envvar="HACTL_ROLLOUT_ENV_FILE",
        help="where hactl records WEB_IMAGE/WEB_REPLICAS [default <project dir>/.env.rollout]",
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output on stdout"),
) -> None:
    ctx.obj = Options(project, compose_file, env_file, rollout_env_file, as_json)


for verb in (status, scale, rollout, verify, autoscale, bench, chaos):
    app.command(verb.__name__)(with_error_policy(verb))
