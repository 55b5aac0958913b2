"""`hactl bench --quick` against a real HA stack: the result file's structure and consistency.

The tiny configuration sends a few hundred requests per section; numbers are not asserted
against targets (timings are benchmarks, not tests), only that they are there, positive and
consistent: per-replica counts add up to the total, shares to 1, percentiles are ordered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from hactl.bench.report import TARGETS
from hactl.bench.wrk import DEFAULT_WRK_IMAGE
from hactl.stack.envfile import read_env_file
from tests.support.stack import IMAGES_ENV, Stack

pytestmark = pytest.mark.e2e

HACTL = str(Path(sys.executable).parent / "hactl")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bench_result(
    ha_stack: Stack, docker_engine: DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, object]:
    wrk_image = read_env_file(IMAGES_ENV).get("WRK_IMAGE") or DEFAULT_WRK_IMAGE
    assert docker_engine.image.exists(wrk_image), (
        f"{wrk_image} is missing: run `bash scripts/airgap/build_images.sh wrk`"
    )
    out = tmp_path_factory.mktemp("bench")
    command = [
        HACTL,
        "--project",
        ha_stack.project,
        "--rollout-env-file",
        str(out / ".env.rollout"),
        "bench",
        "--quick",
        "--out",
        str(out / "results"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"hactl bench failed:\n{done.stdout}\n{done.stderr}"
    files = sorted((out / "results").glob("*.json"))
    assert len(files) == 1, f"expected one result file, got {files}"
    result = json.loads(files[0].read_text())
    result["_files"] = [str(p) for p in sorted((out / "results").iterdir())]
    return result


def test_machine_and_versions_are_recorded(bench_result: dict) -> None:
    machine = bench_result["machine"]
    assert machine["cores"] >= 1
    assert len(machine["load_average_start"]) == 3 and len(machine["load_average_end"]) == 3
    versions = bench_result["versions"]
    assert versions["traefik"].startswith("3.7")
    for key in ("engine", "compose", "backend", "wrk", "backend_image_id"):
        assert versions.get(key), f"version of {key} missing: {versions}"


def test_every_throughput_run_is_positive_and_adds_up(bench_result: dict) -> None:
    runs = bench_result["throughput"]["runs"]
    seen = {(r["target"], r["replicas"], r["kind"]) for r in runs}
    expected = {("direct", 1, k) for k in ("whoami", "chat_post")} | {
        (path, n, k)
        for path in ("traefik", "plain")
        for n in (1, 3, 5)
        for k in ("whoami", "chat_post")
    }
    assert seen == expected
    for r in runs:
        what = f"{r['target']} N={r['replicas']} {r['kind']}"
        assert r["requests"] > 0 and 0 < r["ok"] <= r["requests"], what
        assert r["rps"] > 0 and 0 < r["ok_rps"] <= r["rps"], what
        assert sum(r["replica_counts"].values()) == r["requests"], what
        assert sum(r["statuses"].values()) == r["requests"], what
        assert sum(r["replica_share"].values()) == pytest.approx(1.0, abs=0.01), what
        served_by = [k for k in r["replica_counts"] if k != "none"]
        assert 1 <= len(served_by) <= r["replicas"], what
        if r["target"] == "direct":
            assert len(served_by) == 1, what
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], what
        assert r["generator_cpu_percent"] >= 0, what
    summary = bench_result["throughput"]["summary"]
    for kind in ("whoami", "chat_post"):
        hop = summary[kind]["hop"]
        assert hop["ratio"] == pytest.approx(hop["traefik_rps"] / hop["direct_rps"], abs=0.001)
        assert set(summary[kind]["traefik"]) == {"1", "3", "5"}


def test_the_project_traefik_is_compared_with_a_plain_one_at_every_replica_count(
    bench_result: dict, ha_stack: Stack, docker_engine: DockerClient
) -> None:
    summary = bench_result["throughput"]["summary"]
    for kind in ("whoami", "chat_post"):
        vs_plain = summary[kind]["vs_plain"]
        assert set(vs_plain) == {"1", "3", "5"}, kind
        for n, row in vs_plain.items():
            assert row["plain_rps"] > 0 and row["traefik_rps"] > 0, (kind, n)
            assert row["ratio"] == pytest.approx(row["traefik_rps"] / row["plain_rps"], abs=0.001)
        for path in ("traefik", "plain"):
            drop = summary[kind]["scaling"][path]
            assert (drop["from_replicas"], drop["to_replicas"]) == (1, 5), (kind, path)
            assert drop["ratio"] == pytest.approx(drop["to_rps"] / drop["from_rps"], abs=0.001)
    # the plain Traefik is gone with the bench
    assert not docker_engine.container.list(
        all=True, filters=[("name", f"{ha_stack.project}-bench-plain")]
    )


def test_idle_cpu_is_read_at_every_replica_count(bench_result: dict) -> None:
    idle = bench_result["idle_cpu"]
    assert [w["replicas"] for w in idle["windows"]] == [1, 3, 5]
    for window in idle["windows"]:
        replicas = [n for n, s in window["services"].items() if s == "web"]
        assert len(replicas) == window["replicas"], window
        # the bench runs on the engine's host: every container's cgroup is readable
        assert all(window["container_percent"][r] is not None for r in replicas), window
    assert idle["summary"]["per_replica_percent"] > 0


def test_latency_memory_and_timings_are_there(bench_result: dict) -> None:
    for kind in ("whoami", "chat_post"):
        entry = bench_result["latency"][kind]
        summary = entry["summary"]
        assert summary["total"] > 0 and summary["succeeded"] > 0
        assert sum(summary["replica_share"].values()) == pytest.approx(1.0, abs=0.01)
        lat = summary["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        assert entry["generator_cpu_percent"] > 0
    memory = bench_result["memory"]
    assert len(memory["idle"]) == 3 and memory["load"], memory
    for reading in memory["idle"] + memory["load"]:
        assert reading["processes"] >= 3, reading  # gunicorn master + 2 workers
        assert 0 < reading["pss_mb"] <= reading["rss_mb"], reading
    timings = bench_result["timings"]
    steps = [(s["before"], s["after"]) for s in timings["scale"]]
    assert steps[:3] == [(3, 1), (1, 3), (3, 5)] and steps[-1][1] == 3
    assert all(s["seconds"] > 0 for s in timings["scale"])
    assert [r["replicas"] for r in timings["rollouts"]] == [3]
    assert timings["rollouts"][0]["seconds"] > 0
    assert len(timings["rollouts"][0]["batch_seconds"]) == 3
    assert timings["unready"] and timings["unready"][0]["leave_seconds"] > 0


def test_targets_and_plots(bench_result: dict) -> None:
    targets = {t["key"]: t for t in bench_result["targets"]}
    assert set(targets) == set(TARGETS)
    for target in targets.values():
        assert target["measured"] is not None, target
        assert target["met"] in (True, False)
    plots = [Path(p) for p in bench_result["_files"] if p.endswith(".png")]
    assert len(plots) == 2
    for plot in plots:
        assert plot.read_bytes()[:8] == PNG_SIGNATURE


def test_stack_is_left_with_three_replicas_in_rotation(ha_stack: Stack, bench_result: dict) -> None:
    ha_stack.wait_in_rotation(3)
