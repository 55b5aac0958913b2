"""What the stack costs at rest, per container, from the kernel's CPU accounting (issue 18).

An idle replica is never idle: Traefik probes it (every service with a health check, twice a
second), Docker runs its HEALTHCHECK process every second, Prometheus scrapes it. That cost is
paid per replica, so on a fixed number of cores it is taken from the requests as replicas are
added. `docker stats` gives one instant figure; this reads each container's cgroup CPU counter
before and after a window with no load, which integrates over the whole window.

Two parts of the cost are not in the replica's own cgroup, so they are read beside it:
- Traefik's side of the probes: Traefik's cgroup at N replicas, shared out per replica;
- the engine's side of `docker exec`-style health checks: each container's containerd shim
  forks `runc exec` every interval; the shim's own CPU and that of its reaped children are
  read from /proc (the reaped children include the health-check process, which the replica's
  cgroup counts too: that figure is an upper bound, and reported as such).
Reading the host's /sys and /proc needs hactl to run on the engine's host; elsewhere the figures
are None ("not measured"), never guessed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hactl.stack.project import LB_SERVICES

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")
# cgroup v2 (cgroupfs or systemd driver), then v1's cpuacct
V2_PATTERNS = ("docker/{id}/cpu.stat", "system.slice/docker-{id}.scope/cpu.stat")
V1_PATTERNS = (
    "cpuacct/docker/{id}/cpuacct.usage",
    "cpu,cpuacct/docker/{id}/cpuacct.usage",
    "cpuacct/system.slice/docker-{id}.scope/cpuacct.usage",
)


def parse_cpu_stat(text: str) -> float:
    """Seconds of CPU from a cgroup v2 cpu.stat (its usage_usec line)."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    raise ValueError("no usage_usec in cpu.stat")


def cgroup_cpu_seconds(container_id: str, root: Path = CGROUP_ROOT) -> float | None:
    """A container's CPU seconds so far, or None where its cgroup is not readable from here."""
    for pattern in V2_PATTERNS:
        path = root / pattern.format(id=container_id)
        if path.is_file():
            return parse_cpu_stat(path.read_text())
    for pattern in V1_PATTERNS:
        path = root / pattern.format(id=container_id)
        if path.is_file():
            return int(path.read_text()) / 1e9
    return None


def parse_proc_stat_cpu(stat_line: str, clock_ticks: int = 100) -> float:
    """CPU seconds of a process and its reaped children (utime+stime+cutime+cstime)."""
    rest = stat_line.rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
    return sum(int(v) for v in rest[11:15]) / clock_ticks


def shim_pids(container_ids: Sequence[str], proc: Path = PROC) -> dict[str, int]:
    """The containerd shim of each container: its command line names the container's id."""
    wanted = set(container_ids)
    found: dict[str, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not args or b"containerd-shim" not in args[0]:
            continue
        words = [a.decode(errors="replace") for a in args]
        for i, word in enumerate(words[:-1]):
            if word == "-id" and words[i + 1] in wanted:
                found[words[i + 1]] = int(entry.name)
    return found


def _proc_cpu(pid: int, proc: Path, ticks: int) -> float | None:
    try:
        return parse_proc_stat_cpu((proc / str(pid) / "stat").read_text(), ticks)
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class IdleCpu:
    """CPU per container over one idle window, in percent of one core."""

    replicas: int
    window_s: float
    services: dict[str, str]  # name -> its compose service
    container_percent: dict[str, float | None]  # name -> its cgroup
    shim_percent: dict[str, float | None]  # name -> its shim + reaped children (runc exec, ...)
    load_average: list[float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_idle_cpu(
    containers: Mapping[str, str],
    services: Mapping[str, str],
    replicas: int,
    window_s: float,
    proc: Path = PROC,
    cgroup_root: Path = CGROUP_ROOT,
) -> IdleCpu:
    """Read every container's counters (name -> id), wait `window_s` with no load, read again."""
    ticks = os.sysconf("SC_CLK_TCK")
    shims = shim_pids(list(containers.values()), proc)

    def read() -> tuple[dict[str, float | None], dict[str, float | None]]:
        cgroup = {n: cgroup_cpu_seconds(i, cgroup_root) for n, i in containers.items()}
        shim = {
            n: _proc_cpu(shims[i], proc, ticks) if i in shims else None
            for n, i in containers.items()
        }
        return cgroup, shim

    start, (cg0, sh0) = time.monotonic(), read()
    time.sleep(window_s)
    cg1, sh1 = read()
    seconds = time.monotonic() - start

    def percent(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(100 * (b - a) / seconds, 2)

    return IdleCpu(
        replicas=replicas,
        window_s=round(seconds, 2),
        services=dict(services),
        container_percent={n: percent(cg0[n], cg1[n]) for n in containers},
        shim_percent={n: percent(sh0[n], sh1[n]) for n in containers},
        load_average=[round(x, 2) for x in os.getloadavg()],
    )


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 2) if known else None


def idle_summary(
    windows: Sequence[Mapping[str, Any]],
    replica_service: str = "web",
    lb_services: Collection[str] = LB_SERVICES,
) -> dict[str, Any]:
    """Per replica count: a replica's own CPU (mean), its shim's, the load balancer's share per
    replica (both Traefik instances probe every replica, and traefik-net steers: all count);
    `per_replica_percent` is their sum at the largest count (shim left out: it repeats the
    health-check process, and is reported beside it as an upper bound)."""
    by_count: dict[str, Any] = {}
    for w in windows:
        n = int(w["replicas"])
        services = w["services"]
        replicas = [name for name, service in services.items() if service == replica_service]
        traefik = [
            w["container_percent"].get(name)
            for name, service in services.items()
            if service in lb_services
        ]
        own = _mean([w["container_percent"][r] for r in replicas])
        shim = _mean([w["shim_percent"].get(r) for r in replicas])
        traefik_total = sum(t for t in traefik if t is not None) if traefik else None
        share = None if traefik_total is None else round(traefik_total / max(n, 1), 2)
        by_count[str(n)] = {
            "replica_own_percent": own,
            "replica_shim_percent": shim,
            "traefik_percent": traefik_total,
            "traefik_share_percent": share,
            "per_replica_percent": None if own is None else round(own + (share or 0.0), 2),
            "per_replica_upper_bound_percent": None
            if own is None
            else round(own + (share or 0.0) + (shim or 0.0), 2),
            "load_average": w.get("load_average"),
        }
    top = max(by_count, key=int, default=None)
    return {
        "by_replicas": by_count,
        "per_replica_percent": by_count[top]["per_replica_percent"] if top else None,
        "per_replica_upper_bound_percent": by_count[top]["per_replica_upper_bound_percent"]
        if top
        else None,
    }
