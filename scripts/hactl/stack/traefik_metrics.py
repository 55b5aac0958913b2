"""Traefik's own per-service counters, read straight from its Prometheus endpoint.

`traefik/dynamic/metrics-api.yml` serves Traefik's `/metrics` on the API entrypoint too
(127.0.0.1, the dashboard's basic auth), so hactl reads it whether or not the monitoring overlay
runs, and with no scrape interval in between: a canary step is judged on the exact counts
between two reads. Traefik counts each attempt at a server of a load-balancer service
(`traefik_service_requests_total{code,method,protocol,service}` and the
`traefik_service_request_duration_seconds` histogram, buckets from traefik.yml); weighted and
failover services have no metrics of their own (pkg/server/service/service.go, v3.7).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hactl.ops.canary_analysis import SideSample
from hactl.stack.traefik_api import TraefikApi, TraefikApiError

REQUESTS_FAMILY = "traefik_service_requests"  # the parser drops the counter's _total suffix
DURATION_FAMILY = "traefik_service_request_duration_seconds"
METRICS_PATH = "/metrics"


def parse_service_samples(text: str) -> dict[str, SideSample]:
    """Service name -> its cumulative requests, 5xx answers and latency buckets."""
    requests: dict[str, float] = {}
    errors: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name == REQUESTS_FAMILY:
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                service = sample.labels.get("service", "")
                requests[service] = requests.get(service, 0.0) + sample.value
                if sample.labels.get("code", "").startswith("5"):
                    errors[service] = errors.get(service, 0.0) + sample.value
        elif family.name == DURATION_FAMILY:
            for sample in family.samples:
                if not sample.name.endswith("_bucket"):
                    continue
                service = sample.labels.get("service", "")
                le = float(sample.labels.get("le", "+Inf").replace("+Inf", "inf"))
                per_service = buckets.setdefault(service, {})
                per_service[le] = per_service.get(le, 0.0) + sample.value
    return {
        service: SideSample(
            requests=count,
            errors=errors.get(service, 0.0),
            buckets=tuple(sorted(buckets.get(service, {math.inf: count}).items())),
        )
        for service, count in requests.items()
    }


def add_samples(readings: Iterable[Mapping[str, SideSample]]) -> dict[str, SideSample]:
    """Per-service samples of several Traefik instances added up, service by service."""
    total: dict[str, SideSample] = {}
    for reading in readings:
        for service, sample in reading.items():
            total[service] = total[service].plus(sample) if service in total else sample
    return total


def side(samples: Mapping[str, SideSample], services: tuple[str, ...]) -> SideSample:
    """The services of one side added up (missing ones count as nothing yet)."""
    result = SideSample()
    for name in services:
        if name in samples:
            result = result.plus(samples[name])
    return result


def read_service_samples(api: TraefikApi) -> dict[str, SideSample]:
    auth = (api.username, api.password) if api.password else None
    url = api.base_url.rstrip("/") + METRICS_PATH
    try:
        response = httpx.get(url, auth=auth, timeout=api.timeout)
    except httpx.HTTPError as error:
        raise TraefikApiError(f"Traefik metrics at {url} unreachable: {error}") from error
    if response.status_code != 200:
        raise TraefikApiError(
            f"Traefik metrics at {url} answered HTTP {response.status_code} "
            "(is traefik/dynamic/metrics-api.yml loaded?)"
        )
    return parse_service_samples(response.text)
