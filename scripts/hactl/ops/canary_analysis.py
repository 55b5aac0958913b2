"""Pure decision rule of a canary step: promote, keep watching, or abort (no I/O here).

Input: what Traefik counted for each side over the same window (requests, 5xx answers and the
latency histogram, from its per-service metrics: hactl.stack.traefik_metrics), as deltas
between two reads. Traefik counts every attempt at a server, so a request the retry
middleware sent twice counts twice; both sides are counted the same way.

The rule, for a canary sample of n requests with k answered 5xx:
- Errors: the canary may exceed the stable side's 5xx ratio by `max_error_ratio` (a margin, in
  absolute terms). It is aborted when k is too many for that: the one-sided binomial tail
  P(X >= k | n, stable ratio + margin) is below `alpha` (0.01 at a step's end, 0.001 while the
  step runs, so that looking every few seconds does not multiply false alarms). With 200
  requests and a stable side at 0 %, that is 7 errors or more (3.5 %); a release failing 30 % of
  its requests is stopped after about 20 requests.
- Latency (only with at least `min_requests` canary requests, since a p99 of fewer is one
  request): p99 from the histogram buckets, interpolated inside a bucket like Prometheus's
  histogram_quantile. Aborted when above `max_p99_ms` while the stable side is not, or when it
  is more than `max_p99_ratio` times the stable side's p99 and also `min_p99_excess_ms` slower
  (below that the buckets cannot tell two latencies apart).
  The latency rule has no tighter bound for looks while the step runs, so the caller asks for
  the breach in two looks in a row before an interim abort (`Verdict.latency_breach`).
- Promote at the step's end only with at least `min_requests` canary requests and neither rule
  firing; fewer requests is "not enough data" (the caller extends the step, then aborts).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

INF = math.inf
Buckets = tuple[tuple[float, float], ...]  # (upper bound in seconds, cumulative count), +Inf last


@dataclass(frozen=True)
class SideSample:
    """What one side (canary or stable) answered in a window."""

    requests: float = 0.0
    errors: float = 0.0  # answers with a 5xx status
    buckets: Buckets = ()

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def p99_seconds(self) -> float | None:
        return histogram_quantile(0.99, self.buckets)

    def minus(self, earlier: SideSample) -> SideSample:
        """The window between two reads of cumulative counters. A counter that went down
        (Traefik restarted) counts from zero, like Prometheus's rate()."""
        if self.requests < earlier.requests:
            return self
        before = dict(earlier.buckets)
        return SideSample(
            requests=self.requests - earlier.requests,
            errors=max(self.errors - earlier.errors, 0.0),
            buckets=tuple((le, max(c - before.get(le, 0.0), 0.0)) for le, c in self.buckets),
        )

    def plus(self, other: SideSample) -> SideSample:
        """Two services' counts together (HTTP and HTTPS services of one side)."""
        counts: dict[float, float] = dict(self.buckets)
        for le, count in other.buckets:
            counts[le] = counts.get(le, 0.0) + count
        return SideSample(
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            buckets=tuple(sorted(counts.items())),
        )


def total(samples: Iterable[SideSample]) -> SideSample:
    result = SideSample()
    for sample in samples:
        result = result.plus(sample)
    return result


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile over cumulative buckets; None without observations.

    Linear interpolation inside the bucket that holds the rank; a rank in the +Inf bucket
    answers the highest finite bound (what Prometheus does: the histogram knows no more).
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if le == INF:
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (n may be many thousands)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * log_p
        + (n - i) * log_q
        for i in range(k, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


@dataclass(frozen=True)
class Thresholds:
    max_error_ratio: float = 0.01  # tolerated excess over the stable side's 5xx ratio
    max_p99_ms: float = 1000.0  # a canary p99 above this aborts (unless stable's is too)
    max_p99_ratio: float = 2.0  # canary p99 / stable p99 above this aborts...
    min_p99_excess_ms: float = 200.0  # ...when the canary is also this much slower (measured:
    # a good release read 75 ms against the stable side's 25 ms on a busy 2-core host)
    min_requests: int = 100  # canary requests needed to promote a step (and to judge p99)
    alpha: float = 0.01  # false-alarm bound of the error test at a step's end
    interim_alpha: float = 0.001  # the same while the step runs (it is looked at repeatedly)


class Decision(StrEnum):
    PROMOTE = "promote"
    ABORT = "abort"
    WATCH = "watch"  # the step goes on (interim look, nothing wrong yet)
    NOT_ENOUGH_DATA = "not enough data"  # the step's time is up but too few canary requests


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reasons: tuple[str, ...] = field(default_factory=tuple)
    canary_p99_ms: float | None = None
    stable_p99_ms: float | None = None
    error_p_value: float = 1.0
    error_breach: bool = False  # the error rule fired
    latency_breach: bool = False  # a latency rule fired


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def judge(canary: SideSample, stable: SideSample, thresholds: Thresholds, final: bool) -> Verdict:
    """The verdict on one window: `stable` is the stable side over the same window (or, when
    it had no traffic, e.g. at 100 %, over the last window in which it had)."""
    reasons: list[str] = []
    n, k = round(canary.requests), round(canary.errors)
    allowed = min(1.0, stable.error_ratio + thresholds.max_error_ratio)
    p_value = binomial_tail(k, n, allowed)
    alpha = thresholds.alpha if final else thresholds.interim_alpha
    error_breach = p_value < alpha
    if error_breach:
        reasons.append(
            f"canary 5xx ratio {canary.error_ratio:.1%} ({k}/{n}) is above the stable side's "
            f"{stable.error_ratio:.1%} + {thresholds.max_error_ratio:.1%} "
            f"(p = {p_value:.2g} < {alpha:g})"
        )
    canary_p99 = _ms(canary.p99_seconds())
    stable_p99 = _ms(stable.p99_seconds())
    latency_reasons: list[str] = []
    if n >= thresholds.min_requests and canary_p99 is not None:
        stable_over = stable_p99 is not None and stable_p99 > thresholds.max_p99_ms
        if canary_p99 > thresholds.max_p99_ms and not stable_over:
            latency_reasons.append(
                f"canary p99 {canary_p99:.0f} ms is above --max-p99-ms {thresholds.max_p99_ms:.0f}"
            )
        elif (
            stable_p99 is not None
            and stable.requests >= thresholds.min_requests
            and canary_p99 > stable_p99 * thresholds.max_p99_ratio
            and canary_p99 - stable_p99 > thresholds.min_p99_excess_ms
        ):
            latency_reasons.append(
                f"canary p99 {canary_p99:.0f} ms is over {thresholds.max_p99_ratio:g} x the "
                f"stable side's {stable_p99:.0f} ms"
            )
    latency_breach = bool(latency_reasons)
    reasons += latency_reasons
    if reasons:
        decision = Decision.ABORT
    elif not final:
        decision = Decision.WATCH
    elif n < thresholds.min_requests:
        decision = Decision.NOT_ENOUGH_DATA
        reasons.append(f"only {n} canary requests, {thresholds.min_requests} needed")
    else:
        decision = Decision.PROMOTE
    return Verdict(
        decision, tuple(reasons), canary_p99, stable_p99, p_value, error_breach, latency_breach
    )
