"""What every verb shares: the global options, and the one error policy.

The policy: a failure hactl expects (errors.OPERATION_ERRORS) is one message, a hint and its exit
code (2 bad input, 3 rolled back, 1 any other); anything else is a bug, still reported in one line
with exit code 1 (HACTL_DEBUG=1 shows the traceback). No command prints a traceback otherwise.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer

from hactl import output
from hactl.errors import EXIT_FAILED, OPERATION_ERRORS, describe
from hactl.stack.project import Stack, discover_stack

P = ParamSpec("P")
R = TypeVar("R")

EXIT_INTERRUPTED = 130


@dataclass
class Options:
    """The options given before the verb (`hactl --project X status`)."""

    project: str | None
    compose_files: list[Path]
    env_files: list[Path]
    rollout_env_file: Path | None
    json: bool

    def stack(self) -> Stack:
        return discover_stack(
            self.project, self.compose_files, self.env_files, rollout_env_file=self.rollout_env_file
        )


def with_error_policy(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a verb so that every failure ends as a message and an exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except OPERATION_ERRORS as error:
            message, hint, code = describe(error)
            output.fail(message, hint)
            raise typer.Exit(code) from error
        except KeyboardInterrupt as error:
            output.fail("interrupted", "see `hactl status`; the operation stopped where it was")
            raise typer.Exit(EXIT_INTERRUPTED) from error
        except Exception as error:
            if os.environ.get("HACTL_DEBUG"):
                raise
            output.fail(
                f"unexpected {type(error).__name__}: {error}",
                "this is a bug in hactl; HACTL_DEBUG=1 shows the traceback",
            )
            raise typer.Exit(EXIT_FAILED) from error

    return run
