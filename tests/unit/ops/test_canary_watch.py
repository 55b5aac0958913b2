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
