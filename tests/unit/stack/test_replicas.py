"""Joining Docker's container facts with Traefik's server states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hactl.ops.scaling import pick_victims
from hactl.stack.replicas import ContainerFacts, join_replicas
from hactl.stack.traefik_api import ServerState

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def facts(
    number: int,
    ip: str,
    health: str = "healthy",
    status: str = "running",
    version: str | None = "1.0.0",
    **extra: object,
) -> ContainerFacts:
    values: dict[str, object] = {
        "name": f"p-web-{number}",
        "id": f"id{number}",
        "hostname": f"host{number}",
        "number": number,
        "image": "compose-ha/web:v1",
        "status": status,
        "health": health,
        "ips": (ip,),
        "started_at": NOW - timedelta(seconds=90),
        "restarts": 0,
        "exit_code": 0,
        "label_version": version,
    }
    values.update(extra)
    return ContainerFacts(**values)  # type: ignore[arg-type]


def test_states_joined_by_ip_and_sorted_by_number() -> None:
    containers = [facts(3, "10.0.0.3"), facts(1, "10.0.0.1"), facts(2, "10.0.0.2")]
    traefik = {"10.0.0.1": ServerState.UP, "10.0.0.2": ServerState.DOWN}
    replicas = join_replicas(containers, traefik, now=NOW)
    assert [r.name for r in replicas] == ["p-web-1", "p-web-2", "p-web-3"]
    assert [r.traefik for r in replicas] == [ServerState.UP, ServerState.DOWN, ServerState.ABSENT]
    assert [r.in_rotation for r in replicas] == [True, False, False]


def test_in_rotation_needs_docker_healthy_too() -> None:
    traefik = {"10.0.0.1": ServerState.UP, "10.0.0.2": ServerState.UP}
    replicas = join_replicas(
        [facts(1, "10.0.0.1", health="starting"), facts(2, "10.0.0.2", status="paused")],
        traefik,
        now=NOW,
    )
    assert not any(r.in_rotation for r in replicas)


def test_container_on_two_networks_matches_any_ip() -> None:
    container = facts(1, "192.168.0.9", ips=("192.168.0.9", "10.0.0.1"))
    (replica,) = join_replicas([container], {"10.0.0.1": ServerState.UP}, now=NOW)
    assert replica.traefik is ServerState.UP
    assert replica.ip == "10.0.0.1"


def test_version_from_whoami_wins_over_label() -> None:
    containers = [facts(1, "10.0.0.1"), facts(2, "10.0.0.2", version=None)]
    replicas = join_replicas(containers, {}, versions={"p-web-1": "2.0.0"}, now=NOW)
    assert [r.version for r in replicas] == ["2.0.0", "?"]


def test_uptime_and_stopped_containers() -> None:
    replicas = join_replicas(
        [facts(1, "10.0.0.1"), facts(2, "", status="exited", started_at=None, ips=())], {}, now=NOW
    )
    assert replicas[0].uptime_seconds == 90
    assert replicas[1].uptime_seconds is None
    assert replicas[1].ip == ""
    assert replicas[1].as_dict()["traefik"] == "absent"


def test_scale_down_removes_out_of_rotation_first_then_highest_numbers() -> None:
    containers = [facts(n, f"10.0.0.{n}") for n in (1, 2, 3, 4, 5)]
    traefik = {f"10.0.0.{n}": ServerState.UP for n in (1, 3, 4, 5)}  # 2 is out of rotation
    replicas = join_replicas(containers, traefik, now=NOW)
    assert pick_victims(replicas, 3) == ["p-web-2", "p-web-5"]
    assert pick_victims(replicas, 5) == []
    assert pick_victims(replicas, 1) == ["p-web-2", "p-web-5", "p-web-4", "p-web-3"]
