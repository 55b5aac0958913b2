"""One error policy for every verb: a message, a hint and the documented exit code, never a
traceback (2 bad input, 3 rolled back, 1 any other failure, bugs included)."""

from __future__ import annotations

import pytest
import typer
from python_on_whales.exceptions import DockerException
from typer.testing import CliRunner

from hactl.commands.common import with_error_policy
from hactl.errors import HactlError, InvalidInputError, RolledBackError
from hactl.stack.traefik_api import TraefikApiError
from hactl.waiting import WaitTimeoutError

FAILURES = [
    (InvalidInputError("replica count must be at least 1", "use 2 or more"), 2, "at least 1"),
    (RolledBackError("rolled back: web-4 never got ready", "fix the image"), 3, "rolled back"),
    (HactlError("stack 'x' is not running"), 1, "is not running"),
    (WaitTimeoutError("2 replica(s) in rotation", 120, "web-4=starting"), 1, "web-4=starting"),
    (DockerException(["docker", "compose", "up"], 1, stderr=b"no such image"), 1, "no such image"),
    (TraefikApiError("Traefik API at http://127.0.0.1:1 does not answer"), 1, "does not answer"),
    (KeyError("replicas"), 1, "unexpected KeyError"),  # a bug: still one line
]


def app_failing_with(error: BaseException) -> typer.Typer:
    """A CLI registered like hactl's (cli.py), with two verbs so typer wants the verb's name."""

    def verb() -> None:
        raise error

    def other() -> None:
        """Unused."""

    app = typer.Typer()
    for command in (verb, other):
        app.command(command.__name__)(with_error_policy(command))
    return app


@pytest.mark.parametrize(("error", "code", "said"), FAILURES, ids=lambda v: type(v).__name__)
def test_every_failure_is_a_message_and_an_exit_code(
    error: Exception, code: int, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HACTL_DEBUG", raising=False)
    result = CliRunner().invoke(app_failing_with(error), ["verb"])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert said in result.output
    assert result.output.startswith("error: ")
    assert not isinstance(result.exception, type(error)), "the exception escaped"


def test_hactl_debug_shows_the_traceback_of_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HACTL_DEBUG", "1")
    result = CliRunner().invoke(app_failing_with(KeyError("replicas")), ["verb"])
    assert isinstance(result.exception, KeyError)
