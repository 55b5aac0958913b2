"""Pure analysis of a chaos run: fault window, latency inside/outside it, rotation timings,
downtime, replicas that changed, and the pass/fail verdict. No I/O, so it is unit tested."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hactl.chaos.faults import ContainerSnapshot, Scenario
from hactl.loadgen.generator import WRITE_KINDS, RequestRecord, latency_stats_ms, summarize

# A replica serving about rate x whoami-share / replicas requests a second answers every
# ~60 ms at 100 req/s; a silence longer than this means it was out of rotation.
SERVING_GAP_S = 1.0


@dataclass(frozen=True)
class FaultStep:
    t_s: float
    action: str


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float

    def contains(self, t: float) -> bool:
        return self.start_s <= t <= self.end_s


def fault_window(steps: Sequence[FaultStep], settle_s: float) -> Window | None:
    """From the first fault step to the last one plus ``settle_s``."""
    if not steps:
        return None
    return Window(steps[0].t_s, steps[-1].t_s + settle_s)


def latency_inside_outside(
    records: Sequence[RequestRecord], window: Window | None
) -> dict[str, Any]:
    """Latency stats of requests whose intended send time is inside / outside the window."""
    done = [r for r in records if r.latency_s is not None]
    inside = [r for r in done if window and window.contains(r.intended_s)]
    outside = [r for r in done if not (window and window.contains(r.intended_s))]
    return {
        "window_s": [round(window.start_s, 3), round(window.end_s, 3)] if window else None,
        "inside": {"requests": len(inside), **latency_stats_ms(r.latency_s or 0 for r in inside)},
        "outside": {
            "requests": len(outside),
            **latency_stats_ms(r.latency_s or 0 for r in outside),
        },
    }


def serving_gap(
    records: Sequence[RequestRecord], replica: str, fault_s: float, gap_s: float = SERVING_GAP_S
) -> tuple[float | None, float | None]:
    """From the request log: when ``replica`` last served before its outage, and when it served
    again. The outage is the first silence longer than ``gap_s`` that ends after ``fault_s``
    (a replica that drains keeps serving for a while after the fault)."""
    served = sorted(
        r.done_s for r in records if r.ok and r.replica == replica and r.done_s is not None
    )
    before = [t for t in served if t < fault_s]
    previous = before[-1] if before else None
    for t in (t for t in served if t >= fault_s):
        if previous is not None and t - previous > gap_s:
            return previous, t
        previous = t
    return previous, None


Poll = tuple[float, Mapping[str, str]]  # (t_s, container IP -> "UP" | "DOWN")


def rotation_from_polls(
    polls: Sequence[Poll], ips: Sequence[str], fault_s: float
) -> tuple[float | None, float | None]:
    """From Traefik API polls: first time after the fault that none of ``ips`` is UP (removed),
    and the first time after that when one of them is UP again (back)."""
    removed: float | None = None
    for t, states in polls:
        if t < fault_s:
            continue
        up = any(states.get(ip) == "UP" for ip in ips)
        if removed is None and not up:
            removed = t
        elif removed is not None and up:
            return removed, t
    return removed, None


def state_changes(polls: Sequence[Poll]) -> list[dict[str, Any]]:
    """Only the polls where Traefik's view changed: ``[{t_s, servers: {ip: state}}]``."""
    changes: list[dict[str, Any]] = []
    previous: Mapping[str, str] | None = None
    for t, states in polls:
        if states != previous:
            changes.append({"t_s": round(t, 3), "servers": dict(sorted(states.items()))})
            previous = states
    return changes


def downtime(records: Sequence[RequestRecord], fault_s: float) -> dict[str, Any]:
    """Failed requests at or after the fault: how many, the first and last (by intended time)."""
    failed = sorted(r.intended_s for r in records if not r.ok and r.intended_s >= fault_s - 0.5)
    if not failed:
        return {"failed": 0, "first_failure_s": None, "last_failure_s": None, "span_s": 0.0}
    return {
        "failed": len(failed),
        "first_failure_s": round(failed[0], 3),
        "last_failure_s": round(failed[-1], 3),
        "span_s": round(failed[-1] - failed[0], 3),
    }


def recovery_after(
    records: Sequence[RequestRecord], last_step_s: float, min_ok: int = 10
) -> float | None:
    """Seconds from the fault's last step to the last failure, if the service then served
    ``min_ok`` requests (a write among them) without failing; ``None``: not recovered."""
    failures = [r.intended_s for r in records if not r.ok]
    last_failure = max(failures, default=None)
    tail = [r for r in records if last_failure is None or r.intended_s > last_failure]
    ok_writes = sum(1 for r in tail if r.kind in WRITE_KINDS and r.acknowledged)
    has_writes = any(r.kind in WRITE_KINDS for r in records)
    if len(tail) < min_ok or (has_writes and ok_writes == 0):
        return None
    if last_failure is None:
        return 0.0
    return round(max(0.0, last_failure - last_step_s), 3)


def changed_containers(
    before: Sequence[ContainerSnapshot], after: Sequence[ContainerSnapshot]
) -> list[str]:
    """Containers that were replaced, restarted or are missing/stopped afterwards."""
    later = {s.name: s for s in after}
    changes = []
    for old in before:
        new = later.get(old.name)
        if new is None:
            changes.append(f"{old.name}: gone")
        elif new.id != old.id:
            changes.append(f"{old.name}: replaced ({old.id[:12]} -> {new.id[:12]})")
        elif new.restart_count != old.restart_count or new.started_at != old.started_at:
            changes.append(f"{old.name}: restarted (restart count {new.restart_count})")
        elif not new.running:
            changes.append(f"{old.name}: {new.status}")
    return changes


def failures_without_retry_after(records: Sequence[RequestRecord]) -> dict[str, int]:
    """Failures that are not a clean ``503 + Retry-After`` (by kind)."""
    counts: dict[str, int] = {}
    for record in records:
        if record.ok or (record.status == 503 and record.retry_after):
            continue
        kind = record.failure_kind or "unknown"
        counts[kind] = counts.get(kind, 0) + 1
    return counts


# No request may take longer than this end to end because of a replica fault (issue 13).
LATENCY_BOUND_S = 3.0
BROWSER = "browser"
COOKIELESS = "cookieless"


# p99 bound while a replica is frozen (issue 13): at most 1 % of the window's requests slower.
FROZEN_P99_BOUND_S = 0.5


def slow_in_window(
    records: Sequence[RequestRecord], window: Window | None, over_s: float = FROZEN_P99_BOUND_S
) -> dict[str, Any]:
    """How many requests sent inside the fault window took longer than ``over_s`` (a p99
    bound asserted as a count)."""
    inside = [r for r in records if window and window.contains(r.intended_s)]
    return {
        "over_s": over_s,
        "requests": len(inside),
        "count": over_bound(inside, over_s),
    }


def by_request_kind(records: Sequence[RequestRecord]) -> dict[str, dict[str, int]]:
    """Total and failed per request kind (whoami needs no database; writes and reads do)."""
    kinds: dict[str, dict[str, int]] = {}
    for record in records:
        counts = kinds.setdefault(record.kind, {"total": 0, "failed": 0})
        counts["total"] += 1
        counts["failed"] += 0 if record.ok else 1
    return kinds


def mean_in_flight(records: Sequence[RequestRecord]) -> float:
    """Requests in flight on average over the run (Little's law: total time in flight / span)."""
    timed = [r for r in records if r.sent_s is not None and r.done_s is not None]
    if not timed:
        return 0.0
    span = max(r.done_s or 0.0 for r in timed) - min(r.sent_s or 0.0 for r in timed)
    busy = sum((r.done_s or 0.0) - (r.sent_s or 0.0) for r in timed)
    return round(busy / span, 2) if span > 0 else 0.0


def client_kind(record: RequestRecord, browser_clients: int) -> str:
    """The load generator gives the first ``browser_clients`` clients the browser's cookie."""
    return BROWSER if record.client < browser_clients else COOKIELESS


def over_bound(records: Sequence[RequestRecord], bound_s: float = LATENCY_BOUND_S) -> int:
    """Requests that took longer than ``bound_s`` from their intended send time, or never
    finished (a timeout or a cancelled request counts: it took at least that long)."""
    return sum(
        1 for r in records if r.latency_s is None or r.latency_s > bound_s or r.error is not None
    )


def by_client_kind(
    records: Sequence[RequestRecord], browser_clients: int, window: Window | None
) -> dict[str, dict[str, Any]]:
    """Failed, over-bound and latency per client kind, so a pinned browser's experience is
    never averaged away by the cookie-less majority."""
    kinds: dict[str, list[RequestRecord]] = {}
    for record in records:
        kinds.setdefault(client_kind(record, browser_clients), []).append(record)
    report = {}
    for kind, recs in sorted(kinds.items()):
        summary = summarize(recs)
        inside = [r for r in recs if window and window.contains(r.intended_s)]
        report[kind] = {
            "total": summary.total,
            "failed": summary.failed,
            "failures_by_kind": summary.failures_by_kind,
            "over_3s": over_bound(recs),
            "latency_ms": summary.latency_ms,
            "latency_ms_in_fault_window": latency_stats_ms(
                r.latency_s for r in inside if r.latency_s is not None
            ),
        }
    return report


def browser_pin_now(records: Sequence[RequestRecord], browser_clients: int, pinned: str) -> str:
    """The replica the browser's shared cookie names now: the one that answered the latest
    browser response setting a cookie (Traefik writes the cookie of the server it picked), else
    the replica it was pinned to at the start. A busy host can move the browser before the fault
    (an answer later than the pinned bound takes its replica out until the next probe)."""
    setters = [
        r
        for r in records
        if r.client < browser_clients and r.set_cookie and r.replica and r.done_s is not None
    ]
    if not setters:
        return pinned
    return max(setters, key=lambda r: r.done_s or 0.0).replica or pinned


def browser_repin(
    records: Sequence[RequestRecord],
    browser_clients: int,
    pinned: str,
    fault_s: float,
    settled_after_s: float,
) -> dict[str, Any]:
    """Was the browser re-pinned (a new sticky cookie after the fault) and did it stay there
    (no further cookie once the fault settled)? Failover answers come from other replicas
    without a cookie, so the cookies, not the answering replicas, tell where it is pinned."""
    browser = [r for r in records if r.client < browser_clients]
    # Answered after the fault: a request in flight on the victim is re-pinned by its retry.
    new_cookies = [r for r in browser if r.set_cookie and (r.done_s or 0.0) >= fault_s]
    late = sorted({r.set_cookie for r in new_cookies if r.intended_s >= settled_after_s})
    after = [r for r in browser if r.ok and r.replica and r.intended_s >= settled_after_s]
    return {
        "pinned_before": pinned,
        "new_cookies": sorted({r.set_cookie for r in new_cookies if r.set_cookie}),
        "cookies_set_after_settle": late,
        "answered_after_settle": dict(Counter(r.replica for r in after)),
        "repinned": bool(new_cookies),
        "stayed": not late,
    }


def repin_problem(repin: Mapping[str, Any]) -> str | None:
    """Why the browser was not re-pinned (no new sticky cookie answered after the fault), or
    None. Whether it then stayed is reported, not judged: the passive check also moves a
    browser whose new replica answered one request late (a busy host), which no client sees."""
    if not repin["repinned"]:
        return "the browser got no new sticky cookie after the fault"
    return None


# A Traefik instance killed by the engine must serve again within this (issue 16).
TRAEFIK_BACK_BOUND_S = 10.0
# Requests sent this long after the SIGKILL's mark were not in flight on the killed instance
# (the mark is taken after the kill returned; the client sees the closed connections at once).
KILL_GRACE_S = 0.1


def in_flight_at(records: Sequence[RequestRecord], t_s: float) -> int:
    """Requests sent before ``t_s`` and not yet answered then (on any instance)."""
    return sum(
        1
        for r in records
        if r.sent_s is not None and r.sent_s <= t_s and (r.done_s is None or r.done_s >= t_s)
    )


def traefik_kill_report(
    records: Sequence[RequestRecord], kill_s: float, rate: float
) -> dict[str, Any]:
    """What a SIGKILL of one Traefik instance cost: its failures against the requests in flight
    then, those sent after it (a new connection that failed: must be none), and the failures
    as a share of one second's traffic (issue 16 asks <= 1 %)."""
    failed = [r for r in records if not r.ok]
    late = [r for r in failed if r.sent_s is None or r.sent_s > kill_s + KILL_GRACE_S]
    # Sent between the kill and its mark plus the grace, on a connection the killed process
    # held: they die with it like those in flight (the kill comes before the mark).
    unnoticed = sum(
        1 for r in records if r.sent_s is not None and kill_s < r.sent_s <= kill_s + KILL_GRACE_S
    )
    return {
        "kill_s": round(kill_s, 3),
        "in_flight_at_kill": in_flight_at(records, kill_s),
        "sent_before_the_kill_was_noticed": unnoticed,
        "failed": len(failed),
        "failed_sent_after_kill": len(late),
        "failures_by_kind": dict(Counter(r.failure_kind for r in failed)),
        "failed_percent_of_one_second": round(100.0 * len(failed) / rate, 2) if rate else None,
        # The failures above count as over the bound too (over_bound); these are the others.
        "answered_over_bound": sum(
            1 for r in records if r.ok and (r.latency_s is None or r.latency_s > LATENCY_BOUND_S)
        ),
    }


def browser_cookie_kept(
    records: Sequence[RequestRecord], browser_clients: int, pinned: str
) -> dict[str, Any]:
    """Whichever Traefik instance answered, the browser's one cookie named the same replica:
    no instance wrote a new cookie (Traefik writes one only for a cookie it does not know)."""
    browser = [r for r in records if r.client < browser_clients]
    answered = Counter(r.replica for r in browser if r.ok and r.replica)
    new = sorted({r.set_cookie for r in browser if r.set_cookie})
    return {
        "pinned": pinned,
        "answered_by": dict(answered),
        "new_cookies": new,
        "kept": not new and set(answered) <= {pinned},
    }


@dataclass
class Verdict:
    passed: bool
    reasons: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    scenario: Scenario,
    *,
    failed_requests: int,
    write_check_ok: bool,
    lost: int,
    duplicated: int,
    fault_real: bool,
    web_changes: Sequence[str] = (),
    unclean_failures: Mapping[str, int] | None = None,
    recovered_within_s: float | None = None,
    recovery_bound_s: float = 30.0,
    over_latency_bound: int = 0,
    traefik_kill: Mapping[str, Any] | None = None,
    traefik_back_after_s: float | None = None,
    browser_cookie: Mapping[str, Any] | None = None,
) -> Verdict:
    """What each scenario promises (see issues 6 and 16), checked against the measurements."""
    reasons = []
    if not fault_real:
        reasons.append("the fault did not demonstrably happen")
    if lost or duplicated:
        reasons.append(f"write set broken: {lost} lost, {duplicated} duplicated")
    elif not write_check_ok:
        reasons.append("write set check failed (unexpected rows or id mismatch)")
    if scenario.hits_a_replica and failed_requests:
        reasons.append(f"{failed_requests} failed requests")
    if scenario.hits_a_replica and over_latency_bound:
        reasons.append(f"{over_latency_bound} requests over {LATENCY_BOUND_S:g} s")
    if scenario in (Scenario.TRAEFIK_RESTART, Scenario.TRAEFIK_ROLLOUT):
        if failed_requests:
            reasons.append(f"{failed_requests} failed requests")
        if over_latency_bound:
            reasons.append(f"{over_latency_bound} requests over {LATENCY_BOUND_S:g} s")
    if scenario is Scenario.TRAEFIK_KILL:
        kill = traefik_kill or {}
        if kill.get("failed_sent_after_kill", 1):
            reasons.append(f"requests sent after the kill failed: {dict(kill)}")
        exposed = kill.get("in_flight_at_kill", 0) + kill.get("sent_before_the_kill_was_noticed", 0)
        if kill.get("failed", 1) > exposed:
            reasons.append(f"more failures than requests exposed to the kill: {dict(kill)}")
        if kill.get("answered_over_bound", 1):
            reasons.append(f"answered requests over {LATENCY_BOUND_S:g} s: {dict(kill)}")
        if traefik_back_after_s is None or traefik_back_after_s > TRAEFIK_BACK_BOUND_S:
            reasons.append(
                f"the killed instance was not healthy within {TRAEFIK_BACK_BOUND_S:g} s "
                f"({traefik_back_after_s})"
            )
    if scenario.hits_traefik and browser_cookie is not None and not browser_cookie["kept"]:
        reasons.append(f"the browser's sticky cookie was not honoured: {dict(browser_cookie)}")
    if scenario is Scenario.DB_RESTART:
        if web_changes:
            reasons.append("web replicas restarted: " + "; ".join(web_changes))
        if unclean_failures:
            reasons.append(f"failures other than 503 + Retry-After: {dict(unclean_failures)}")
        if recovered_within_s is None or recovered_within_s > recovery_bound_s:
            reasons.append(f"did not recover within {recovery_bound_s:.0f} s")
    return Verdict(passed=not reasons, reasons=reasons)
