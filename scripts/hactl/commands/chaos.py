"""The `hactl chaos` command (registered in cli.py): options; hactl.chaos.runner does the work."""

from __future__ import annotations

from pathlib import Path

import typer

from hactl import output
from hactl.chaos.faults import FaultOptions, Scenario
from hactl.chaos.peer import peer_stack
from hactl.chaos.report import RESULTS_DIR
from hactl.chaos.runner import (
    ChaosOptions,
    chaos_stack_from,
    results_table,
    run_scenarios,
    scenarios_from,
    service_containers,
)
from hactl.errors import OPERATION_ERRORS, HactlError, InvalidInputError
from hactl.ops.preflight import require_running
from hactl.stack.project import WEB_SERVICE
from hactl.stack.running import RunningStack

SCENARIO_HELP = (
    "kill, crash, stop, pause, restart, disconnect, db-restart, traefik-restart, traefik-kill, "
    "traefik-rollout, or all"
)
# The plain-Traefik peer has one Traefik and no restart policy: a SIGKILL would leave it without
# any for the scenarios after it, and it has no second instance to roll out to.
NOT_ON_PEER = (Scenario.TRAEFIK_KILL, Scenario.TRAEFIK_ROLLOUT)


def chaos(
    ctx: typer.Context,
    scenario: str = typer.Option(..., "--scenario", "-s", help=SCENARIO_HELP),
    # Defaults are ChaosOptions' and FaultOptions' (defined once, python -m hactl.chaos too).
    rate: float = typer.Option(ChaosOptions.rate, "--rate", help="requests per second (open loop)"),
    duration: float = typer.Option(
        ChaosOptions.duration_s, "--duration", help="seconds of load per scenario"
    ),
    fault_at: float = typer.Option(
        ChaosOptions.fault_at_s, "--fault-at", help="seconds into the load"
    ),
    pause: float = typer.Option(
        FaultOptions.pause_s, "--pause", help="pause: seconds the replica stays frozen"
    ),
    target: str | None = typer.Option(
        None, "--target", help="replica container to hit [a random running one]"
    ),
    sticky: bool = typer.Option(False, "--sticky", help="clients keep Traefik's sticky cookie"),
    browser_clients: int = typer.Option(
        ChaosOptions.browser_clients,
        "--browser-clients",
        help="clients that share one sticky cookie (a browser); the fault hits its replica",
    ),
    peer: bool = typer.Option(
        False, "--peer", help="also run each scenario against a hand-tuned plain Traefik"
    ),
    out: Path | None = typer.Option(
        None, "--out", help="report directory [<project dir>/results/chaos]"
    ),
    repeat: int = typer.Option(
        1, "--repeat", help="run the scenarios this many times (a rare failure shows in a few)"
    ),
) -> None:
    """Inject faults under steady load; report failed requests, lost/duplicated writes, time
    out of and back into rotation, p99 in the fault window (JSON + PNG in results/chaos/)."""
    opts = ctx.obj
    try:
        scenarios = scenarios_from(scenario)
    except ValueError as error:
        raise InvalidInputError(str(error)) from error
    if rate <= 0 or duration <= 0 or not 0 <= fault_at < duration:
        raise InvalidInputError("need --rate > 0, --duration > 0, 0 <= --fault-at < --duration")
    if not 0 <= browser_clients < ChaosOptions.clients:
        raise InvalidInputError(f"--browser-clients must be 0..{ChaosOptions.clients - 1}")
    if repeat < 1:
        raise InvalidInputError("--repeat must be at least 1")
    scenarios = scenarios * repeat
    stack = opts.stack()
    require_running(RunningStack.connect(stack))
    results_dir = out or stack.project_dir / RESULTS_DIR
    template = ChaosOptions(
        scenario=scenarios[0],
        rate=rate,
        duration_s=duration,
        fault_at_s=fault_at,
        target=target,
        sticky=sticky,
        browser_clients=browser_clients,
        faults=FaultOptions(pause_s=pause),
        results_dir=results_dir,
    )
    try:
        reports = run_scenarios(chaos_stack_from(stack), scenarios, template)
        if peer:
            handle = chaos_stack_from(stack)
            replicas = len(service_containers(handle.docker, stack.project, WEB_SERVICE))
            output.console.print(
                f"==> the same scenarios against a plain Traefik ({replicas} replicas)"
            )
            on_peer = [s for s in scenarios if s not in NOT_ON_PEER]
            with peer_stack(stack, replicas) as peer_handle:
                reports += run_scenarios(peer_handle, on_peer, template)
    except OPERATION_ERRORS:
        raise
    except RuntimeError as error:  # the load could not start (loadgen's setup): not a bug
        raise HactlError(
            str(error).strip(), "see `hactl status`; the stack must be healthy first"
        ) from error
    if opts.json:
        output.print_json(reports if len(reports) > 1 else reports[0])
    else:
        output.console.print(results_table(reports))
    failed = [r["scenario"] for r in reports if not r["passed"]]
    if failed:
        output.fail(
            "failed: " + ", ".join(failed),
            f"the verdict's reasons are in the JSON reports under {results_dir}",
        )
        raise typer.Exit(1)
