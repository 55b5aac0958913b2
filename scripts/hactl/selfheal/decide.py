"""Pure decisions of the self-healing controller: what it saw in, what to do out.

Kubernetes semantics, mapped onto Compose containers of one service:
- ReplicaSet: the recorded count is kept. A container that exited for any reason (a `docker
  kill`, which the engine treats as a manual stop, included) is started again; a container that is
  gone (`docker rm -f`) is replaced by a new one under the lowest free number. More containers
  than desired are left alone: removing one safely means draining it, which is `hactl scale`'s job.
- Liveness probe: a running (or frozen) replica whose probe failed `failureThreshold` times in a
  row, `period` apart, is restarted.
- Crash-loop back-off: the n-th restart of the same replica (by name) within `backoff_reset`
  seconds waits base * 2^(n-1) seconds (capped) after the previous one; the first is immediate.
- It holds (changes nothing) while paused, while hactl holds the operation lease, and while the
  stack is down (its guard service is not running), so it never fights `hactl scale`/`rollout`,
  the autoscaler, or `make down`. Containers in Docker's own `restarting` state are Docker's.

Nothing here touches Docker, the network or the clock; controller.py does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from hactl.selfheal.config import SelfHealConfig

# Docker container states that count as "present" (one of the desired replicas).
STARTABLE_STATES = frozenset({"exited", "created", "dead"})
LIVE_STATES = frozenset({"running", "paused"})
PRESENT_STATES = LIVE_STATES | STARTABLE_STATES | {"restarting"}


class Reason(StrEnum):
    EXITED = "exited"  # the container stopped (killed, crashed without a restart policy, stopped)
    MISSING = "missing"  # fewer containers than desired (removed)
    LIVENESS = "liveness"  # running but failing its liveness probe (hung, frozen)


class Kind(StrEnum):
    START = "start"  # POST /containers/{id}/start
    RESTART = "restart"  # POST /containers/{id}/restart
    CREATE = "create"  # POST /containers/create (a clone of a running sibling), then start


class Hold(StrEnum):
    PAUSED = "paused"
    LEASE = "lease"
    STACK_DOWN = "stack-down"


@dataclass(frozen=True)
class Replica:
    id: str
    name: str
    number: int
    state: str
    created: float  # unix time
    started: float | None  # unix time of the last start, None if never started
    ip: str | None = None
    healthy: bool = False
    # Docker health "starting": still booting. Like a Kubernetes startupProbe, liveness waits
    # (Docker ends "starting" by itself: healthy, or unhealthy after the start period).
    starting: bool = False


@dataclass(frozen=True)
class Observation:
    now: float
    desired: int
    replicas: tuple[Replica, ...]
    stack_up: bool
    paused: bool = False
    lease: str | None = None


@dataclass(frozen=True)
class Action:
    kind: Kind
    name: str
    number: int
    reason: Reason
    container_id: str | None = None
    restarts: int = 0  # restarts of this replica within the back-off window, this one included


@dataclass(frozen=True)
class Waiting:
    """A replica that needs an action but is in back-off."""

    name: str
    reason: Reason
    seconds_left: float


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    waiting: tuple[Waiting, ...] = ()
    hold: Hold | None = None
    hold_detail: str = ""
    missing: int = 0


@dataclass
class Liveness:
    failures: int = 0
    last_probe: float = 0.0


@dataclass
class ControllerState:
    """What the controller remembers between syncs."""

    restarts: dict[str, list[float]] = field(default_factory=dict)  # name -> restart times
    liveness: dict[str, Liveness] = field(default_factory=dict)  # container id -> probe track

    def recent_restarts(self, name: str, now: float, cfg: SelfHealConfig) -> list[float]:
        """Restarts of `name` still in the back-off window (the kubelet forgets after 10 min)."""
        times = sorted(self.restarts.get(name, []))
        if times and now - times[-1] >= cfg.backoff_reset:
            return []
        return times

    def record_restart(self, name: str, now: float, cfg: SelfHealConfig) -> int:
        times = [*self.recent_restarts(name, now, cfg), now]
        self.restarts[name] = times
        return len(times)

    def record_probe(self, container_id: str, ok: bool, now: float) -> int:
        track = self.liveness.setdefault(container_id, Liveness())
        track.last_probe = now
        track.failures = 0 if ok else track.failures + 1
        return track.failures

    def forget_containers(self, live_ids: Iterable[str]) -> None:
        keep = set(live_ids)
        self.liveness = {cid: t for cid, t in self.liveness.items() if cid in keep}


def backoff_delay(previous_restarts: int, cfg: SelfHealConfig) -> float:
    """Wait before the next restart when `previous_restarts` happened within the window."""
    if previous_restarts <= 0:
        return 0.0
    return min(cfg.backoff_base * 2 ** (previous_restarts - 1), cfg.backoff_max)


def backoff_left(name: str, now: float, state: ControllerState, cfg: SelfHealConfig) -> float:
    recent = state.recent_restarts(name, now, cfg)
    if not recent:
        return 0.0
    return max(0.0, recent[-1] + backoff_delay(len(recent), cfg) - now)


def probe_due(replica: Replica, now: float, state: ControllerState, cfg: SelfHealConfig) -> bool:
    """Probe live replicas every period, once they have been up for the initial delay."""
    if replica.state not in LIVE_STATES or replica.ip is None:
        return False
    if replica.started is None or now - replica.started < cfg.liveness_initial_delay:
        return False
    if replica.starting:
        return False
    track = state.liveness.get(replica.id)
    return track is None or now - track.last_probe >= cfg.liveness_period


def free_numbers(used: Iterable[int], count: int) -> list[int]:
    """The `count` lowest positive numbers not in `used` (refills gaps, unlike Compose)."""
    taken = set(used)
    numbers: list[int] = []
    candidate = 1
    while len(numbers) < count:
        if candidate not in taken:
            numbers.append(candidate)
        candidate += 1
    return numbers


def replica_name(prefix: str, number: int) -> str:
    return f"{prefix}{number}"


def _needs(
    obs: Observation, state: ControllerState, cfg: SelfHealConfig
) -> list[tuple[Kind, Replica | None, int, Reason]]:
    needs: list[tuple[Kind, Replica | None, int, Reason]] = []
    for r in obs.replicas:
        if r.state == "created" and obs.now - r.created < cfg.created_grace:
            continue  # Compose creates, then starts: give it the time
        if r.state in STARTABLE_STATES:
            needs.append((Kind.START, r, r.number, Reason.EXITED))
        elif r.state in LIVE_STATES:
            track = state.liveness.get(r.id)
            if track and track.failures >= cfg.liveness_failure_threshold:
                needs.append((Kind.RESTART, r, r.number, Reason.LIVENESS))
    present = [r for r in obs.replicas if r.state in PRESENT_STATES]
    missing = max(obs.desired - len(present), 0)
    for number in free_numbers((r.number for r in obs.replicas), missing):
        needs.append((Kind.CREATE, None, number, Reason.MISSING))
    return needs


def hold_of(obs: Observation, cfg: SelfHealConfig) -> tuple[Hold, str] | None:
    """Why nothing may be changed now (and no probe counted), or None."""
    if obs.paused:
        return Hold.PAUSED, "SELFHEAL_PAUSED is set"
    if obs.lease:
        return Hold.LEASE, obs.lease
    if not obs.stack_up:
        return Hold.STACK_DOWN, f"{cfg.guard_service} is not running"
    return None


def decide(obs: Observation, state: ControllerState, cfg: SelfHealConfig, name_prefix: str) -> Plan:
    """The actions for this sync. Restart times are recorded by the caller once an action ran
    (`state.record_restart`), so a failed call is retried without counting as a restart."""
    present = sum(1 for r in obs.replicas if r.state in PRESENT_STATES)
    missing = max(obs.desired - present, 0)
    hold = hold_of(obs, cfg)
    if hold:
        return Plan(hold=hold[0], hold_detail=hold[1], missing=missing)
    actions: list[Action] = []
    waiting: list[Waiting] = []
    for kind, replica, number, reason in _needs(obs, state, cfg):
        name = replica.name if replica else replica_name(name_prefix, number)
        left = backoff_left(name, obs.now, state, cfg)
        if left > 0:
            waiting.append(Waiting(name, reason, left))
            continue
        previous = len(state.recent_restarts(name, obs.now, cfg))
        actions.append(
            Action(kind, name, number, reason, replica.id if replica else None, previous + 1)
        )
    return Plan(tuple(actions), tuple(waiting), missing=missing)


def name_prefix_of(names: Sequence[str], project: str, service: str) -> str:
    """`<project>-<service>-`, as Compose names containers (taken from a live name if any)."""
    for name in names:
        head, sep, tail = name.rpartition("-")
        if sep and tail.isdigit():
            return head + "-"
    return f"{project}-{service}-"


def desired_count(recorded: int | None, default: int) -> int:
    return default if recorded is None else recorded


def states_summary(replicas: Iterable[Replica]) -> Mapping[str, int]:
    summary: dict[str, int] = {}
    for r in replicas:
        summary[r.state] = summary.get(r.state, 0) + 1
    return summary
