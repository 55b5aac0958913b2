"""Turn bench measurements into summaries, target verdicts, a Markdown table and PNG plots.

Everything here is pure (plots aside, which only write files): unit tested without Docker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The targets (issues 7 and 18), and the design's "an unhealthy replica leaves within 3 s".
TARGETS: dict[str, tuple[str, float, str]] = {
    # key: (label, limit, unit); every target is "measured <= limit"
    "hop_loss_whoami": ("Traefik hop throughput loss, whoami GET", 15.0, "%"),
    "hop_loss_chat_post": ("Traefik hop throughput loss, chat POST", 15.0, "%"),
    # the project's Traefik against a plain one (same image, same replicas, same run)
    "plain_loss_whoami": ("throughput loss against a plain Traefik, whoami GET", 10.0, "%"),
    "plain_loss_chat_post": ("throughput loss against a plain Traefik, chat POST", 10.0, "%"),
    # saturation throughput at the most replicas against the fewest, same cores
    "replica_drop_whoami": ("throughput drop from fewest to most replicas, whoami GET", 10.0, "%"),
    "replica_drop_chat_post": (
        "throughput drop from fewest to most replicas, chat POST",
        10.0,
        "%",
    ),
    "idle_cpu_per_replica": ("idle CPU of one replica (with its probes)", 2.0, "% of a core"),
    "chat_post_p50": ("chat POST p50 at a moderate rate", 10.0, "ms"),
    "rss_per_replica": ("memory per replica (PSS, 2 workers), under load", 120.0, "MB"),
    "scale_3_to_5": ("scale 3 → 5 until in rotation", 10.0, "s"),
    "rollout_3": ("rolling update of 3 replicas", 45.0, "s"),
    "unready_leaves": ("unready replica out of rotation", 3.0, "s"),
}


# wrk's paths: one replica direct, a plain Traefik over the replicas, the project's Traefik
TARGET_PATHS = ("traefik", "direct", "plain")


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
        for target in TARGET_PATHS:
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
        direct = per_target.get("direct", {})
        n_direct = int(min(direct, key=int)) if direct else 0
        hop = paired_ratio(runs, kind, "traefik", "direct", n_direct) if direct else None
        if hop:
            entry["hop"] = hop
        plain = {
            n: ratio
            for n in sorted(per_target.get("plain", {}), key=int)
            if (ratio := paired_ratio(runs, kind, "traefik", "plain", int(n)))
        }
        if plain:
            entry["vs_plain"] = plain
        scaling = {
            target: drop
            for target in ("traefik", "plain")
            if (drop := replica_drop(per_target.get(target, {})))
        }
        if scaling:
            entry["scaling"] = scaling
        summary[kind] = entry
    return summary


def paired_ratio(
    runs: Sequence[Mapping[str, Any]], kind: str, target: str, base: str, replicas: int
) -> dict[str, Any] | None:
    """`target`'s throughput against `base`'s (Traefik against direct, or the project's Traefik
    against a plain one), same replica count and concurrency, from the same wrk container.

    The ratio is taken at the highest concurrency where both runs answered every request 2xx
    (a saturated single replica can fail its health check, and Traefik then answers 404/503
    while it has no server: that is measured too, but it is not the cost of the hop).
    """

    def by_connections(path: str) -> dict[int, Mapping[str, Any]]:
        return {
            int(r["connections"]): r
            for r in runs
            if r["kind"] == kind and r["target"] == path and int(r["replicas"]) == replicas
        }

    via, straight = by_connections(target), by_connections(base)
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
        "replicas": replicas,
        "connections": at,
        "both_clean": bool(clean),
        f"{target}_rps": pairs[at][0]["ok_rps"],
        f"{base}_rps": pairs[at][1]["ok_rps"],
        "ratio": ratio,
        "loss_percent": round((1 - ratio) * 100, 1),
        "ratio_by_connections": ratios,
    }


def replica_drop(per_count: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """Saturation throughput at the most replicas against the fewest (same cores, same run)."""
    if len(per_count) < 2:
        return None
    low, high = min(per_count, key=int), max(per_count, key=int)
    before, after = per_count[low]["saturation_rps"], per_count[high]["saturation_rps"]
    if not before:
        return None
    ratio = round(after / before, 3)
    return {
        "from_replicas": int(low),
        "to_replicas": int(high),
        "from_rps": before,
        "to_rps": after,
        "ratio": ratio,
        "drop_percent": round((1 - ratio) * 100, 1),
    }


def plain_reference_count(vs_plain: Mapping[str, Any], preferred: int = 3) -> str | None:
    """The replica count the plain-Traefik target is read at: the stack's default (3), else
    the nearest measured one."""
    if not vs_plain:
        return None
    return min(vs_plain, key=lambda n: (abs(int(n) - preferred), int(n)))


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
        "plain_loss_whoami": _plain_loss(result, "whoami"),
        "plain_loss_chat_post": _plain_loss(result, "chat_post"),
        "replica_drop_whoami": _get(
            result, "throughput", "summary", "whoami", "scaling", "traefik", "drop_percent"
        ),
        "replica_drop_chat_post": _get(
            result, "throughput", "summary", "chat_post", "scaling", "traefik", "drop_percent"
        ),
        "idle_cpu_per_replica": _get(result, "idle_cpu", "summary", "per_replica_percent"),
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


def _plain_loss(result: Mapping[str, Any], kind: str) -> float | None:
    vs_plain = _get(result, "throughput", "summary", kind, "vs_plain") or {}
    n = plain_reference_count(vs_plain)
    return None if n is None else vs_plain[n]["loss_percent"]


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
        for target in ("direct", "plain", "traefik"):
            for n, row in sorted(entry.get(target, {}).items(), key=lambda kv: int(kv[0])):
                lines.append(
                    f"| {kind} | {target} | {n} | {row['saturation_rps']:g} "
                    f"| {row['p99_budget_rps']:g} |"
                )
    return "\n".join(lines)


def _num(value: float | None) -> str:
    """A figure of a result file, or "?" for one an older file does not have."""
    return "?" if value is None else f"{value:g}"


def markdown_ratios(summary: Mapping[str, Any]) -> str:
    """Every ratio of the run with both of its numbers: the hop (the project's Traefik against
    one replica direct), against a plain Traefik per replica count, and fewest to most replicas."""
    lines = [
        "| request | comparison | replicas | connections | measured (req/s) | against (req/s) "
        "| ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, entry in summary.items():
        hop = entry.get("hop")
        if hop:
            lines.append(
                f"| {kind} | project Traefik / direct to one replica | {hop['replicas']} "
                f"| {hop['connections']} | {_num(hop.get('traefik_rps'))} "
                f"| {_num(hop.get('direct_rps'))} "
                f"| {hop['ratio']:g} |"
            )
        for n, row in entry.get("vs_plain", {}).items():
            lines.append(
                f"| {kind} | project Traefik / plain Traefik | {n} | {row['connections']} "
                f"| {row['traefik_rps']:g} | {row['plain_rps']:g} | {row['ratio']:g} |"
            )
        for target, drop in entry.get("scaling", {}).items():
            name = "project" if target == "traefik" else "plain"
            lines.append(
                f"| {kind} | {name} Traefik, {drop['to_replicas']} / {drop['from_replicas']} "
                f"replicas | {drop['to_replicas']} | saturation | {drop['to_rps']:g} "
                f"| {drop['from_rps']:g} | {drop['ratio']:g} |"
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
        plain = sorted(entry.get("plain", {}).items(), key=lambda kv: int(kv[0]))
        if plain:
            ax.plot(
                [int(n) for n, _ in plain],
                [row["saturation_rps"] for _, row in plain],
                "s:",
                color=colour,
                alpha=0.8,
                label=f"{kind} via a plain Traefik, saturation",
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
