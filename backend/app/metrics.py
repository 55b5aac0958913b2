"""Prometheus metrics that stay correct across gunicorn workers.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py): every worker writes its
values to files there and a scrape merges them. Gauges therefore declare how to merge:
`livesum` adds up live workers (in-flight requests, pool connections), `livemax` gives one
value per replica (flags, build info).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
    multiprocess,
)

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


def render() -> bytes:
    """One scrape: merged over all workers when running under gunicorn."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
