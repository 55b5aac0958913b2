"""Pure planning of a start-first rolling update: which old replicas go in which batch.

Each batch starts `len(batch)` new replicas beside all current ones, waits until they are in
rotation, then drains and removes the batch's old replicas. So the replica count never drops
below the starting count and peaks at start + batch size. Old replicas are replaced oldest
(lowest container number) first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Batch:
    index: int  # 1-based
    replace: tuple[str, ...]  # old containers drained and removed after the new ones are in

    @property
    def size(self) -> int:
        return len(self.replace)


@dataclass(frozen=True)
class RolloutPlan:
    batches: tuple[Batch, ...]
    replica_count: int

    @property
    def peak_replicas(self) -> int:
        return self.replica_count + max((b.size for b in self.batches), default=0)


def plan_rollout(old: Sequence[tuple[int, str]], batch_size: int) -> RolloutPlan:
    """`old` is (container number, name) of every running replica; batches of `batch_size`."""
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    names = [name for _, name in sorted(old)]
    batches = tuple(
        Batch(index=i // batch_size + 1, replace=tuple(names[i : i + batch_size]))
        for i in range(0, len(names), batch_size)
    )
    return RolloutPlan(batches=batches, replica_count=len(names))
