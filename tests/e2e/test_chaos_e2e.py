"""Chaos under load, end to end: each fault against the real HA stack at 100 requests/s.

Asserts counts only (failed requests, lost and duplicated writes, replicas restarted), and that
the fault really happened, so a no-op cannot pass. Timings land in the JSON reports under
results/chaos/, never in asserts.
"""

from __future__ import annotations

import pytest

from hactl.chaos.faults import FaultOptions, Scenario
from hactl.chaos.runner import ChaosOptions, ChaosStack, run_chaos, summary_line
from hactl.stack.traefik_api import TraefikApi
from tests.support.stack import REPO, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RATE = 100.0
DURATION_S = 30.0
RESULTS = REPO / "results" / "chaos"
REPLICA_FAULTS = [Scenario.KILL, Scenario.CRASH, Scenario.STOP, Scenario.PAUSE, Scenario.RESTART]


def chaos_stack(stack: Stack) -> ChaosStack:
    user, password = stack.dashboard_auth
    return ChaosStack(
        docker=stack.docker,
        project=stack.project,
        base_url=stack.base_url,
        token=stack.api_token,
        traefik=TraefikApi(stack.api_url, username=user, password=password),
    )


def run(stack: Stack, scenario: Scenario) -> dict:
    stack.wait_in_rotation(3, timeout=90)
    options = ChaosOptions(
        scenario=scenario,
        rate=RATE,
        duration_s=DURATION_S,
        fault_at_s=5.0,
        faults=FaultOptions(pause_s=8.0, restart_stopped_after_s=5.0),
        results_dir=RESULTS,
    )
    report = run_chaos(chaos_stack(stack), options)
    print(summary_line(report), "->", report["files"]["json"])
    return report


def explain(report: dict) -> str:
    return (
        f"{report['verdict']['reasons']}; failures {report['requests']['failures_by_kind']}; "
        f"first failed: {report['failed_requests'][:3]}; see {report['files']['json']}"
    )


@pytest.mark.parametrize("scenario", REPLICA_FAULTS, ids=lambda s: s.value)
def test_replica_fault_loses_no_request_and_no_write(ha_stack: Stack, scenario: Scenario) -> None:
    report = run(ha_stack, scenario)
    assert report["fault"]["happened"], f"fault not proven: {report['fault']}"
    assert report["requests"]["total"] >= RATE * DURATION_S * 0.99
    assert report["requests"]["failed"] == 0, explain(report)
    writes = report["write_check"]
    assert writes["acknowledged"] > 0, writes
    assert writes["lost_count"] == 0, writes
    assert writes["duplicated_count"] == 0, writes
    assert writes["ok"], writes
    assert report["stack_settled"]["ok"], report["stack_settled"]
    assert report["passed"], explain(report)


def test_db_restart_loses_no_acknowledged_write_and_restarts_no_replica(ha_stack: Stack) -> None:
    report = run(ha_stack, Scenario.DB_RESTART)
    assert report["fault"]["happened"], f"postgres was not restarted: {report['fault']}"
    writes = report["write_check"]
    assert writes["acknowledged"] > 0, writes
    assert writes["lost_count"] == 0, writes
    assert writes["duplicated_count"] == 0, writes
    assert report["web_replicas_changed"] == [], report["web_replicas_changed"]
    outage = report["outage"]
    assert outage["recovered_after_last_fault_step_s"] is not None, outage
    assert outage["recovered_after_last_fault_step_s"] <= 30, outage
    # Never a hang: every failure is an HTTP answer (503), none a timeout or a broken connection.
    kinds = set(report["requests"]["failures_by_kind"])
    assert kinds <= {"HTTP 503"}, explain(report)
    assert report["stack_settled"]["ok"], report["stack_settled"]
