"""Chaos under load, end to end: each replica fault (kill, crash, stop, pause, restart; the network
cut is in `make chaos`) against the real HA stack at 150 requests/s,
45 % of them writes (chat turns whose assistant "thinks" ASSISTANT_LATENCY_MS, so that about 26
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

import httpx
import pytest

from hactl.chaos.analysis import BROWSER, COOKIELESS
from hactl.chaos.faults import FaultOptions, Scenario
from hactl.chaos.runner import (
    ChaosOptions,
    ChaosStack,
    run_chaos,
    serving_instance_container,
    summary_line,
)
from hactl.errors import RolledBackError
from hactl.loadgen.generator import WorkloadMix
from hactl.ops.traefik_rollout import rollout_traefik, routing_problems
from hactl.stack.project import TRAEFIK_SERVICES
from hactl.stack.traefik_api import TraefikApi
from hactl.stack.traefik_instances import (
    instance_containers,
    read_instance_metrics,
    read_instance_view,
    shared_entrypoint_requests,
)
from tests.support.load import BackgroundLoad, failures
from tests.support.stack import BASE_FILE, PEER_FILE, REPO, Stack, ha_files, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RATE = 150.0  # issues 13 and 16: every fault at 150 requests/s
DURATION_S = 30.0
FAULT_AT_S = 5.0
PAUSE_S = 15.0
CLIENTS = 21
BROWSER_CLIENTS = 7  # a third of the traffic comes from one browser pinned to the victim
MIX = WorkloadMix(whoami=0.35, write=0.1, read=0.2, chat=0.35)
MIN_IN_FLIGHT = 15.0
# 150/s x 35 % chat turns x 0.5 s of the assistant's thinking: about 26 requests in flight.
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
    # Scenario.DISCONNECT (all networks cut for 10 s) is left to `make chaos`: it failed nothing
    # in 11 runs here after three fixes (docs/failover.md), but in a CI run with it the Traefik
    # rollout two scenarios later collapsed (database paths 503/504 for 12 s; an earlier run saw
    # the same after a cut): what a cut leaves behind is not understood yet (issue 13's notes).
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
        browser_clients=BROWSER_CLIENTS if scenario.hits_a_replica or scenario.hits_traefik else 0,
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


def assert_load_and_writes(report: dict) -> None:
    """The fault happened under the load asked for, and every acknowledged write is stored once."""
    assert report["fault"]["happened"], f"fault not proven: {report['fault']}"
    assert report["requests"]["total"] >= RATE * DURATION_S * 0.99
    assert report["mean_in_flight"] >= MIN_IN_FLIGHT, report["mean_in_flight"]
    writes = report["write_check"]
    assert writes["acknowledged"] > 0, writes
    assert writes["lost_count"] == 0, writes
    assert writes["duplicated_count"] == 0, writes
    assert writes["ok"], writes
    assert report["stack_settled"]["ok"], report["stack_settled"]


def assert_no_client_noticed(report: dict) -> None:
    assert_load_and_writes(report)
    for kind in (BROWSER, COOKIELESS):
        clients = report["clients"][kind]
        assert clients["failed"] == 0, f"{kind}: {explain(report)}"
        assert clients["over_3s"] == 0, f"{kind}: {explain(report)}"
    if report["browser_repin"] is not None:  # a replica fault: the browser's own replica
        repin = report["browser_repin"]
        assert repin["pinned_before"] == report["rotation"]["replica"], repin
    else:  # a Traefik fault: every instance honoured the browser's cookie
        assert report["browser_cookie"]["kept"], report["browser_cookie"]
    assert report["passed"], explain(report)


@pytest.mark.parametrize("scenario", REPLICA_FAULTS, ids=lambda s: s.value)
def test_replica_fault_fails_no_request_of_a_pinned_browser_or_a_cookieless_client(
    chaos_stack: Stack, scenario: Scenario
) -> None:
    report = run(chaos_stack, scenario)
    assert_no_client_noticed(report)


# --- the load balancer: two Traefik instances sharing the published ports (issue 16) -------------
# The same RATE, mix and clients as the replica faults, as issue 16 asks.


@pytest.mark.parametrize(
    "scenario", [Scenario.TRAEFIK_RESTART, Scenario.TRAEFIK_ROLLOUT], ids=lambda s: s.value
)
def test_traefik_restart_and_rollout_one_instance_at_a_time_fail_no_request(
    chaos_stack: Stack, scenario: Scenario
) -> None:
    """`docker restart` of one instance (SIGTERM: it closes its listeners, finishes in-flight
    requests) and `hactl rollout --service traefik` (both, one after the other, each checked
    through its own API first): no client notices, and the browser's cookie keeps its replica
    whichever instance answers."""
    report = run(chaos_stack, scenario)
    assert_no_client_noticed(report)


def test_traefik_kill_fails_only_requests_in_flight_and_the_instance_is_back_within_10_s(
    chaos_stack: Stack,
) -> None:
    """SIGKILL of one instance's process: only requests it was serving may fail (the count and
    its share of one second's traffic are in the report); nothing sent afterwards fails (no
    connection refused: the kernel sends new ones to the other listener); the engine restarts
    it and it is healthy within 10 s; the browser keeps its replica."""
    report = run(chaos_stack, Scenario.TRAEFIK_KILL)
    assert_load_and_writes(report)
    kill = report["traefik_kill"]
    print("traefik-kill:", kill, "back after", report["fault"]["evidence"]["back_healthy_after_s"])
    assert kill["failed_sent_after_kill"] == 0, explain(report)
    exposed = kill["in_flight_at_kill"] + kill["sent_before_the_kill_was_noticed"]
    assert kill["failed"] <= exposed, explain(report)
    assert "ConnectError" not in kill["failures_by_kind"], explain(report)
    assert report["fault"]["evidence"]["back_healthy_after_s"] <= 10.0, report["fault"]
    assert report["browser_cookie"]["kept"], report["browser_cookie"]
    # Only the failed in-flight requests may be over 3 s (a failure counts as over the bound).
    assert kill["answered_over_bound"] == 0, explain(report)
    assert report["passed"], explain(report)


def test_traefik_rollout_of_a_broken_image_stops_at_the_first_instance_and_rolls_it_back(
    chaos_stack: Stack,
) -> None:
    """An image that cannot run Traefik (the web image: no `traefik` binary): the first instance
    never gets healthy, is brought back on the image it ran, the second is never touched, and
    clients at 150 requests/s see nothing of it."""
    docker = chaos_stack.docker
    before = instance_containers(docker, chaos_stack.project)
    good_image = before["traefik"].config.image
    broken = chaos_stack.containers("web")[0].config.image
    with BackgroundLoad(chaos_stack, rate=RATE, duration_s=90, mix=MIX, clients=CLIENTS) as load:
        load.wait_until(3.0)
        with pytest.raises(RolledBackError) as failure:
            rollout_traefik(docker, chaos_stack.project, broken, timeout=20)
        load.finish(after_s=3.0)
    result = load.result()
    after = instance_containers(docker, chaos_stack.project)
    print(f"rolled back: {failure.value.message}; {result.summary().failed} failed")
    assert after["traefik-b"].id == before["traefik-b"].id, "the second instance was touched"
    assert after["traefik"].id != before["traefik"].id
    assert after["traefik"].config.image == good_image
    assert routing_problems(docker, chaos_stack.project, "traefik") == []
    assert failures(result) == []
    assert load.write_check().ok


def test_a_restarted_instance_takes_no_connection_while_the_other_serves(
    chaos_stack: Stack,
) -> None:
    """The window traefik-kill and a rollout open, held open on purpose: with the socket proxy
    paused, the serving instance is restarted and comes back without Docker routes (it would
    answer 404). traefik-net steers every new connection to the older listener, so all 200
    requests on new connections are answered 200 by the other instance, none reaches the
    restarted one, and a browser's cookie keeps its replica."""
    docker, project = chaos_stack.docker, chaos_stack.project
    chaos_stack.wait_in_rotation(3, timeout=90)
    url = chaos_stack.base_url + "/api/v1/whoami"
    first = httpx.get(url, timeout=5)
    cookie, pinned = first.cookies["ha_sticky"], first.json()["replica"]
    serving = serving_instance_container(handle(chaos_stack))
    service = next(s for s, c in instance_containers(docker, project).items() if c == serving)
    other = next(s for s in TRAEFIK_SERVICES if s != service)
    proxy = chaos_stack.containers("socket-proxy")[0]
    docker.pause(proxy)
    try:
        docker.restart(serving)

        def restarted_routers() -> set[str] | None:
            fresh = instance_containers(docker, project)[service]
            if fresh is None:
                return None
            return {r["name"] for r in read_instance_view(docker, project, fresh).routers}

        routers = wait_for(restarted_routers, 30, f"{service}'s own API after its restart")
        assert "web@docker" not in routers, f"{service} got its Docker routes: {routers}"
        before = read_instance_metrics(docker, project)
        statuses: dict[str, int] = {}
        replicas: set[str] = set()
        for i in range(200):  # a new connection each, as new clients
            browser = i % 2 == 0
            r = httpx.get(url, timeout=5, cookies={"ha_sticky": cookie} if browser else None)
            statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
            if browser and r.status_code == 200:
                replicas.add(r.json()["replica"])
        after = read_instance_metrics(docker, project)
        still = restarted_routers()
    finally:
        docker.unpause(proxy)
    assert still is not None and "web@docker" not in still, "the window closed during the test"
    assert statuses == {"200": 200}, statuses
    assert replicas == {pinned}, (pinned, replicas)
    taken = {
        s: shared_entrypoint_requests(after[s]) - shared_entrypoint_requests(before[s])
        for s in (service, other)
    }
    assert taken[service] == 0 and taken[other] >= 200, taken
    wait_for(
        lambda: not any(routing_problems(docker, project, s) for s in TRAEFIK_SERVICES),
        60,
        "both instances routing again",
    )


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
