"""Prometheus metrics that stay correct across gunicorn workers.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py): every worker writes its
values to files there and a scrape merges them. Gauges therefore declare how to merge:
`livesum` adds up live workers (in-flight requests, pool connections), `livemax` gives one
value per replica (flags, build info).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

IN_FLIGHT = Gauge(
    "app_requests_in_flight", "HTTP requests being served right now", multiprocess_mode="livesum"
)
DB_POOL_IN_USE = Gauge(
    "app_db_pool_connections_in_use",
    "Database connections checked out",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "app_db_pool_connections", "Database connections open in the pools", multiprocess_mode="livesum"
)
DB_POOL_MAX = Gauge(
    "app_db_pool_max_connections", "Upper bound of the pools' sizes", multiprocess_mode="livesum"
)
DRAINING = Gauge(
    "app_draining", "1 while the replica drains before shutdown", multiprocess_mode="livemax"
)
FORCED_UNREADY = Gauge(
    "app_forced_unready",
    "1 while an operator holds the replica unready",
    multiprocess_mode="livemax",
)
BUILD_INFO = Gauge(
    "app_build_info",
    "Always 1; labels carry the version and the replica id",
    ["version", "replica_id"],
    multiprocess_mode="livemax",
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def resident_memory_by_pid(proc: Path = Path("/proc")) -> dict[str, int]:
    """RSS in bytes of every process visible in /proc: in a container, the replica's own."""
    rss: dict[str, int] = {}
    for status in proc.glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:  # the process exited meanwhile
            continue
        for line in lines:
            if line.startswith("VmRSS:"):
                rss[status.parent.name] = int(line.split()[1]) * 1024  # reported in kB
                break
    return rss


class ReplicaMemoryCollector:
    """`process_resident_memory_bytes{pid}` for the gunicorn master and every worker.

    The multiprocess registry has no process collector, and one worker's own numbers would miss
    the others: summing these samples gives the replica's memory."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self.proc = proc

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory size in bytes", labels=["pid"]
        )
        for pid, value in sorted(resident_memory_by_pid(self.proc).items()):
            family.add_metric([pid], value)
        yield family


def render() -> bytes:
    """One scrape: merged over all workers when running under gunicorn."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(ReplicaMemoryCollector())
        return generate_latest(registry)
    return generate_latest(REGISTRY)
