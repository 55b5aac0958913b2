"""The one record of the desired state: the rollout env file (`.env.rollout`).

hactl already writes WEB_REPLICAS there after every `hactl scale`, `hactl rollout` and autoscaler
step, and `make up-ha` reads it last, so Compose and the controller agree on one number. One more
key lives there: SELFHEAL_PAUSED=1, the maintenance switch (`hactl selfheal pause` / `resume`):
the controller observes and reports but changes nothing.

And one file beside it, `<record>.lease`: the lease hactl holds while `scale` or `rollout` run
(the autoscaler scales through `scale`). Those commands stop, remove and create replicas and write
WEB_REPLICAS only at the end; a controller acting in between would undo a scale-down it has not
been told about yet. The lease is renewed every few seconds and expires by itself when its holder
dies, so a crashed hactl cannot switch self-healing off for long. It is a file of its own so that
its renewals never race the operation's own write of WEB_REPLICAS.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from hactl.stack.envfile import parse_env_text, update_env_file

REPLICAS_KEY = "WEB_REPLICAS"
PAUSED_KEY = "SELFHEAL_PAUSED"
LEASE_SUFFIX = ".lease"
LEASE_TTL_SECONDS = 30.0
LEASE_RENEW_SECONDS = 10.0
RECORD_HEADER = "written by hactl: what `hactl rollout` / `hactl scale` last set (keep it)"
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class DesiredState:
    replicas: int | None  # None: the record does not say (the controller's default applies)
    paused: bool
    lease: str | None  # who holds the operation lease, None when free or expired


def lease_path(record: Path) -> Path:
    return record.with_name(record.name + LEASE_SUFFIX)


def parse_lease(text: str, now: float) -> str | None:
    """`<holder>\n<expires unix time>` -> the holder while the lease is valid, else None."""
    holder, _, expires = text.strip().partition("\n")
    try:
        valid = float(expires.strip()) > now
    except ValueError:
        valid = False
    return (holder.strip() or None) if valid else None


def parse_record(text: str, lease_text: str, now: float) -> DesiredState:
    values = parse_env_text(text)
    try:
        replicas: int | None = int(values.get(REPLICAS_KEY, ""))
    except ValueError:
        replicas = None
    if replicas is not None and replicas < 0:
        replicas = None
    paused = values.get(PAUSED_KEY, "").strip().lower() in TRUE_VALUES
    return DesiredState(replicas, paused, parse_lease(lease_text, now))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def read_record(path: Path, now: float | None = None) -> DesiredState:
    now = time.time() if now is None else now
    return parse_record(_read(path), _read(lease_path(path)), now)


def set_paused(path: Path, paused: bool) -> None:
    update_env_file(path, {PAUSED_KEY: "1" if paused else "0"}, header=RECORD_HEADER)


def _write_lease(path: Path, holder: str, expires: float) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{holder}\n{expires:.0f}\n")
    tmp.replace(path)


@contextlib.contextmanager
def operation_lease(record: Path, operation: str) -> Iterator[None]:
    """Hold the operation lease beside `record` for the duration: the controller stands off.

    A daemon thread renews it every LEASE_RENEW_SECONDS; if this process dies the lease lapses
    after LEASE_TTL_SECONDS at most.
    """
    path = lease_path(record)
    holder = f"{operation} (pid {os.getpid()} on {socket.gethostname()})"
    try:
        _write_lease(path, holder, time.time() + LEASE_TTL_SECONDS)
    except OSError as error:  # a read-only checkout must not stop an operator's scale
        print(f"warning: no self-healing lease ({error}): pause it by hand", file=sys.stderr)
        yield
        return
    done = threading.Event()

    def renew() -> None:
        while not done.wait(LEASE_RENEW_SECONDS):
            with contextlib.suppress(OSError):
                _write_lease(path, holder, time.time() + LEASE_TTL_SECONDS)

    renewer = threading.Thread(target=renew, name="hactl-lease", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join(timeout=5)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


class _HasRecord(Protocol):
    @property
    def rollout_env_file(self) -> Path: ...


F = TypeVar("F", bound=Callable[..., Any])


def holds_operation_lease(operation: str) -> Callable[[F], F]:
    """Decorator for hactl operations whose first argument is the Stack (scale, rollout)."""

    def wrap(function: F) -> F:
        @functools.wraps(function)
        def inner(stack: _HasRecord, *args: Any, **kwargs: Any) -> Any:
            with operation_lease(stack.rollout_env_file, operation):
                return function(stack, *args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap
