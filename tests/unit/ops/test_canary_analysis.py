"""The canary's decision rule: binomial error test, p99 from buckets, promote/abort/watch."""

from __future__ import annotations

import math

import pytest

from hactl.ops.canary_analysis import (
    Decision,
    SideSample,
    Thresholds,
    binomial_tail,
    histogram_quantile,
    judge,
    total,
)

INF = math.inf
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, INF)


def sample(
    requests: int, errors: int = 0, latency_s: float = 0.02, slow: int = 0, slow_s: float = 0.4
) -> SideSample:
    """`requests` answered in `latency_s`, `slow` of them in `slow_s` instead."""
    fast = requests - slow
    buckets = tuple((le, float(fast * (latency_s <= le) + slow * (slow_s <= le))) for le in BOUNDS)
    return SideSample(float(requests), float(errors), buckets)


def test_binomial_tail_matches_exact_small_cases() -> None:
    assert binomial_tail(0, 10, 0.3) == 1.0
    assert binomial_tail(11, 10, 0.3) == 0.0
    assert binomial_tail(1, 10, 0.0) == 0.0
    assert binomial_tail(1, 1, 0.5) == pytest.approx(0.5)
    exact = sum(math.comb(20, i) * 0.1**i * 0.9 ** (20 - i) for i in range(5, 21))
    assert binomial_tail(5, 20, 0.1) == pytest.approx(exact)


def test_binomial_tail_stays_finite_for_large_samples() -> None:
    assert binomial_tail(300, 20000, 0.01) == pytest.approx(0.0, abs=1e-3)
    assert 0.4 < binomial_tail(200, 20000, 0.01) < 0.6


def test_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    # 100 observations: 50 in (0, 0.1], 50 in (0.1, 0.2]; the 0.99 rank is 99.
    buckets = ((0.1, 50.0), (0.2, 100.0), (INF, 100.0))
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.1 + 0.1 * 49 / 50)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.99, ((1.0, 10.0), (INF, 100.0))) == 1.0


def test_quantile_without_observations_is_none() -> None:
    assert histogram_quantile(0.99, ()) is None
    assert histogram_quantile(0.99, ((0.1, 0.0), (INF, 0.0))) is None


def test_window_between_reads_and_counter_reset() -> None:
    before, after = sample(100, 2), sample(300, 5)
    window = after.minus(before)
    assert (window.requests, window.errors) == (200.0, 3.0)
    assert dict(window.buckets)[INF] == 200.0
    # Traefik restarted: its counters start again from 0, the new value is the window.
    assert sample(50).minus(sample(100)).requests == 50.0


def test_sides_add_up_http_and_https_services() -> None:
    both = total([sample(100, 1), sample(50, 2)])
    assert (both.requests, both.errors) == (150.0, 3.0)
    assert dict(both.buckets)[INF] == 150.0


def test_a_good_canary_is_promoted_at_the_end_of_its_step() -> None:
    verdict = judge(sample(200, 1), sample(1800, 5), Thresholds(), final=True)
    assert verdict.decision is Decision.PROMOTE, verdict.reasons


def test_a_good_canary_is_watched_while_the_step_runs() -> None:
    assert judge(sample(50), sample(450), Thresholds(), final=False).decision is Decision.WATCH


def test_thirty_percent_errors_abort_within_the_first_requests() -> None:
    verdict = judge(sample(20, 6), sample(180), Thresholds(), final=False)
    assert verdict.decision is Decision.ABORT
    assert "5xx ratio 30.0% (6/20)" in verdict.reasons[0]


def test_five_percent_errors_abort_with_two_hundred_requests() -> None:
    verdict = judge(sample(200, 10), sample(1800, 0), Thresholds(), final=True)
    assert verdict.decision is Decision.ABORT


def test_errors_within_the_margin_over_a_failing_stable_side_are_tolerated() -> None:
    # A database outage: both sides answer 503s; the canary is no worse than stable.
    verdict = judge(sample(200, 22), sample(1800, 180), Thresholds(), final=True)
    assert verdict.decision is Decision.PROMOTE, verdict.reasons


def test_a_few_errors_on_a_quiet_stable_side_are_not_enough_to_abort() -> None:
    # 3 of 200 (1.5 %) with a 1-point margin: p = P(X >= 3 | 200, 1 %) is about 0.32.
    verdict = judge(sample(200, 3), sample(1800, 0), Thresholds(), final=True)
    assert verdict.decision is Decision.PROMOTE, verdict.reasons


def test_a_slow_canary_is_aborted_on_its_p99_relative_to_stable() -> None:
    verdict = judge(sample(200, slow=20), sample(1800), Thresholds(), final=True)
    assert verdict.decision is Decision.ABORT
    assert "p99" in verdict.reasons[0]
    assert verdict.canary_p99_ms is not None and verdict.canary_p99_ms > 250
    assert verdict.stable_p99_ms is not None and verdict.stable_p99_ms < 30


def test_small_latency_differences_below_the_bucket_resolution_are_tolerated() -> None:
    # 20 ms vs 45 ms is more than 2 x, but less than 200 ms apart.
    verdict = judge(sample(200, latency_s=0.045), sample(1800), Thresholds(), final=True)
    assert verdict.decision is Decision.PROMOTE, verdict.reasons


def test_host_noise_of_a_few_tens_of_ms_does_not_abort_a_good_release() -> None:
    # Measured on a busy 2-core host: a good release at p99 75 ms against stable's 25 ms.
    verdict = judge(sample(200, latency_s=0.075), sample(1800), Thresholds(), final=True)
    assert verdict.decision is Decision.PROMOTE, verdict.reasons


def test_the_p99_ceiling_applies_unless_stable_is_over_it_too() -> None:
    thresholds = Thresholds(max_p99_ms=300)
    slow_canary = sample(200, latency_s=0.4)
    assert judge(slow_canary, sample(1800), thresholds, final=True).decision is Decision.ABORT
    slow_everywhere = sample(1800, latency_s=0.4)
    assert judge(slow_canary, slow_everywhere, thresholds, final=True).decision is (
        Decision.PROMOTE
    )


def test_p99_is_not_judged_on_too_few_requests() -> None:
    verdict = judge(sample(20, slow=5), sample(180), Thresholds(), final=False)
    assert verdict.decision is Decision.WATCH


def test_too_few_canary_requests_at_the_end_is_not_a_promotion() -> None:
    verdict = judge(sample(40), sample(360), Thresholds(), final=True)
    assert verdict.decision is Decision.NOT_ENOUGH_DATA
    assert "only 40 canary requests" in verdict.reasons[0]


def test_blue_green_without_stable_traffic_uses_the_reference_it_is_given() -> None:
    verdict = judge(sample(500, 0), SideSample(), Thresholds(), final=True)
    assert verdict.decision is Decision.PROMOTE
    bad = judge(sample(500, 40), SideSample(), Thresholds(), final=True)
    assert bad.decision is Decision.ABORT
