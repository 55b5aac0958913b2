"""hactl bench's idle CPU reading and the plain Traefik's configuration (no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hactl.bench.idle import (
    cgroup_cpu_seconds,
    idle_summary,
    parse_cpu_stat,
    parse_proc_stat_cpu,
    shim_pids,
)
from hactl.bench.plain import dynamic_config

STAT = "42 (containerd-shim) S 1 42 42 0 -1 4194560 100 200 0 0 30 10 150 50 20 0 1 0 1 5 100"


def test_cgroup_v2_and_v1_counters_are_read_and_a_missing_one_is_none(tmp_path: Path) -> None:
    v2 = tmp_path / "docker" / "abc"
    v2.mkdir(parents=True)
    (v2 / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    assert cgroup_cpu_seconds("abc", tmp_path) == 2.5
    v1 = tmp_path / "cpuacct" / "docker" / "def"
    v1.mkdir(parents=True)
    (v1 / "cpuacct.usage").write_text("1500000000\n")
    assert cgroup_cpu_seconds("def", tmp_path) == 1.5
    assert cgroup_cpu_seconds("nothere", tmp_path) is None
    with pytest.raises(ValueError):
        parse_cpu_stat("user_usec 1\n")


def test_a_process_counts_with_its_reaped_children() -> None:
    # utime 30 + stime 10 + cutime 150 + cstime 50 ticks
    assert parse_proc_stat_cpu(STAT) == 2.4
    assert parse_proc_stat_cpu(STAT.replace("(containerd-shim)", "(a) b)")) == 2.4


def test_shims_are_found_by_the_container_id_on_their_command_line(tmp_path: Path) -> None:
    def process(pid: int, *args: str) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in args))

    process(10, "/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", "aaa")
    process(11, "/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", "zzz")
    process(12, "/usr/bin/python3", "-id", "bbb")
    (tmp_path / "self").mkdir()
    assert shim_pids(["aaa", "bbb"], tmp_path) == {"aaa": 10}


def test_idle_summary_adds_traefiks_share_per_replica() -> None:
    window = {
        "replicas": 2,
        "window_s": 10.0,
        "services": {"p-web-1": "web", "p-web-2": "web", "p-traefik-1": "traefik", "p-db": "db"},
        "container_percent": {"p-web-1": 1.0, "p-web-2": 2.0, "p-traefik-1": 1.0, "p-db": 5.0},
        "shim_percent": {"p-web-1": 0.5, "p-web-2": 0.7, "p-traefik-1": 0.1, "p-db": None},
        "load_average": [1.0, 1.0, 1.0],
    }
    one = {**window, "replicas": 1, "services": {"p-web-1": "web", "p-traefik-1": "traefik"}}
    summary = idle_summary([one, window])
    two = summary["by_replicas"]["2"]
    assert (two["replica_own_percent"], two["replica_shim_percent"]) == (1.5, 0.6)
    assert (two["traefik_percent"], two["traefik_share_percent"]) == (1.0, 0.5)
    assert two["per_replica_percent"] == 2.0
    assert two["per_replica_upper_bound_percent"] == 2.6
    assert summary["per_replica_percent"] == 2.0  # read at the largest count
    assert summary["by_replicas"]["1"]["per_replica_percent"] == 2.0  # 1.0 + 1.0 / 1


def test_the_load_balancers_idle_cost_adds_both_instances_and_their_namespace() -> None:
    """Both Traefik instances probe every replica; traefik-net steers: all are its cost."""
    window = {
        "replicas": 2,
        "window_s": 10.0,
        "services": {
            "p-web-1": "web",
            "p-web-2": "web",
            "p-traefik-1": "traefik",
            "p-traefik-b-1": "traefik-b",
            "p-traefik-net-1": "traefik-net",
            "p-db": "postgres",
        },
        "container_percent": {
            "p-web-1": 1.0,
            "p-web-2": 1.0,
            "p-traefik-1": 1.0,
            "p-traefik-b-1": 0.8,
            "p-traefik-net-1": 0.2,
            "p-db": 5.0,
        },
        "shim_percent": {},
    }
    two = idle_summary([window])["by_replicas"]["2"]
    assert (two["traefik_percent"], two["traefik_share_percent"]) == (2.0, 1.0)
    assert two["per_replica_percent"] == 2.0


def test_idle_summary_without_readable_counters_is_not_measured() -> None:
    window = {
        "replicas": 1,
        "window_s": 3.0,
        "services": {"p-web-1": "web"},
        "container_percent": {"p-web-1": None},
        "shim_percent": {"p-web-1": None},
    }
    assert idle_summary([window])["per_replica_percent"] is None
    assert idle_summary([])["per_replica_percent"] is None


def test_the_plain_traefik_routes_everything_round_robin_to_the_given_servers() -> None:
    config = yaml.safe_load(dynamic_config(["http://10.0.0.2:8000", "http://10.0.0.3:8000"]))
    router = config["http"]["routers"]["plain"]
    assert router == {"entryPoints": ["web"], "rule": "PathPrefix(`/`)", "service": "plain"}
    service = config["http"]["services"]["plain"]["loadBalancer"]
    # Traefik's defaults: no middleware, no sticky cookie, no health check
    assert service == {
        "servers": [{"url": "http://10.0.0.2:8000"}, {"url": "http://10.0.0.3:8000"}]
    }
    with pytest.raises(ValueError):
        dynamic_config([])
