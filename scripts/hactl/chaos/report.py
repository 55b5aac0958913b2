"""Chaos run reports: the JSON document and a PNG timeline (matplotlib, headless).

The timeline has two panels over the run's time axis: each request's latency (from its
intended send time) coloured by outcome, and requests per second stacked by outcome; the
fault's steps are vertical lines and the fault window is shaded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hactl.chaos.analysis import FaultStep, Window
from hactl.loadgen.generator import RequestRecord

RESULTS_DIR = Path("results") / "chaos"


def report_paths(results_dir: Path, scenario: str, when: datetime | None = None) -> dict[str, Path]:
    """``<dir>/<UTC timestamp>-<scenario>.{json,png,requests.jsonl}``."""
    stamp = (when or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    stem = results_dir / f"{stamp}-{scenario}"
    return {
        "json": stem.with_suffix(".json"),
        "png": stem.with_suffix(".png"),
        "requests": stem.with_suffix(".requests.jsonl"),
    }


def write_json_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")


def per_second_outcomes(records: Sequence[RequestRecord]) -> tuple[list[int], list[int], list[int]]:
    """(second, ok count, failed count) per whole second of intended send time."""
    if not records:
        return [], [], []
    last = int(max(r.intended_s for r in records))
    ok = [0] * (last + 1)
    failed = [0] * (last + 1)
    for record in records:
        bucket = int(record.intended_s)
        if record.ok:
            ok[bucket] += 1
        else:
            failed[bucket] += 1
    return list(range(last + 1)), ok, failed


def render_timeline(
    records: Sequence[RequestRecord],
    steps: Sequence[FaultStep],
    window: Window | None,
    path: Path,
    title: str,
    rotation_events: Sequence[FaultStep] = (),
) -> None:
    """``rotation_events``: when Traefik dropped / re-listed the target (dotted lines)."""
    # Imported here: matplotlib costs seconds, and only the commands that plot need it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (lat_ax, rate_ax) = plt.subplots(
        2, 1, figsize=(12, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    try:
        ok = [r for r in records if r.ok and r.latency_s is not None]
        bad = [r for r in records if not r.ok and r.latency_s is not None]
        lat_ax.scatter(
            [r.intended_s for r in ok],
            [r.latency_s * 1000 for r in ok if r.latency_s is not None],
            s=4,
            c="tab:green",
            label=f"ok ({len(ok)})",
            alpha=0.6,
        )
        if bad:
            lat_ax.scatter(
                [r.intended_s for r in bad],
                [r.latency_s * 1000 for r in bad if r.latency_s is not None],
                s=14,
                c="tab:red",
                marker="x",
                label=f"failed ({len(bad)})",
            )
        lat_ax.set_yscale("log")
        lat_ax.set_ylabel("latency from intended send (ms)")
        lat_ax.set_title(title)
        seconds, ok_counts, failed_counts = per_second_outcomes(records)
        rate_ax.bar(seconds, ok_counts, width=1.0, align="edge", color="tab:green", label="ok")
        rate_ax.bar(
            seconds,
            failed_counts,
            width=1.0,
            align="edge",
            bottom=ok_counts,
            color="tab:red",
            label="failed",
        )
        rate_ax.set_ylabel("requests / s")
        rate_ax.set_xlabel("seconds since load start")
        for ax in (lat_ax, rate_ax):
            if window is not None:
                ax.axvspan(window.start_s, window.end_s, color="tab:orange", alpha=0.12)
            for step in steps:
                ax.axvline(step.t_s, color="tab:orange", linestyle="--", linewidth=1)
        for step in steps:
            label = lat_ax.text(
                step.t_s,
                0.98,
                step.action[:40],
                transform=lat_ax.get_xaxis_transform(),
                rotation=90,
                va="top",
                ha="right",
                fontsize=7,
                color="tab:orange",
            )
            label.set_in_layout(False)
        for event in rotation_events:
            for ax in (lat_ax, rate_ax):
                ax.axvline(event.t_s, color="tab:purple", linestyle=":", linewidth=1.2)
            label = lat_ax.text(
                event.t_s,
                0.02,
                event.action,
                transform=lat_ax.get_xaxis_transform(),
                rotation=90,
                va="bottom",
                ha="right",
                fontsize=7,
                color="tab:purple",
            )
            label.set_in_layout(False)
        lat_ax.legend(loc="upper left", fontsize=8)
        rate_ax.legend(loc="lower left", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
