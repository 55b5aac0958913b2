"""The one wait helper: deadlines, transient errors, giving up early; crash-loop detection."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest

from hactl import waiting
from hactl.ops.rotation import hopeless_replicas
from hactl.stack.replicas import Replica
from hactl.stack.traefik_api import ServerState
from hactl.waiting import WaitAbortedError, WaitTimeoutError, wait_for, wait_until
from tests.support.stack import wait_for as support_wait_for


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A fake clock for hactl.waiting: sleeping advances it, nothing really waits."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    fake = SimpleNamespace(monotonic=lambda: now[0], sleep=sleep)
    monkeypatch.setattr(waiting, "time", fake)
    return now


def sequence(*results: object) -> Iterator[object]:
    yield from results
    while True:
        yield results[-1]


def check_from(results: Iterator[object]) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        result = next(results)
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[return-value]

    return check


def test_returns_once_done_and_tolerates_transient_errors() -> None:
    results = sequence(ConnectionError("api restarting"), (False, "1/2"), (True, "2/2"))
    outcome = wait_for("replicas", check_from(results), timeout=5, interval=0.01)
    assert outcome.detail == "2/2"


def test_times_out_with_the_last_detail() -> None:
    with pytest.raises(WaitTimeoutError) as raised:
        wait_for("replicas", check_from(sequence((False, "web-4=starting"))), 0.05, 0.01)
    assert raised.value.detail == "web-4=starting"
    assert "timed out after" in str(raised.value)


def test_abort_ends_the_wait_at_once() -> None:
    results = sequence(WaitAbortedError("web-4 crash-loops"))
    with pytest.raises(WaitAbortedError, match="crash-loops"):
        wait_for("replicas", check_from(results), timeout=60, interval=0.01)


def replica(name: str, restarts: int = 0) -> Replica:
    return Replica(
        name=name,
        hostname=name,
        number=1,
        image="i",
        version="1",
        status="running",
        health="starting",
        traefik=ServerState.ABSENT,
        ip="10.0.0.9",
        uptime_seconds=1.0,
        restarts=restarts,
    )


def test_hopeless_replicas_are_gone_or_crash_looping() -> None:
    by_name = {"w-4": replica("w-4"), "w-5": replica("w-5", restarts=3)}
    assert hopeless_replicas(["w-4"], by_name) == []
    assert hopeless_replicas(["w-4", "w-5", "w-6"], by_name) == [
        "w-5 crash-loops (3 restarts)",
        "w-6 exited",
    ]


def test_wait_until_returns_the_conditions_result(clock: list[float]) -> None:
    answers = iter([None, {}, {"event": "scaled"}])
    assert wait_until("an event", lambda: next(answers), timeout=10) == {"event": "scaled"}


def test_the_tests_wait_helper_is_hactls_and_fails_the_test_at_the_deadline(
    clock: list[float],
) -> None:
    def broken() -> None:
        raise ConnectionError("refused")

    with pytest.raises(AssertionError, match=r"timed out after 3s waiting for the API.*refused"):
        support_wait_for(broken, 3, "the API")

    def aborted() -> None:
        raise WaitAbortedError("the process exited 1")

    with pytest.raises(AssertionError, match="the process exited 1"):
        support_wait_for(aborted, 60, "an event")
    assert clock[0] < 60  # ended at once, not at the deadline
