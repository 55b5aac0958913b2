"""The Traefik instances of a stack, each seen on its own.

The HA stack runs two Traefik instances in one network namespace (docker-compose.ha.yml): the
published ports (:80, :443, the API on :8080) are shared with SO_REUSEPORT, so a request to them
reaches either instance. To know what *one* instance routes (a new one during a rollout, before
the other is touched), hactl reads that instance's own API, which listens only on 127.0.0.1 of
the namespace (`TRAEFIK_INSTANCE_API_PORT`, entrypoint `instance` in traefik/traefik.yml). It
gets there with `docker exec` into the namespace's holder (`traefik-net`, a Python image), so
nothing of it is published. `instance_problems` (pure, unit tested) says what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from python_on_whales import Container, DockerClient

from hactl.stack.engine_view import ContainerView, container_env, listed, project_view
from hactl.stack.project import (
    TRAEFIK_NETNS_SERVICE,
    TRAEFIK_SERVICES,
    WEB_SERVICE,
    project_containers,
)
from hactl.stack.traefik_api import (
    WEB_SERVICE_NAME,
    ServerState,
    find_service,
    parse_server_states,
    states_by_ip,
)

INSTANCE_API_PORT_ENV = "TRAEFIK_INSTANCE_API_PORT"
DEFAULT_INSTANCE_API_PORT = 9082
METRICS_PORT_ENV = "TRAEFIK_METRICS_PORT"
DEFAULT_METRICS_PORT = 8082
# The entrypoints both instances listen on with SO_REUSEPORT, and their request counter (the
# parser drops the counter's _total suffix).
SHARED_ENTRYPOINTS = ("web", "websecure")
ENTRYPOINT_REQUESTS_FAMILY = "traefik_entrypoint_requests"
# The routers every instance must serve (the web containers' labels): HTTP and HTTPS.
REQUIRED_ROUTERS = ("web@docker", "web-secure@docker")
FETCH_SCRIPT = (
    "import json, sys, urllib.request\n"
    "base = 'http://127.0.0.1:%s/api/http/' % sys.argv[1]\n"
    "out = {}\n"
    "for part in ('routers', 'services'):\n"
    "    with urllib.request.urlopen(base + part + '?per_page=1000', timeout=3) as r:\n"
    "        out[part] = json.load(r)\n"
    "print(json.dumps(out))\n"
)

# Every instance's metrics in one `docker exec` (one process, not one per instance: a canary
# step reads them every few seconds on hosts with two cores).
METRICS_SCRIPT = (
    "import json, sys, urllib.request\n"
    "out = {}\n"
    "for port in sys.argv[1:]:\n"
    "    url = 'http://127.0.0.1:%s/metrics' % port\n"
    "    with urllib.request.urlopen(url, timeout=3) as r:\n"
    "        out[port] = r.read().decode()\n"
    "print(json.dumps(out))\n"
)


@dataclass(frozen=True)
class InstanceView:
    """What one Traefik instance routes: its routers and services from its own API."""

    routers: list[dict[str, Any]]
    services: list[dict[str, Any]]


def instance_containers(docker: DockerClient, project: str) -> dict[str, Container | None]:
    """Service name -> its running container (None: not running), for every instance."""
    found: dict[str, Container | None] = {}
    for service in TRAEFIK_SERVICES:
        running = project_containers(docker, project, service)
        found[service] = running[0] if running else None
    return found


def _port_from_env(env: list[str], key: str, default: int) -> int:
    for item in env:
        name, _, value = item.partition("=")
        if name == key and value.isdigit():
            return int(value)
    return default


def instance_api_port(docker: DockerClient, instance_id: str) -> int:
    return _port_from_env(
        container_env(docker, instance_id), INSTANCE_API_PORT_ENV, DEFAULT_INSTANCE_API_PORT
    )


def has_instances(docker: DockerClient, project: str) -> bool:
    """True when the stack runs its Traefik instances in a shared namespace (the HA overlay)."""
    return bool(project_containers(docker, project, TRAEFIK_NETNS_SERVICE))


def _holder(views: list[ContainerView], project: str) -> str:
    holders = [v for v in listed(views, TRAEFIK_NETNS_SERVICE) if v.running]
    if not holders:
        raise RuntimeError(f"no running {TRAEFIK_NETNS_SERVICE} container in {project}")
    return holders[0].id


def read_instance_view(
    docker: DockerClient,
    project: str,
    instance: Container | ContainerView,
    views: list[ContainerView] | None = None,
) -> InstanceView:
    """The instance's routers and services, read from inside the shared network namespace
    (`views`: the project's containers if the caller has just listed them)."""
    views = project_view(docker, project) if views is None else views
    port = instance_api_port(docker, instance.id)
    out = docker.container.execute(
        _holder(views, project), ["python3", "-c", FETCH_SCRIPT, str(port)]
    )
    data = json.loads(str(out))
    return InstanceView(routers=list(data["routers"]), services=list(data["services"]))


def read_instance_metrics(docker: DockerClient, project: str) -> dict[str, str]:
    """Instance service name -> the Prometheus text of its own metrics entrypoint, for every
    running instance. Through the shared ports a read would reach either instance at random,
    so counters read there jump between two sets; each instance's own port does not."""
    views = project_view(docker, project)
    ports = {
        service: _port_from_env(
            container_env(docker, found[0].id), METRICS_PORT_ENV, DEFAULT_METRICS_PORT
        )
        for service in TRAEFIK_SERVICES
        if (found := listed(views, service))
    }
    if not ports:
        return {}
    out = docker.container.execute(
        _holder(views, project),
        ["python3", "-c", METRICS_SCRIPT, *(str(p) for p in ports.values())],
    )
    texts = json.loads(str(out))
    return {service: texts[str(port)] for service, port in ports.items()}


def shared_entrypoint_requests(metrics_text: str) -> float:
    """How many requests an instance has taken on the shared entrypoints (cumulative)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        if family.name == ENTRYPOINT_REQUESTS_FAMILY
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("entrypoint") in SHARED_ENTRYPOINTS
    )


def serving_instance(docker: DockerClient, project: str, probe: Callable[[], object]) -> str:
    """The instance that takes new connections now: traefik-net steers every one to the older
    listener (docs/load-balancer.md), so the instance whose shared entrypoints counted
    `probe()` (requests on new connections to the published ports) is the one serving."""

    def counts() -> dict[str, float]:
        texts = read_instance_metrics(docker, project)
        return {service: shared_entrypoint_requests(text) for service, text in texts.items()}

    before = counts()
    probe()
    after = counts()
    taken = {service: after[service] - before.get(service, 0.0) for service in after}
    if not taken or max(taken.values()) <= 0:
        raise RuntimeError(f"no Traefik instance counted the probe requests: {taken}")
    return max(taken, key=lambda service: taken[service])


def healthy_web_ips(
    docker: DockerClient, project: str, views: list[ContainerView] | None = None
) -> dict[str, set[str]]:
    """Container name -> IPs of every running web replica Docker calls healthy."""
    views = project_view(docker, project) if views is None else views
    return {
        v.name: set(v.ips)
        for v in listed(views, WEB_SERVICE)
        if v.running and v.health == "healthy"
    }


def instance_problems(view: InstanceView, replicas: Mapping[str, set[str]]) -> list[str]:
    """Why this instance does not route like it should (empty: it does): a required router
    missing or not enabled, a healthy replica missing from its `web@docker` servers (its Docker
    configuration is incomplete), or no server UP at all. A listed server's UP/DOWN is its own
    health check's verdict, which a busy host flips for a moment: not asked of each one."""
    problems = []
    routers = {r.get("name"): r for r in view.routers}
    for name in REQUIRED_ROUTERS:
        router = routers.get(name)
        if router is None:
            problems.append(f"router {name} missing")
        elif router.get("status") != "enabled":
            errors = "; ".join(router.get("error") or []) or router.get("status")
            problems.append(f"router {name}: {errors}")
    states = states_by_ip(parse_server_states(find_service(view.services, WEB_SERVICE_NAME)))
    missing = sorted(name for name, ips in replicas.items() if not ips & set(states))
    if missing:
        problems.append(f"{WEB_SERVICE_NAME} does not list {', '.join(missing)}")
    if not any(state is ServerState.UP for state in states.values()):
        problems.append(f"{WEB_SERVICE_NAME} has no server UP")
    return problems
