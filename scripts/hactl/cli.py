"""The `hactl` command line: status, scale, rollout, verify."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer
from python_on_whales.exceptions import DockerException

from hactl import output
from hactl.autoscale import run as run_autoscale
from hactl.autoscale_policy import DEFAULT_POLICY_FILE, load_policy
from hactl.bench_cli import bench as bench_command
from hactl.chaos_cli import chaos as chaos_command
from hactl.endpoints import stack_endpoints
from hactl.errors import HactlError
from hactl.preflight import require_engine
from hactl.replicas import collect_replicas
from hactl.rollout import rollout as run_rollout
from hactl.scaling import scale as run_scale
from hactl.selfheal.cli import app as selfheal_app
from hactl.stack import Stack, discover_stack, project_containers
from hactl.traefik_api import TraefikApiError
from hactl.verify import run_checks
from hactl.waiting import WaitFailedError

app = typer.Typer(
    help="Operate a compose-ha stack: status, scale, rollout, verify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

SPOF_WARNING = (
    "a single Traefik is a single point of failure: if it dies, every replica is "
    "unreachable until Docker restarts it (run two behind a VIP or DNS for more)"
)


@dataclass
class Options:
    project: str | None
    compose_files: list[Path]
    env_files: list[Path]
    rollout_env_file: Path | None
    json: bool

    def stack(self) -> Stack:
        return discover_stack(
            self.project, self.compose_files, self.env_files, rollout_env_file=self.rollout_env_file
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


# What an operation can fail with; each becomes one clear message and a non-zero exit code.
OPERATION_ERRORS = (HactlError, WaitFailedError, DockerException, TraefikApiError)


def _fail(error: Exception) -> typer.Exit:
    if isinstance(error, HactlError):
        output.fail(error.message, error.hint)
        return typer.Exit(error.exit_code)
    if isinstance(error, DockerException):
        output.fail(
            f"docker failed: {(error.stderr or str(error)).strip()}",
            "see `hactl status`; the operation stopped where it failed",
        )
    else:
        output.fail(str(error), "see `hactl status`; the operation stopped where it failed")
    return typer.Exit(1)


@app.command()
def status(ctx: typer.Context) -> None:
    """One row per web replica: image, version, Docker health, Traefik state, uptime, restarts."""
    opts: Options = ctx.obj
    try:
        stack = opts.stack()
        docker = stack.docker()
        require_engine(docker)
        try:
            traefik = stack_endpoints(stack).traefik().server_states()
            traefik_error = ""
        except TraefikApiError as error:
            traefik, traefik_error = {}, str(error)
        replicas = collect_replicas(stack, traefik, probe_versions=True, docker=docker)
        traefiks = len(project_containers(docker, stack.project, "traefik"))
    except OPERATION_ERRORS as error:
        raise _fail(error) from error
    if not replicas:
        output.fail(
            f"stack {stack.project!r} is not running: no web replicas",
            "start it with `make up-ha` (or pass --project for another stack)",
        )
        raise typer.Exit(1)
    if opts.json:
        output.print_json(
            {
                "project": stack.project,
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
                f"{stack.project}: {sum(r.in_rotation for r in replicas)}/"
                f"{len(replicas)} web replicas in rotation",
            )
        )
    if traefik_error:
        output.warn(traefik_error)
    if traefiks <= 1:
        output.warn(SPOF_WARNING)


@app.command()
def scale(
    ctx: typer.Context,
    replicas: int = typer.Argument(..., help="desired number of web replicas"),
    timeout: float = typer.Option(120, "--timeout", help="seconds to wait for each step"),
) -> None:
    """Scale web to N replicas; removed replicas are drained first, new ones waited for."""
    opts: Options = ctx.obj
    try:
        result = run_scale(opts.stack(), replicas, timeout)
    except OPERATION_ERRORS as error:
        raise _fail(error) from error
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


@app.command()
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
) -> None:
    """Start-first rolling update of web; rolls back by itself if the new image never gets ready."""
    opts: Options = ctx.obj
    try:
        result = run_rollout(opts.stack(), image, build, batch, timeout, migrate)
    except OPERATION_ERRORS as error:
        raise _fail(error) from error
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


@app.command()
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
    try:
        stack = opts.stack()
        require_engine(stack.docker())
        desired = replicas if replicas is not None else int(stack.env_value("WEB_REPLICAS", "3"))
        checks = run_checks(stack, desired, tolerance)
    except OPERATION_ERRORS as error:
        raise _fail(error) from error
    failed = [c for c in checks if not c.passed]
    if opts.json:
        output.print_json(
            {
                "project": stack.project,
                "passed": not failed,
                "checks": [c.as_dict() for c in checks],
            }
        )
    else:
        output.console.print(output.checks_table(checks, f"{stack.project}: verify"))
    if failed:
        output.fail("failed: " + ", ".join(c.name for c in failed))
        raise typer.Exit(1)


@app.command()
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
    try:
        stack = opts.stack()
        path = policy if policy.is_absolute() or policy.exists() else stack.project_dir / policy
        run_autoscale(stack, load_policy(path), metrics_port, metrics_addr, dry_run, max_seconds)
    except HactlError as error:
        raise _fail(error) from error


app.command("bench")(bench_command)
app.command("chaos")(chaos_command)
app.add_typer(selfheal_app, name="selfheal")
