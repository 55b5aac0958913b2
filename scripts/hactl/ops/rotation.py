"""Wait until given replicas are in (or out of) the load balancer's rotation.

In rotation = Docker health `healthy` AND Traefik lists the container's URL UP.
Out of rotation = Traefik shows it DOWN or does not list it at all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from hactl.stack.project import WEB_SERVICE
from hactl.stack.replicas import Replica, collect_replicas, container_facts, web_containers
from hactl.stack.running import RunningStack
from hactl.waiting import WaitAbortedError, WaitResult, wait_for


def current_replicas(running: RunningStack, service: str = WEB_SERVICE) -> list[Replica]:
    return collect_replicas(running, running.traefik.server_states(), service=service)


def describe(replica: Replica) -> str:
    return f"{replica.name}={replica.status}/{replica.health}/{replica.traefik.value}"


CRASH_LOOP_RESTARTS = 2


def hopeless_replicas(names: Collection[str], by_name: Mapping[str, Replica]) -> list[str]:
    """New replicas that will not get ready by waiting: exited, or restarted again and again."""
    hopeless = []
    for name in names:
        replica = by_name.get(name)
        if replica is None:
            hopeless.append(f"{name} exited")
        elif replica.restarts >= CRASH_LOOP_RESTARTS:
            hopeless.append(f"{name} crash-loops ({replica.restarts} restarts)")
    return hopeless


def wait_in_rotation(
    running: RunningStack, names: Collection[str], timeout: float, service: str = WEB_SERVICE
) -> WaitResult:
    def check() -> tuple[bool, str]:
        by_name = {r.name: r for r in current_replicas(running, service)}
        missing = [n for n in names if n not in by_name or not by_name[n].in_rotation]
        detail = ", ".join(describe(by_name[n]) if n in by_name else f"{n}=gone" for n in missing)
        if hopeless := hopeless_replicas(names, by_name):
            raise WaitAbortedError(f"{', '.join(hopeless)}; {detail}")
        return not missing, detail or f"{len(names)} in rotation"

    return wait_for(f"{len(names)} replica(s) in rotation", check, timeout)


def wait_count_in_rotation(running: RunningStack, count: int, timeout: float) -> WaitResult:
    def check() -> tuple[bool, str]:
        replicas = current_replicas(running)
        ready = [r for r in replicas if r.in_rotation]
        not_ready = ", ".join(describe(r) for r in replicas if not r.in_rotation)
        done = len(ready) == count == len(replicas)
        return done, f"{len(ready)}/{count} in rotation, {len(replicas)} containers {not_ready}"

    return wait_for(f"{count} replicas in rotation", check, timeout)


def wait_out_of_rotation(
    running: RunningStack, names: Collection[str], timeout: float
) -> WaitResult:
    ips = {c.name: set(container_facts(c).ips) for c in web_containers(running) if c.name in names}

    def check() -> tuple[bool, str]:
        receiving = running.traefik.ips_receiving_traffic()
        still_up = sorted(name for name, addresses in ips.items() if addresses & receiving)
        return not still_up, ("still UP in Traefik: " + ", ".join(still_up)) if still_up else ""

    return wait_for(f"Traefik to drop {len(names)} replica(s)", check, timeout)
