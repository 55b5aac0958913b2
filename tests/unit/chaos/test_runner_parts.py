"""Scenario selection, target choice and the results table of `hactl chaos` (no Docker)."""

import random
from types import SimpleNamespace

import pytest
from rich.console import Console

from hactl.chaos.faults import Scenario
from hactl.chaos.runner import pick_target, results_table, scenarios_from, summary_line


def test_scenarios_from_names_and_all() -> None:
    assert scenarios_from("crash") == [Scenario.CRASH]
    assert scenarios_from("all") == list(Scenario)
    with pytest.raises(ValueError, match="db-restart"):
        scenarios_from("explode")


def test_scenarios_aim_at_their_service() -> None:
    assert Scenario.DB_RESTART.target_service == "postgres"
    assert Scenario.TRAEFIK_RESTART.target_service == "traefik"
    assert all(s.hits_a_replica for s in Scenario if s.target_service == "web")


def test_pick_target_random_or_by_name() -> None:
    containers = [SimpleNamespace(name=f"p-web-{i}", id=f"{i}" * 64) for i in (1, 2, 3)]
    assert pick_target(containers, "p-web-2", random.Random(0)).name == "p-web-2"
    assert pick_target(containers, "3" * 12, random.Random(0)).name == "p-web-3"
    picked = {pick_target(containers, None, random.Random(seed)).name for seed in range(30)}
    assert picked == {"p-web-1", "p-web-2", "p-web-3"}
    with pytest.raises(RuntimeError):
        pick_target(containers, "nope", random.Random(0))
    with pytest.raises(RuntimeError):
        pick_target([], None, random.Random(0))


def _report(scenario: str, failed: int, project: str = "demo") -> dict:
    browser = {"total": 1000, "failed": failed // 2, "over_3s": 1}
    cookieless = {"total": 2000, "failed": failed - failed // 2, "over_3s": 0}
    return {
        "project": project,
        "scenario": scenario,
        "clients": {"browser": browser, "cookieless": cookieless},
        "passed": failed == 0,
        "requests": {"failed": failed, "total": 3000},
        "write_check": {"lost_count": 0, "duplicated_count": 0},
        "rotation": {"traefik_removed_after_s": 0.5, "traefik_back_after_s": 6.25},
        "latency_ms": {"inside": {"p99": 210.0}},
        "outage": {"failed": failed, "span_s": 1.5 if failed else 0.0},
        "files": {"json": f"results/chaos/x-{scenario}.json"},
    }


def test_results_table_and_summary_line() -> None:
    reports = [_report("kill", 0), _report("traefik-restart", 40), _report("kill", 4, "demo-peer")]
    console = Console(width=300, record=True)
    console.print(results_table(reports))
    text = console.export_text()
    assert "kill" in text and "PASS" in text and "FAIL" in text and "6.25 s" in text
    # The peer's row stands beside the project's, with the browser's own count.
    assert "demo-peer" in text and "2/1000" in text
    line = summary_line(reports[0])
    assert "kill" in line and "failed 0/3000" in line and "removed 0.5 s" in line
