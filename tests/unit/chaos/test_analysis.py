"""Pure parts of a chaos run: window, latency split, rotation timings, evidence, verdict."""

from dataclasses import replace

import pytest

from hactl.chaos.analysis import (
    BROWSER,
    COOKIELESS,
    FaultStep,
    Window,
    browser_cookie_kept,
    browser_pin_now,
    browser_repin,
    by_client_kind,
    by_request_kind,
    changed_containers,
    client_kind,
    downtime,
    failures_without_retry_after,
    fault_window,
    in_flight_at,
    judge,
    latency_inside_outside,
    mean_in_flight,
    over_bound,
    recovery_after,
    repin_problem,
    rotation_from_polls,
    serving_gap,
    slow_in_window,
    state_changes,
    traefik_kill_report,
)
from hactl.chaos.faults import ContainerSnapshot, FaultEvidence, Scenario, fault_happened
from hactl.chaos.report import per_second_outcomes, render_timeline, report_paths
from hactl.loadgen.generator import RequestRecord


def _req(t: float, *, status: int | None = 200, replica: str | None = "a", latency=0.01, **kw):
    return RequestRecord(
        seq=int(t * 1000),
        client=0,
        kind="whoami",
        method="GET",
        path="/api/v1/whoami",
        intended_s=t,
        done_s=t + latency,
        latency_s=latency,
        status=status,
        replica=replica,
        **kw,
    )


def _snap(**kw) -> ContainerSnapshot:
    base = ContainerSnapshot(
        name="web-1",
        id="c1",
        status="running",
        running=True,
        paused=False,
        pid=100,
        started_at="t1",
        finished_at="",
        restart_count=0,
        exit_code=0,
        health="healthy",
        hostname="c1",
        ips=("10.0.0.2",),
    )
    return replace(base, **kw)


def test_fault_window_spans_the_steps_plus_settle() -> None:
    window = fault_window([FaultStep(5.0, "kill"), FaultStep(10.5, "start")], settle_s=3)
    assert window == Window(5.0, 13.5)
    assert fault_window([], 3) is None


def test_latency_split_inside_and_outside_the_window() -> None:
    records = [_req(t / 10, latency=0.01) for t in range(100)]
    records += [_req(5.5, latency=2.0)]
    split = latency_inside_outside(records, Window(5.0, 6.0))
    assert split["inside"]["max"] == 2000.0
    assert split["outside"]["max"] == 10.0
    assert split["inside"]["requests"] + split["outside"]["requests"] == 101


def test_serving_gap_finds_the_outage_of_a_killed_replica() -> None:
    records = [_req(t / 10, replica="a") for t in range(0, 50)]  # until 4.9 s
    records += [_req(t / 10, replica="a") for t in range(120, 150)]  # back at 12 s
    records += [_req(t / 10, replica="b") for t in range(0, 150)]
    last, again = serving_gap(records, "a", fault_s=5.0)
    assert last == pytest.approx(4.91)
    assert again == pytest.approx(12.01)


def test_serving_gap_of_a_draining_replica_starts_when_it_stops_serving() -> None:
    records = [_req(t / 10, replica="a") for t in range(0, 80)]  # drains until 7.9 s
    records += [_req(t / 10, replica="a") for t in range(150, 160)]
    last, again = serving_gap(records, "a", fault_s=5.0)
    assert last == pytest.approx(7.91)
    assert again == pytest.approx(15.01)


def test_serving_gap_without_return() -> None:
    records = [_req(t / 10, replica="a") for t in range(0, 50)]
    assert serving_gap(records, "a", fault_s=5.0) == (pytest.approx(4.91), None)


def test_rotation_from_polls() -> None:
    polls = [
        (4.8, {"10.0.0.2": "UP", "10.0.0.3": "UP"}),
        (5.2, {"10.0.0.2": "UP", "10.0.0.3": "UP"}),
        (5.6, {"10.0.0.3": "UP"}),
        (9.0, {"10.0.0.2": "DOWN", "10.0.0.3": "UP"}),
        (11.0, {"10.0.0.2": "UP", "10.0.0.3": "UP"}),
    ]
    assert rotation_from_polls(polls, ["10.0.0.2"], fault_s=5.0) == (5.6, 11.0)
    assert rotation_from_polls(polls[:3], ["10.0.0.2"], fault_s=5.0) == (5.6, None)
    assert rotation_from_polls(polls[:2], ["10.0.0.2"], fault_s=5.0) == (None, None)


def test_downtime_counts_failures_after_the_fault() -> None:
    records = [_req(t) for t in (1.0, 5.0)]
    records += [_req(t, status=502) for t in (5.2, 6.0, 7.5)]
    assert downtime(records, 5.0) == {
        "failed": 3,
        "first_failure_s": 5.2,
        "last_failure_s": 7.5,
        "span_s": 2.3,
    }
    assert downtime(records[:2], 5.0)["failed"] == 0


def test_only_clean_503_with_retry_after_is_allowed_during_a_db_outage() -> None:
    records = [
        _req(1, status=503, retry_after="1"),
        _req(2, status=503),
        _req(3, status=None, error="ReadTimeout: x"),
        _req(4),
    ]
    assert failures_without_retry_after(records) == {"HTTP 503": 1, "ReadTimeout": 1}


def test_changed_containers() -> None:
    before = [_snap(), _snap(name="web-2", id="c2")]
    assert changed_containers(before, before) == []
    after = [_snap(restart_count=1, started_at="t2"), _snap(name="web-2", id="c9")]
    changes = changed_containers(before, after)
    assert len(changes) == 2 and "restarted" in changes[0] and "replaced" in changes[1]
    assert changed_containers(before, before[:1]) == ["web-2: gone"]


def test_fault_evidence_rejects_a_no_op() -> None:
    same = FaultEvidence(before=_snap(), during=_snap(), after=_snap())
    for scenario in Scenario:
        assert not fault_happened(scenario, same)[0], scenario


def test_fault_evidence_per_scenario() -> None:
    restarted = _snap(pid=200, started_at="t2")
    exited = _snap(status="exited", running=False, exit_code=137, pid=0)
    kill = FaultEvidence(_snap(), during=exited, after=restarted)
    assert fault_happened(Scenario.KILL, kill)[0]
    crash = FaultEvidence(_snap(), during=restarted, after=replace(restarted, restart_count=1))
    assert fault_happened(Scenario.CRASH, crash)[0]
    assert not fault_happened(Scenario.CRASH, FaultEvidence(_snap(), restarted, restarted))[0]
    pause = FaultEvidence(_snap(), during=_snap(paused=True, status="paused"), after=_snap())
    assert fault_happened(Scenario.PAUSE, pause)[0]
    assert fault_happened(Scenario.RESTART, FaultEvidence(_snap(), restarted, restarted))[0]
    assert not fault_happened(Scenario.KILL, FaultEvidence(_snap(), None, None))[0]
    cut = FaultEvidence(_snap(), during=_snap(ips=()), after=_snap(ips=("10.0.0.7",)))
    assert fault_happened(Scenario.DISCONNECT, cut)[0]
    never_back = FaultEvidence(_snap(), during=_snap(ips=()), after=_snap(ips=()))
    assert not fault_happened(Scenario.DISCONNECT, never_back)[0]
    assert not fault_happened(
        Scenario.DISCONNECT, FaultEvidence(_snap(), _snap(ips=()), restarted)
    )[0]


def test_verdicts() -> None:
    ok = dict(failed_requests=0, write_check_ok=True, lost=0, duplicated=0, fault_real=True)
    assert judge(Scenario.KILL, **ok).passed
    assert not judge(Scenario.KILL, **{**ok, "failed_requests": 1}).passed
    assert not judge(Scenario.KILL, **{**ok, "fault_real": False}).passed
    assert not judge(Scenario.PAUSE, **{**ok, "duplicated": 1, "write_check_ok": False}).passed
    db = {**ok, "failed_requests": 40, "recovered_within_s": 3.0}
    assert judge(Scenario.DB_RESTART, **db).passed
    assert not judge(Scenario.DB_RESTART, **db, web_changes=["web-1: restarted"]).passed
    assert not judge(Scenario.DB_RESTART, **{**db, "recovered_within_s": 99.0}).passed
    assert not judge(Scenario.DB_RESTART, **db, unclean_failures={"ReadTimeout": 1}).passed
    # Two Traefik instances: a restart or rollout of one fails no request (issue 16).
    assert judge(Scenario.TRAEFIK_RESTART, **ok).passed
    assert not judge(Scenario.TRAEFIK_RESTART, **{**ok, "failed_requests": 1}).passed
    assert not judge(Scenario.TRAEFIK_ROLLOUT, **{**ok, "failed_requests": 1}).passed
    assert not judge(Scenario.TRAEFIK_ROLLOUT, **ok, over_latency_bound=1).passed


def test_traefik_kill_verdict_allows_only_the_requests_in_flight_at_the_kill() -> None:
    ok = dict(failed_requests=3, write_check_ok=True, lost=0, duplicated=0, fault_real=True)
    kill = {
        "in_flight_at_kill": 5,
        "failed": 3,
        "failed_sent_after_kill": 0,
        "answered_over_bound": 0,
    }
    assert judge(Scenario.TRAEFIK_KILL, **ok, traefik_kill=kill, traefik_back_after_s=2.0).passed
    slow = {**kill, "answered_over_bound": 1}
    assert not judge(
        Scenario.TRAEFIK_KILL, **ok, traefik_kill=slow, traefik_back_after_s=2.0
    ).passed
    late = {**kill, "failed_sent_after_kill": 1}
    assert not judge(
        Scenario.TRAEFIK_KILL, **ok, traefik_kill=late, traefik_back_after_s=2.0
    ).passed
    more = {**kill, "failed": 6}
    assert not judge(
        Scenario.TRAEFIK_KILL, **ok, traefik_kill=more, traefik_back_after_s=2.0
    ).passed
    assert not judge(Scenario.TRAEFIK_KILL, **ok, traefik_kill=kill).passed  # never back
    assert not judge(
        Scenario.TRAEFIK_KILL, **ok, traefik_kill=kill, traefik_back_after_s=10.5
    ).passed
    assert not judge(Scenario.TRAEFIK_KILL, **ok, traefik_back_after_s=2.0).passed  # no report


def test_traefik_kill_report_counts_in_flight_and_late_failures() -> None:
    records = [
        _req(1.0, latency=0.01, sent_s=1.0),  # done before the kill
        _req(1.9, latency=0.5, sent_s=1.9, status=None, error="RemoteProtocolError: x"),
        _req(1.95, latency=0.5, sent_s=1.95),  # in flight, answered (the other instance)
        _req(2.5, latency=0.01, sent_s=2.5, status=None, error="ConnectError: refused"),
        _req(2.6, latency=3.2, sent_s=2.6),  # answered, but too late
    ]
    report = traefik_kill_report(records, kill_s=2.0, rate=100.0)
    assert report["in_flight_at_kill"] == 2
    assert report["sent_before_the_kill_was_noticed"] == 0  # 2.5 s is past the grace
    assert report["failed"] == 2
    assert report["failed_sent_after_kill"] == 1
    assert report["failures_by_kind"] == {"RemoteProtocolError": 1, "ConnectError": 1}
    assert report["failed_percent_of_one_second"] == 2.0
    assert report["answered_over_bound"] == 1  # the failures are not counted again


def test_browser_cookie_kept_only_without_a_new_cookie_or_another_replica() -> None:
    pinned = [_req(t / 10, replica="web-2") for t in range(10)]
    assert browser_cookie_kept(pinned, 1, "web-2")["kept"]
    moved = [*pinned, _req(2.0, replica="web-3", set_cookie="abc")]
    kept = browser_cookie_kept(moved, 1, "web-2")
    assert not kept["kept"]
    assert kept["new_cookies"] == ["abc"]
    assert kept["answered_by"] == {"web-2": 10, "web-3": 1}
    # Requests of clients other than the browser's do not count.
    other = replace(_req(2.0, replica="web-3", set_cookie="abc"), client=5)
    assert browser_cookie_kept([*pinned, other], 1, "web-2")["kept"]
    assert in_flight_at([_req(0.3, latency=0.01, sent_s=0.3)], 0.305) == 1


def test_traefik_rollout_evidence_needs_every_instance_replaced() -> None:
    both = FaultEvidence(_snap(), _snap(), _snap(), replaced={"a": ["1", "2"], "b": ["3", "4"]})
    assert fault_happened(Scenario.TRAEFIK_ROLLOUT, both)[0]
    one = FaultEvidence(_snap(), _snap(), _snap(), replaced={"a": ["1", "2"], "b": ["3", "3"]})
    assert not fault_happened(Scenario.TRAEFIK_ROLLOUT, one)[0]
    assert not fault_happened(Scenario.TRAEFIK_ROLLOUT, FaultEvidence(_snap()))[0]
    assert Scenario.TRAEFIK_KILL.target_service == "traefik"
    assert Scenario.TRAEFIK_ROLLOUT.hits_traefik and not Scenario.TRAEFIK_ROLLOUT.hits_a_replica


def test_report_timeline_png_and_paths(tmp_path) -> None:
    records = [_req(t / 100) for t in range(300)] + [_req(1.5, status=502, latency=0.3)]
    seconds, ok, failed = per_second_outcomes(records)
    assert seconds == [0, 1, 2] and failed == [0, 1, 0] and sum(ok) == 300
    paths = report_paths(tmp_path, "kill")
    render_timeline(records, [FaultStep(1.0, "kill")], Window(1.0, 2.0), paths["png"], "t")
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert paths["json"].name.endswith("-kill.json")


def test_recovery_needs_a_clean_tail_with_writes() -> None:
    ok = [_req(t / 10) for t in range(0, 50)]
    outage = [_req(5 + t / 10, status=503) for t in range(20)]
    tail = [_req(7 + t / 10) for t in range(30)]
    write = RequestRecord(
        seq=1,
        client=0,
        kind="write",
        method="POST",
        path="/m",
        intended_s=9.0,
        status=201,
        acknowledged=True,
    )
    assert recovery_after(ok + outage + tail + [write], last_step_s=6.0) == 0.9
    assert recovery_after(ok + outage + [write], last_step_s=6.0) is None  # no clean tail
    assert recovery_after([*ok, write], last_step_s=6.0) == 0.0
    unacked = RequestRecord(
        seq=2, client=0, kind="write", method="POST", path="/m", intended_s=9.5, status=503
    )
    assert recovery_after(ok + outage + tail + [unacked], last_step_s=6.0) is None


def test_state_changes_keeps_only_transitions() -> None:
    polls = [
        (0.0, {"a": "UP", "b": "UP"}),
        (0.2, {"a": "UP", "b": "UP"}),
        (0.4, {"b": "UP"}),
        (0.6, {"b": "UP"}),
        (0.8, {"a": "UP", "b": "UP"}),
    ]
    assert [c["t_s"] for c in state_changes(polls)] == [0.0, 0.4, 0.8]


def test_client_kinds_are_split_and_slow_or_unfinished_requests_count_over_the_bound() -> None:
    records = [
        replace(_req(1.0), client=0),
        replace(_req(6.0, status=504, latency=2.0), client=0),
        replace(_req(6.1, latency=3.5), client=1),
        replace(_req(6.2, status=None), latency_s=None, error="Timeout: 5 s", client=2),
        replace(_req(7.0), client=3),
    ]
    assert [client_kind(r, 2) for r in records] == [
        BROWSER,
        BROWSER,
        BROWSER,
        COOKIELESS,
        COOKIELESS,
    ]
    assert over_bound(records) == 2  # the 3.5 s answer and the timeout; 2.0 s is within 3 s
    kinds = by_client_kind(records, 2, Window(5.0, 8.0))
    assert kinds[BROWSER]["failed"] == 1 and kinds[BROWSER]["over_3s"] == 1
    assert kinds[COOKIELESS]["failed"] == 1 and kinds[COOKIELESS]["over_3s"] == 1
    assert kinds[BROWSER]["latency_ms_in_fault_window"]["max"] == 3500.0


def test_a_browser_is_repinned_by_a_new_cookie_after_the_fault_and_stays() -> None:
    before = [replace(_req(t, replica="victim"), client=0) for t in (1.0, 2.0)]
    # Failover answers come from any replica and set no cookie; the next request re-pins.
    failover = [replace(_req(5.2, replica="b"), client=1)]
    repinned = [replace(_req(5.4, replica="c"), client=0, set_cookie="cookie-c")]
    after = [replace(_req(t, replica="c"), client=int(t) % 2) for t in (8.0, 9.0, 10.0)]
    cookieless = [replace(_req(9.5, replica="b"), client=5, set_cookie="not-the-browser")]
    records = before + failover + repinned + after + cookieless
    repin = browser_repin(records, 2, pinned="victim", fault_s=5.0, settled_after_s=7.0)
    assert repin["repinned"] and repin["stayed"], repin
    assert repin["new_cookies"] == ["cookie-c"] and repin["answered_after_settle"] == {"c": 3}
    moved_again = [*records, replace(_req(11.0, replica="b"), client=1, set_cookie="cookie-b")]
    assert not browser_repin(moved_again, 2, "victim", 5.0, 7.0)["stayed"]
    assert not browser_repin(before + after, 2, "victim", 5.0, 7.0)["repinned"]
    assert repin_problem(repin) is None
    assert "no new sticky cookie" in (
        repin_problem(browser_repin(before + after, 2, "victim", 5.0, 7.0)) or ""
    )


def test_a_request_in_flight_at_the_fault_and_re_pinned_by_its_retry_counts() -> None:
    # Sent at 4.6 s to the victim, killed at 5.0 s; the retry answered at 5.6 s with a cookie.
    retried = replace(_req(4.6, replica="c", latency=1.0), client=0, set_cookie="cookie-c")
    after = [replace(_req(t, replica="c"), client=0) for t in (8.0, 9.0)]
    repin = browser_repin([retried, *after], 2, pinned="victim", fault_s=5.0, settled_after_s=7.0)
    assert repin["new_cookies"] == ["cookie-c"] and repin_problem(repin) is None


def test_requests_over_the_latency_bound_fail_a_replica_fault() -> None:
    verdict = judge(
        Scenario.PAUSE,
        failed_requests=0,
        write_check_ok=True,
        lost=0,
        duplicated=0,
        fault_real=True,
        over_latency_bound=3,
    )
    assert not verdict.passed and "3 requests over 3 s" in verdict.reasons


def test_mean_in_flight_is_time_in_flight_over_the_span() -> None:
    # 10 requests a second for 10 s, each 1.5 s long: 15 in flight on average (Little's law).
    records = [replace(_req(i / 10, latency=1.5), sent_s=i / 10) for i in range(100)]
    assert mean_in_flight(records) == pytest.approx(150 / 11.4, rel=0.01)
    assert mean_in_flight([]) == 0.0


def test_slow_requests_in_the_window_and_failures_per_request_kind() -> None:
    records = [_req(t / 10, latency=0.02) for t in range(100)]
    records += [_req(5.0, latency=0.7), replace(_req(5.1, status=503), kind="write")]
    slow = slow_in_window(records, Window(4.0, 6.0))
    assert slow == {"over_s": 0.5, "requests": 23, "count": 1}
    kinds = by_request_kind(records)
    assert kinds["whoami"] == {"total": 101, "failed": 0}
    assert kinds["write"] == {"total": 1, "failed": 1}


def test_the_browser_pin_now_follows_its_latest_cookie() -> None:
    pinned = [replace(_req(t, replica="victim"), client=0) for t in (1.0, 2.0)]
    assert browser_pin_now(pinned, 2, "victim") == "victim"
    # Moved before the fault (a late answer took its replica out): two cookies, the later wins.
    moved = [
        replace(_req(4.0, replica="b"), client=1, set_cookie="cookie-b"),
        replace(_req(4.1, replica="c"), client=0, set_cookie="cookie-c"),
    ]
    assert browser_pin_now(pinned + moved, 2, "victim") == "c"
    # A cookie-less client's cookie, or a request still in flight, does not move the browser.
    others = [
        replace(_req(4.5, replica="d"), client=5, set_cookie="not-the-browser"),
        replace(_req(4.6, replica="e"), client=1, set_cookie="cookie-e", done_s=None),
    ]
    assert browser_pin_now(pinned + moved + others, 2, "victim") == "c"
