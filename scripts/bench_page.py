"""Write docs/benchmarks.md from the latest bench result, so the page never disagrees with it.

`make bench-docs` runs it; `make bench-docs RESULT=results/bench/<timestamp>.json` first copies
that run of `hactl bench` (and its two plots) to docs/bench/latest.json. The page's numbers all
come from the JSON; the method text is here; the hand-written analysis of a run lives in
docs/bench/notes.md (it names the run it is about). tests/unit/test_docs.py checks that the
committed page is exactly what this script makes from the committed JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hactl.bench.report import (
    evaluate_targets,
    markdown_ratios,
    markdown_targets,
    markdown_throughput,
)

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "docs" / "bench"
RESULT = BENCH_DIR / "latest.json"
NOTES = BENCH_DIR / "notes.md"
PAGE = REPO / "docs" / "benchmarks.md"
PLOTS = ("throughput", "latency")

METHOD = """\
```bash
make up-ha    # or: RATE_LIMIT_AVERAGE=1000000 RATE_LIMIT_BURST=1000000 make up-ha MONITORING=0
make bench    # about 5-8 minutes; hactl --project compose-ha bench --quick: about 1-2 minutes
make bench-docs RESULT=results/bench/<timestamp>.json   # make that run this page
```

`make bench` (`hactl bench`) measures the running HA stack in one run, side by side on the same
machine, and leaves it with the replica count it found. It writes
`results/bench/<timestamp>.json` (with the machine's cores, load average before and after, and
the versions of Traefik, Compose, the engine, the backend and wrk),
`<timestamp>-throughput.png` and `<timestamp>-latency.png`, and prints the target table. Every
size is an option (`--replicas 1,3,5`, `--connections 2,8,32`, `--duration 8`,
`--p99-budget-ms 50`, `--rate 50`, `--rollouts 2`, ...; `hactl bench --help`).

- **Throughput** with wrk (Debian's 4.1.0; the `compose-ha/wrk` image from
  `scripts/airgap/build_images.sh wrk`), run in a throwaway container on the stack's own network
  `<project>_backend`: through the project's Traefik (`http://traefik:80`) with 1, 3 and 5
  replicas (scaled with hactl's drain-aware `scale`); at each count also through a **plain
  Traefik** (the same image with Traefik's defaults: a file provider listing the same replicas,
  one router, no middleware, access log, metrics or health check; `--no-plain` leaves it out);
  and at 1 replica straight to that replica's `IP:8000`, all from the same container, the paths
  alternating run by run. Whoami GETs and chat POSTs (bearer token from `secrets/api_tokens`,
  a Lua script gives every POST its own `Idempotency-Key`). Each concurrency level is a
  closed-loop run; *saturation* is the highest level, *within the p99 budget* the best run whose
  p99 stayed under the budget with every answer 2xx. The **hop cost** is Traefik / direct and
  the **cost of the configuration** the project's Traefik / the plain one, each at the same
  replica count and concurrency (the highest where both runs were clean); the **replica drop**
  is the saturation throughput at 5 replicas / at 1. A Lua `response()` counts answers per
  replica (`X-Replica`): the per-replica counts add up to the total.
- **Idle CPU** of every container of the stack over a window with no load (10 s) at each
  replica count, from its cgroup's CPU counter (the engine's host: `/sys/fs/cgroup`): a
  replica's own (it includes Docker's HEALTHCHECK process and the answers to Traefik's probes
  and Prometheus's scrapes) plus Traefik's idle CPU shared out per replica. Its containerd
  shim (the `runc exec` of every health check) is read from `/proc` beside it and reported as
  an upper bound.
- **Latency** p50/p90/p99 with hactl's open-loop loadgen through Traefik's published port,
  measured from each request's intended send time.
- **Memory** per replica at idle and during the 3-replica saturation runs: the sum of PSS of the
  gunicorn master and its workers from `/proc/*/smaps_rollup` (RSS summed over forked workers
  counts their shared pages 2-3 times; both, and Docker's cgroup figure, are in the file).
- **Timings**: `hactl scale 3 → 5` until both new replicas are healthy and UP in Traefik; a
  3-replica `hactl rollout` to the same image under a new tag (and back); an unready replica
  (`python3 -m app.control unready`) until no Traefik service routes to it (polled every 50 ms).
- **The generator's own cost** is recorded: wrk's CPU time (read from its container's `/proc`),
  the loadgen's CPU, and Traefik's and the replicas' CPU from `docker stats` during the
  saturation runs.

Under saturation a single replica can fail its 1-second Docker health check; Traefik then has
no server and answers 404 until the replica is healthy again. The hop ratio is therefore taken
at the highest concurrency where both runs answered everything 2xx. Traefik's rate limit
(`RATE_LIMIT_AVERAGE`, 1000/s per client IP) also caps the single wrk container: `hactl bench`
warns when it answered 429; bench a stack started with the higher limits shown above.
"""


def _when(result: Mapping[str, Any]) -> str:
    return datetime.fromisoformat(result["timestamp"]).strftime("%Y-%m-%d %H:%M UTC")


def _triple(values: Any) -> str:
    return " / ".join(f"{v:g}" for v in values[:3]) if values else "?"


def _latency_line(latency: Mapping[str, Any]) -> str:
    parts = []
    for kind, entry in latency.items():
        summary = entry["summary"]
        ms = summary["latency_ms"]
        parts.append(
            f"{kind} p50/p90/p99 {ms['p50']:g} / {ms['p90']:g} / {ms['p99']:g} ms at "
            f"{entry['rate']:g} requests/s ({summary['failed']} failed)"
        )
    return "; ".join(parts)


def _idle_line(idle: Mapping[str, Any]) -> str:
    by_count = idle.get("summary", {}).get("by_replicas", {})
    if not by_count:
        return "Idle CPU: not measured in this run."
    parts = [
        f"{n} replicas: a replica {row['replica_own_percent']} % + Traefik's share "
        f"{row['traefik_share_percent']} % = {row['per_replica_percent']} % (its shim "
        f"{row['replica_shim_percent']} %)"
        for n, row in sorted(by_count.items(), key=lambda kv: int(kv[0]))
    ]
    return "Idle CPU per replica, in % of one core: " + "; ".join(parts) + "."


def render(result: Mapping[str, Any], notes: str | None = None) -> str:
    """The whole page, from one `hactl bench` result (pure)."""
    machine, versions = result["machine"], result["versions"]
    memory = result.get("memory", {})
    idle, load = memory.get("idle_summary", {}), memory.get("load_summary", {})
    generator = result.get("generator", {})
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by `make bench-docs` (scripts/bench_page.py) from docs/bench/latest.json;"
        " do not edit by hand. -->",
        "",
        "## How they are measured",
        "",
        METHOD,
        "## Latest numbers",
        "",
        f"Measured {_when(result)} with `make bench` ({result.get('seconds', 0):.0f} s) on a "
        f"{machine['cores']}-core machine, load average (1/5/15 min) "
        f"{_triple(machine.get('load_average_start'))} at the start and "
        f"{_triple(machine.get('load_average_end'))} at the end. Traefik {versions['traefik']}, "
        f"{versions['compose']}, engine {versions['engine']}, backend {versions['backend']}, "
        f"wrk {versions['wrk']}. File: [`bench/latest.json`](bench/latest.json).",
        "",
        markdown_targets(evaluate_targets(result)),
        "",
        markdown_throughput(result["throughput"]["summary"]),
        "",
        "Every ratio of the run, with both of its numbers (req/s, successful answers):",
        "",
        markdown_ratios(result["throughput"]["summary"]),
        "",
        _idle_line(result.get("idle_cpu", {})),
        "",
        f"Latency through Traefik (open loop): {_latency_line(result.get('latency', {}))}.",
        "",
        f"Memory per replica (PSS, master + workers): {idle.get('max_pss_mb', '?')} MB idle "
        f"(RSS summed over the workers {idle.get('max_rss_mb', '?')} MB, Docker's cgroup figure "
        f"{idle.get('max_cgroup_mb', '?')} MB), {load.get('max_pss_mb', '?')} MB under load. "
        f"The generators' own CPU: wrk at most {generator.get('wrk_max_cpu_percent', '?')} % of "
        f"one core, the loadgen {generator.get('loadgen_max_cpu_percent', '?')} %.",
        "",
    ]
    warnings = result.get("warnings") or []
    if warnings:
        lines += ["Warnings of the run:", "", *[f"- {w}" for w in warnings], ""]
    lines += [f"![{name}](bench/{name}.png)" for name in PLOTS]
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def adopt(run: Path) -> None:
    """Make `run` (results/bench/<timestamp>.json) the latest result, with its plots."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run, RESULT)
    for name in PLOTS:
        plot = run.with_name(f"{run.stem}-{name}.png")
        if plot.exists():
            shutil.copyfile(plot, BENCH_DIR / f"{name}.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--result", type=Path, help="a results/bench/<timestamp>.json to adopt")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args(argv)
    if args.result:
        adopt(args.result)
    notes = NOTES.read_text() if NOTES.exists() else None
    page = render(json.loads(RESULT.read_text()), notes)
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != page:
            print(f"{PAGE.relative_to(REPO)} is stale: run `make bench-docs`", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(REPO)} from {RESULT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
