"""Memory of each web replica, read from /proc inside the container (no host privileges needed).

gunicorn forks its workers from the master, so the workers share pages with it: summing RSS
counts those pages once per process. PSS (proportional set size, from smaps_rollup) splits every
shared page between the processes that map it, so the sum of PSS is what the replica really
costs; both are reported, PSS is the headline. Docker's own figure (cgroup usage, which also
counts page cache and tmpfs) is recorded beside it when `docker stats` answers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

# Runs inside the replica with -I -S (no site import: cheap). Skips itself.
PROC_SCRIPT = r"""
import json, os
me = os.getpid()
out = []
for pid in os.listdir('/proc'):
    if not pid.isdigit() or int(pid) == me:
        continue
    try:
        cmd = open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\0', b' ').decode().strip()
        fields = {}
        for line in open(f'/proc/{pid}/smaps_rollup'):
            parts = line.split()
            if len(parts) >= 2 and parts[0] in ('Rss:', 'Pss:'):
                fields[parts[0][:-1].lower()] = int(parts[1])
    except OSError:
        continue
    out.append({'pid': int(pid), 'cmd': cmd[:80], **fields})
print(json.dumps(out))
"""
MB = 1024 * 1024


@dataclass
class ReplicaMemory:
    replica: str
    processes: int  # gunicorn master + workers
    rss_mb: float  # sum of RSS over those processes (shared pages counted more than once)
    pss_mb: float  # sum of PSS: the replica's own memory, the headline figure
    cgroup_mb: float | None  # `docker stats` memory usage, when it answered

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_processes(
    replica: str, processes: Sequence[dict[str, Any]], cgroup_bytes: float | None = None
) -> ReplicaMemory:
    """Pure: the gunicorn processes of one replica (kB figures from smaps_rollup) to MB."""
    served = [p for p in processes if "gunicorn" in p.get("cmd", "")] or list(processes)
    return ReplicaMemory(
        replica=replica,
        processes=len(served),
        rss_mb=round(sum(p.get("rss", 0) for p in served) / 1024, 1),
        pss_mb=round(sum(p.get("pss", 0) for p in served) / 1024, 1),
        cgroup_mb=None if cgroup_bytes is None else round(cgroup_bytes / MB, 1),
    )


def _cgroup_usage(docker: DockerClient, names: Sequence[str]) -> dict[str, float]:
    try:
        return {s.container_name: float(s.memory_used) for s in docker.stats(list(names))}
    except (DockerException, AttributeError, TypeError, ValueError):
        return {}


def sample_memory(
    docker: DockerClient, names: Sequence[str], with_docker_stats: bool = True
) -> list[ReplicaMemory]:
    """One reading per replica; a replica that cannot be read is left out."""
    cgroup = _cgroup_usage(docker, names) if with_docker_stats else {}
    readings = []
    for name in names:
        try:
            raw = docker.container.execute(name, ["python3", "-I", "-S", "-c", PROC_SCRIPT])
            processes = json.loads(str(raw))
        except (DockerException, ValueError):
            continue
        readings.append(summarize_processes(name, processes, cgroup.get(name)))
    return readings
