"""The faults `hactl chaos` injects, and the evidence that each one really happened.

Every fault is a blocking function (python-on-whales calls the docker CLI) that the chaos run
executes in a worker thread while the load keeps going; it calls ``mark(action)`` right after
each step so the run can place the step on the load's timeline. ``snapshot`` reads a container's
identity (id, pid, start time, restart count, state) before, during and after the fault;
``fault_happened`` (pure) decides from those snapshots whether the fault was real, so that a
no-op can never pass a chaos test.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import httpx
from python_on_whales import Container, DockerClient
from python_on_whales.exceptions import DockerException

from hactl.selfheal.docker_api import DockerApiError, addresses_of
from hactl.stack.engine_view import engine_of

Mark = Callable[[str], None]


class Scenario(StrEnum):
    KILL = "kill"
    CRASH = "crash"
    STOP = "stop"
    PAUSE = "pause"
    RESTART = "restart"
    # Cut off every network (no RST, no die event: packets vanish), reconnected afterwards.
    DISCONNECT = "disconnect"
    DB_RESTART = "db-restart"
    # One of the Traefik instances (docs/load-balancer.md): `docker restart` (SIGTERM, drain),
    # SIGKILL of its process (the engine restarts it), `hactl rollout --service traefik`.
    TRAEFIK_RESTART = "traefik-restart"
    TRAEFIK_KILL = "traefik-kill"
    TRAEFIK_ROLLOUT = "traefik-rollout"

    @property
    def target_service(self) -> str:
        if self is Scenario.DB_RESTART:
            return "postgres"
        if self.hits_traefik:
            return "traefik"
        return "web"

    @property
    def hits_traefik(self) -> bool:
        return self.value.startswith("traefik-")

    @property
    def hits_a_replica(self) -> bool:
        return self.target_service == "web"


@dataclass(frozen=True)
class FaultOptions:
    pause_s: float = 15.0
    disconnect_s: float = 10.0
    # `docker kill` and `docker stop` leave the replica stopped (a stop by hand is never
    # restarted by the engine); hactl starts it again after this long to measure the rejoin.
    restart_stopped_after_s: float = 5.0
    # How long to wait for the engine to bring a crashed container back.
    engine_restart_timeout_s: float = 30.0
    # traefik-rollout: how long one new instance may take to route before it is rolled back.
    traefik_rollout_timeout_s: float = 60.0


@dataclass(frozen=True)
class ContainerSnapshot:
    name: str
    id: str
    status: str
    running: bool
    paused: bool
    pid: int
    started_at: str
    finished_at: str
    restart_count: int
    exit_code: int | None
    health: str
    hostname: str
    ips: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def snapshot(docker: DockerClient, container: Container | str) -> ContainerSnapshot:
    """A fresh inspect of the container, through the engine's API: the waits below look every
    0.25 s while the load runs, and a `docker` process per look costs the stack about 25 ms of
    CPU each (hactl.stack.engine_view)."""
    return snapshot_of(
        engine_of(docker).inspect(container if isinstance(container, str) else container.id)
    )


def snapshot_of(data: dict[str, Any]) -> ContainerSnapshot:
    """The snapshot in an engine's `GET /containers/{id}/json` answer."""
    state = data.get("State") or {}
    return ContainerSnapshot(
        name=str(data.get("Name") or "").lstrip("/"),
        id=str(data["Id"]),
        status=str(state.get("Status") or "unknown"),
        running=bool(state.get("Running")),
        paused=bool(state.get("Paused")),
        pid=int(state.get("Pid") or 0),
        started_at=str(state.get("StartedAt") or ""),
        finished_at=str(state.get("FinishedAt") or ""),
        restart_count=int(data.get("RestartCount") or 0),
        exit_code=state.get("ExitCode"),
        health=str((state.get("Health") or {}).get("Status") or "none"),
        hostname=str((data.get("Config") or {}).get("Hostname") or ""),
        ips=addresses_of(data),
    )


@dataclass
class FaultEvidence:
    before: ContainerSnapshot
    during: ContainerSnapshot | None = None
    after: ContainerSnapshot | None = None
    # A rollout replaces containers: service -> [old container id, new container id].
    replaced: dict[str, list[str]] = field(default_factory=dict)
    # traefik-kill: seconds from the SIGKILL until the engine's restart was healthy again.
    back_healthy_after_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "before": self.before.to_json(),
            "during": self.during.to_json() if self.during else None,
            "after": self.after.to_json() if self.after else None,
            "replaced": self.replaced,
            "back_healthy_after_s": self.back_healthy_after_s,
        }


def fault_happened(scenario: Scenario, evidence: FaultEvidence) -> tuple[bool, str]:
    """Did the container go through the fault? (pure; decided from the snapshots)."""
    before, during, after = evidence.before, evidence.during, evidence.after
    if during is None or after is None:
        return False, "the fault's snapshots are missing"
    restarted = after.started_at != before.started_at or after.pid != before.pid
    if scenario in (Scenario.KILL, Scenario.STOP):
        stopped = not during.running
        detail = f"during: {during.status} (exit {during.exit_code}); restarted: {restarted}"
        return stopped and restarted, detail
    if scenario is Scenario.TRAEFIK_ROLLOUT:
        swapped = {s: ids for s, ids in evidence.replaced.items() if ids[0] != ids[1]}
        detail = f"replaced {sorted(swapped)} of {sorted(evidence.replaced)}"
        return len(swapped) >= 2 and len(swapped) == len(evidence.replaced), detail
    if scenario in (Scenario.CRASH, Scenario.TRAEFIK_KILL):
        by_engine = after.restart_count > before.restart_count
        detail = f"restart count {before.restart_count} -> {after.restart_count}, pid changed"
        return by_engine and restarted, detail if restarted else "pid and start time unchanged"
    if scenario is Scenario.PAUSE:
        detail = f"during: paused={during.paused}; after: paused={after.paused}"
        return during.paused and not after.paused and after.running, detail
    if scenario is Scenario.DISCONNECT:
        detail = f"networks before {before.ips}, during {during.ips}, after {after.ips}"
        cut = bool(before.ips) and not during.ips and during.running
        return cut and bool(after.ips) and not restarted, detail
    detail = (
        f"started_at {before.started_at} -> {after.started_at}, pid {before.pid} -> {after.pid}"
    )
    return restarted and after.running, detail


def _wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (DockerException, DockerApiError, httpx.HTTPError):
            pass  # the engine between two states of a restart
        time.sleep(interval_s)
    return False


def inject(
    scenario: Scenario,
    docker: DockerClient,
    container: Container,
    mark: Mark,
    options: FaultOptions,
    before: ContainerSnapshot | None = None,
) -> FaultEvidence:
    """Run one fault against ``container``; returns before/during snapshots (after: later).

    Pass ``before`` (taken just before the load starts) so the fault fires on schedule
    instead of after a ``docker inspect``."""
    evidence = FaultEvidence(before=before or snapshot(docker, container))
    cid = container.id
    if scenario is Scenario.KILL:
        docker.container.kill(cid, signal="KILL")
        mark("docker kill -s KILL")
        _wait_until(lambda: not snapshot(docker, cid).running, 10)
        evidence.during = snapshot(docker, cid)
        _start_again(docker, cid, mark, options)
    elif scenario in (Scenario.CRASH, Scenario.TRAEFIK_KILL):
        os.kill(evidence.before.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        mark(f"SIGKILL to host pid {evidence.before.pid}")
        _wait_until(
            lambda: snapshot(docker, cid).restart_count > evidence.before.restart_count,
            options.engine_restart_timeout_s,
        )
        evidence.during = snapshot(docker, cid)
        mark("restarted by the engine" if evidence.during.running else "not restarted in time")
        if scenario is Scenario.TRAEFIK_KILL and _wait_until(
            lambda: snapshot(docker, cid).health == "healthy", options.engine_restart_timeout_s
        ):
            evidence.back_healthy_after_s = round(time.monotonic() - killed_at, 3)
            mark("healthy again")
    elif scenario is Scenario.TRAEFIK_ROLLOUT:
        _traefik_rollout(docker, container, mark, options, evidence)
    elif scenario is Scenario.STOP:
        mark("docker stop (SIGTERM)")
        docker.container.stop(cid)
        mark("stopped")
        evidence.during = snapshot(docker, cid)
        _start_again(docker, cid, mark, options)
    elif scenario is Scenario.PAUSE:
        attempts = _pause(docker, cid)
        mark("docker pause" if attempts == 1 else f"docker pause (attempt {attempts})")
        try:
            evidence.during = snapshot(docker, cid)
            time.sleep(options.pause_s)
        finally:  # never leave a replica frozen
            docker.container.unpause(cid)
            mark("docker unpause")
    elif scenario is Scenario.DISCONNECT:
        attached = docker.container.inspect(cid).network_settings.networks or {}
        # The compose service alias ("web") is what Prometheus' DNS discovery resolves.
        aliases = {name: _service_alias(ep.aliases, cid) for name, ep in attached.items()}
        for network in aliases:
            docker.network.disconnect(network, cid, force=True)
        mark(f"docker network disconnect {' '.join(aliases)}")
        try:
            evidence.during = snapshot(docker, cid)
            time.sleep(options.disconnect_s)
        finally:  # never leave a replica cut off
            for network, alias in aliases.items():
                docker.network.connect(network, cid, alias=alias)
            mark("docker network connect")
    else:  # restart, db-restart, traefik-restart
        mark("docker restart")
        docker.container.restart(cid)
        evidence.during = snapshot(docker, cid)
        mark("restarted")
    return evidence


def _traefik_rollout(
    docker: DockerClient,
    container: Container,
    mark: Mark,
    options: FaultOptions,
    evidence: FaultEvidence,
) -> None:
    """`hactl rollout --service traefik` on the image the instances run (a restart of each,
    one at a time); the evidence is every instance's container before and after."""
    from hactl.ops.traefik_rollout import rollout_traefik  # the verb's own code
    from hactl.stack.traefik_instances import instance_containers

    # Read now: the object re-inspects on access, and the rollout removes the container.
    labels = dict(container.config.labels)
    project, first = labels["com.docker.compose.project"], labels["com.docker.compose.service"]
    before = {s: c.id for s, c in instance_containers(docker, project).items() if c is not None}
    mark("hactl rollout --service traefik")
    try:
        rollout_traefik(docker, project, None, options.traefik_rollout_timeout_s, mark)
    finally:
        after = instance_containers(docker, project)
        evidence.replaced = {s: [old, after[s].id if after[s] else ""] for s, old in before.items()}
        new_first = after.get(first)
        if new_first is not None:
            evidence.during = evidence.after = snapshot(docker, new_first.id)
    mark("rollout done")


def _service_alias(aliases: list[str] | None, cid: str) -> str | None:
    """The network alias that is not the container's own id (compose adds the service name)."""
    return next((a for a in aliases or [] if not cid.startswith(a)), None)


def _pause(docker: DockerClient, cid: str, attempts: int = 5) -> int:
    """``docker pause``, retried: the cgroup freezer can fail ("unable to freeze") while the
    container is forking (its health check runs every second). Returns the attempt number."""
    for attempt in range(1, attempts + 1):
        try:
            docker.container.pause(cid)
            return attempt
        except DockerException:
            if attempt == attempts:
                raise
            time.sleep(0.2)
    return attempts


def _start_again(docker: DockerClient, cid: str, mark: Mark, options: FaultOptions) -> None:
    time.sleep(options.restart_stopped_after_s)
    docker.container.start(cid)
    mark("docker start (by hactl)")
