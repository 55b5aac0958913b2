"""Pure parts of the load generator: schedule, percentiles, summary, workload mix."""

import random

import pytest

from hactl.loadgen.generator import (
    LoadConfig,
    RequestKind,
    RequestRecord,
    WorkloadMix,
    content_token,
    content_token_pattern,
    percentile,
    schedule_offsets,
    summarize,
)


def test_schedule_is_evenly_spaced_at_the_rate() -> None:
    offsets = schedule_offsets(200, 5)
    assert offsets == pytest.approx([0.0, 0.005, 0.010, 0.015, 0.020])


def test_schedule_rejects_a_zero_rate() -> None:
    with pytest.raises(ValueError):
        schedule_offsets(0, 3)


def test_request_count_is_bounded_by_rate_times_duration_and_by_max() -> None:
    assert LoadConfig("http://x", rate=100, duration_s=30).request_count() == 3000
    assert LoadConfig("http://x", rate=100, duration_s=30, max_requests=10).request_count() == 10


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_percentile_ignores_input_order() -> None:
    assert percentile([5, 1, 4, 2, 3], 50) == 3


def _record(seq: int, status: int | None, *, replica: str | None = "a", **kw) -> RequestRecord:
    return RequestRecord(
        seq=seq,
        client=0,
        kind=kw.pop("kind", "whoami"),
        method=kw.pop("method", "GET"),
        path="/api/v1/whoami",
        intended_s=seq * 0.01,
        latency_s=kw.pop("latency_s", 0.010),
        status=status,
        replica=replica if status == 200 else None,
        **kw,
    )


def test_summary_counts_failures_by_status_and_exception() -> None:
    records = [_record(i, 200, replica="a" if i % 2 else "b") for i in range(96)]
    records += [
        _record(96, 502),
        _record(97, 503),
        _record(98, None, error="ReadTimeout: timed out", latency_s=5.0),
        _record(99, None, error="ConnectError: refused"),
    ]
    summary = summarize(records)
    assert summary.total == 100
    assert summary.failed == 4
    assert summary.success_ratio == pytest.approx(0.96)
    assert summary.failures_by_kind == {
        "HTTP 502": 1,
        "HTTP 503": 1,
        "ReadTimeout": 1,
        "ConnectError": 1,
    }
    assert summary.replica_share == {"a": 0.5, "b": 0.5}
    assert summary.latency_ms["max"] == 5000.0
    assert summary.latency_ms["p50"] == 10.0
    assert summary.send_lag_ms["max"] is None  # these records were never sent


def test_summary_reports_how_late_requests_left() -> None:
    records = [_record(i, 200, sent_s=i * 0.01 + (0.5 if i == 9 else 0.001)) for i in range(10)]
    lag = summarize(records).send_lag_ms
    assert lag["p50"] == 1.0 and lag["max"] == 500.0


def test_summary_of_nothing() -> None:
    summary = summarize([])
    assert summary.total == 0
    assert summary.success_ratio == 1.0
    assert summary.latency_ms["p99"] is None


def test_summary_counts_acknowledged_writes() -> None:
    records = [
        _record(0, 201, kind="write", method="POST", acknowledged=True),
        _record(1, 503, kind="write", method="POST"),
    ]
    assert summarize(records).writes_acknowledged == 1


def test_mix_parse_and_pick() -> None:
    mix = WorkloadMix.parse("whoami=0,write=1")
    rng = random.Random(1)
    assert {mix.pick(rng) for _ in range(50)} == {RequestKind.WRITE}
    with pytest.raises(ValueError):
        WorkloadMix.parse("bogus=1")
    with pytest.raises(ValueError):
        WorkloadMix(0, 0, 0)


def test_mix_follows_weights_roughly() -> None:
    mix = WorkloadMix(whoami=5, write=3, read=2)
    rng = random.Random(7)
    picks = [mix.pick(rng) for _ in range(10_000)]
    assert picks.count(RequestKind.WRITE) == pytest.approx(3000, rel=0.1)


def test_content_tokens_are_unique_and_match_the_run_pattern() -> None:
    tokens = {content_token("run1", i) for i in range(1000)}
    assert len(tokens) == 1000
    prefix = content_token_pattern("run1").rstrip("%")
    assert all(t.startswith(prefix) for t in tokens)


def test_record_round_trips_through_json() -> None:
    record = _record(3, 201, kind="write", method="POST", idempotency_key="k", acknowledged=True)
    assert RequestRecord.from_json(record.to_json()) == record
