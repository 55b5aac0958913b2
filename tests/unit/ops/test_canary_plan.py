"""Canary steps from `--canary` and the canary replicas each step runs."""

from __future__ import annotations

import pytest

from hactl.errors import InvalidInputError
from hactl.ops.canary_plan import parse_steps, plan_steps, replicas_for


def test_steps_parse_and_scale_the_canary_with_its_share() -> None:
    steps = plan_steps(parse_steps("10,50,100"), stable_replicas=3)
    assert [(s.index, s.weight, s.replicas) for s in steps] == [(1, 10, 1), (2, 50, 2), (3, 100, 3)]


def test_blue_green_is_one_full_step() -> None:
    assert [(s.weight, s.replicas) for s in plan_steps(parse_steps("100"), 4)] == [(100, 4)]


def test_the_canary_has_at_least_one_replica() -> None:
    assert replicas_for(1, 2) == 1
    assert replicas_for(25, 5) == 2


@pytest.mark.parametrize("text", ["", "10,50", "0,100", "50,10,100", "10,10,100", "x", "150"])
def test_bad_steps_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_steps(text)
