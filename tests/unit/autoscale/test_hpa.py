"""The HPA algorithm (hactl.autoscale.hpa) replaying the diagrams' autoscaling with a fake clock.

The policy is compose/autoscale-policy.yml (the diagrams' numbers); each replay states the target
it uses, since the diagrams' utilisation figures do not all follow from one target. Run with
`pytest -s` to see the replay tables (time, metric, current → desired, rule).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hactl.autoscale.hpa import (
    Decision,
    HpaSpec,
    HpaState,
    MetricReading,
    MetricTarget,
    PolicyType,
    RatePolicy,
    ReplicaUsage,
    ScalingRules,
    SelectPolicy,
    TargetType,
    align_to_count,
    decide,
    record_scale,
    replicas_for_total_value,
    replicas_for_utilization,
)
from hactl.autoscale.policy import load_policy

REPO = Path(__file__).resolve().parents[3]
DEFAULTS = load_policy(REPO / "compose" / "autoscale-policy.yml").spec
GIB = 2**30


def cpu_spec(target: float, base: HpaSpec = DEFAULTS) -> HpaSpec:
    return replace(base, metrics=(MetricTarget("cpu", TargetType.UTILIZATION, target),))


def cpu_reading(replicas: int, utilization: float, limit: float = 1.0) -> dict[str, MetricReading]:
    """Every replica at `utilization` % of a `limit`-core limit."""
    usages = tuple(
        ReplicaUsage(f"web-{i + 1}", limit * utilization / 100, limit) for i in range(replicas)
    )
    return {"cpu": MetricReading("cpu", replicas=usages)}


def clock(text: str) -> float:
    """'10:00:15' -> seconds since midnight (the replay's clock)."""
    h, m, s = (int(p) for p in text.split(":"))
    return h * 3600 + m * 60 + s


def hhmmss(t: float) -> str:
    t = int(t)
    return f"{t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d}"


class Replay:
    """Feeds decide() at given times, carries out every decision at once, keeps a table."""

    def __init__(self, spec: HpaSpec, replicas: int, title: str) -> None:
        self.spec, self.replicas, self.state = spec, replicas, HpaState()
        self.rows: list[tuple[str, str, int, int, str]] = []
        self.title = title

    def sync(self, at: str, readings: dict[str, MetricReading], note: str = "") -> Decision:
        now = clock(at)
        decision, self.state = decide(self.spec, self.state, now, self.replicas, readings)
        if decision.scales:
            self.state = record_scale(self.spec, self.state, now, self.replicas, decision.desired)
        self.rows.append(
            (
                at,
                note or decision.metrics_text(),
                decision.current,
                decision.desired,
                f"{decision.rule}: {decision.detail}",
            )
        )
        self.replicas = decision.desired
        return decision

    def every(self, start: str, end: str, step: int, readings_for, note: str = "") -> None:
        t = clock(start)
        while t <= clock(end):
            self.sync(hhmmss(t), readings_for(self.replicas), note)
            t += step

    def table(self) -> str:
        lines = [self.title, f"{'time':8}  {'metric':34}  {'current → desired':17}  rule"]
        previous = None
        skipped = 0
        for row in self.rows:
            key = row[1:]
            if key == previous:
                skipped += 1
                continue
            if skipped:
                lines.append(f"{'…':8}  (same for {skipped} more sync(s))")
                skipped = 0
            at, metric, current, desired, rule = row
            lines.append(f"{at:8}  {metric:34}  {current:>2} → {desired:<12}  {rule}")
            previous = key
        if skipped:
            lines.append(f"{'…':8}  (same for {skipped} more sync(s))")
        return "\n".join(lines)


def constant_demand(total_percent: float):
    """A load worth `total_percent` % of one replica's limit, spread over the replicas."""
    return lambda replicas: cpu_reading(replicas, total_percent / replicas)


def test_default_policy_is_the_diagrams_numbers() -> None:
    spec = DEFAULTS
    assert (spec.min_replicas, spec.max_replicas, spec.tolerance) == (3, 10, 0.1)
    assert spec.scale_up == ScalingRules(
        0,
        SelectPolicy.MAX,
        (RatePolicy(PolicyType.PERCENT, 100, 15), RatePolicy(PolicyType.PODS, 4, 15)),
    )
    assert spec.scale_down == ScalingRules(
        300,
        SelectPolicy.MIN,
        (RatePolicy(PolicyType.PERCENT, 50, 60), RatePolicy(PolicyType.PODS, 2, 60)),
    )
    assert {m.name: m.value for m in spec.metrics} == {"cpu": 50, "memory": 80}


def test_diagrams_timeline_spike_then_slow_scale_down() -> None:
    """09:00 30 % at 3 → 10:00 spike asks for 6 → 3→6 in one period; 11:00 demand falls → nothing
    removed while the last 5 min held a higher recommendation, then 6 → 4 → 3 (50 % or 2 per
    60 s, whichever removes fewer). CPU target 50 %."""
    replay = Replay(cpu_spec(50), 3, "CPU target 50 %, sync every 15 s, default behaviour")
    replay.every("09:58:00", "09:59:45", 15, constant_demand(90))  # 3 x 30 %
    spike = replay.sync("10:00:00", cpu_reading(3, 100))  # asks for ceil(3 x 100/50) = 6
    assert (spike.current, spike.desired, spike.rule) == (3, 6, "DesiredWithinRange")
    replay.every("10:00:15", "10:59:45", 15, constant_demand(300))  # 6 x 50 %: on target
    assert replay.replicas == 6
    # Demand falls to 150 % (6 x 25 %): asks for 3, but the last 5 minutes said 6.
    replay.every("11:00:00", "11:04:30", 15, constant_demand(150))
    assert replay.replicas == 6, "nothing removed within 5 min of the last 6-recommendation"
    assert {r[4].split(":")[0] for r in replay.rows[-19:]} == {"ScaleDownStabilized"}
    first = replay.sync("11:04:45", constant_demand(150)(6))  # 300 s after 10:59:45
    assert (first.current, first.desired, first.rule) == (6, 4, "ScaleDownLimit")
    replay.every("11:05:00", "11:05:30", 15, constant_demand(150))
    assert replay.replicas == 4, "the 60 s period still counts the 2 removed at 11:04:45"
    second = replay.sync("11:05:45", constant_demand(150)(4))
    # The period is over: the limit is max(4 - 2, 50 % of 4) = 2, and the metric asks for 3.
    assert (second.current, second.desired, second.rule) == (4, 3, "DesiredWithinRange")
    replay.every("11:06:00", "11:10:00", 15, constant_demand(30))
    assert replay.replicas == 3, "never below minReplicas"
    print("\n" + replay.table())


def test_spike_asking_for_more_is_capped_at_plus_4_then_max_10() -> None:
    """At 3 replicas a metric asking for 10: at most 3 → 7 (max of +100 % = 6 and +4 = 7) in the
    first 15 s period, however often it syncs; then never above maxReplicas 10."""
    replay = Replay(cpu_spec(30), 3, "CPU target 30 %, syncs every 5 s, default behaviour")
    first = replay.sync("10:00:00", cpu_reading(3, 100))  # asks for 10
    assert (first.desired, first.rule) == (7, "ScaleUpLimit")
    for at in ("10:00:05", "10:00:10"):  # period start is still 3: 7 is the limit
        assert replay.sync(at, cpu_reading(7, 100)).desired == 7
    later = replay.sync("10:00:15", cpu_reading(7, 100))  # asks for ceil(7 x 100/30) = 24
    assert (later.desired, later.rule) == (10, "TooManyReplicas")
    assert replay.sync("10:00:30", cpu_reading(10, 100)).desired == 10
    print("\n" + replay.table())


def test_memory_example_80_percent_at_3_replicas() -> None:
    """The diagrams: 1.6, 1.5, 1.7 GB of 2 GB = 80 % average. At the 80 % threshold itself that is
    on target (no change); with a 40 % target it asks for ceil(3 x 80/40) = 6, allowed by +100 %."""
    usages = tuple(
        ReplicaUsage(f"web-{i}", used * GIB, 2 * GIB)
        for i, used in enumerate((1.6, 1.5, 1.7), start=1)
    )
    readings = {"memory": MetricReading("memory", replicas=usages)}
    rows = []
    for target, expected, rule in ((80, 3, "WithinTolerance"), (40, 6, "DesiredWithinRange")):
        spec = replace(DEFAULTS, metrics=(MetricTarget("memory", TargetType.UTILIZATION, target),))
        decision, _ = decide(spec, HpaState(), 0.0, 3, readings)
        assert (decision.desired, decision.rule) == (expected, rule)
        assert decision.proposals[0].current == 80
        rows.append(
            f"target {target} %: {decision.metrics_text()}  3 → {decision.desired}  {decision.rule}"
        )
    print("\nmemory example\n" + "\n".join(rows))


@pytest.mark.parametrize(
    ("utilization", "expected"),
    [(54, 3), (46, 3), (45, 3), (44, 3), (55, 4), (56, 4), (100, 6), (30, 3)],
)
def test_tolerance_band(utilization: float, expected: int) -> None:
    """|1 - current/target| <= 10 % changes nothing (target 50 %: 45..55 %). Exactly 55 % is
    outside, as in Kubernetes: in float64, |1 - 55/50| = 0.10000000000000009 > 0.1. 44 % asks
    for ceil(3 x 0.88) = 3, and 30 % for 2, held at minReplicas 3."""
    decision, _ = decide(cpu_spec(50), HpaState(), 0.0, 3, cpu_reading(3, utilization))
    assert decision.desired == expected


def test_utilization_is_kubernetes_integer_percent() -> None:
    """GetResourceUtilizationRatio truncates the utilization to a whole percent."""
    desired, utilization = replicas_for_utilization(
        3, cpu_reading(3, 55.9)["cpu"].replicas, 50, 0.1
    )
    assert (desired, utilization) == (4, 55)
    assert replicas_for_utilization(3, cpu_reading(3, 54.9)["cpu"].replicas, 50, 0.1) == (3, 54)


@pytest.mark.parametrize(
    ("select", "expected"),
    [(SelectPolicy.MAX, 7), (SelectPolicy.MIN, 6), (SelectPolicy.DISABLED, 3)],
)
def test_scale_up_select_policy(select: SelectPolicy, expected: int) -> None:
    spec = cpu_spec(
        30, replace(DEFAULTS, scale_up=replace(DEFAULTS.scale_up, select_policy=select))
    )
    decision, _ = decide(spec, HpaState(), 0.0, 3, cpu_reading(3, 100))  # asks for 10
    assert decision.desired == expected


@pytest.mark.parametrize(
    ("select", "expected"),
    [(SelectPolicy.MIN, 8), (SelectPolicy.MAX, 5), (SelectPolicy.DISABLED, 10)],
)
def test_scale_down_select_policy(select: SelectPolicy, expected: int) -> None:
    """From 10 asking for 3: Min = the smaller change (-2 → 8), Max = the larger (-50 % → 5)."""
    spec = cpu_spec(
        50,
        replace(
            DEFAULTS,
            scale_down=replace(
                DEFAULTS.scale_down, select_policy=select, stabilization_window_seconds=0
            ),
        ),
    )
    decision, _ = decide(spec, HpaState(), 0.0, 10, cpu_reading(10, 10))
    assert decision.desired == expected


def test_scale_up_stabilization_takes_the_lowest_recent_recommendation() -> None:
    spec = cpu_spec(
        50, replace(DEFAULTS, scale_up=replace(DEFAULTS.scale_up, stabilization_window_seconds=60))
    )
    state = HpaState()
    first, state = decide(spec, state, 0.0, 3, cpu_reading(3, 50))  # recommends 3
    assert first.desired == 3
    blip, state = decide(spec, state, 15.0, 3, cpu_reading(3, 100))  # asks for 6
    assert (blip.desired, blip.rule) == (3, "ScaleUpStabilized")
    later, _ = decide(spec, state, 61.0, 3, cpu_reading(3, 100))  # the 3 left the window
    assert later.desired == 6


def test_largest_metric_wins_and_invalid_metric_blocks_scale_down() -> None:
    spec = replace(
        DEFAULTS,
        metrics=(
            MetricTarget("cpu", TargetType.UTILIZATION, 50),
            MetricTarget("requests_per_second", TargetType.AVERAGE_VALUE, 10),
        ),
    )
    readings = {
        **cpu_reading(4, 50),
        "requests_per_second": MetricReading("requests_per_second", total=80.0),
    }  # asks for 8
    decision, _ = decide(spec, HpaState(), 0.0, 4, readings)
    assert (decision.proposed, decision.desired) == (8, 8)
    low = {
        **cpu_reading(4, 10),
        "requests_per_second": MetricReading("requests_per_second", error="Prometheus unreachable"),
    }
    blocked, _ = decide(spec, HpaState(), 0.0, 4, low)
    assert (blocked.desired, blocked.rule) == (4, "InvalidMetrics")
    none, _ = decide(spec, HpaState(), 0.0, 4, {})
    assert (none.desired, none.rule) == (4, "InvalidMetrics")


def test_current_outside_min_max_is_brought_back_first() -> None:
    assert decide(DEFAULTS, HpaState(), 0.0, 2, {})[0].desired == 3
    assert decide(DEFAULTS, HpaState(), 0.0, 12, {})[0].desired == 10


def test_unready_replicas_are_left_out_for_cpu_and_count_as_idle_on_scale_up() -> None:
    """Two ready replicas at 100 %, one starting: ratio 2 over the ready ones, rebalanced with the
    starting one at 0 % → ceil(200/3 %/50 % x 3) = 4, not 6."""
    usages = (
        ReplicaUsage("a", 1.0, 1.0),
        ReplicaUsage("b", 1.0, 1.0),
        ReplicaUsage("c", 0.9, 1.0, ready=False),
    )
    assert replicas_for_utilization(3, usages, 50, 0.1)[0] == 4
    # Missing metrics on a scale-down count as 100 % of the target: no overshoot downwards.
    missing = (
        ReplicaUsage("a", 0.1, 1.0),
        ReplicaUsage("b", 0.1, 1.0),
        ReplicaUsage("c", None, 1.0),
    )
    assert replicas_for_utilization(3, missing, 50, 0.1)[0] == 2


def test_total_value_per_replica() -> None:
    assert replicas_for_total_value(3, 100.0, 20, 0.1) == (5, pytest.approx(33.33, 0.01))
    assert replicas_for_total_value(5, 104.0, 20, 0.1)[0] == 5  # within tolerance


def test_replicas_still_being_created_count_as_missing_pods() -> None:
    """While 3 -> 6 is under way only 3 replicas exist: as in Kubernetes, the 3 to come are pods
    without metrics (0 % on a scale-up), so the HPA does not read the 3 as a wish for fewer."""
    running = cpu_reading(3, 30)["cpu"]
    aligned = align_to_count(running, 6)
    assert len(aligned.replicas) == 6
    assert [r.usage for r in aligned.replicas[3:]] == [None, None, None]
    assert replicas_for_utilization(6, running.replicas, 20, 0.1)[0] == 5  # ceil(3 x 1.5) < 6
    # With the 3 to come at 0 %: 15 % of 6 limits, below the target while the ready ones are
    # above it, a change of direction: Kubernetes keeps the count.
    assert replicas_for_utilization(6, aligned.replicas, 20, 0.1)[0] == 6
    # Scaling down 6 -> 4: the two being drained (the last ones) are terminating, left out.
    draining = align_to_count(cpu_reading(6, 10)["cpu"], 4)
    assert [r.name for r in draining.replicas] == ["web-1", "web-2", "web-3", "web-4"]
    # hactl scale removes replicas out of rotation first.
    mixed = cpu_reading(6, 10)["cpu"]
    mixed = replace(
        mixed, replicas=tuple(replace(r, ready=r.name != "web-2") for r in mixed.replicas)
    )
    kept = align_to_count(mixed, 4)
    assert [r.name for r in kept.replicas] == ["web-1", "web-3", "web-4", "web-5"]
