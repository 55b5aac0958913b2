"""A canary step's loop over successive counter reads (no Docker, no Traefik: a fake reader)."""

from __future__ import annotations

import math

from hactl.ops.canary import POLL_S, CanarySettings, watch_step
from hactl.ops.canary_analysis import Decision, SideSample, Thresholds
from hactl.ops.canary_plan import CanaryStep

STEP = CanaryStep(index=1, weight=10, replicas=1)


def counters(requests: float, errors: float = 0.0) -> SideSample:
    return SideSample(requests, errors, ((0.025, requests), (math.inf, requests)))


class Reader:
    """Counters that grow by a fixed amount per read: canary and stable per POLL_S seconds."""

    def __init__(self, canary_per_read: int, canary_errors_per_read: int, stable_per_read: int):
        self.reads = 0
        self.per = (canary_per_read, canary_errors_per_read, stable_per_read)

    def read_sides(self) -> tuple[SideSample, SideSample]:
        n = self.reads
        self.reads += 1
        c, e, s = self.per
        return counters(c * n, e * n), counters(s * n)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def run(reader: Reader, step_seconds: float = 20, min_requests: int = 50) -> tuple[object, Clock]:
    clock = Clock()
    settings = CanarySettings(
        steps=(10, 100), step_seconds=step_seconds, thresholds=Thresholds(min_requests=min_requests)
    )
    report = watch_step(reader, STEP, settings, SideSample(), sleep=clock.sleep, clock=clock)
    return report, clock


def test_a_clean_step_is_promoted_when_its_time_is_up() -> None:
    report, clock = run(Reader(10, 0, 90))
    assert report.verdict.decision is Decision.PROMOTE
    assert clock.now == 20
    assert report.canary.requests == 100 and report.stable.requests == 900


def test_a_failing_canary_is_aborted_at_the_first_reads() -> None:
    report, clock = run(Reader(10, 3, 90))
    assert report.verdict.decision is Decision.ABORT
    assert clock.now <= 2 * POLL_S


def test_a_step_without_enough_canary_requests_waits_then_gives_up() -> None:
    report, clock = run(Reader(1, 0, 9))
    assert report.verdict.decision is Decision.NOT_ENOUGH_DATA
    assert clock.now == 60  # three times --step-seconds


def test_a_step_that_reaches_the_minimum_late_is_promoted_then() -> None:
    report, clock = run(Reader(2, 0, 18))
    assert report.verdict.decision is Decision.PROMOTE
    assert 20 < clock.now < 60 and report.canary.requests >= 50


def timed(fast: float, slow: float, errors: float = 0.0) -> SideSample:
    """Cumulative counters: `fast` answers within 25 ms, `slow` ones within 1 s."""
    n = fast + slow
    return SideSample(n, errors, ((0.025, fast), (1.0, n), (math.inf, n)))


class Script:
    """Canary counters read after read, as given; the stable side fast and steady."""

    def __init__(self, *canary: tuple[float, float]) -> None:
        self.canary = [(0.0, 0.0), *canary]
        self.reads = 0

    def read_sides(self) -> tuple[SideSample, SideSample]:
        n = min(self.reads, len(self.canary) - 1)
        self.reads += 1
        return timed(*self.canary[n]), timed(200.0 * n, 0.0)


def test_one_slow_look_while_the_step_runs_is_looked_at_again() -> None:
    # 5 slow of 60 at the first look (p99 near 1 s), then 5 of 1,200: a hiccup, not the release.
    blip = Script((55, 5), *[(600 * k - 5, 5) for k in range(2, 12)])
    report, clock = run(blip)  # type: ignore[arg-type]
    assert report.verdict.decision is Decision.PROMOTE, report.verdict
    assert clock.now == 20


def test_a_canary_slow_in_two_looks_in_a_row_is_aborted_at_the_second() -> None:
    slow = Script(*[(50 * k, 10 * k) for k in range(1, 12)])
    report, clock = run(slow)  # type: ignore[arg-type]
    assert report.verdict.decision is Decision.ABORT
    assert report.verdict.latency_breach and not report.verdict.error_breach
    assert clock.now == 2 * POLL_S


def test_a_slow_final_look_aborts_alone() -> None:
    late = Script(*[(60 * k, 0) for k in range(1, 10)], (540, 60))
    report, clock = run(late)  # type: ignore[arg-type]
    assert report.verdict.decision is Decision.ABORT and clock.now == 20


def test_errors_abort_at_the_first_look_even_when_also_slow() -> None:
    class Failing(Script):
        def read_sides(self) -> tuple[SideSample, SideSample]:
            canary, stable = super().read_sides()
            return SideSample(canary.requests, canary.requests / 2, canary.buckets), stable

    report, clock = run(Failing(*[(50 * k, 10 * k) for k in range(1, 12)]))  # type: ignore[arg-type]
    assert report.verdict.decision is Decision.ABORT and report.verdict.error_breach
    assert clock.now == POLL_S
