"""Where the autoscaler's metrics come from: Docker for CPU and memory, Prometheus for requests/s.

- CPU: `docker stats` (the Docker API's two-sample CPU %, where 100 % is one core) of every running
  `web` replica, over the replica's CPU limit (`deploy.resources.limits.cpus` → HostConfig
  NanoCpus, or CpuQuota/CpuPeriod), or the policy's `limits.cpu` when it has none.
- Memory: `docker stats` memory use (cache excluded, as `docker stats` shows it) over HostConfig
  Memory, or the policy's `limits.memory`.
- Requests/s: one PromQL query (default: the web job's request rate without health probes),
  a total over all replicas that the HPA divides by its per-replica target.

A replica is *ready* when Docker says healthy (Kubernetes' pod Ready); for CPU unready replicas
are left out the way the HPA does. A replica without a limit and no fallback in the policy makes
that metric invalid (never a guess), which the algorithm treats like a failed metrics API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from python_on_whales import Container
from python_on_whales.exceptions import DockerException

from hactl.autoscale.hpa import MetricReading, ReplicaUsage
from hactl.autoscale.policy import AutoscalePolicy, Limits
from hactl.stack.project import container_number
from hactl.stack.replicas import web_containers
from hactl.stack.running import RunningStack


@dataclass(frozen=True)
class ReplicaLimits:
    name: str
    ready: bool
    cpu: float | None  # cores
    memory: int | None  # bytes


def cpu_limit_of(host_config: Any) -> float | None:
    """Cores a container may use: NanoCpus (`--cpus`), else CpuQuota/CpuPeriod; None: no limit."""
    nano = getattr(host_config, "nano_cpus", None) or 0
    if nano > 0:
        return nano / 1e9
    quota = getattr(host_config, "cpu_quota", None) or 0
    period = getattr(host_config, "cpu_period", None) or 0
    if quota > 0 and period > 0:
        return quota / period
    return None


def memory_limit_of(host_config: Any) -> int | None:
    memory = getattr(host_config, "memory", None) or 0
    return int(memory) if memory > 0 else None


def replica_limits(container: Container) -> ReplicaLimits:
    state = container.state
    healthy = bool(state.running and state.health and state.health.status == "healthy")
    return ReplicaLimits(
        container.name,
        healthy,
        cpu_limit_of(container.host_config),
        memory_limit_of(container.host_config),
    )


def utilization_reading(
    name: str, limits: Sequence[ReplicaLimits], usage: dict[str, float], fallback: float
) -> MetricReading:
    """Per-replica usage against each replica's limit (or the policy's fallback)."""
    replicas = []
    for replica in limits:
        limit = replica.cpu if name == "cpu" else replica.memory
        limit = limit or fallback or None
        if limit is None:
            return MetricReading(
                name,
                error=(
                    f"{replica.name} has no {name} limit: set deploy.resources.limits in the "
                    f"compose files or limits.{name} in the policy"
                ),
            )
        replicas.append(
            ReplicaUsage(replica.name, usage.get(replica.name), float(limit), replica.ready)
        )
    if not replicas:
        return MetricReading(name, error="no running web replica")
    return MetricReading(name, replicas=tuple(replicas))


def query_prometheus_total(url: str, query: str, timeout: float = 5.0) -> float:
    """Sum of an instant vector (a scalar works too); ValueError when it has no data."""
    response = httpx.get(
        url.rstrip("/") + "/api/v1/query", params={"query": query}, timeout=timeout
    )
    response.raise_for_status()
    data = response.json().get("data", {})
    result = data.get("result")
    if data.get("resultType") == "scalar":
        return float(result[1])
    if not result:
        raise ValueError(f"Prometheus has no data for {query!r}")
    return sum(float(sample["value"][1]) for sample in result)


class DockerMetricsSource:
    """Reads the replicas and the metrics a policy asks for, once per sync."""

    def __init__(self, running: RunningStack, policy: AutoscalePolicy) -> None:
        self.running = running
        self.policy = policy
        self.docker = running.docker
        self.prometheus_url = policy.prometheus_url or running.endpoints.prometheus_url
        self.names = {m.name for m in policy.spec.metrics}

    def running_replicas(self) -> list[Container]:
        running = [c for c in web_containers(self.running) if c.state.running]
        return sorted(running, key=container_number)  # hactl scale removes the last ones

    def read(self) -> tuple[int, dict[str, MetricReading]]:
        """(current replica count, reading per metric of the policy)."""
        readings: dict[str, MetricReading] = {}
        resource = self.names & {"cpu", "memory"}
        for attempt in (1, 2):  # a replica removed between the list and `docker stats`: again
            containers = self.running_replicas()
            limits = [replica_limits(c) for c in containers]
            if not resource:
                break
            readings.update(
                self._resource_readings(containers, limits, resource, self.policy.limits)
            )
            if attempt == 2 or not any(
                (r.error or "").startswith("docker stats failed") for r in readings.values()
            ):
                break
        if "requests_per_second" in self.names:
            try:
                total = query_prometheus_total(self.prometheus_url, self.policy.rps_query)
                readings["requests_per_second"] = MetricReading("requests_per_second", total=total)
            except (httpx.HTTPError, ValueError, KeyError, IndexError) as error:
                readings["requests_per_second"] = MetricReading(
                    "requests_per_second", error=f"Prometheus at {self.prometheus_url}: {error}"
                )
        return len(containers), readings

    def _resource_readings(
        self,
        containers: list[Container],
        limits: list[ReplicaLimits],
        names: set[str],
        fallback: Limits,
    ) -> dict[str, MetricReading]:
        if not containers:
            return {n: MetricReading(n, error="no running web replica") for n in names}
        try:
            stats = self.docker.stats(containers)
        except DockerException as error:  # a replica went away between list and stats
            reason = (getattr(error, "stderr", "") or "").strip() or str(error).splitlines()[0]
            return {n: MetricReading(n, error=f"docker stats failed: {reason}") for n in names}
        cpu = {s.container_name: s.cpu_percentage / 100 for s in stats}
        memory = {s.container_name: float(s.memory_used) for s in stats}
        result = {}
        if "cpu" in names:
            result["cpu"] = utilization_reading("cpu", limits, cpu, fallback.cpu)
        if "memory" in names:
            result["memory"] = utilization_reading("memory", limits, memory, fallback.memory)
        return result
