"""`hactl autoscale`'s HPA algorithm replayed on the load timeline the k8s HPA tests apply.

The Kubernetes tests drive kwok pods with a total CPU load spread evenly over the pods, and
compare what the real controller did with what hactl's pure HPA (the same policy file) decides
on the same timeline: one sync every 15 s, every pod's metrics known at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hactl.autoscale.hpa import (
    HpaSpec,
    HpaState,
    MetricReading,
    ReplicaUsage,
    decide,
    record_scale,
)
from hactl.autoscale.policy import load_policy

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "compose" / "autoscale-policy.yml"
MIB = 2**20
# Per pod, as in deployment.yaml (requests = limits): 1 CPU, 512 MiB.
POD_CPU = 1.0
POD_MEMORY = 512 * MIB
# What every simulated pod uses of memory: far below the 80 % target, so CPU decides.
POD_MEMORY_USE = 100 * MIB
# Total CPUs the tests load the pods with (3 -> 7 -> 10), then idle. 12: even while the 4 new pods
# have no valid metrics yet (the real HPA then counts them as 0 %), the 3 old ones at 171 % still
# ask for more than 10, so the controller's second step is 10 whenever it comes.
SCALE_UP_LOAD = 12.0
IDLE_LOAD = 0.3


def policy_spec() -> HpaSpec:
    return load_policy(POLICY).spec


@dataclass(frozen=True)
class Step:
    at: float  # seconds since the load changed
    replicas: int  # the count after this step
    rule: str


def readings(total_cpu: float, pods: int) -> dict[str, MetricReading]:
    """The load spread evenly over `pods` pods, as the k8s test annotates them."""
    cpu = tuple(ReplicaUsage(f"p{i}", total_cpu / pods, POD_CPU) for i in range(pods))
    memory = tuple(ReplicaUsage(f"p{i}", POD_MEMORY_USE, POD_MEMORY) for i in range(pods))
    return {"cpu": MetricReading("cpu", cpu), "memory": MetricReading("memory", memory)}


def replay(
    start: int, loads: list[tuple[float, float]], duration: float, sync: float = 15.0
) -> list[Step]:
    """Every scale hactl's HPA orders over `duration` seconds; `loads` is the timeline of
    (from second, total CPUs), the same the k8s test applies to its pods."""
    spec = policy_spec()
    state = HpaState()
    current, steps, now = start, [], 0.0
    while now <= duration:
        total = [cpu for since, cpu in loads if since <= now][-1]
        decision, state = decide(spec, state, now, current, readings(total, current))
        if decision.desired != current:
            state = record_scale(spec, state, now, current, decision.desired)
            current = decision.desired
            steps.append(Step(now, current, decision.rule))
        now += sync
    return steps
