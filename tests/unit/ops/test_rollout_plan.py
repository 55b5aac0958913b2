"""Rollout planning: which old replicas are replaced in which batch."""

from __future__ import annotations

import pytest

from hactl.ops.rollout_plan import plan_rollout

OLD = [(3, "p-web-3"), (1, "p-web-1"), (2, "p-web-2")]


def test_one_by_one_oldest_first() -> None:
    plan = plan_rollout(OLD, 1)
    assert [b.replace for b in plan.batches] == [("p-web-1",), ("p-web-2",), ("p-web-3",)]
    assert [b.index for b in plan.batches] == [1, 2, 3]
    assert plan.replica_count == 3
    assert plan.peak_replicas == 4


def test_batches_of_two_leave_a_short_last_batch() -> None:
    plan = plan_rollout(OLD, 2)
    assert [b.replace for b in plan.batches] == [("p-web-1", "p-web-2"), ("p-web-3",)]
    assert [b.size for b in plan.batches] == [2, 1]
    assert plan.peak_replicas == 5


def test_batch_larger_than_replicas_is_one_batch() -> None:
    plan = plan_rollout(OLD, 10)
    assert len(plan.batches) == 1
    assert plan.batches[0].size == 3
    assert plan.peak_replicas == 6


def test_numbers_sort_numerically_not_as_text() -> None:
    plan = plan_rollout([(10, "p-web-10"), (9, "p-web-9")], 1)
    assert plan.batches[0].replace == ("p-web-9",)


def test_every_replica_replaced_exactly_once() -> None:
    old = [(n, f"p-web-{n}") for n in range(1, 8)]
    plan = plan_rollout(old, 3)
    replaced = [name for b in plan.batches for name in b.replace]
    assert sorted(replaced) == sorted(name for _, name in old)
    assert len(replaced) == len(set(replaced))


def test_no_replicas_no_batches() -> None:
    assert plan_rollout([], 1).batches == ()


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        plan_rollout(OLD, 0)
