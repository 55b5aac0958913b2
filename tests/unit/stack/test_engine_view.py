"""The engine's own JSON read into what hactl's waits ask (hactl.stack.engine_view and the chaos
snapshot): entries shaped like Docker 20.10's `GET /containers/json` and `/containers/{id}/json`."""

from __future__ import annotations

from hactl.chaos.faults import snapshot_of
from hactl.selfheal.docker_api import health_of
from hactl.stack.engine_view import listed, view_of

PROJECT = "chatest-chaos-1"


def entry(name: str, service: str, state: str, status: str, ip: str = "", **labels: str) -> dict:
    return {
        "Id": f"{name}-id",
        "Names": [f"/{name}"],
        "State": state,
        "Status": status,
        "Labels": {
            "com.docker.compose.project": PROJECT,
            "com.docker.compose.service": service,
            **labels,
        },
        "NetworkSettings": {"Networks": {f"{PROJECT}_backend": {"IPAddress": ip}}},
    }


def test_health_comes_from_the_status_text() -> None:
    assert health_of("Up 3 minutes (healthy)") == "healthy"
    assert health_of("Up 40 seconds (unhealthy)") == "unhealthy"
    assert health_of("Up 1 second (health: starting)") == "starting"
    assert health_of("Up 2 hours") == "none"
    assert health_of("Exited (137) 5 seconds ago") == "none"


def test_a_listed_container_has_its_name_service_state_health_and_addresses() -> None:
    view = view_of(entry("web-2", "web", "running", "Up 9 seconds (healthy)", "172.20.0.5"))
    assert (view.name, view.service, view.state, view.health) == (
        "web-2",
        "web",
        "running",
        "healthy",
    )
    assert view.ips == frozenset({"172.20.0.5"}) and view.running


def test_listed_keeps_what_docker_ps_shows_of_one_service() -> None:
    views = [
        view_of(entry("web-1", "web", "running", "Up 1 minute (healthy)", "10.0.0.2")),
        view_of(entry("web-2", "web", "exited", "Exited (137) 2 seconds ago")),
        view_of(entry("web-3", "web", "paused", "Up 1 minute (Paused)", "10.0.0.4")),
        view_of(entry("traefik-1", "traefik", "restarting", "Restarting (1) 1 second ago")),
    ]
    assert [v.name for v in listed(views, "web")] == ["web-1", "web-3"]
    assert [v.name for v in listed(views, "traefik")] == ["traefik-1"]


def test_a_snapshot_reads_the_inspect_answer() -> None:
    inspect = {
        "Id": "abc123",
        "Name": "/chatest-chaos-1-traefik-1",
        "RestartCount": 2,
        "State": {
            "Status": "running",
            "Running": True,
            "Paused": False,
            "Pid": 4242,
            "ExitCode": 0,
            "StartedAt": "2026-12-08T00:30:01.123456789Z",
            "FinishedAt": "2026-12-08T00:29:58.5Z",
            "Health": {"Status": "starting", "FailingStreak": 0},
        },
        "Config": {"Hostname": "f00dcafe0001"},
        "NetworkSettings": {"Networks": {"a": {"IPAddress": "10.1.0.3"}, "b": {"IPAddress": ""}}},
    }
    snap = snapshot_of(inspect)
    assert (snap.name, snap.id, snap.status, snap.running, snap.pid) == (
        "chatest-chaos-1-traefik-1",
        "abc123",
        "running",
        True,
        4242,
    )
    assert (snap.restart_count, snap.health, snap.hostname, snap.ips) == (
        2,
        "starting",
        "f00dcafe0001",
        ("10.1.0.3",),
    )
    assert snap.started_at == "2026-12-08T00:30:01.123456789Z"
    no_check = snapshot_of({**inspect, "State": {"Status": "exited", "ExitCode": 137}})
    assert (no_check.health, no_check.running, no_check.exit_code) == ("none", False, 137)
