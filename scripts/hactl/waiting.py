"""Wait for a real condition with a deadline, showing what is still missing meanwhile.

Every wait in hactl (and in its tests, through tests/support/stack.py) goes through `wait_for`:
the condition returns `(done, detail)`; the detail is shown as live progress (on stderr, only when
it is a terminal) and, on timeout, in the error. `wait_until` is the same for a condition that
returns its result (anything falsy: not yet).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from rich.console import Console

Check = Callable[[], tuple[bool, str]]
T = TypeVar("T")

progress_console = Console(stderr=True)


class WaitFailedError(Exception):
    """A wait ended without its condition: `detail` says what was still missing."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


class WaitTimeoutError(WaitFailedError):
    def __init__(self, what: str, timeout: float, detail: str) -> None:
        super().__init__(f"timed out after {timeout:.0f}s waiting for {what}: {detail}", detail)
        self.what = what


class WaitAbortedError(WaitFailedError):
    """Raised by a check when waiting longer cannot help (e.g. a replica crash-loops)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, detail)


@dataclass(frozen=True)
class WaitResult:
    detail: str
    seconds: float


def wait_for(what: str, check: Check, timeout: float, interval: float = 1.0) -> WaitResult:
    """Poll `check` until it reports done, or raise WaitTimeoutError after `timeout` seconds.

    A check that raises counts as "not yet" (its message becomes the detail), so transient API
    errors during a restart do not abort a wait; only WaitAbortedError ends it early.
    """
    start = time.monotonic()
    deadline = start + timeout
    detail = "not checked yet"
    with progress_console.status(f"waiting for {what}") as status:
        while True:
            try:
                done, detail = check()
            except WaitAbortedError:
                raise
            except Exception as error:  # a transient failure is one more "not yet"
                done, detail = False, f"{type(error).__name__}: {error}"
            elapsed = time.monotonic() - start
            if done:
                return WaitResult(detail, elapsed)
            if time.monotonic() >= deadline:
                raise WaitTimeoutError(what, timeout, detail)
            status.update(f"waiting for {what} ({elapsed:.0f}s/{timeout:.0f}s): {detail}")
            time.sleep(interval)


def wait_until(
    what: str, condition: Callable[[], T | None], timeout: float, interval: float = 1.0
) -> T:
    """`wait_for` for a condition that returns its result when done; returns that result."""
    found: list[T] = []

    def check() -> tuple[bool, str]:
        value = condition()
        if value:
            found.append(value)
            return True, "done"
        return False, "condition not met yet"

    wait_for(what, check, timeout, interval)
    return found[-1]
