"""Pure analysis of a chaos run: fault window, latency inside/outside it, rotation timings,
downtime, replicas that changed, and the pass/fail verdict. No I/O, so it is unit tested."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hactl.chaos.faults import ContainerSnapshot, Scenario
from hactl.loadgen.generator import RequestRecord, latency_stats_ms

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
    ok_writes = sum(1 for r in tail if r.kind == "write" and r.acknowledged)
    has_writes = any(r.kind == "write" for r in records)
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
) -> Verdict:
    """What each scenario promises (see issue 6), checked against the measurements."""
    reasons = []
    if not fault_real:
        reasons.append("the fault did not demonstrably happen")
    if lost or duplicated:
        reasons.append(f"write set broken: {lost} lost, {duplicated} duplicated")
    elif not write_check_ok:
        reasons.append("write set check failed (unexpected rows or id mismatch)")
    if scenario.hits_a_replica and failed_requests:
        reasons.append(f"{failed_requests} failed requests")
    if scenario is Scenario.DB_RESTART:
        if web_changes:
            reasons.append("web replicas restarted: " + "; ".join(web_changes))
        if unclean_failures:
            reasons.append(f"failures other than 503 + Retry-After: {dict(unclean_failures)}")
        if recovered_within_s is None or recovered_within_s > recovery_bound_s:
            reasons.append(f"did not recover within {recovery_bound_s:.0f} s")
    return Verdict(passed=not reasons, reasons=reasons)
