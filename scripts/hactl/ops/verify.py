"""`hactl verify`: is the stack as it should be? One pass/fail row per check.

Checks: replica count as desired; every replica running and healthy; every replica UP in Traefik;
cookie-less requests spread over all replicas within a tolerance; the sticky cookie pins a client
to one replica; `/readyz` answers 200 through the load balancer; PostgreSQL accepts connections
(`pg_isready` inside its container); when Prometheus runs, it scrapes every replica.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import httpx
from python_on_whales.exceptions import DockerException

from hactl.stack.endpoints import STICKY_COOKIE, Endpoints
from hactl.stack.project import POSTGRES_SERVICE, PROMETHEUS_SERVICE, project_containers
from hactl.stack.replicas import Replica, collect_replicas
from hactl.stack.running import RunningStack
from hactl.stack.traefik_api import ServerState, TraefikApiError
from hactl.waiting import WaitTimeoutError, wait_for

WHOAMI_PATH = "/api/v1/whoami"
REQUESTS_PER_REPLICA = 20
STICKY_REQUESTS = 10
HTTP_TIMEOUT = 3.0
PROMETHEUS_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def check_count(replicas: Sequence[Replica], desired: int) -> CheckResult:
    running = [r for r in replicas if r.status == "running"]
    return CheckResult(
        "replica count",
        len(running) == desired == len(replicas),
        f"{len(running)} running of {len(replicas)}, desired {desired}",
    )


def check_healthy(replicas: Sequence[Replica]) -> CheckResult:
    bad = [
        f"{r.name}: {r.status}/{r.health}"
        for r in replicas
        if r.status != "running" or r.health != "healthy"
    ]
    return CheckResult(
        "all healthy", bool(replicas) and not bad, "; ".join(bad) or f"{len(replicas)} healthy"
    )


def check_traefik_up(replicas: Sequence[Replica]) -> CheckResult:
    bad = [f"{r.name}: {r.traefik.value}" for r in replicas if r.traefik is not ServerState.UP]
    return CheckResult(
        "all UP in Traefik", bool(replicas) and not bad, "; ".join(bad) or f"{len(replicas)} UP"
    )


def spread_within_tolerance(
    counts: Counter[str], expected: Sequence[str], tolerance: float
) -> tuple[bool, str]:
    """Every expected replica answered, each within mean*(1±tolerance). Pure, unit tested."""
    total = sum(counts.values())
    if not expected or not total:
        return False, "no answers"
    mean = total / len(expected)
    low, high = mean * (1 - tolerance), mean * (1 + tolerance)
    shares = ", ".join(f"{name}={counts.get(name, 0)}" for name in sorted(expected))
    unknown = sorted(set(counts) - set(expected))
    outside = [n for n in expected if not low <= counts.get(n, 0) <= high]
    detail = f"{shares} (allowed {low:.0f}..{high:.0f})"
    if unknown:
        detail += f"; unexpected answers from {', '.join(unknown)}"
    return not outside and not unknown, detail


def _client(endpoints: Endpoints) -> httpx.Client:
    headers = {"Authorization": f"Bearer {endpoints.api_token}"} if endpoints.api_token else {}
    return httpx.Client(base_url=endpoints.load_balancer_url, timeout=HTTP_TIMEOUT, headers=headers)


def _replica_of(response: httpx.Response) -> str:
    response.raise_for_status()
    return str(response.json()["replica"])


def check_spread(
    endpoints: Endpoints, replicas: Sequence[Replica], tolerance: float
) -> CheckResult:
    name_of = {r.hostname: r.name for r in replicas}
    answers: Counter[str] = Counter()
    errors = 0
    for _ in range(REQUESTS_PER_REPLICA * max(len(replicas), 1)):
        with _client(endpoints) as client:  # a fresh client: no cookie, no kept connection
            try:
                hostname = _replica_of(client.get(WHOAMI_PATH))
                answers[name_of.get(hostname, hostname)] += 1
            except (httpx.HTTPError, KeyError, ValueError):
                errors += 1
    passed, detail = spread_within_tolerance(answers, [r.name for r in replicas], tolerance)
    if errors:
        passed, detail = False, f"{errors} failed requests; {detail}"
    return CheckResult("spread without cookie", passed, detail)


def check_sticky(endpoints: Endpoints) -> CheckResult:
    with _client(endpoints) as client:
        try:
            first = client.get(WHOAMI_PATH)
            pinned = _replica_of(first)
            if STICKY_COOKIE not in client.cookies:
                return CheckResult(
                    "sticky cookie pins", False, f"no {STICKY_COOKIE} cookie in the answer"
                )
            seen = Counter(_replica_of(client.get(WHOAMI_PATH)) for _ in range(STICKY_REQUESTS))
        except (httpx.HTTPError, KeyError, ValueError) as error:
            return CheckResult("sticky cookie pins", False, f"request failed: {error}")
    passed = set(seen) == {pinned}
    return CheckResult(
        "sticky cookie pins",
        passed,
        f"{STICKY_REQUESTS} requests with the cookie went to "
        f"{', '.join(f'{k} x{v}' for k, v in seen.items())} (pinned {pinned})",
    )


def check_readyz(endpoints: Endpoints) -> CheckResult:
    with _client(endpoints) as client:
        try:
            status = client.get("/readyz").status_code
        except httpx.HTTPError as error:
            return CheckResult("/readyz through the LB", False, str(error))
    return CheckResult("/readyz through the LB", status == 200, f"HTTP {status}")


def check_database(running: RunningStack) -> CheckResult:
    docker = running.docker
    containers = project_containers(docker, running.project, POSTGRES_SERVICE)
    if not containers:
        return CheckResult("database reachable", False, "no running postgres container")
    try:
        output = docker.container.execute(containers[0].name, ["pg_isready", "-q"])
        return CheckResult("database reachable", True, f"pg_isready ok {output or ''}".strip())
    except DockerException as error:
        return CheckResult(
            "database reachable", False, f"pg_isready failed: {error.stderr or error}".strip()
        )


def prometheus_web_targets(targets: dict[str, object]) -> dict[str, str]:
    """Active scrape targets on port 8000 (the replicas) -> health. Pure, unit tested."""
    data = targets.get("data") if isinstance(targets, dict) else None
    active = data.get("activeTargets", []) if isinstance(data, dict) else []
    result: dict[str, str] = {}
    for target in active:
        address = str(target.get("labels", {}).get("instance", ""))
        if address.endswith(":8000"):
            result[address.rsplit(":", 1)[0]] = str(target.get("health", "unknown"))
    return result


def check_prometheus(running: RunningStack, replicas: Sequence[Replica]) -> CheckResult | None:
    """Every replica an `up` target. A replica started seconds ago is found by DNS discovery
    and scraped within ~10 s (5 s refresh + 5 s interval), so this waits that long for it."""
    if not project_containers(running.docker, running.project, PROMETHEUS_SERVICE):
        return None

    def all_scraped() -> tuple[bool, str]:
        url = running.endpoints.prometheus_url + "/api/v1/targets"
        response = httpx.get(url, timeout=HTTP_TIMEOUT)
        health = prometheus_web_targets(response.json())
        bad = [
            f"{r.name}: {health.get(r.ip, 'not a target')}"
            for r in replicas
            if health.get(r.ip) != "up"
        ]
        return not bad, "; ".join(bad) or f"{len(replicas)} targets up"

    try:
        detail = wait_for(
            "Prometheus to scrape every replica", all_scraped, PROMETHEUS_GRACE_SECONDS
        ).detail
    except WaitTimeoutError as error:
        return CheckResult("Prometheus scrapes every replica", False, error.detail)
    return CheckResult("Prometheus scrapes every replica", True, detail)


def run_checks(running: RunningStack, desired: int, tolerance: float) -> list[CheckResult]:
    endpoints = running.endpoints
    try:
        traefik = running.traefik.server_states()
    except TraefikApiError as error:
        traefik = {}
        api_failure: CheckResult | None = CheckResult("Traefik API", False, str(error))
    else:
        api_failure = None
    replicas = collect_replicas(running, traefik)
    steps: list[Callable[[], CheckResult | None]] = [
        lambda: api_failure,
        lambda: check_count(replicas, desired),
        lambda: check_healthy(replicas),
        lambda: check_traefik_up(replicas),
        # Traefik routes by its own view, so the spread is over what it lists UP.
        lambda: check_spread(
            endpoints, [r for r in replicas if r.traefik is ServerState.UP], tolerance
        ),
        lambda: check_sticky(endpoints),
        lambda: check_readyz(endpoints),
        lambda: check_database(running),
        lambda: check_prometheus(running, replicas),
    ]
    return [result for step in steps if (result := step()) is not None]
