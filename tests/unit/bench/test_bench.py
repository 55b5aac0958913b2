"""hactl bench's pure parts: wrk output and Lua script, summaries, targets, memory, config."""

from __future__ import annotations

import json

import pytest
from python_on_whales.exceptions import DockerException

from hactl.bench.memory import summarize_processes
from hactl.bench.report import (
    TARGETS,
    evaluate_targets,
    markdown_ratios,
    markdown_targets,
    memory_summary,
    plain_reference_count,
    throughput_summary,
)
from hactl.bench.runner import BenchConfig, restore_replicas
from hactl.bench.timings import rollout_tag
from hactl.bench.wrk import (
    BenchKind,
    WrkSpec,
    lua_script,
    parse_proc_stat_children_cpu,
    parse_wrk_output,
)
from hactl.errors import HactlError, InvalidInputError
from hactl.waiting import WaitTimeoutError

STAT = "42 (sh) S 0 42 42 0 -1 4194560 100 200 0 0 3 1 150 50 20 0 1 0 1234 5000 100"


def wrk_output(
    requests: int = 300,
    replicas: dict[str, int] | None = None,
    statuses: dict[str, int] | None = None,
) -> str:
    data = {
        "duration_us": 2_000_000,
        "requests": requests,
        "bytes": 1000,
        "errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
        "latency_us": {"p50": 1500, "p90": 3000, "p99": 9000, "max": 12000, "mean": 1800.5},
        "replicas": replicas or {"a": 100, "b": 100, "c": 100},
        "statuses": statuses or {"200": requests},
    }
    return (
        "Running 2s test @ http://traefik:80\n  2 threads and 8 connections\n"
        f"BENCH_RESULT {json.dumps(data)}\nBENCH_STAT {STAT}\n"
    )


SPEC = WrkSpec("traefik", "http://traefik:80", 3, BenchKind.WHOAMI, 8, 2.0)


def test_children_cpu_comes_from_cutime_and_cstime() -> None:
    assert parse_proc_stat_children_cpu(STAT) == 2.0
    # a command name with spaces and parentheses does not shift the fields
    assert parse_proc_stat_children_cpu(STAT.replace("(sh)", "(s h) x)")) == 2.0


def test_wrk_output_becomes_rates_latencies_and_shares() -> None:
    result = parse_wrk_output(wrk_output(), SPEC)
    assert (result.requests, result.ok, result.rps, result.ok_rps) == (300, 300, 150.0, 150.0)
    assert result.latency_ms["p50"] == 1.5 and result.latency_ms["p99"] == 9.0
    assert sum(result.replica_counts.values()) == result.requests
    assert sum(result.replica_share.values()) == pytest.approx(1.0, abs=1e-3)
    assert result.generator_cpu_s == 2.0 and result.generator_cpu_percent == 100.0


def test_only_2xx_count_as_throughput() -> None:
    out = wrk_output(300, {"a": 200, "none": 100}, {"201": 200, "429": 100})
    result = parse_wrk_output(out, SPEC)
    assert (result.ok, result.ok_rps, result.rps) == (200, 100.0, 150.0)


def test_missing_result_line_is_an_error() -> None:
    with pytest.raises(HactlError, match="no result"):
        parse_wrk_output("unable to connect to traefik:80\n", SPEC)


def test_post_script_varies_the_idempotency_key_and_get_script_is_static() -> None:
    post, get = lua_script(BenchKind.CHAT_POST), lua_script(BenchKind.WHOAMI)
    assert "function request()" in post and "Idempotency-Key" in post and "counter + 1" in post
    assert "function request()" not in get
    for script in (post, get):
        assert "BENCH_RESULT" in script and "X-Replica" in script and "os.getenv" in script


def test_wrk_never_gets_more_threads_than_connections() -> None:
    args = WrkSpec("direct", "http://10.0.0.2:8000", 1, BenchKind.WHOAMI, 1, 1.0).wrk_args()
    assert args[:4] == ["-t", "1", "-c", "1"] and args[-1] == "http://10.0.0.2:8000"


def run(
    target: str,
    n: int,
    kind: str,
    c: int,
    ok_rps: float,
    p99: float,
    ok: int = 100,
    requests: int = 100,
) -> dict[str, object]:
    return {
        "target": target,
        "replicas": n,
        "kind": kind,
        "connections": c,
        "ok_rps": ok_rps,
        "ok": ok,
        "requests": requests,
        "latency_ms": {"p99": p99},
        "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0},
    }


def test_throughput_summary_saturation_budget_and_hop() -> None:
    runs = [
        run("direct", 1, "whoami", 4, 500, 10),
        run("traefik", 1, "whoami", 4, 400, 12),
        run("direct", 1, "whoami", 64, 1000, 80),
        run("traefik", 1, "whoami", 64, 800, 90),
        run("traefik", 3, "whoami", 4, 450, 20),
        run("traefik", 3, "whoami", 64, 900, 60),
        # fast but failing requests never count for the budget
        run("traefik", 3, "whoami", 16, 2000, 5, ok=50, requests=100),
    ]
    summary = throughput_summary(runs, p99_budget_ms=50)["whoami"]
    assert summary["direct"]["1"]["saturation_rps"] == 1000
    assert summary["direct"]["1"]["p99_budget_rps"] == 500
    assert summary["traefik"]["3"]["saturation_rps"] == 900
    assert summary["traefik"]["3"]["p99_budget_rps"] == 450
    # the hop is measured at the highest concurrency where both runs were clean
    assert summary["hop"] == {
        "replicas": 1,
        "connections": 64,
        "both_clean": True,
        "traefik_rps": 800,
        "direct_rps": 1000,
        "ratio": 0.8,
        "loss_percent": 20.0,
        "ratio_by_connections": {"4": 0.8, "64": 0.8},
    }


def test_hop_skips_runs_where_traefik_had_no_server() -> None:
    runs = [
        run("direct", 1, "whoami", 8, 500, 10),
        run("traefik", 1, "whoami", 8, 450, 12),
        run("direct", 1, "whoami", 32, 1000, 80),
        run("traefik", 1, "whoami", 32, 200, 900, ok=400, requests=2000),  # 404s: no server
    ]
    hop = throughput_summary(runs, p99_budget_ms=50)["whoami"]["hop"]
    assert (hop["connections"], hop["ratio"], hop["loss_percent"]) == (8, 0.9, 10.0)
    assert hop["ratio_by_connections"]["32"] == 0.2


def test_project_traefik_against_a_plain_one_and_against_more_replicas() -> None:
    runs = [
        run("plain", 1, "whoami", 32, 1000, 40),
        run("traefik", 1, "whoami", 32, 950, 45),
        run("plain", 3, "whoami", 8, 900, 10),
        run("traefik", 3, "whoami", 8, 850, 12),
        run("plain", 3, "whoami", 32, 1000, 40),
        run("traefik", 3, "whoami", 32, 600, 60),
        run("plain", 5, "whoami", 32, 980, 40),
        run("traefik", 5, "whoami", 32, 855, 45),
    ]
    summary = throughput_summary(runs, p99_budget_ms=50)["whoami"]
    three = summary["vs_plain"]["3"]
    assert (three["connections"], three["traefik_rps"], three["plain_rps"]) == (32, 600, 1000)
    assert (three["ratio"], three["loss_percent"]) == (0.6, 40.0)
    assert three["ratio_by_connections"] == {"8": 0.944, "32": 0.6}
    assert set(summary["vs_plain"]) == {"1", "3", "5"}
    assert "hop" not in summary  # no direct runs: no hop
    drop = summary["scaling"]["traefik"]
    assert (drop["from_replicas"], drop["to_replicas"]) == (1, 5)
    assert (drop["from_rps"], drop["to_rps"], drop["ratio"], drop["drop_percent"]) == (
        950,
        855,
        0.9,
        10.0,
    )
    assert summary["scaling"]["plain"]["ratio"] == 0.98
    assert plain_reference_count(summary["vs_plain"]) == "3"
    assert plain_reference_count({"1": {}, "5": {}}) == "1"
    table = markdown_ratios({"whoami": summary})
    assert "| whoami | project Traefik / plain Traefik | 3 | 32 | 600 | 1000 | 0.6 |" in table
    assert (
        "| whoami | project Traefik, 5 / 1 replicas | 5 | saturation | 855 | 950 | 0.9 |" in table
    )


def test_targets_are_measured_against_their_limits() -> None:
    result = {
        "throughput": {
            "summary": {
                "whoami": {
                    "hop": {"loss_percent": 20.0},
                    "vs_plain": {"1": {"loss_percent": 1.0}, "3": {"loss_percent": 12.0}},
                    "scaling": {"traefik": {"drop_percent": 9.0}},
                },
                "chat_post": {
                    "hop": {"loss_percent": 5.0},
                    "vs_plain": {"3": {"loss_percent": 4.0}},
                    "scaling": {"traefik": {"drop_percent": 30.0}},
                },
            }
        },
        "latency": {"chat_post": {"summary": {"latency_ms": {"p50": 8.0}}}},
        "memory": {"load_summary": {"max_pss_mb": 95.0}},
        "idle_cpu": {"summary": {"per_replica_percent": 1.5}},
        "timings": {
            "scale": [
                {"before": 1, "after": 3, "seconds": 20.0},
                {"before": 3, "after": 5, "seconds": 9.0},
            ],
            "rollouts": [{"replicas": 3, "seconds": 30.0}, {"replicas": 3, "seconds": 50.0}],
            "unready": [{"leave_seconds": 1.0}, {"leave_seconds": 2.0}, {"leave_seconds": 4.0}],
        },
    }
    verdicts = {t.key: (t.measured, t.met) for t in evaluate_targets(result)}
    assert set(verdicts) == set(TARGETS)
    assert verdicts["hop_loss_whoami"] == (20.0, False)
    assert verdicts["hop_loss_chat_post"] == (5.0, True)
    assert verdicts["plain_loss_whoami"] == (12.0, False)  # read at 3 replicas
    assert verdicts["plain_loss_chat_post"] == (4.0, True)
    assert verdicts["replica_drop_whoami"] == (9.0, True)
    assert verdicts["replica_drop_chat_post"] == (30.0, False)
    assert verdicts["idle_cpu_per_replica"] == (1.5, True)
    assert verdicts["chat_post_p50"] == (8.0, True)
    assert verdicts["scale_3_to_5"] == (9.0, True)
    assert verdicts["rollout_3"] == (50.0, False)  # the slowest rollout counts
    assert verdicts["unready_leaves"] == (2.0, True)  # the median
    table = markdown_targets(evaluate_targets(result))
    assert "| rolling update of 3 replicas | 50 s | ≤ 45 s | **no** |" in table


def test_missing_sections_are_not_measured_rather_than_errors() -> None:
    targets = evaluate_targets({})
    assert all(t.measured is None and t.met is None for t in targets)
    assert "not measured" in markdown_targets(targets)


def test_memory_counts_gunicorn_processes_and_prefers_pss() -> None:
    processes = [
        {"pid": 1, "cmd": "gunicorn: master [compose-ha-web]", "rss": 60_000, "pss": 30_000},
        {"pid": 7, "cmd": "gunicorn: worker [compose-ha-web]", "rss": 70_000, "pss": 40_000},
        {"pid": 8, "cmd": "gunicorn: worker [compose-ha-web]", "rss": 70_000, "pss": 40_000},
        {"pid": 99, "cmd": "python3 -I -S /app/healthcheck.py", "rss": 9_000, "pss": 5_000},
    ]
    memory = summarize_processes("web-1", processes, cgroup_bytes=120 * 1024 * 1024)
    assert (memory.processes, memory.pss_mb, memory.cgroup_mb) == (3, 107.4, 120.0)
    assert memory.rss_mb == 195.3
    summary = memory_summary([memory.as_dict(), {**memory.as_dict(), "pss_mb": 90.0}])
    assert summary["max_pss_mb"] == 107.4 and summary["mean_pss_mb"] == 98.7


def test_rollout_tag_alternates_so_tags_do_not_pile_up() -> None:
    assert rollout_tag("compose-ha/web:latest") == "compose-ha/web:bench-rollout-a"
    assert rollout_tag("compose-ha/web:bench-rollout-a") == "compose-ha/web:bench-rollout-b"
    assert rollout_tag("compose-ha/web:bench-rollout-b") == "compose-ha/web:bench-rollout-a"
    assert rollout_tag("localhost:5000/web") == "localhost:5000/web:bench-rollout-a"


def test_config_quick_is_tiny_and_bad_values_are_refused() -> None:
    quick = BenchConfig.quick()
    assert quick.duration_s <= 2 and max(quick.connections) <= 8 and quick.rollouts == 1
    quick.validate()
    for bad in (
        {"replicas": ()},
        {"replicas": (0,)},
        {"connections": (0,)},
        {"duration_s": 0},
        {"latency_rate": -1},
    ):
        with pytest.raises(InvalidInputError):
            BenchConfig(**{**BenchConfig().as_dict(), **bad}).validate()


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (WaitTimeoutError("web-4 out of rotation", 120, "still UP in Traefik"), "still UP"),
        (HactlError("scaled to 3 but not all replicas are in rotation"), "not all replicas"),
        (DockerException(["docker", "stop", "web-4"], 1, stderr=b"no such container"), "no such"),
    ],
    ids=["WaitTimeoutError", "HactlError", "DockerException"],
)
def test_a_failed_restore_is_reported_not_raised(failure: Exception, said: str) -> None:
    """The bench's `finally` restores the replica count; a drain timeout (WaitFailedError) there
    used to escape the suppress and hide the bench's own outcome behind a traceback."""
    calls: list[int] = []

    def scaler(stack: object, count: int, timeout: float) -> None:
        calls.append(count)
        raise failure

    message = restore_replicas(None, 3, 60, scaler=scaler)  # type: ignore[arg-type]
    assert calls == [3]
    assert message is not None and said in message


def test_a_restore_that_works_reports_nothing() -> None:
    assert restore_replicas(None, 3, 60, scaler=lambda *_: None) is None  # type: ignore[arg-type]
