"""Turn bench measurements into summaries, target verdicts, a Markdown table and PNG plots.

Everything here is pure (plots aside, which only write files): unit tested without Docker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The targets (issue 7), and the design's "an unhealthy replica leaves within 3 s".
TARGETS: dict[str, tuple[str, float, str]] = {
    # key: (label, limit, unit); every target is "measured <= limit"
    "hop_loss_whoami": ("Traefik hop throughput loss, whoami GET", 15.0, "%"),
    "hop_loss_chat_post": ("Traefik hop throughput loss, chat POST", 15.0, "%"),
    "chat_post_p50": ("chat POST p50 at a moderate rate", 10.0, "ms"),
    "rss_per_replica": ("memory per replica (PSS, 2 workers), under load", 120.0, "MB"),
    "scale_3_to_5": ("scale 3 → 5 until in rotation", 10.0, "s"),
    "rollout_3": ("rolling update of 3 replicas", 45.0, "s"),
    "unready_leaves": ("unready replica out of rotation", 3.0, "s"),
}


@dataclass
class TargetResult:
    key: str
    label: str
    measured: float | None
    target: float
    unit: str

    @property
    def met(self) -> bool | None:
        return None if self.measured is None else self.measured <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def _clean(run: Mapping[str, Any]) -> bool:
    """Every request answered 2xx, no socket errors: the run counts for the p99 budget."""
    errors = run.get("errors", {})
    return run["ok"] == run["requests"] and not any(
        errors.get(k, 0) for k in ("connect", "read", "write", "timeout")
    )


def throughput_summary(runs: Sequence[Mapping[str, Any]], p99_budget_ms: float) -> dict[str, Any]:
    """Per kind and target (traefik/direct) and replica count: the throughput at saturation
    (the run with the most connections) and the best throughput whose p99 stayed within the
    budget; then the hop cost: Traefik with the direct runs' replica count against direct."""
    summary: dict[str, Any] = {}
    for kind in sorted({r["kind"] for r in runs}):
        per_target: dict[str, dict[str, Any]] = {}
        for target in ("traefik", "direct"):
            groups: dict[int, list[Mapping[str, Any]]] = {}
            for r in runs:
                if r["kind"] == kind and r["target"] == target:
                    groups.setdefault(int(r["replicas"]), []).append(r)
            for n, group in sorted(groups.items()):
                saturated = max(group, key=lambda r: (r["connections"], r["ok_rps"]))
                within = [r for r in group if _clean(r) and r["latency_ms"]["p99"] <= p99_budget_ms]
                best = max(within, key=lambda r: r["ok_rps"], default=None)
                per_target.setdefault(target, {})[str(n)] = {
                    "saturation_rps": saturated["ok_rps"],
                    "saturation_connections": saturated["connections"],
                    "saturation_p99_ms": saturated["latency_ms"]["p99"],
                    "p99_budget_rps": best["ok_rps"] if best else 0.0,
                    "p99_budget_connections": best["connections"] if best else None,
                }
        entry: dict[str, Any] = dict(per_target)
        hop = hop_cost(runs, kind, per_target)
        if hop:
            entry["hop"] = hop
        summary[kind] = entry
    return summary


def hop_cost(
    runs: Sequence[Mapping[str, Any]], kind: str, per_target: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """Traefik against direct, same replica count and concurrency, from the same container.

    The ratio is taken at the highest concurrency where both runs answered every request 2xx
    (a saturated single replica can fail its health check, and Traefik then answers 404/503
    while it has no server: that is measured too, but it is not the cost of the hop).
    """
    direct = per_target.get("direct", {})
    if not direct:
        return None
    n = min(direct, key=int)

    def by_connections(target: str) -> dict[int, Mapping[str, Any]]:
        return {
            int(r["connections"]): r
            for r in runs
            if r["kind"] == kind and r["target"] == target and str(r["replicas"]) == n
        }

    via, straight = by_connections("traefik"), by_connections("direct")
    pairs = {
        c: (via[c], straight[c])
        for c in sorted(set(via) & set(straight))
        if straight[c]["ok_rps"] > 0
    }
    if not pairs:
        return None
    ratios = {str(c): round(t["ok_rps"] / d["ok_rps"], 3) for c, (t, d) in pairs.items()}
    clean = [c for c, (t, d) in pairs.items() if _clean(t) and _clean(d)]
    at = max(clean) if clean else max(pairs)
    ratio = ratios[str(at)]
    return {
        "replicas": int(n),
        "connections": at,
        "both_clean": bool(clean),
        "ratio": ratio,
        "loss_percent": round((1 - ratio) * 100, 1),
        "ratio_by_connections": ratios,
    }


def memory_summary(readings: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    if not readings:
        return {"max_pss_mb": None, "mean_pss_mb": None, "max_rss_mb": None, "max_cgroup_mb": None}
    pss = [r["pss_mb"] for r in readings]
    cgroup = [r["cgroup_mb"] for r in readings if r.get("cgroup_mb") is not None]
    return {
        "max_pss_mb": max(pss),
        "mean_pss_mb": round(sum(pss) / len(pss), 1),
        "max_rss_mb": max(r["rss_mb"] for r in readings),
        "max_cgroup_mb": max(cgroup) if cgroup else None,
    }


def _get(data: Mapping[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else round((ordered[mid - 1] + ordered[mid]) / 2, 3)


def evaluate_targets(result: Mapping[str, Any]) -> list[TargetResult]:
    """Measured against target for every target the run has data for (None: not measured)."""
    timings = result.get("timings", {})
    scale = next(
        (s["seconds"] for s in timings.get("scale", []) if s["before"] == 3 and s["after"] == 5),
        None,
    )
    rollouts = [r["seconds"] for r in timings.get("rollouts", []) if r["replicas"] == 3]
    unready = [u["leave_seconds"] for u in timings.get("unready", [])]
    measured = {
        "hop_loss_whoami": _get(result, "throughput", "summary", "whoami", "hop", "loss_percent"),
        "hop_loss_chat_post": _get(
            result, "throughput", "summary", "chat_post", "hop", "loss_percent"
        ),
        "chat_post_p50": _get(result, "latency", "chat_post", "summary", "latency_ms", "p50"),
        "rss_per_replica": _get(result, "memory", "load_summary", "max_pss_mb"),
        "scale_3_to_5": scale,
        "rollout_3": max(rollouts) if rollouts else None,
        "unready_leaves": _median(unready),
    }
    return [
        TargetResult(key, label, measured[key], limit, unit)
        for key, (label, limit, unit) in TARGETS.items()
    ]


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "not measured"
    return f"{value:g} {unit}" if unit != "%" else f"{value:g} %"


def markdown_targets(targets: Sequence[TargetResult]) -> str:
    lines = ["| target | measured | target | met |", "|---|---|---|---|"]
    for t in targets:
        verdict = {True: "yes", False: "**no**", None: "n/a"}[t.met]
        lines.append(
            f"| {t.label} | {_fmt(t.measured, t.unit)} | ≤ {t.target:g} {t.unit} | {verdict} |"
        )
    return "\n".join(lines)


def markdown_throughput(summary: Mapping[str, Any]) -> str:
    lines = [
        "| request | path | replicas | saturation (req/s) | within p99 budget (req/s) |",
        "|---|---|---|---|---|",
    ]
    for kind, entry in summary.items():
        for target in ("direct", "traefik"):
            for n, row in sorted(entry.get(target, {}).items(), key=lambda kv: int(kv[0])):
                lines.append(
                    f"| {kind} | {target} | {n} | {row['saturation_rps']:g} "
                    f"| {row['p99_budget_rps']:g} |"
                )
    return "\n".join(lines)


def write_json(result: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")


def plot_throughput(summary: Mapping[str, Any], path: Path, budget_ms: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {"whoami": "tab:blue", "chat_post": "tab:orange"}
    for kind, entry in summary.items():
        colour = colours.get(kind, "tab:gray")
        traefik = sorted(entry.get("traefik", {}).items(), key=lambda kv: int(kv[0]))
        if traefik:
            xs = [int(n) for n, _ in traefik]
            ax.plot(
                xs,
                [row["saturation_rps"] for _, row in traefik],
                "o-",
                color=colour,
                label=f"{kind} via Traefik, saturation",
            )
            ax.plot(
                xs,
                [row["p99_budget_rps"] for _, row in traefik],
                "o--",
                color=colour,
                alpha=0.6,
                label=f"{kind} via Traefik, p99 ≤ {budget_ms:g} ms",
            )
        for n, row in entry.get("direct", {}).items():
            ax.plot(
                [int(n)],
                [row["saturation_rps"]],
                "X",
                color=colour,
                markersize=11,
                label=f"{kind} direct to one replica, saturation",
            )
    ax.set_xlabel("web replicas")
    ax.set_ylabel("successful requests / s")
    ax.set_title("Throughput against replicas")
    ax.set_xticks(sorted({int(n) for e in summary.values() for n in e.get("traefik", {})} | {1}))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(latency: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(latency)
    quantiles = ("p50", "p90", "p99")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    width = 0.8 / max(1, len(kinds))
    for i, kind in enumerate(kinds):
        values = [latency[kind]["summary"]["latency_ms"][q] or 0 for q in quantiles]
        xs = [j + i * width for j in range(len(quantiles))]
        bars = ax.bar(xs, values, width, label=f"{kind} at {latency[kind]['rate']:g} req/s")
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks([j + width * (len(kinds) - 1) / 2 for j in range(len(quantiles))], quantiles)
    ax.set_ylabel("latency (ms), open loop via Traefik")
    ax.set_title("Latency percentiles at a fixed moderate rate")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
