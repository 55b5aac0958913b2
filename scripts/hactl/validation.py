"""Checks on user input, done before anything changes."""

from __future__ import annotations

import os

from hactl.errors import InvalidInputError

DEFAULT_MAX_REPLICAS = 10


def max_replicas() -> int:
    raw = os.environ.get("HACTL_MAX_REPLICAS", "")
    try:
        value = int(raw) if raw else DEFAULT_MAX_REPLICAS
    except ValueError as error:
        raise InvalidInputError(f"HACTL_MAX_REPLICAS={raw!r} is not a whole number") from error
    return max(value, 1)


def validate_replica_count(count: int, limit: int | None = None) -> int:
    limit = max_replicas() if limit is None else limit
    if count <= 0:
        raise InvalidInputError(
            f"replica count must be at least 1, got {count}",
            "to stop the stack use `make down`; HA needs at least 2 replicas",
        )
    if count > limit:
        raise InvalidInputError(
            f"replica count {count} is above the maximum of {limit}",
            "raise HACTL_MAX_REPLICAS if the machine can carry more",
        )
    return count


def validate_batch_size(batch: int) -> int:
    if batch <= 0:
        raise InvalidInputError(f"--batch must be at least 1, got {batch}")
    return batch


def validate_timeout(timeout: float) -> float:
    if timeout <= 0:
        raise InvalidInputError(f"--timeout must be positive, got {timeout}")
    return timeout
