"""The `hactl bench` command (registered in cli.py): options; hactl.bench.runner does the work."""

from __future__ import annotations

from pathlib import Path

import typer

from hactl import output
from hactl.bench.report import evaluate_targets, markdown_targets, markdown_throughput
from hactl.bench.runner import BenchConfig, run_bench
from hactl.errors import InvalidInputError


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
    replicas: str | None = typer.Option(None, "--replicas", help="replica counts [1,3,5]"),
    connections: str | None = typer.Option(
        None, "--connections", help="wrk concurrency levels [2,8,32]; the highest is saturation"
    ),
    duration: float | None = typer.Option(None, "--duration", help="seconds per wrk run [8]"),
    p99_budget: float | None = typer.Option(None, "--p99-budget-ms", help="p99 budget [50]"),
    rate: float | None = typer.Option(None, "--rate", help="loadgen rate for latency [50]"),
    latency_duration: float | None = typer.Option(
        None, "--latency-duration", help="seconds per latency run [10]"
    ),
    rollouts: int | None = typer.Option(
        None, "--rollouts", help="rollouts to time: 2 = to a new tag and back [2]"
    ),
    timeout: float | None = typer.Option(None, "--timeout", help="seconds per scale step [120]"),
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
    }
    config = BenchConfig(
        **{**base.as_dict(), **{k: v for k, v in overrides.items() if v is not None}}
    )
    stack = opts.stack()
    outcome = run_bench(stack, config, out or stack.project_dir / "results" / "bench")
    if opts.json:
        output.print_json(outcome.result)
        return
    result = outcome.result
    output.console.print(markdown_throughput(result["throughput"]["summary"]))
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
