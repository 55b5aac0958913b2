"""The `hactl bench` command (registered in cli.py): options; hactl.bench.runner does the work."""

from __future__ import annotations

from pathlib import Path

import typer

from hactl import output
from hactl.bench.report import (
    evaluate_targets,
    markdown_ratios,
    markdown_targets,
    markdown_throughput,
)
from hactl.bench.runner import RESULTS_DIR, BenchConfig, run_bench
from hactl.errors import InvalidInputError

DEFAULT = BenchConfig()


def _csv(values: tuple[int, ...]) -> str:
    return ",".join(str(v) for v in values)


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise InvalidInputError(
            f"{what} must be comma-separated whole numbers, got {text!r}"
        ) from error
    return values


def bench(
    ctx: typer.Context,
    quick: bool = typer.Option(False, "--quick", help="the tiny configuration (about 2 minutes)"),
    # No defaults here: an option not given keeps BenchConfig's (or BenchConfig.quick()'s).
    replicas: str | None = typer.Option(
        None, "--replicas", help=f"replica counts [{_csv(DEFAULT.replicas)}]"
    ),
    connections: str | None = typer.Option(
        None,
        "--connections",
        help=f"wrk concurrency levels [{_csv(DEFAULT.connections)}]; the highest is saturation",
    ),
    duration: float | None = typer.Option(
        None, "--duration", help=f"seconds per wrk run [{DEFAULT.duration_s:g}]"
    ),
    p99_budget: float | None = typer.Option(
        None, "--p99-budget-ms", help=f"p99 budget [{DEFAULT.p99_budget_ms:g}]"
    ),
    rate: float | None = typer.Option(
        None, "--rate", help=f"loadgen rate for latency [{DEFAULT.latency_rate:g}]"
    ),
    latency_duration: float | None = typer.Option(
        None, "--latency-duration", help=f"seconds per latency run [{DEFAULT.latency_duration_s:g}]"
    ),
    rollouts: int | None = typer.Option(
        None, "--rollouts", help=f"rollouts to time: 2 = to a new tag and back [{DEFAULT.rollouts}]"
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", help=f"seconds per scale step [{DEFAULT.timeout_s:g}]"
    ),
    plain: bool = typer.Option(
        True, "--plain/--no-plain", help="also through a plain Traefik over the same replicas"
    ),
    idle_window: float | None = typer.Option(
        None,
        "--idle-window",
        help=f"seconds of idle CPU reading at each replica count [{DEFAULT.idle_window_s:g}]",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="result directory [<project dir>/results/bench]"
    ),
) -> None:
    """Throughput, latency, memory and timing benchmarks; results in results/bench/."""
    opts = ctx.obj
    base = BenchConfig.quick() if quick else BenchConfig()
    overrides = {
        "replicas": _ints(replicas, "--replicas") if replicas else None,
        "connections": _ints(connections, "--connections") if connections else None,
        "duration_s": duration,
        "p99_budget_ms": p99_budget,
        "latency_rate": rate,
        "latency_duration_s": latency_duration,
        "rollouts": rollouts,
        "timeout_s": timeout,
        "plain": plain,
        "idle_window_s": idle_window,
    }
    config = BenchConfig(
        **{**base.as_dict(), **{k: v for k, v in overrides.items() if v is not None}}
    )
    stack = opts.stack()
    outcome = run_bench(stack, config, out or stack.project_dir / RESULTS_DIR)
    if opts.json:
        output.print_json(outcome.result)
        return
    result = outcome.result
    output.console.print(markdown_throughput(result["throughput"]["summary"]))
    output.console.print()
    output.console.print(markdown_ratios(result["throughput"]["summary"]))
    output.console.print()
    output.console.print(markdown_targets(evaluate_targets(result)))
    machine = result["machine"]
    output.console.print(
        f"\n{machine['cores']} cores, load average {machine['load_average_start']} → "
        f"{machine['load_average_end']}; {result['seconds']} s; wrk CPU ≤ "
        f"{result['generator']['wrk_max_cpu_percent']} %, loadgen CPU ≤ "
        f"{result['generator']['loadgen_max_cpu_percent']} % of one core"
    )
    output.console.print(f"results: {outcome.json_path}")
    for plot in outcome.plots:
        output.console.print(f"plot:    {plot}")
