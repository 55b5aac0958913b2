"""Input validation: refused before hactl touches Docker (hactl.validation)."""

from __future__ import annotations

import pytest

from hactl.errors import InvalidInputError
from hactl.validation import (
    max_replicas,
    validate_batch_size,
    validate_replica_count,
    validate_timeout,
)


@pytest.mark.parametrize("count", [0, -1, -50])
def test_zero_or_negative_replicas_rejected(count: int) -> None:
    with pytest.raises(InvalidInputError, match="at least 1"):
        validate_replica_count(count, limit=10)


def test_above_maximum_rejected_and_maximum_accepted() -> None:
    with pytest.raises(InvalidInputError, match="above the maximum of 10"):
        validate_replica_count(11, limit=10)
    assert validate_replica_count(10, limit=10) == 10
    assert validate_replica_count(1, limit=10) == 1


def test_maximum_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HACTL_MAX_REPLICAS", raising=False)
    assert max_replicas() == 10
    monkeypatch.setenv("HACTL_MAX_REPLICAS", "4")
    assert max_replicas() == 4
    with pytest.raises(InvalidInputError):
        validate_replica_count(5)
    monkeypatch.setenv("HACTL_MAX_REPLICAS", "many")
    with pytest.raises(InvalidInputError, match="not a whole number"):
        max_replicas()


def test_batch_and_timeout_must_be_positive() -> None:
    with pytest.raises(InvalidInputError):
        validate_batch_size(0)
    with pytest.raises(InvalidInputError):
        validate_timeout(0)
    assert validate_batch_size(2) == 2
    assert validate_timeout(1.5) == 1.5
