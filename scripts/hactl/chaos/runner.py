"""`hactl chaos`: inject one fault into a running HA stack under steady open-loop load and
report what clients saw, whether every acknowledged write survived exactly once, how fast the
faulty piece left and rejoined the rotation, and proof that the fault really happened.

Run: load starts at t0; the fault is injected at ``fault_at_s``; load continues until
``duration_s``. Afterwards the stack is given time to settle (bounded), the write set is read
from PostgreSQL, and a JSON report + PNG timeline land under ``results/chaos/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from python_on_whales import Container, DockerClient
from rich.table import Table

from hactl.chaos.analysis import (
    BROWSER,
    FaultStep,
    Poll,
    browser_cookie_kept,
    browser_pin_now,
    browser_repin,
    by_client_kind,
    by_request_kind,
    changed_containers,
    downtime,
    failures_without_retry_after,
    fault_window,
    judge,
    latency_inside_outside,
    mean_in_flight,
    over_bound,
    recovery_after,
    repin_problem,
    rotation_from_polls,
    serving_gap,
    slow_in_window,
    state_changes,
    traefik_kill_report,
)
from hactl.chaos.faults import (
    ContainerSnapshot,
    FaultEvidence,
    FaultOptions,
    Scenario,
    fault_happened,
    inject,
    snapshot,
)
from hactl.chaos.report import RESULTS_DIR, render_timeline, report_paths, write_json_report
from hactl.loadgen.generator import (
    LoadConfig,
    LoadGenerator,
    LoadResult,
    WorkloadMix,
    write_records,
)
from hactl.loadgen.write_check import WriteCheck, check_write_set, fetch_stored_writes
from hactl.stack.endpoints import STICKY_COOKIE
from hactl.stack.engine_view import listed, project_view
from hactl.stack.project import TRAEFIK_SERVICES, Stack, project_containers
from hactl.stack.traefik_api import (
    WEB_SERVICE_NAME,
    TraefikApi,
    find_service,
    parse_server_states,
    states_by_ip,
)
from hactl.stack.traefik_instances import instance_containers, serving_instance

FAILED_EXAMPLES_KEPT = 50
# After the last fault step, this long for Traefik's re-pin to reach every browser connection.
REPIN_SETTLE_S = 2.0


@dataclass
class ChaosStack:
    """What a chaos run needs to reach one stack."""

    docker: DockerClient
    project: str
    base_url: str
    token: str
    traefik: TraefikApi | None = None
    postgres_user: str = "app"
    postgres_db: str = "app"


def chaos_stack_from(stack: Stack) -> ChaosStack:
    """Build the handle from hactl's stack discovery (endpoints and secrets from its env)."""
    from hactl.stack.endpoints import stack_endpoints  # one place knows ports and secrets

    endpoints = stack_endpoints(stack)
    return ChaosStack(
        docker=stack.docker(),
        project=stack.project,
        base_url=endpoints.load_balancer_url,
        token=endpoints.api_token,
        traefik=endpoints.traefik(),
        postgres_user=stack.env_value("POSTGRES_USER", "app"),
        postgres_db=stack.env_value("POSTGRES_DB", "app"),
    )


@dataclass
class ChaosOptions:
    scenario: Scenario
    rate: float = 100.0
    duration_s: float = 30.0
    fault_at_s: float = 5.0
    timeout_s: float = 5.0
    # 30 % writes, whoami needing no database, message-list reads.
    mix: WorkloadMix = field(default_factory=WorkloadMix)
    clients: int = 21
    sticky: bool = False
    # A browser among the clients: this many of them share one sticky cookie (the rest send
    # none), and the fault is aimed at the replica that cookie pins (a fault on a random replica
    # misses what a pinned user sees).
    browser_clients: int = 7
    seed: int | None = None
    target: str | None = None  # container name; default: a random running replica
    settle_s: float = 3.0
    recovery_bound_s: float = 30.0
    settle_timeout_s: float = 90.0
    traefik_poll_s: float = 0.2
    faults: FaultOptions = field(default_factory=FaultOptions)
    results_dir: Path = RESULTS_DIR


def service_containers(docker: DockerClient, project: str, service: str) -> list[Container]:
    """Running containers of one compose service, by container number."""
    return sorted(project_containers(docker, project, service), key=lambda c: c.name)


def serving_instance_container(handle: ChaosStack, probes: int = 5) -> Container:
    """The Traefik instance that takes new connections now (the older listener)."""

    def probe() -> None:
        headers = {"Authorization": f"Bearer {handle.token}"}
        for _ in range(probes):  # a new connection each, as a new client's
            httpx.get(f"{handle.base_url}/api/v1/whoami", headers=headers, timeout=5.0)

    service = serving_instance(handle.docker, handle.project, probe)
    container = instance_containers(handle.docker, handle.project)[service]
    if container is None:
        raise RuntimeError(f"the serving Traefik instance {service} is not running")
    return container


def pin_browser(handle: ChaosStack, attempts: int = 20) -> tuple[dict[str, str], str]:
    """Ask once without a cookie, as a new browser does: the sticky cookie Traefik sets and
    the replica (hostname) it pins."""
    headers = {"Authorization": f"Bearer {handle.token}"}
    problem = ""
    with httpx.Client(base_url=handle.base_url, headers=headers, timeout=5.0) as client:
        for _ in range(attempts):
            response = client.get("/api/v1/whoami")
            cookie = response.cookies.get(STICKY_COOKIE)
            if response.status_code == 200 and cookie:
                return {STICKY_COOKIE: cookie}, str(response.json()["replica"])
            problem = f"HTTP {response.status_code}, cookie {cookie!r}"
            time.sleep(0.25)
    raise RuntimeError(f"no sticky cookie from {handle.base_url}: {problem}")


def container_by_hostname(containers: Sequence[Container], hostname: str) -> Container:
    for container in containers:
        if container.config.hostname == hostname:
            return container
    raise RuntimeError(f"no running replica has hostname {hostname!r}")


def pick_target(
    containers: Sequence[Container], wanted: str | None, rng: random.Random
) -> Container:
    if not containers:
        raise RuntimeError("no running container to inject the fault into")
    if wanted:
        for container in containers:
            if wanted in (container.name, container.id, container.id[:12]):
                return container
        raise RuntimeError(f"no running container named {wanted!r}")
    return rng.choice(list(containers))


class TraefikPoller:
    """Polls Traefik's API in a thread: (t since t0, container IP -> UP/DOWN) samples."""

    def __init__(self, api: TraefikApi, clock: LoadGenerator, interval_s: float) -> None:
        self._api = api
        self._clock = clock
        self._interval = interval_s
        self._stop = threading.Event()
        self.polls: list[Poll] = []
        self.errors = 0
        self._thread = threading.Thread(target=self._loop, name="traefik-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def wait_until_up(self, ips: Sequence[str], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.polls and any(self.polls[-1][1].get(ip) == "UP" for ip in ips):
                return True
            time.sleep(self._interval)
        return False

    def _loop(self) -> None:
        # One keep-alive client for the whole run: TraefikApi's one-shot requests build a new
        # client (and TLS context) per call, which at 5 polls/s takes the GIL from the load.
        api = self._api
        auth = (api.username, api.password) if api.password else None
        url = api.base_url.rstrip("/") + "/api/http/services"
        with httpx.Client(auth=auth, timeout=api.timeout) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(url, params={"per_page": 1000})
                    response.raise_for_status()
                    service = find_service(response.json(), WEB_SERVICE_NAME)
                    states = states_by_ip(parse_server_states(service))
                    sample = {ip: state.value for ip, state in states.items()}
                    self.polls.append((self._clock.elapsed(), sample))
                except (httpx.HTTPError, ValueError):
                    self.errors += 1
                self._stop.wait(self._interval)


def _wait_settled(docker: DockerClient, project: str, timeout_s: float) -> tuple[bool, str]:
    """Every web replica running and healthy, and every Traefik instance (bounded). One engine
    API call per look (hactl.stack.engine_view): a `docker` process per container inspect took a
    third of a core while the stack was still settling."""
    deadline = time.monotonic() + timeout_s
    detail = ""
    while time.monotonic() < deadline:
        views = project_view(docker, project)
        webs = listed(views, "web")
        unhealthy = [f"{v.name}={v.state}/{v.health}" for v in webs if v.health != "healthy"]
        traefiks = [v for service in TRAEFIK_SERVICES for v in listed(views, service)]
        unhealthy += [
            f"{v.name}={v.state}/{v.health}"
            for v in traefiks
            if v.health not in ("healthy", "none")
        ]
        detail = (
            ", ".join(unhealthy) or f"{len(webs)} web replicas, {len(traefiks)} Traefik healthy"
        )
        if webs and not unhealthy:
            return True, detail
        time.sleep(0.5)
    return False, detail


def _all_snapshots(docker: DockerClient, project: str) -> list[ContainerSnapshot]:
    return [snapshot(docker, c.id) for c in service_containers(docker, project, "web")]


def _check_writes(
    handle: ChaosStack, result: LoadResult, attempts: int = 20
) -> tuple[WriteCheck | None, str]:
    postgres = service_containers(handle.docker, handle.project, "postgres")
    problem = "no running postgres container"
    for _ in range(attempts):
        if postgres:
            try:
                stored = fetch_stored_writes(
                    handle.docker,
                    postgres[0],
                    result.config.run_id,
                    user=handle.postgres_user,
                    database=handle.postgres_db,
                )
                return check_write_set(result.records, stored), ""
            except Exception as exc:  # postgres may still be starting after db-restart
                problem = f"{type(exc).__name__}: {exc}"
        time.sleep(1.0)
        postgres = service_containers(handle.docker, handle.project, "postgres")
    return None, problem


@dataclass
class Aim:
    """The fault's target, and the replica the browser is pinned to (None: no browser)."""

    target: Container
    pinned: str | None
    # Set when the browser had moved before the fault: the replica first aimed at.
    retargeted_from: str | None = None
    # Read while the container exists: a Traefik rollout removes it, and the Container object
    # re-inspects by id on attribute access (NoSuchContainer after the fault).
    target_name: str = ""

    def __post_init__(self) -> None:
        self.target_name = self.target_name or self.target.name


def _aim_at_the_browser(
    options: ChaosOptions,
    generator: LoadGenerator,
    aim: Aim,
    candidates: Sequence[Container],
) -> None:
    """Just before the fault: if the browser was moved to another replica since it was pinned,
    aim at that one, so the fault still hits the replica the browser is on."""
    if aim.pinned is None or not options.scenario.hits_a_replica:
        return
    now = browser_pin_now(generator.records, options.browser_clients, aim.pinned)
    if now == aim.pinned:
        return
    with contextlib.suppress(RuntimeError):
        aim.target = container_by_hostname(candidates, now)
        aim.target_name = aim.target.name
        aim.retargeted_from, aim.pinned = aim.pinned, now


async def _run_load_with_fault(
    handle: ChaosStack,
    options: ChaosOptions,
    aim: Aim,
    candidates: Sequence[Container],
    run_id: str,
    browser_cookie: dict[str, str] | None,
) -> tuple[LoadResult, FaultEvidence | None, list[FaultStep], TraefikPoller | None, str]:
    config = LoadConfig(
        base_url=handle.base_url,
        token=handle.token,
        rate=options.rate,
        duration_s=options.duration_s,
        timeout_s=options.timeout_s,
        mix=options.mix,
        clients=options.clients,
        sticky=options.sticky,
        browser_cookie=browser_cookie,
        browser_clients=options.browser_clients,
        seed=options.seed,
        run_id=run_id,
    )
    generator = LoadGenerator(config)
    steps: list[FaultStep] = []
    before = snapshot(handle.docker, aim.target.id)

    def mark(action: str) -> None:
        steps.append(FaultStep(round(generator.elapsed(), 3), action))

    load = asyncio.create_task(generator.run())
    started = asyncio.create_task(generator.started.wait())
    await asyncio.wait({load, started}, return_when=asyncio.FIRST_COMPLETED)
    if load.done():  # setup failed before t0
        started.cancel()
        load.result()
    poller = None
    if handle.traefik is not None:
        poller = TraefikPoller(handle.traefik, generator, options.traefik_poll_s)
        poller.start()
    await asyncio.sleep(max(0.0, options.fault_at_s - generator.elapsed()))
    _aim_at_the_browser(options, generator, aim, candidates)
    if aim.retargeted_from is not None:
        before = await asyncio.to_thread(snapshot, handle.docker, aim.target.id)
    evidence: FaultEvidence | None = None
    fault_error = ""
    try:
        evidence = await asyncio.to_thread(
            inject, options.scenario, handle.docker, aim.target, mark, options.faults, before
        )
    except Exception as exc:  # report it: the verdict fails on a missing fault
        fault_error = f"{type(exc).__name__}: {exc}"
        mark(f"fault failed: {fault_error}")
    result = await load
    return result, evidence, steps, poller, fault_error


def run_chaos(handle: ChaosStack, options: ChaosOptions) -> dict[str, Any]:
    """Run one scenario end to end; returns the report (also written to results_dir)."""
    scenario = options.scenario
    rng = random.Random(options.seed)
    run_id = f"{scenario.value.replace('-', '')}{random.Random().getrandbits(40):010x}"
    started_at = datetime.now(UTC)
    candidates = service_containers(handle.docker, handle.project, scenario.target_service)
    browser_cookie, pinned = pin_browser(handle) if options.browser_clients else (None, None)
    if pinned and scenario.hits_a_replica:
        target = container_by_hostname(candidates, pinned)
    elif scenario in (Scenario.TRAEFIK_RESTART, Scenario.TRAEFIK_KILL):
        # The instance that serves new connections: the standby's restart would prove nothing.
        target = serving_instance_container(handle)
    else:
        target = pick_target(candidates, options.target if scenario.hits_a_replica else None, rng)
    webs_before = _all_snapshots(handle.docker, handle.project)

    aim = Aim(target, pinned if scenario.hits_a_replica else None)
    result, evidence, steps, poller, fault_error = asyncio.run(
        _run_load_with_fault(handle, options, aim, candidates, run_id, browser_cookie)
    )
    target, target_name = aim.target, aim.target_name
    if aim.pinned is not None:
        pinned = aim.pinned

    # The poller keeps running until the stack settled and Traefik lists the target UP again,
    # so a rejoin after the load ended is still measured.
    settled, settle_detail = _wait_settled(handle.docker, handle.project, options.settle_timeout_s)
    if evidence is not None:
        with contextlib.suppress(Exception):
            evidence.after = snapshot(handle.docker, target.id)
    if poller is not None:
        if evidence is not None and evidence.after is not None and scenario.hits_a_replica:
            poller.wait_until_up(evidence.after.ips, options.settle_timeout_s)
        poller.stop()
    webs_after = _all_snapshots(handle.docker, handle.project)
    write_check, write_problem = _check_writes(handle, result)

    real, real_detail = (False, fault_error or "no evidence")
    if evidence is not None:
        real, real_detail = fault_happened(scenario, evidence)
    summary = result.summary()
    window = fault_window(steps, options.settle_s)
    fault_s = steps[0].t_s if steps else options.fault_at_s
    last_step_s = steps[-1].t_s if steps else fault_s
    rotation = _rotation_report(result, evidence, poller, fault_s, scenario)
    outage = downtime(result.records, fault_s)
    web_changes = changed_containers(webs_before, webs_after)
    recovered_within = recovery_after(result.records, last_step_s)
    during = [r for r in result.records if window and window.contains(r.intended_s)]
    clients = by_client_kind(result.records, options.browser_clients, window)
    kill = (
        traefik_kill_report(result.records, fault_s, options.rate)
        if scenario is Scenario.TRAEFIK_KILL
        else None
    )
    cookie_kept = (
        browser_cookie_kept(result.records, options.browser_clients, pinned)
        if pinned and scenario.hits_traefik
        else None
    )
    repin = (
        browser_repin(
            result.records, options.browser_clients, pinned, fault_s, last_step_s + REPIN_SETTLE_S
        )
        if pinned and scenario.hits_a_replica
        else None
    )
    verdict = judge(
        scenario,
        failed_requests=summary.failed,
        write_check_ok=bool(write_check and write_check.ok),
        lost=len(write_check.lost) if write_check else 0,
        duplicated=len(write_check.duplicated) if write_check else 0,
        fault_real=real,
        web_changes=web_changes,
        unclean_failures=failures_without_retry_after(during),
        recovered_within_s=recovered_within,
        recovery_bound_s=options.recovery_bound_s,
        over_latency_bound=over_bound(result.records),
        traefik_kill=kill,
        traefik_back_after_s=evidence.back_healthy_after_s if evidence else None,
        browser_cookie=cookie_kept,
    )
    problem = repin_problem(repin) if repin is not None else None
    if problem:
        verdict.passed = False
        verdict.reasons.append(problem)
    if write_check is None:
        verdict.passed = False
        verdict.reasons.append(f"write set could not be read: {write_problem}")
    if not settled:
        verdict.reasons.append(f"stack did not settle afterwards: {settle_detail}")
        verdict.passed = False

    paths = report_paths(options.results_dir, scenario.value, started_at)
    report: dict[str, Any] = {
        "scenario": scenario.value,
        "passed": verdict.passed,
        "verdict": verdict.to_json(),
        "run_id": run_id,
        "started_at": started_at.isoformat(),
        "project": handle.project,
        "options": {
            "rate": options.rate,
            "duration_s": options.duration_s,
            "fault_at_s": options.fault_at_s,
            "timeout_s": options.timeout_s,
            "mix": vars(options.mix),
            "clients": options.clients,
            "sticky": options.sticky,
            "browser_clients": options.browser_clients,
            "browser_pinned_to": pinned,
            # The browser had moved before the fault; the fault followed it (the first aim).
            "browser_moved_before_fault_from": aim.retargeted_from,
            "pause_s": options.faults.pause_s,
            "restart_stopped_after_s": options.faults.restart_stopped_after_s,
        },
        "target": {"service": scenario.target_service, "container": target_name},
        "fault": {
            "steps": [{"t_s": s.t_s, "action": s.action} for s in steps],
            "happened": real,
            "evidence_detail": real_detail,
            "evidence": evidence.to_json() if evidence else None,
            "error": fault_error or None,
        },
        "requests": summary.to_json(),
        "clients": clients,
        "mean_in_flight": mean_in_flight(result.records),
        "requests_by_path_kind": by_request_kind(result.records),
        "slow_in_window": slow_in_window(result.records, window),
        "browser_repin": repin,
        # Traefik faults: the browser's cookie honoured by every instance; a SIGKILL's cost.
        "browser_cookie": cookie_kept,
        "traefik_kill": kill,
        "failed_requests": [r.to_json() for r in result.records if not r.ok][:FAILED_EXAMPLES_KEPT],
        "outage": {
            **outage,
            "recovered_after_last_fault_step_s": recovered_within,
            "not_503_with_retry_after": failures_without_retry_after(during),
        },
        "rotation": rotation,
        "latency_ms": latency_inside_outside(result.records, window),
        # Traefik's view of the web servers (container IP -> UP/DOWN) whenever it changed.
        "traefik_changes": state_changes(poller.polls) if poller else [],
        "write_check": write_check.to_json() if write_check else {"error": write_problem},
        "web_replicas_changed": web_changes,
        "stack_settled": {"ok": settled, "detail": settle_detail},
        "generator": {
            "cpu_percent_of_one_core": result.cpu_percent,
            "cpu_s": round(result.cpu_s, 3),
            "wall_s": round(result.wall_s, 3),
        },
        "files": {name: str(path) for name, path in paths.items()},
    }
    write_records(result.records, paths["requests"])
    write_json_report(report, paths["json"])
    title = (
        f"{scenario.value} on {target_name}: {summary.failed} failed of {summary.total} "
        f"at {options.rate:g} req/s"
    )
    rotation_events = [
        FaultStep(fault_s + rotation[key], label)
        for key, label in (
            ("traefik_removed_after_s", "Traefik: out"),
            ("traefik_back_after_s", "Traefik: back"),
        )
        if rotation.get(key) is not None
    ]
    render_timeline(result.records, steps, window, paths["png"], title, rotation_events)
    return report


def _rotation_report(
    result: LoadResult,
    evidence: FaultEvidence | None,
    poller: TraefikPoller | None,
    fault_s: float,
    scenario: Scenario,
) -> dict[str, Any]:
    if evidence is None or not scenario.hits_a_replica:
        return {}
    replica = evidence.before.hostname
    ips = list(evidence.before.ips)
    if evidence.during is not None:
        ips += [ip for ip in evidence.during.ips if ip not in ips]
    if evidence.after is not None:
        ips += [ip for ip in evidence.after.ips if ip not in ips]
    last_served, served_again = serving_gap(result.records, replica, fault_s)
    removed, back = (None, None)
    if poller is not None:
        removed, back = rotation_from_polls(poller.polls, ips, fault_s)

    def since_fault(t: float | None) -> float | None:
        return None if t is None else round(t - fault_s, 3)

    return {
        "replica": replica,
        "ips": ips,
        "traefik_removed_after_s": since_fault(removed),
        "traefik_back_after_s": since_fault(back),
        "last_served_after_s": since_fault(last_served),
        "served_again_after_s": since_fault(served_again),
        "traefik_polls": len(poller.polls) if poller else 0,
        "traefik_poll_errors": poller.errors if poller else 0,
    }


ALL_SCENARIOS = "all"


def scenarios_from(name: str) -> list[Scenario]:
    """``all`` or one scenario name; ValueError names the valid ones."""
    if name == ALL_SCENARIOS:
        return list(Scenario)
    try:
        return [Scenario(name)]
    except ValueError:
        valid = ", ".join([*(s.value for s in Scenario), ALL_SCENARIOS])
        raise ValueError(f"unknown scenario {name!r}: choose one of {valid}") from None


def run_scenarios(
    handle: ChaosStack, scenarios: Sequence[Scenario], template: ChaosOptions
) -> list[dict[str, Any]]:
    """Run scenarios one after another; each waits for a healthy stack before its load."""
    reports = []
    for scenario in scenarios:
        settled, detail = _wait_settled(handle.docker, handle.project, template.settle_timeout_s)
        if not settled:
            raise RuntimeError(f"stack not healthy before {scenario.value}: {detail}")
        options = ChaosOptions(**{**vars(template), "scenario": scenario})
        reports.append(run_chaos(handle, options))
    return reports


def results_table(reports: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="hactl chaos")
    columns = (
        "stack",
        "scenario",
        "result",
        "failed",
        "browser failed",
        "over 3 s",
        "lost/dup writes",
        "removed after",
        "serving again after",
        "p99 in fault window",
        "outage",
        "report",
    )
    for column in columns:
        table.add_column(column)
    for report in reports:
        rotation = report.get("rotation") or {}
        checks = report["write_check"]
        clients = report.get("clients") or {}
        table.add_row(
            report["project"],
            report["scenario"],
            "[green]PASS[/green]" if report["passed"] else "[red]FAIL[/red]",
            f"{report['requests']['failed']}/{report['requests']['total']}",
            _browser_failed(clients),
            str(sum(kind["over_3s"] for kind in clients.values())),
            f"{checks.get('lost_count', '?')}/{checks.get('duplicated_count', '?')}",
            _seconds(rotation.get("traefik_removed_after_s")),
            _seconds(rotation.get("traefik_back_after_s") or rotation.get("served_again_after_s")),
            f"{report['latency_ms']['inside'].get('p99')} ms",
            _seconds(report["outage"]["span_s"]) if report["outage"]["failed"] else "none",
            report["files"]["json"],
        )
    return table


def _browser_failed(clients: dict[str, Any]) -> str:
    browser = clients.get(BROWSER)
    return f"{browser['failed']}/{browser['total']}" if browser else "-"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def summary_line(report: dict[str, Any]) -> str:
    requests = report["requests"]
    rotation = report.get("rotation") or {}
    lat = report["latency_ms"]["inside"]
    checks = report["write_check"]
    return (
        f"{report['scenario']:<16} {'PASS' if report['passed'] else 'FAIL'}  "
        f"failed {requests['failed']}/{requests['total']}  "
        f"lost {checks.get('lost_count', '?')} dup {checks.get('duplicated_count', '?')}  "
        f"removed {rotation.get('traefik_removed_after_s')} s  "
        f"back {rotation.get('traefik_back_after_s')} s  "
        f"p99 in window {lat.get('p99')} ms  "
        f"outage {report['outage']['span_s']} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hactl.chaos --scenario kill|...|all`` (the same run as ``hactl chaos``)."""
    from rich.console import Console

    from hactl.stack.project import discover_stack

    parser = argparse.ArgumentParser(prog="python -m hactl.chaos")
    parser.add_argument("--scenario", required=True, help="a scenario name, or all")
    parser.add_argument("--project", default=None)
    parser.add_argument("--rate", type=float, default=ChaosOptions.rate)
    parser.add_argument("--duration", type=float, default=ChaosOptions.duration_s)
    parser.add_argument("--fault-at", type=float, default=ChaosOptions.fault_at_s)
    parser.add_argument("--pause", type=float, default=FaultOptions.pause_s)
    parser.add_argument("--target", default=None)
    parser.add_argument("--sticky", action="store_true")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        scenarios = scenarios_from(args.scenario)
    except ValueError as exc:
        parser.error(str(exc))
    handle = chaos_stack_from(discover_stack(project=args.project))
    template = ChaosOptions(
        scenario=scenarios[0],
        rate=args.rate,
        duration_s=args.duration,
        fault_at_s=args.fault_at,
        target=args.target,
        sticky=args.sticky,
        faults=FaultOptions(pause_s=args.pause),
        results_dir=args.results_dir,
    )
    reports = run_scenarios(handle, scenarios, template)
    if args.json:
        print(json.dumps(reports if len(reports) > 1 else reports[0], indent=2, default=str))
    else:
        Console(width=200).print(results_table(reports))
    return 0 if all(r["passed"] for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
