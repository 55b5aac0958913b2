"""How a canary gets its share of the traffic: a file in Traefik's dynamic directory.

The `web` containers' labels route every request through a router whose service is a failover
service of the file provider (`web-failover@file`: the sticky `web@docker`, then `web-any@docker`
on a 503; docs/failover.md). During a canary hactl writes `canary-<project>.yml` beside the
tracked files. For each such router it holds a copy (same rule, entrypoints, middlewares, TLS,
read from Traefik's API) one priority higher, whose service is a weighted service:

    <router>-canary  ->  <router>-release (weighted, sticky cookie ha_release)
                           |- web-failover@file            (100 - w)  the stable side, as today
                           '- web-canary-failover@file     (w)        the canary, the same failover:
                                web-canary@docker (sticky, passive check), on 503
                                web-canary-any@docker, and on its 503 web-any@docker

plus a smoke router that sends requests carrying a per-run header to the canary side only. A
canary replica that the passive check took out hands the request to the canary's replicas
without passive check (web-canary-any), as web-any does for the stable side, so a client stays
on its version; only when no canary replica answers does it go to the stable replicas.
Removing the file removes the copies: the labels' routers take over again, an instant switch
back to the stable side.

Why this shape (Traefik v3.7's source):
- The file provider reads every file of its directory on each change of the directory
  (pkg/provider/file/file.go: an fsnotify watch on the directory); the file is written to a
  hidden temporary name Traefik ignores (not .yml) and renamed into place, so it never reads a
  half-written file. The directory is the bind mount of the tracked traefik/dynamic, so every
  Traefik of the stack sees it, but so does every other stack started from the same checkout:
  the content is wrapped in a template condition on the Traefik container's COMPOSE_PROJECT and
  renders empty anywhere else.
- A weighted child with weight 0 is left out of the balancer (wrr.go `Add`), and a sticky
  cookie naming a child that is not there picks again: at 100 % the stable side gets nobody.
  The weighted service sets its cookie only while both sides have a share: at 0 % (the smoke
  check) it would pin every sticky client to the stable side for the whole canary.
- The canary containers carry `traefik.docker.allownonrunning=true`: their services stay defined
  (empty) while a canary replica restarts or is unhealthy, instead of disappearing and taking
  the routers that name them down with them (pkg/provider/docker/config.go).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hactl.errors import HactlError
from hactl.stack.project import TRAEFIK_SERVICE, project_containers
from hactl.stack.running import RunningStack

DYNAMIC_DIR_IN_CONTAINER = "/etc/traefik/dynamic"
RELEASE_COOKIE = "ha_release"
SMOKE_HEADER = "X-Hactl-Canary"
# The stable load-balancer services and the canary's counterparts (compose/canary.yml's labels).
CANARY_SERVICES = {
    "web@docker": "web-canary@docker",
    "web-secure@docker": "web-canary-secure@docker",
}
# The canary's replicas without cookie or passive check (compose/canary.yml), as web-any@docker
# is for the stable side.
CANARY_ANY_SERVICE = "web-canary-any@docker"
CANARY_METRIC_SERVICES = tuple(CANARY_SERVICES.values())
STABLE_METRIC_SERVICES = tuple(CANARY_SERVICES)


class CanaryRoutingError(HactlError):
    """The stack's routing is not the shape a canary can be split from."""


@dataclass(frozen=True)
class RoutedFailover:
    """A label router whose service is a failover service over a stable sticky service."""

    router: str  # without provider, e.g. "web"
    rule: str
    entry_points: tuple[str, ...]
    middlewares: tuple[str, ...]
    tls: Mapping[str, Any] | None
    priority: int
    failover_service: str  # e.g. "web-failover@file"
    failover: Mapping[str, Any]  # its `failover` block as Traefik's API shows it

    @property
    def canary_router(self) -> str:
        return f"{self.router}-canary"

    @property
    def release_service(self) -> str:
        return f"{self.router}-release"

    @property
    def canary_failover(self) -> str:
        return f"{self.router}-canary-failover"

    @property
    def canary_any_failover(self) -> str:
        return f"{self.router}-canary-any-failover"


def _qualified(name: str, provider: str) -> str:
    return name if "@" in name else f"{name}@{provider}"


def find_routed_failovers(
    routers: Sequence[Mapping[str, Any]], services: Sequence[Mapping[str, Any]]
) -> list[RoutedFailover]:
    """The docker-provided routers the canary splits (pure; input: Traefik's API lists)."""
    by_name = {s.get("name"): s for s in services}
    found = []
    for router in routers:
        name = str(router.get("name", ""))
        if not name.endswith("@docker") or router.get("status") == "disabled":
            continue
        service_name = _qualified(str(router.get("service", "")), "docker")
        service = by_name.get(service_name) or {}
        failover = service.get("failover") or {}
        if failover.get("service") not in CANARY_SERVICES:
            continue
        rule = str(router.get("rule", ""))
        found.append(
            RoutedFailover(
                router=name.removesuffix("@docker"),
                rule=rule,
                entry_points=tuple(router.get("entryPoints") or ()),
                middlewares=tuple(router.get("middlewares") or ()),
                tls=router.get("tls"),
                # Traefik's default priority is the rule's length (v3).
                priority=int(router.get("priority") or len(rule)),
                failover_service=service_name,
                failover=failover,
            )
        )
    return sorted(found, key=lambda r: r.router)


def new_smoke_token() -> str:
    return secrets.token_hex(12)


def render_routing(
    project: str, routed: Sequence[RoutedFailover], weight: int, smoke_token: str
) -> str:
    """The canary file's text for `weight` percent of new clients on the canary (pure)."""
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    for r in routed:
        common: dict[str, Any] = {"entryPoints": list(r.entry_points)}
        if r.middlewares:
            common["middlewares"] = list(r.middlewares)
        if r.tls is not None:
            common["tls"] = dict(r.tls)
        routers[r.canary_router] = {
            **common,
            "rule": r.rule,
            "priority": r.priority + 1,
            "service": r.release_service,
        }
        routers[f"{r.router}-canary-smoke"] = {
            **common,
            "rule": f"({r.rule}) && Header(`{SMOKE_HEADER}`, `{smoke_token}`)",
            "priority": r.priority + 2,
            "service": r.canary_failover,
        }
        children = [
            {"name": r.failover_service, "weight": 100 - weight},
            {"name": f"{r.canary_failover}@file", "weight": weight},
        ]
        cookie: dict[str, Any] = {"name": RELEASE_COOKIE, "httpOnly": True, "sameSite": "lax"}
        if r.tls is not None:
            cookie["secure"] = True
        weighted: dict[str, Any] = {"services": [c for c in children if c["weight"] > 0]}
        if 0 < weight < 100:  # with one side only, a cookie would pin sticky clients to it
            weighted["sticky"] = {"cookie": cookie}
        services[r.release_service] = {"weighted": weighted}
        # The canary side fails over inside its own version first (its replicas without
        # cookie or passive check, as web-any is for the stable side), and to the stable
        # replicas only when no canary replica answers at all.
        errors = {"errors": dict(r.failover["errors"])} if r.failover.get("errors") else {}
        services[r.canary_failover] = {
            "failover": {
                "service": CANARY_SERVICES[str(r.failover["service"])],
                "fallback": f"{r.canary_any_failover}@file",
                **errors,
            }
        }
        services[r.canary_any_failover] = {
            "failover": {
                "service": CANARY_ANY_SERVICE,
                "fallback": r.failover.get("fallback"),
                **errors,
            }
        }
    body = yaml.safe_dump({"http": {"routers": routers, "services": services}}, sort_keys=True)
    return (
        f"# Written by `hactl rollout --canary` for the compose project {project}: {weight} % of\n"
        "# new clients on the canary. Removed when the canary ends (stack/canary_routing.py).\n"
        "# Other stacks started from this directory render it empty.\n"
        f'{{{{ if eq (env "COMPOSE_PROJECT") "{project}" }}}}\n'
        f"{body}"
        "{{ end }}\n"
    )


def dynamic_dir(running: RunningStack) -> Path:
    """The host directory Traefik's file provider watches (its bind mount's source)."""
    for container in project_containers(running.docker, running.project, TRAEFIK_SERVICE):
        for mount in container.mounts or []:
            if mount.destination == DYNAMIC_DIR_IN_CONTAINER and mount.source:
                return Path(mount.source)
    raise CanaryRoutingError(
        f"no {TRAEFIK_SERVICE} container of {running.project} mounts {DYNAMIC_DIR_IN_CONTAINER}"
    )


def routing_file(directory: Path, project: str) -> Path:
    return directory / f"canary-{project}.yml"


def write_atomically(path: Path, text: str) -> None:
    """Write beside the target under a name Traefik does not read, then rename over it."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.chmod(temporary, 0o644)  # Traefik runs as another user than hactl may
    os.replace(temporary, path)
