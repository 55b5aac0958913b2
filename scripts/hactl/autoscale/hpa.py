"""The Kubernetes HorizontalPodAutoscaler's algorithm, as pure functions of a clock passed in.

Follows `pkg/controller/podautoscaler` (horizontal.go, replica_calculator.go) of Kubernetes:

1. Per metric (`replicas_for_utilization`, `replicas_for_total_value`):
   `desired = ceil(ready replicas x current value / target)`, or the current count when the ratio
   is within the tolerance band; unready/missing replicas are rebalanced the way Kubernetes does
   (0 % on a scale-up, 100 % of the target on a scale-down, no change of direction).
2. The largest proposal over all metrics wins. Invalid metrics never make it scale down; all
   invalid → no decision.
3. A current count outside [min, max] is brought back first (`CurrentBelowMin` / `…AboveMax`).
4. Stabilization (`behavior.scaleUp/scaleDown.stabilizationWindowSeconds`): over the
   recommendations of the window, scale up to at most the *minimum* of the scale-up window and
   down to at least the *maximum* of the scale-down window.
5. Rate policies (`Pods` / `Percent` per `periodSeconds`), each computed against the replica count
   at the start of its period (current - added + removed within the period), combined with
   `selectPolicy` Max / Min / Disabled; then clamped to [min, max].

`decide` returns a `Decision` and the new `HpaState`; the controller calls `record_scale` once a
scale has been carried out (Kubernetes stores the scale event after a successful update).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum


class PolicyType(StrEnum):
    PODS = "Pods"
    PERCENT = "Percent"


class SelectPolicy(StrEnum):
    MAX = "Max"
    MIN = "Min"
    DISABLED = "Disabled"


class TargetType(StrEnum):
    UTILIZATION = "Utilization"  # average usage in % of each replica's limit
    AVERAGE_VALUE = "AverageValue"  # total value / replicas (e.g. requests/s per replica)


@dataclass(frozen=True)
class RatePolicy:
    type: PolicyType
    value: int
    period_seconds: int

    def describe(self) -> str:
        unit = "%" if self.type is PolicyType.PERCENT else ""
        return f"{self.type.value} {self.value}{unit}/{self.period_seconds}s"


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: int
    select_policy: SelectPolicy
    policies: tuple[RatePolicy, ...]

    @property
    def longest_period(self) -> int:
        return max((p.period_seconds for p in self.policies), default=0)


@dataclass(frozen=True)
class MetricTarget:
    name: str  # cpu | memory | requests_per_second
    type: TargetType
    value: float  # % for Utilization, units per replica for AverageValue


@dataclass(frozen=True)
class HpaSpec:
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricTarget, ...]
    scale_up: ScalingRules
    scale_down: ScalingRules
    tolerance: float = 0.1


# --- metric readings ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplicaUsage:
    """One replica's usage and limit in the same unit (CPU cores, bytes). `usage` None: missing."""

    name: str
    usage: float | None
    limit: float
    ready: bool = True


@dataclass(frozen=True)
class MetricReading:
    """What the metrics source read for one metric: per-replica usages (Utilization) or a total
    over all replicas (AverageValue), or an error."""

    name: str
    replicas: tuple[ReplicaUsage, ...] = ()
    total: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class MetricProposal:
    name: str
    current: float | None  # utilization % or value per replica, as shown to people
    target: float
    replicas: int | None  # None: invalid metric
    note: str = ""

    def describe(self) -> str:
        if self.replicas is None:
            return f"{self.name}: invalid ({self.note})"
        shown = "?" if self.current is None else f"{self.current:g}"
        return f"{self.name} {shown}/{self.target:g} → {self.replicas}" + (
            f" ({self.note})" if self.note else ""
        )


def _within(ratio: float, tolerance: float) -> bool:
    return abs(1.0 - ratio) <= tolerance


def _utilization(values: Sequence[tuple[float, float]]) -> int:
    """Kubernetes' GetResourceUtilizationRatio: integer % of summed usage over summed limits,
    in whole milli-units (millicores, millibytes) as Kubernetes' int64 quantities are."""
    usage = sum(round(u * 1000) for u, _ in values)
    limit = sum(round(lim * 1000) for _, lim in values)
    if limit <= 0:
        raise ValueError("no limits to compute a utilization against")
    return int((usage * 100) // limit)


def replicas_for_utilization(
    current: int,
    replicas: Sequence[ReplicaUsage],
    target: float,
    tolerance: float,
    ignore_unready: bool = True,
) -> tuple[int, int]:
    """GetResourceReplicas: (desired replicas, current utilization %) for a Utilization target.

    `ignore_unready`: Kubernetes ignores unready pods for CPU (their start-up burst would scale it
    up for nothing); for memory they count.
    """
    ignored = [r for r in replicas if ignore_unready and not r.ready and r.usage is not None]
    missing = [r for r in replicas if r.usage is None]
    counted = [r for r in replicas if r.usage is not None and r not in ignored]
    if not counted:
        raise ValueError("no metrics for any ready replica")
    values = [(float(r.usage or 0.0), r.limit) for r in counted]
    utilization = _utilization(values)
    ratio = utilization / target
    rebalance_ignored = bool(ignored) and ratio > 1.0
    if not rebalance_ignored and not missing:
        if _within(ratio, tolerance):
            return current, utilization
        return math.ceil(ratio * len(counted)), utilization
    if missing:
        if ratio < 1.0:  # scale-down: missing replicas count as using 100 % of the target
            values += [(r.limit * target / 100, r.limit) for r in missing]
        elif ratio > 1.0:  # scale-up: as using nothing
            values += [(0.0, r.limit) for r in missing]
    if rebalance_ignored:
        values += [(0.0, r.limit) for r in ignored]
    new_ratio = _utilization(values) / target
    if _within(new_ratio, tolerance) or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return current, utilization
    desired = math.ceil(new_ratio * len(values))
    if (new_ratio < 1.0 and desired > current) or (new_ratio > 1.0 and desired < current):
        return current, utilization
    return desired, utilization


def replicas_for_total_value(
    current: int, total: float, target_per_replica: float, tolerance: float
) -> tuple[int, float]:
    """GetExternalPerPodMetricReplicas: a total (e.g. requests/s over all replicas) against a
    target per replica: ceil(total / target) unless within the tolerance band."""
    per_replica = total / current if current else total
    ratio = total / (target_per_replica * current) if current else math.inf
    if current and _within(ratio, tolerance):
        return current, per_replica
    return math.ceil(total / target_per_replica), per_replica


def align_to_count(reading: MetricReading, count: int) -> MetricReading:
    """A reading as Kubernetes sees it while a scale it ordered is under way: replicas not created
    yet are pods without metrics (missing); replicas being removed are terminating pods, which
    the HPA leaves out: those `hactl scale` picks, the unready ones first, then the highest
    numbers. `reading.replicas` must be in container-number order."""
    replicas = reading.replicas
    if reading.error or not replicas or len(replicas) == count:
        return reading
    if len(replicas) > count:
        extra = len(replicas) - count
        unready = [i for i, r in enumerate(replicas) if not r.ready][:extra]
        ready_last = [i for i, r in reversed(list(enumerate(replicas))) if r.ready]
        leaving = set(unready) | set(ready_last[: extra - len(unready)])
        kept = tuple(r for i, r in enumerate(replicas) if i not in leaving)
        return replace(reading, replicas=kept)
    limit = replicas[0].limit
    pending = tuple(
        ReplicaUsage(f"pending-{i}", None, limit, ready=False) for i in range(count - len(replicas))
    )
    return replace(reading, replicas=replicas + pending)


def propose(
    spec: HpaSpec, current: int, readings: Mapping[str, MetricReading]
) -> list[MetricProposal]:
    """One proposal per metric of the spec, in the spec's order."""
    proposals = []
    for metric in spec.metrics:
        reading = readings.get(metric.name)
        if reading is None or reading.error:
            note = reading.error if reading and reading.error else "no reading"
            proposals.append(MetricProposal(metric.name, None, metric.value, None, note))
            continue
        try:
            if metric.type is TargetType.UTILIZATION:
                replicas, utilization = replicas_for_utilization(
                    current,
                    reading.replicas,
                    metric.value,
                    spec.tolerance,
                    ignore_unready=metric.name == "cpu",
                )
                value: float = utilization
            else:
                if reading.total is None:
                    raise ValueError("no total value")
                replicas, value = replicas_for_total_value(
                    current, reading.total, metric.value, spec.tolerance
                )
                value = round(value, 2)
        except ValueError as error:
            proposals.append(MetricProposal(metric.name, None, metric.value, None, str(error)))
            continue
        ratio = value / metric.value
        note = "within tolerance" if replicas == current and _within(ratio, spec.tolerance) else ""
        proposals.append(MetricProposal(metric.name, value, metric.value, replicas, note))
    return proposals


# --- state and decision ------------------------------------------------------------------------
@dataclass(frozen=True)
class Timed:
    at: float
    value: int


@dataclass(frozen=True)
class HpaState:
    """What the controller remembers between syncs (per HPA in Kubernetes)."""

    recommendations: tuple[Timed, ...] = ()
    scale_up_events: tuple[Timed, ...] = ()
    scale_down_events: tuple[Timed, ...] = ()


@dataclass(frozen=True)
class Decision:
    at: float
    current: int
    desired: int
    proposed: int | None  # largest metric proposal (None: no valid metric)
    stabilized: int | None
    rule: str
    detail: str
    proposals: tuple[MetricProposal, ...] = field(default_factory=tuple)

    @property
    def scales(self) -> bool:
        return self.desired != self.current

    def metrics_text(self) -> str:
        return "; ".join(p.describe() for p in self.proposals)

    def as_dict(self) -> dict[str, object]:
        return {
            "time": round(self.at, 3),
            "current": self.current,
            "desired": self.desired,
            "proposed": self.proposed,
            "stabilized": self.stabilized,
            "rule": self.rule,
            "detail": self.detail,
            "metrics": [
                {
                    "name": p.name,
                    "value": p.current,
                    "target": p.target,
                    "replicas": p.replicas,
                    "note": p.note,
                }
                for p in self.proposals
            ],
        }


def _changes_within(events: Sequence[Timed], period: int, now: float) -> int:
    cutoff = now - period
    return sum(e.value for e in events if e.at > cutoff)


def _replicas_at_period_start(current: int, state: HpaState, period: int, now: float) -> int:
    """Replicas when the policy's period began: rate limits count from there, as in Kubernetes."""
    return (
        current
        - _changes_within(state.scale_up_events, period, now)
        + _changes_within(state.scale_down_events, period, now)
    )


def scale_up_limit(current: int, state: HpaState, rules: ScalingRules, now: float) -> int:
    """calculateScaleUpLimitWithScalingRules."""
    if rules.select_policy is SelectPolicy.DISABLED:
        return current
    pick = min if rules.select_policy is SelectPolicy.MIN else max
    result: int | None = None
    for policy in rules.policies:
        start = _replicas_at_period_start(current, state, policy.period_seconds, now)
        if policy.type is PolicyType.PODS:
            proposed = start + policy.value
        else:
            proposed = math.ceil(start * (1 + policy.value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def scale_down_limit(current: int, state: HpaState, rules: ScalingRules, now: float) -> int:
    """calculateScaleDownLimitWithBehaviors (selectPolicy Min = the smallest change = max)."""
    if rules.select_policy is SelectPolicy.DISABLED:
        return current
    pick = max if rules.select_policy is SelectPolicy.MIN else min
    result: int | None = None
    for policy in rules.policies:
        start = _replicas_at_period_start(current, state, policy.period_seconds, now)
        if policy.type is PolicyType.PODS:
            proposed = start - policy.value
        else:
            proposed = int(start * (1 - policy.value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def _policies_text(rules: ScalingRules) -> str:
    return (
        " or ".join(p.describe() for p in rules.policies)
        + f", selectPolicy {rules.select_policy.value}"
    )


def stabilize(
    spec: HpaSpec, state: HpaState, current: int, proposed: int, now: float
) -> tuple[int, HpaState]:
    """stabilizeRecommendationWithBehaviors: clamp to the window's recommendations, then store
    the (unstabilized) proposal."""
    up_cutoff = now - spec.scale_up.stabilization_window_seconds
    down_cutoff = now - spec.scale_down.stabilization_window_seconds
    up, down = proposed, proposed
    for rec in state.recommendations:
        if rec.at > up_cutoff:
            up = min(up, rec.value)
        if rec.at > down_cutoff:
            down = max(down, rec.value)
    recommendation = min(max(current, up), down)
    keep_after = min(up_cutoff, down_cutoff)
    kept = tuple(r for r in state.recommendations if r.at >= keep_after)
    return recommendation, replace(state, recommendations=(*kept, Timed(now, proposed)))


def decide(
    spec: HpaSpec, state: HpaState, now: float, current: int, readings: Mapping[str, MetricReading]
) -> tuple[Decision, HpaState]:
    """One sync of the controller: what the replica count should be now, and why."""
    if current < spec.min_replicas:
        return Decision(
            now,
            current,
            spec.min_replicas,
            None,
            None,
            "CurrentBelowMin",
            f"current {current} is below minReplicas {spec.min_replicas}",
        ), state
    if current > spec.max_replicas:
        return Decision(
            now,
            current,
            spec.max_replicas,
            None,
            None,
            "CurrentAboveMax",
            f"current {current} is above maxReplicas {spec.max_replicas}",
        ), state
    proposals = tuple(propose(spec, current, readings))
    valid = [p.replicas for p in proposals if p.replicas is not None]
    invalid = [p for p in proposals if p.replicas is None]
    if not valid:
        return Decision(
            now,
            current,
            current,
            None,
            None,
            "InvalidMetrics",
            "no valid metric: " + "; ".join(p.describe() for p in invalid),
            proposals,
        ), state
    proposed = max(valid)
    if invalid and proposed < current:
        return Decision(
            now,
            current,
            current,
            proposed,
            None,
            "InvalidMetrics",
            "not scaling down while a metric is invalid: "
            + "; ".join(p.describe() for p in invalid),
            proposals,
        ), state
    stabilized, state = stabilize(spec, state, current, proposed, now)
    rule, detail = "DesiredWithinRange", "the desired count is within the acceptable range"
    if stabilized != proposed:
        if stabilized > proposed:
            window = spec.scale_down.stabilization_window_seconds
            rule = "ScaleDownStabilized"
            detail = (
                f"highest recommendation of the last {window}s is {stabilized} "
                f"(proposed {proposed})"
            )
        else:
            window = spec.scale_up.stabilization_window_seconds
            rule = "ScaleUpStabilized"
            detail = (
                f"lowest recommendation of the last {window}s is {stabilized} (proposed {proposed})"
            )
    elif (
        proposed == current
        and proposals
        and all(p.note == "within tolerance" for p in proposals if p.replicas is not None)
    ):
        rule, detail = "WithinTolerance", f"every metric within ±{spec.tolerance:.0%} of its target"
    desired = stabilized
    if stabilized > current:
        limit = max(scale_up_limit(current, state, spec.scale_up, now), current)
        if spec.max_replicas > limit:
            allowed, limit_rule = limit, "ScaleUpLimit"
            limit_detail = f"at most {limit} by {_policies_text(spec.scale_up)}"
        else:
            allowed, limit_rule = spec.max_replicas, "TooManyReplicas"
            limit_detail = f"maxReplicas {spec.max_replicas}"
        if stabilized > allowed:
            desired, rule, detail = allowed, limit_rule, f"{limit_detail} (asked for {stabilized})"
    elif stabilized < current:
        limit = min(scale_down_limit(current, state, spec.scale_down, now), current)
        if spec.min_replicas < limit:
            allowed, limit_rule = limit, "ScaleDownLimit"
            limit_detail = f"at least {limit} by {_policies_text(spec.scale_down)}"
        else:
            allowed, limit_rule = spec.min_replicas, "TooFewReplicas"
            limit_detail = f"minReplicas {spec.min_replicas}"
        if stabilized < allowed:
            desired, rule, detail = allowed, limit_rule, f"{limit_detail} (asked for {stabilized})"
    return Decision(now, current, desired, proposed, stabilized, rule, detail, proposals), state


def record_scale(spec: HpaSpec, state: HpaState, now: float, before: int, after: int) -> HpaState:
    """storeScaleEvent: remember a carried-out change; forget events older than the longest
    policy period of their direction."""
    change = after - before
    if change > 0:
        keep = now - spec.scale_up.longest_period
        events = tuple(e for e in state.scale_up_events if e.at > keep)
        return replace(state, scale_up_events=(*events, Timed(now, change)))
    if change < 0:
        keep = now - spec.scale_down.longest_period
        events = tuple(e for e in state.scale_down_events if e.at > keep)
        return replace(state, scale_down_events=(*events, Timed(now, -change)))
    return state


def forget_scale(state: HpaState, at: float) -> HpaState:
    """Undo `record_scale` for a change that was not carried out (the scale failed)."""
    return replace(
        state,
        scale_up_events=tuple(e for e in state.scale_up_events if e.at != at),
        scale_down_events=tuple(e for e in state.scale_down_events if e.at != at),
    )
