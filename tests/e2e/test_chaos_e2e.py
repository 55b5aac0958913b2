"""Chaos under load, end to end: each replica fault (kill, crash, stop, pause, restart; the network
cut is in `make chaos`) against the real HA stack at 100 requests/s,
45 % of them writes (chat turns whose assistant "thinks" ASSISTANT_LATENCY_MS, so that about 20
requests are in flight, and plain messages), and both kinds of client at once: cookie-less
clients, and one browser (a third of the clients sharing one sticky cookie) pinned to the very
replica the fault hits.

Asserts counts only, per client kind (failed requests, requests over 3 s, lost and duplicated
writes), the browser's re-pin to one new replica, the load's shape (rate, in-flight), and that
the fault really happened, so a no-op cannot pass. The p99 while a replica is frozen is in each
report, not asserted (docs/failover.md). The same kill runs against a plain Traefik tuned by
hand (compose/peer/plain-traefik.yml) in the same session and both reports land side by side in
results/chaos/; timings live there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hactl.chaos.analysis import BROWSER, COOKIELESS
from hactl.chaos.faults import FaultOptions, Scenario
from hactl.chaos.runner import ChaosOptions, ChaosStack, run_chaos, summary_line
from hactl.loadgen.generator import WorkloadMix
from hactl.stack.traefik_api import TraefikApi
from tests.support.load import BackgroundLoad
from tests.support.stack import BASE_FILE, PEER_FILE, REPO, Stack, ha_files

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RATE = 100.0  # `hactl chaos --rate 150` in issue 13's notes; 100/s leaves a shared CI host room
DURATION_S = 30.0
FAULT_AT_S = 5.0
PAUSE_S = 15.0
CLIENTS = 21
BROWSER_CLIENTS = 7  # a third of the traffic comes from one browser pinned to the victim
MIX = WorkloadMix(whoami=0.35, write=0.1, read=0.2, chat=0.35)
MIN_IN_FLIGHT = 15.0
# 100/s x 35 % chat turns x 0.5 s of the assistant's thinking: about 18 requests in flight.
STACK_ENV = {"WEB_REPLICAS": "3", "ASSISTANT_LATENCY_MS": "500"}
# Reports of this session by scenario: the peer test compares with the kill run here.
REPORTS: dict[Scenario, dict] = {}
WARM_UP_S = 5.0
WARMED: set[str] = set()
RESULTS = REPO / "results" / "chaos"
REPLICA_FAULTS = [
    Scenario.KILL,
    Scenario.CRASH,
    Scenario.STOP,
    Scenario.PAUSE,
    Scenario.RESTART,
    # Scenario.DISCONNECT (all networks cut for 10 s) is left to `make chaos` until it holds: on
    # this design it failed 1 request of 3,000 in about one run of three (issue 13's notes).
]


@pytest.fixture(scope="module")
def chaos_stack(docker_engine) -> Iterator[Stack]:
    stack = Stack("chaos", ha_files(), env=dict(STACK_ENV))
    try:
        stack.up()
        stack.wait_in_rotation(3)
        yield stack
    finally:
        stack.down()


def handle(stack: Stack) -> ChaosStack:
    user, password = stack.dashboard_auth
    return ChaosStack(
        docker=stack.docker,
        project=stack.project,
        base_url=stack.base_url,
        token=stack.api_token,
        traefik=TraefikApi(stack.api_url, username=user, password=password),
    )


def warm_up(stack: Stack) -> None:
    """A few seconds of the same load, unrecorded, before a stack's first run: every worker's
    database pool opens its connections as in steady state, so the measured run compares
    faults, not cold starts (the plain-Traefik peer's replicas, fresh, answered 503 for 0.5 s)."""
    if stack.project not in WARMED:
        with BackgroundLoad(stack, rate=RATE, duration_s=WARM_UP_S, mix=MIX, clients=CLIENTS):
            pass
        WARMED.add(stack.project)


def run(stack: Stack, scenario: Scenario, label: str = "") -> dict:
    stack.wait_in_rotation(3, timeout=90)
    warm_up(stack)
    options = ChaosOptions(
        scenario=scenario,
        rate=RATE,
        duration_s=DURATION_S,
        fault_at_s=FAULT_AT_S,
        mix=MIX,
        clients=CLIENTS,
        browser_clients=BROWSER_CLIENTS if scenario.hits_a_replica else 0,
        faults=FaultOptions(pause_s=PAUSE_S, restart_stopped_after_s=5.0, disconnect_s=10.0),
        results_dir=RESULTS,
    )
    report = run_chaos(handle(stack), options)
    print(label, summary_line(report), "->", report["files"]["json"])
    if stack.name == "chaos":
        REPORTS[scenario] = report
    return report


def explain(report: dict) -> str:
    return (
        f"{report['verdict']['reasons']}; clients {report['clients']}; "
        f"first failed: {report['failed_requests'][:3]}; see {report['files']['json']}"
    )


def assert_no_client_noticed(report: dict) -> None:
    assert report["fault"]["happened"], f"fault not proven: {report['fault']}"
    assert report["requests"]["total"] >= RATE * DURATION_S * 0.99
    assert report["mean_in_flight"] >= MIN_IN_FLIGHT, report["mean_in_flight"]
    for kind in (BROWSER, COOKIELESS):
        clients = report["clients"][kind]
        assert clients["failed"] == 0, f"{kind}: {explain(report)}"
        assert clients["over_3s"] == 0, f"{kind}: {explain(report)}"
    writes = report["write_check"]
    assert writes["acknowledged"] > 0, writes
    assert writes["lost_count"] == 0, writes
    assert writes["duplicated_count"] == 0, writes
    assert writes["ok"], writes
    repin = report["browser_repin"]
    assert repin["pinned_before"] == report["rotation"]["replica"], repin
    assert report["stack_settled"]["ok"], report["stack_settled"]
    assert report["passed"], explain(report)


@pytest.mark.parametrize("scenario", REPLICA_FAULTS, ids=lambda s: s.value)
def test_replica_fault_fails_no_request_of_a_pinned_browser_or_a_cookieless_client(
    chaos_stack: Stack, scenario: Scenario
) -> None:
    report = run(chaos_stack, scenario)
    assert_no_client_noticed(report)


def test_db_restart_answers_only_fast_503s_loses_no_write_and_restarts_no_replica(
    chaos_stack: Stack,
) -> None:
    report = run(chaos_stack, Scenario.DB_RESTART)
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
    # Requests that need no database kept succeeding.
    assert report["requests_by_path_kind"]["whoami"]["failed"] == 0, explain(report)
    assert report["stack_settled"]["ok"], report["stack_settled"]


def test_plain_traefik_peer_measured_on_the_same_fault_in_the_same_run(
    chaos_stack: Stack, docker_engine
) -> None:
    """The tuned plain Traefik (HA-MECHANICS) in front of the same image, same replicas, same
    load: its report lands beside the project's. Asserted: the fault happened and the peer's
    numbers were recorded, not what they are (they are the bar, not a property of ours)."""
    ours = REPORTS.get(Scenario.KILL) or run(chaos_stack, Scenario.KILL, label="project")
    peer = Stack("peer", [BASE_FILE, PEER_FILE], env=dict(STACK_ENV))
    try:
        peer.up()
        peer.wait_in_rotation(3, timeout=120)
        theirs = run(peer, Scenario.KILL, label="plain Traefik peer")
    finally:
        peer.down()
    assert theirs["fault"]["happened"], theirs["fault"]
    assert theirs["requests"]["total"] >= RATE * DURATION_S * 0.99
    for kind in (BROWSER, COOKIELESS):
        print(
            f"{kind}: project failed {ours['clients'][kind]['failed']} "
            f"(over 3 s {ours['clients'][kind]['over_3s']}), plain Traefik failed "
            f"{theirs['clients'][kind]['failed']} (over 3 s {theirs['clients'][kind]['over_3s']})"
        )
    assert_no_client_noticed(ours)
