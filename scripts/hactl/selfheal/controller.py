"""The self-healing loop: every sync, observe the project, probe, decide (decide.py), act.

One sync a second by default: the list of the project's containers is one cheap API call, and a
replica killed or removed is seen within a second, which leaves most of the 10 s budget to the
replica's own start and Docker health check. Liveness probes run only when due (every period).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import start_http_server

from hactl.selfheal.clone import clone_request
from hactl.selfheal.config import SelfHealConfig
from hactl.selfheal.decide import (
    LIVE_STATES,
    Action,
    ControllerState,
    Kind,
    Observation,
    Plan,
    Replica,
    backoff_delay,
    decide,
    desired_count,
    hold_of,
    name_prefix_of,
    probe_due,
    states_summary,
)
from hactl.selfheal.docker_api import DockerApi, DockerApiError, client_for, health_of
from hactl.selfheal.probe import probe_all
from hactl.selfheal.record import read_record
from hactl.selfheal.telemetry import EventLog, SelfHealMetrics

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_ONEOFF = "com.docker.compose.oneoff"
ENGINE_WAIT_SECONDS = 60.0


def parse_docker_time(value: str) -> float | None:
    """Docker's RFC 3339 time with nanoseconds -> unix time; None for the zero time."""
    if not value or value.startswith("0001-"):
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    stamp = datetime.fromisoformat(head + "+00:00").timestamp()
    return stamp + (float("0." + frac[:6]) if frac[:6].isdigit() else 0.0)


class Controller:
    def __init__(
        self,
        cfg: SelfHealConfig,
        api: DockerApi,
        metrics: SelfHealMetrics,
        events: EventLog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.api = api
        self.metrics = metrics
        self.events = events
        self.clock = clock
        self.state = ControllerState()
        self.started: dict[str, float] = {}  # container id -> StartedAt (while it stays live)
        self.probe_network = f"{cfg.project}_backend"
        self._hold: str | None = None
        self._waiting: set[tuple[str, str, int]] = set()

    # --- observe ------------------------------------------------------------------------------
    def _started_at(self, container: dict[str, Any]) -> float | None:
        cid = container["Id"]
        if container["State"] not in LIVE_STATES:
            self.started.pop(cid, None)
            return None
        if cid not in self.started:
            stamp = parse_docker_time(self.api.inspect(cid)["State"].get("StartedAt", ""))
            if stamp is None:
                return None
            self.started[cid] = stamp
        return self.started[cid]

    def _replica(self, c: dict[str, Any]) -> Replica:
        labels = c.get("Labels") or {}
        health = health_of(c.get("Status") or "")
        networks = (c.get("NetworkSettings") or {}).get("Networks") or {}
        net = networks.get(self.probe_network) or next(iter(networks.values()), {})
        try:
            number = int(labels.get(LABEL_NUMBER, "0"))
        except ValueError:
            number = 0
        return Replica(
            id=c["Id"],
            name=(c.get("Names") or ["/" + c["Id"][:12]])[0].lstrip("/"),
            number=number,
            state=c["State"],
            created=float(c.get("Created", 0)),
            started=self._started_at(c),
            ip=net.get("IPAddress") or None,
            healthy=health == "healthy",
            starting=health == "starting",
        )

    def observe(self) -> Observation:
        now = self.clock()
        containers = self.api.project_containers(self.cfg.project)
        stack_up = any(
            (c.get("Labels") or {}).get(LABEL_SERVICE) == self.cfg.guard_service
            and c["State"] == "running"
            for c in containers
        )
        replicas = tuple(
            self._replica(c)
            for c in containers
            if (c.get("Labels") or {}).get(LABEL_SERVICE) == self.cfg.service
            and (c.get("Labels") or {}).get(LABEL_ONEOFF, "False") != "True"
        )
        record = read_record(self.cfg.record_file, now)
        desired = desired_count(record.replicas, self.cfg.default_replicas)
        return Observation(now, desired, replicas, stack_up, record.paused, record.lease)

    # --- probe --------------------------------------------------------------------------------
    def probe(self, obs: Observation) -> None:
        due = [r for r in obs.replicas if probe_due(r, obs.now, self.state, self.cfg)]
        results = probe_all(
            due, self.cfg.liveness_port, self.cfg.liveness_path, self.cfg.liveness_timeout
        )
        for replica in due:
            failures = self.state.record_probe(replica.id, results[replica.id], obs.now)
            self.metrics.liveness_failures.labels(replica.name).set(failures)
            if failures:
                self.events.emit(
                    "liveness-failed",
                    replica=replica.name,
                    failures=failures,
                    threshold=self.cfg.liveness_failure_threshold,
                    state=replica.state,
                )

    # --- act ----------------------------------------------------------------------------------
    def _template(self, replicas: tuple[Replica, ...]) -> Replica | None:
        running = [r for r in replicas if r.state == "running"]
        running.sort(key=lambda r: (r.healthy, r.created), reverse=True)
        return running[0] if running else None

    def _create(self, action: Action, replicas: tuple[Replica, ...]) -> str:
        template = self._template(replicas)
        if template is None:
            raise DockerApiError("create", 0, "no running replica to copy the configuration from")
        plan = clone_request(self.api.inspect(template.id), action.name, action.number)
        new_id = self.api.create(plan.name, plan.body)
        for network, endpoint in plan.extra_networks.items():
            self.api.connect(network, new_id, endpoint)
        self.api.start(new_id)
        return new_id

    def act(self, action: Action, replicas: tuple[Replica, ...]) -> None:
        started = time.monotonic()
        try:
            if action.kind is Kind.START:
                assert action.container_id
                self.api.start(action.container_id)
            elif action.kind is Kind.RESTART:
                assert action.container_id
                self.api.restart(action.container_id, self.cfg.restart_stop_timeout)
                self.state.liveness.pop(action.container_id, None)
                self.started.pop(action.container_id, None)
            else:
                action = Action(
                    action.kind,
                    action.name,
                    action.number,
                    action.reason,
                    self._create(action, replicas),
                    action.restarts,
                )
        except (DockerApiError, OSError) as error:
            self.metrics.errors.labels(action.kind.value).inc()
            self.events.emit(
                "error", action=action.kind.value, replica=action.name, error=str(error)
            )
            return
        now = self.clock()
        count = self.state.record_restart(action.name, now, self.cfg)
        self.metrics.know_replica(action.name)
        self.metrics.restarts.labels(action.name, action.reason.value).inc()
        self.events.emit(
            action.kind.value,
            replica=action.name,
            container=(action.container_id or "")[:12],
            reason=action.reason.value,
            restarts_in_window=count,
            next_backoff_seconds=backoff_delay(count, self.cfg),
            call_seconds=round(time.monotonic() - started, 3),
        )

    # --- one sync -----------------------------------------------------------------------------
    def sync(self) -> Plan:
        obs = self.observe()
        hold = hold_of(obs, self.cfg)
        if hold is None:
            self.probe(obs)
        else:  # no counting while held: a paused maintenance must not end in a burst of restarts
            self.state.liveness.clear()
        self.state.forget_containers(r.id for r in obs.replicas)
        prefix = name_prefix_of([r.name for r in obs.replicas], self.cfg.project, self.cfg.service)
        plan = decide(obs, self.state, self.cfg, prefix)
        self._report(obs, plan)
        for action in plan.actions:
            self.act(action, obs.replicas)
        self.metrics.last_sync.set(self.clock())
        self.metrics.syncs.inc()
        return plan

    def _report(self, obs: Observation, plan: Plan) -> None:
        m = self.metrics
        m.desired.set(obs.desired)
        summary = states_summary(obs.replicas)
        for state in {"running", "paused", "exited", "created", "dead", "restarting", *summary}:
            m.replicas.labels(state).set(summary.get(state, 0))
        for replica in obs.replicas:
            m.know_replica(replica.name)
        for reason in ("paused", "lease", "stack-down"):
            m.holding.labels(reason).set(1 if plan.hold and plan.hold.value == reason else 0)
        hold = f"{plan.hold.value}: {plan.hold_detail}" if plan.hold else None
        if hold != self._hold:
            if hold:
                self.events.emit("hold", reason=plan.hold.value, detail=plan.hold_detail)  # type: ignore[union-attr]
            elif self._hold:
                self.events.emit("resume", after=self._hold)
            self._hold = hold
        m.backoff.clear()
        for wait in plan.waiting:
            m.backoff.labels(wait.name).set(round(wait.seconds_left, 1))
            restarts = len(self.state.recent_restarts(wait.name, obs.now, self.cfg))
            key = (wait.name, wait.reason.value, restarts)
            if key not in self._waiting:
                self._waiting.add(key)
                self.events.emit(
                    "backoff",
                    replica=wait.name,
                    reason=wait.reason.value,
                    restarts_in_window=restarts,
                    seconds_left=round(wait.seconds_left, 1),
                )

    # --- the loop -----------------------------------------------------------------------------
    def wait_for_engine(self, stop: threading.Event) -> None:
        deadline = time.monotonic() + ENGINE_WAIT_SECONDS
        while True:
            try:
                self.api.ping()
                return
            except Exception as error:
                if time.monotonic() > deadline or stop.is_set():
                    where = self.cfg.docker_host
                    raise RuntimeError(f"no Docker API at {where}: {error}") from error
            stop.wait(1.0)

    def run(self, stop: threading.Event, max_seconds: float | None = None) -> None:
        self.wait_for_engine(stop)
        self.events.emit(
            "started",
            project=self.cfg.project,
            service=self.cfg.service,
            record=str(self.cfg.record_file),
            docker_host=self.cfg.docker_host,
            liveness=f"{self.cfg.liveness_path} every {self.cfg.liveness_period:g}s, "
            f"threshold {self.cfg.liveness_failure_threshold}",
        )
        end = None if max_seconds is None else time.monotonic() + max_seconds
        while not stop.is_set() and (end is None or time.monotonic() < end):
            begun = time.monotonic()
            try:
                self.sync()
            except Exception as error:  # an engine hiccup must not end the controller
                self.metrics.errors.labels("sync").inc()
                self.events.emit("error", action="sync", error=f"{type(error).__name__}: {error}")
            stop.wait(max(0.0, self.cfg.sync_seconds - (time.monotonic() - begun)))
        self.events.emit("stopped")


def run(cfg: SelfHealConfig, stop: threading.Event, max_seconds: float | None = None) -> None:
    """Serve metrics and run the loop until `stop` is set (SIGTERM/SIGINT) or max_seconds."""
    metrics = SelfHealMetrics()
    start_http_server(cfg.metrics_port, cfg.metrics_addr, registry=metrics.registry)
    with client_for(cfg.docker_host) as client:
        Controller(cfg, DockerApi(client), metrics, EventLog()).run(stop, max_seconds)
