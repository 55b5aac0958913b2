"""The error policy of every hactl command: what an operation can fail with, and how each failure
becomes one clear message, a hint and an exit code (2 bad input, 3 rolled back, 1 anything else),
never a traceback."""

from __future__ import annotations

from python_on_whales.exceptions import DockerException

from hactl.stack.traefik_api import TraefikApiError
from hactl.waiting import WaitFailedError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ROLLED_BACK = 3

GENERIC_HINT = "see `hactl status`; the operation stopped where it failed"


class HactlError(Exception):
    """A failure the user can act on: `message` says what happened, `hint` what to do next."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InvalidInputError(HactlError):
    """Bad arguments: nothing was changed."""

    exit_code = EXIT_BAD_INPUT


class RolledBackError(HactlError):
    """A rollout failed and the old replicas were kept serving."""

    exit_code = EXIT_ROLLED_BACK


# What an operation on a stack can fail with; anything else is a bug and keeps its traceback.
OPERATION_ERRORS: tuple[type[Exception], ...] = (
    HactlError,
    WaitFailedError,
    DockerException,
    TraefikApiError,
)


def describe(error: Exception) -> tuple[str, str, int]:
    """(message, hint, exit code) of one failure of OPERATION_ERRORS."""
    if isinstance(error, HactlError):
        return error.message, error.hint, error.exit_code
    if isinstance(error, DockerException):
        return f"docker failed: {(error.stderr or str(error)).strip()}", GENERIC_HINT, EXIT_FAILED
    return str(error), GENERIC_HINT, EXIT_FAILED
