"""The one error type the CLI turns into a clear message and a non-zero exit code."""

from __future__ import annotations


class HactlError(Exception):
    """A failure the user can act on: `message` says what happened, `hint` what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InvalidInputError(HactlError):
    """Bad arguments: nothing was changed."""

    exit_code = 2


class RolledBackError(HactlError):
    """A rollout failed and the old replicas were kept serving."""

    exit_code = 3
