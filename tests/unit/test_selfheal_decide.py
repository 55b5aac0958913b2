"""The self-healing controller's decisions (hactl/selfheal/decide.py), no Docker: what it does for
each container state, the desired count, liveness failures, crash-loop back-off and the holds
(pause switch, hactl's lease, a stack that is down)."""

from __future__ import annotations

import pytest

from hactl.selfheal.config import SelfHealConfig
from hactl.selfheal.decide import (
    Action,
    ControllerState,
    Hold,
    Kind,
    Observation,
    Reason,
    Replica,
    backoff_delay,
    backoff_left,
    decide,
    free_numbers,
    name_prefix_of,
    probe_due,
)

CFG = SelfHealConfig(project="p")
PREFIX = "p-web-"
NOW = 10_000.0


def replica(number: int, state: str = "running", **kw: object) -> Replica:
    values: dict[str, object] = {
        "id": f"id{number}",
        "name": f"{PREFIX}{number}",
        "number": number,
        "state": state,
        "created": NOW - 3600,
        "started": NOW - 3600 if state in ("running", "paused") else None,
        "ip": f"10.0.0.{number}",
        "healthy": state == "running",
    }
    values.update(kw)
    return Replica(**values)  # type: ignore[arg-type]


def observe(*replicas: Replica, desired: int = 3, now: float = NOW, **kw: object) -> Observation:
    values: dict[str, object] = {"stack_up": True}
    values.update(kw)
    return Observation(now, desired, tuple(replicas), **values)  # type: ignore[arg-type]


def kinds(actions: tuple[Action, ...]) -> list[tuple[Kind, str, Reason]]:
    return [(a.kind, a.name, a.reason) for a in actions]


def test_all_running_nothing_to_do() -> None:
    plan = decide(observe(replica(1), replica(2), replica(3)), ControllerState(), CFG, PREFIX)
    assert plan.actions == () and plan.hold is None and plan.missing == 0


def test_an_exited_replica_is_started_whatever_its_exit_code() -> None:
    """`docker kill` (137), a stop (0) or a crash the restart policy gave up on: all started."""
    plan = decide(
        observe(replica(1), replica(2, "exited"), replica(3, "dead")),
        ControllerState(),
        CFG,
        PREFIX,
    )
    assert kinds(plan.actions) == [
        (Kind.START, "p-web-2", Reason.EXITED),
        (Kind.START, "p-web-3", Reason.EXITED),
    ]
    assert plan.actions[0].container_id == "id2"
    assert plan.missing == 0  # exited containers still count as present: they are started


def test_a_removed_replica_is_replaced_under_the_lowest_free_number() -> None:
    plan = decide(observe(replica(1), replica(3)), ControllerState(), CFG, PREFIX)
    assert kinds(plan.actions) == [(Kind.CREATE, "p-web-2", Reason.MISSING)]
    assert plan.actions[0].number == 2 and plan.actions[0].container_id is None
    assert plan.missing == 1


def test_desired_count_from_the_record_creates_as_many_as_missing() -> None:
    plan = decide(observe(replica(1), desired=4), ControllerState(), CFG, PREFIX)
    assert [a.number for a in plan.actions] == [2, 3, 4]


def test_more_replicas_than_desired_are_left_alone() -> None:
    """Removing one safely means draining it: `hactl scale` does that, the controller does not."""
    plan = decide(
        observe(*(replica(n) for n in range(1, 6)), desired=3), ControllerState(), CFG, PREFIX
    )
    assert plan.actions == ()


def test_restarting_is_dockers_own_and_counts_as_present() -> None:
    plan = decide(
        observe(replica(1), replica(2), replica(3, "restarting")), ControllerState(), CFG, PREFIX
    )
    assert plan.actions == ()


def test_a_fresh_created_container_is_composes_a_stale_one_is_started() -> None:
    fresh = replica(3, "created", created=NOW - 5)
    stale = replica(3, "created", created=NOW - CFG.created_grace - 1)
    assert (
        decide(observe(replica(1), replica(2), fresh), ControllerState(), CFG, PREFIX).actions == ()
    )
    plan = decide(observe(replica(1), replica(2), stale), ControllerState(), CFG, PREFIX)
    assert kinds(plan.actions) == [(Kind.START, "p-web-3", Reason.EXITED)]


def test_liveness_failures_up_to_the_threshold_restart_a_running_or_paused_replica() -> None:
    state = ControllerState()
    for _ in range(CFG.liveness_failure_threshold - 1):
        state.record_probe("id2", False, NOW)
        state.record_probe("id3", False, NOW)
    obs = observe(replica(1), replica(2), replica(3, "paused"))
    assert decide(obs, state, CFG, PREFIX).actions == ()
    state.record_probe("id2", False, NOW)
    state.record_probe("id3", False, NOW)
    plan = decide(obs, state, CFG, PREFIX)
    assert kinds(plan.actions) == [
        (Kind.RESTART, "p-web-2", Reason.LIVENESS),
        (Kind.RESTART, "p-web-3", Reason.LIVENESS),
    ]


def test_one_passing_probe_resets_the_failure_count() -> None:
    state = ControllerState()
    state.record_probe("id2", False, NOW)
    state.record_probe("id2", False, NOW)
    assert state.record_probe("id2", True, NOW) == 0
    assert state.record_probe("id2", False, NOW) == 1


def test_probes_are_due_every_period_after_the_initial_delay_and_not_while_starting() -> None:
    state = ControllerState()
    assert probe_due(replica(1), NOW, state, CFG)
    assert not probe_due(replica(1, started=NOW - 1), NOW, state, CFG)  # initial delay
    assert not probe_due(replica(1, starting=True), NOW, state, CFG)  # Docker health: starting
    assert not probe_due(replica(1, "exited"), NOW, state, CFG)
    assert not probe_due(replica(1, ip=None), NOW, state, CFG)
    state.record_probe("id1", True, NOW)
    assert not probe_due(replica(1), NOW + CFG.liveness_period - 0.1, state, CFG)
    assert probe_due(replica(1), NOW + CFG.liveness_period, state, CFG)
    assert probe_due(replica(1, "paused"), NOW + CFG.liveness_period, state, CFG)


def test_backoff_doubles_from_zero_and_is_capped() -> None:
    assert [backoff_delay(n, CFG) for n in range(0, 8)] == [0, 10, 20, 40, 80, 160, 300, 300]


def test_kills_in_a_row_back_off_then_the_window_forgets() -> None:
    """The first restart is immediate (the 10 s budget); the second waits 10 s, the third 20 s."""
    state = ControllerState()
    killed = observe(replica(1), replica(2, "exited"), replica(3))
    assert [a.restarts for a in decide(killed, state, CFG, PREFIX).actions] == [1]
    state.record_restart("p-web-2", NOW, CFG)
    t = NOW + 3  # killed again 3 s later
    plan = decide(observe(replica(1), replica(2, "exited"), replica(3), now=t), state, CFG, PREFIX)
    assert plan.actions == ()
    assert [(w.name, w.reason, round(w.seconds_left)) for w in plan.waiting] == [
        ("p-web-2", Reason.EXITED, 7)
    ]
    t = NOW + 10
    plan = decide(observe(replica(1), replica(2, "exited"), replica(3), now=t), state, CFG, PREFIX)
    assert [a.restarts for a in plan.actions] == [2]
    state.record_restart("p-web-2", t, CFG)
    assert backoff_left("p-web-2", t + 5, state, CFG) == pytest.approx(15)
    # 10 minutes without a restart: the history is forgotten, the next restart is immediate.
    later = t + CFG.backoff_reset
    assert backoff_left("p-web-2", later, state, CFG) == 0
    assert state.record_restart("p-web-2", later, CFG) == 1


def test_backoff_is_per_replica_name_so_a_replacement_inherits_it() -> None:
    state = ControllerState()
    state.record_restart("p-web-2", NOW, CFG)
    plan = decide(observe(replica(1), replica(3), now=NOW + 1), state, CFG, PREFIX)
    assert plan.actions == () and [w.name for w in plan.waiting] == ["p-web-2"]
    assert (
        decide(
            observe(replica(2, "exited"), replica(3), replica(1, "exited"), now=NOW + 1),
            state,
            CFG,
            PREFIX,
        )
        .actions[0]
        .name
        == "p-web-1"
    )


@pytest.mark.parametrize(
    ("kw", "hold"),
    [
        ({"paused": True}, Hold.PAUSED),
        ({"lease": "hactl scale (pid 1 on h)"}, Hold.LEASE),
        ({"stack_up": False}, Hold.STACK_DOWN),
    ],
)
def test_holds_change_nothing(kw: dict[str, object], hold: Hold) -> None:
    state = ControllerState()
    state.record_probe("id3", False, NOW)
    state.record_probe("id3", False, NOW)
    state.record_probe("id3", False, NOW)
    plan = decide(observe(replica(1, "exited"), replica(3), **kw), state, CFG, PREFIX)
    assert plan.actions == () and plan.hold is hold
    assert plan.missing == 1


def test_after_make_down_there_is_nothing_and_nothing_is_created() -> None:
    """`make down` removes every container, Traefik's too: no stack, no template, no action."""
    plan = decide(observe(stack_up=False), ControllerState(), CFG, PREFIX)
    assert plan.actions == () and plan.hold is Hold.STACK_DOWN


def test_free_numbers_refill_gaps_first() -> None:
    assert free_numbers([1, 3, 5], 3) == [2, 4, 6]
    assert free_numbers([], 2) == [1, 2]


def test_name_prefix_from_live_names_or_compose_convention() -> None:
    assert name_prefix_of(["my-proj-web-7"], "x", "web") == "my-proj-web-"
    assert name_prefix_of([], "proj", "web") == "proj-web-"
