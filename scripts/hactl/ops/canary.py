"""`hactl rollout --canary 10,50,100`: a canary release judged on its own traffic.

1. Migrations run on the new image (expand-only, like the rolling update).
2. The canary (compose service `web-canary`, compose/canary.yml) starts on the new image beside
   the stable `web` replicas and must get into rotation (Docker healthy, Traefik UP).
3. Smoke check: the routing file goes in with a 0 % share, and a few requests through Traefik
   that only the canary answers (a per-run header, stack/canary_routing.py) must be answered by
   canary replicas.
4. Each step: the canary runs enough replicas for its share, hactl's routing file sends that share
   of new clients to it (weighted, sticky), and Traefik's per-service counters are read every
   POLL_S seconds. The canary's 5xx ratio and p99 are compared with the stable side's over the
   same window (canary_analysis.judge): abort at once when they are clearly worse, promote the
   step after --step-seconds (longer, up to EXTEND_FACTOR times, while the canary has had too few
   requests to tell).
5. Promotion after the 100 % step: the stable `web` replicas are replaced by the new image (the
   rolling update's batches, while the canary carries the traffic), the routing file is removed
   (every client back on `web`), the canary is stopped; WEB_IMAGE is recorded.
Abort (a bad step, a failed smoke check, Ctrl-C or any error on the way): the routing file is
removed first (all traffic back on the stable side in one configuration reload), then the canary
is stopped; the exit code is 3 and the report names the numbers the decision was made on.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from python_on_whales import DockerClient

from hactl import output
from hactl.errors import OPERATION_ERRORS, HactlError, InvalidInputError, RolledBackError
from hactl.ops.canary_analysis import Decision, SideSample, Thresholds, Verdict, judge
from hactl.ops.canary_plan import FULL, CanaryStep, parse_steps, plan_steps
from hactl.ops.draining import StoppedReplica, start_draining, stop_and_remove
from hactl.ops.preflight import require_image, require_running
from hactl.ops.rollout import BatchFailedError, RolloutResult, migrate_or_fail, replace_replicas
from hactl.ops.rotation import wait_in_rotation
from hactl.selfheal.record import holds_operation_lease
from hactl.stack.canary_routing import (
    CANARY_METRIC_SERVICES,
    SMOKE_HEADER,
    STABLE_METRIC_SERVICES,
    RoutedFailover,
    dynamic_dir,
    find_routed_failovers,
    new_smoke_token,
    render_routing,
    routing_file,
    write_atomically,
)
from hactl.stack.project import container_number, project_containers
from hactl.stack.replicas import container_facts, web_containers
from hactl.stack.running import RunningStack
from hactl.stack.traefik_instances import (
    has_instances,
    instance_containers,
    read_instance_metrics,
    read_instance_view,
)
from hactl.stack.traefik_metrics import (
    add_samples,
    parse_service_samples,
    read_service_samples,
    side,
)
from hactl.stack.web_service import compose_scale, record_state
from hactl.validation import validate_batch_size, validate_timeout
from hactl.waiting import WaitFailedError, wait_for

CANARY_SERVICE = "web-canary"
CANARY_COMPOSE_FILE = Path("compose") / "canary.yml"
POLL_S = 2.0
EXTEND_FACTOR = 3
SMOKE_REQUESTS = 10
SMOKE_PATH = "/healthz"
ROUTING_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class CanarySettings:
    steps: tuple[int, ...]
    step_seconds: float
    thresholds: Thresholds
    batch_size: int = 1
    timeout: float = 120.0
    migrate: bool = True


@dataclass
class StepReport:
    step: CanaryStep
    seconds: float
    canary: SideSample
    stable: SideSample
    verdict: Verdict

    def as_dict(self) -> dict[str, Any]:
        def numbers(sample: SideSample, p99: float | None) -> dict[str, Any]:
            return {
                "requests": int(sample.requests),
                "errors_5xx": int(sample.errors),
                "error_ratio": round(sample.error_ratio, 4),
                "p99_ms": None if p99 is None else round(p99, 1),
            }

        return {
            "step": self.step.index,
            "weight": self.step.weight,
            "canary_replicas": self.step.replicas,
            "seconds": round(self.seconds, 1),
            "decision": self.verdict.decision.value,
            "reasons": list(self.verdict.reasons),
            "canary": numbers(self.canary, self.verdict.canary_p99_ms),
            "stable": numbers(self.stable, self.verdict.stable_p99_ms),
        }


@dataclass
class CanaryResult:
    image: str
    previous_image: str
    steps: list[StepReport] = field(default_factory=list)
    promoted: bool = False
    smoke_replicas: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    stopped: list[StoppedReplica] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "previous_image": self.previous_image,
            "promoted": self.promoted,
            "smoke_replicas": self.smoke_replicas,
            "steps": [s.as_dict() for s in self.steps],
            "started": self.started,
            "stopped": [{"name": s.name, "exit_code": s.exit_code} for s in self.stopped],
            "seconds": round(self.seconds, 1),
        }


class CanaryAbortedError(RolledBackError):
    """The canary was stopped and all traffic is on the stable side again; `result` has the
    numbers the decision was made on."""

    def __init__(self, message: str, hint: str, result: CanaryResult) -> None:
        super().__init__(message, hint)
        self.result = result


def validate_settings(settings: CanarySettings) -> None:
    validate_batch_size(settings.batch_size)
    validate_timeout(settings.timeout)
    t = settings.thresholds
    if settings.step_seconds <= 0:
        raise InvalidInputError(f"--step-seconds must be positive, got {settings.step_seconds}")
    if not 0 <= t.max_error_ratio < 1:
        raise InvalidInputError(f"--max-error-ratio must be in [0, 1), got {t.max_error_ratio}")
    if t.max_p99_ms <= 0:
        raise InvalidInputError(f"--max-p99-ms must be positive, got {t.max_p99_ms}")
    if t.min_requests < 0:
        raise InvalidInputError(f"--min-requests must be 0 or more, got {t.min_requests}")


def settings_from_options(
    canary: str,
    step_seconds: float,
    max_error_ratio: float,
    max_p99_ms: float,
    min_requests: int,
    batch_size: int,
    timeout: float,
    migrate: bool,
) -> CanarySettings:
    settings = CanarySettings(
        steps=parse_steps(canary),
        step_seconds=step_seconds,
        thresholds=Thresholds(
            max_error_ratio=max_error_ratio, max_p99_ms=max_p99_ms, min_requests=min_requests
        ),
        batch_size=batch_size,
        timeout=timeout,
        migrate=migrate,
    )
    validate_settings(settings)
    return settings


class Canary:
    """The canary of one run: its containers, its routing file, its numbers."""

    def __init__(self, running: RunningStack) -> None:
        self.running = running
        stack = running.stack
        self.docker = DockerClient(
            compose_files=[*stack.compose_files, stack.project_dir / CANARY_COMPOSE_FILE],
            compose_env_files=list(stack.all_env_files),
            compose_project_name=stack.project,
            compose_project_directory=stack.project_dir,
        )
        self.routing_path = routing_file(dynamic_dir(running), running.project)
        self.smoke_token = new_smoke_token()
        self.routed: list[RoutedFailover] = []

    # --- containers ----------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [c.name for c in web_containers(self.running, CANARY_SERVICE)]

    def scale(self, count: int, image: str, timeout: float) -> list[str]:
        """At least `count` canary replicas on `image`, in rotation; returns the new ones."""
        if len(self.names()) >= count:
            return []
        new = compose_scale(
            self.running,
            self.docker,
            CANARY_SERVICE,
            count,
            {"CANARY_IMAGE": image, "CANARY_REPLICAS": str(count)},
        )
        wait_in_rotation(self.running, new, timeout, service=CANARY_SERVICE)
        return new

    def stop(self) -> list[StoppedReplica]:
        """Drain and remove every canary replica, exited ones too (call after the routing is
        gone: no router sends to them; requests in flight finish, the app drains on SIGTERM)."""
        running = self.names()
        start_draining(self.running.docker, running)
        every = project_containers(
            self.running.docker, self.running.project, CANARY_SERVICE, include_stopped=True
        )
        return stop_and_remove(self.running.docker, [c.name for c in every])

    def hostnames(self) -> set[str]:
        return {container_facts(c).hostname for c in web_containers(self.running, CANARY_SERVICE)}

    # --- routing -------------------------------------------------------------------------------
    def discover_routes(self) -> None:
        api = self.running.traefik
        self.routed = find_routed_failovers(api.http_routers(), api.http_services())
        if not self.routed:
            raise HactlError(
                "no router of the stack sends its traffic to a failover service over web@docker",
                "a canary splits the HA overlay's routers (docker-compose.ha.yml, "
                "traefik/dynamic/failover.yml); check `hactl verify`",
            )

    def route(self, weight: int) -> None:
        """Send `weight` % of new clients to the canary; returns once Traefik applied it."""
        text = render_routing(self.running.project, self.routed, weight, self.smoke_token)
        write_atomically(self.routing_path, text)
        expected = {r.release_service + "@file": weight for r in self.routed}
        wait_for(f"Traefik to route {weight} % to the canary", self._applied(expected), 30)

    def _views(self) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """(routers, services) as each Traefik instance sees them: with two instances behind
        one port, a read there reaches either one, and both must have applied a change."""
        docker, project = self.running.docker, self.running.project
        if not has_instances(docker, project):
            api = self.running.traefik
            return [(api.http_routers(), api.http_services())]
        views = []
        for container in instance_containers(docker, project).values():
            if container is not None:
                view = read_instance_view(docker, project, container)
                views.append((view.routers, view.services))
        return views

    def _applied(self, expected: dict[str, int]) -> Callable[[], tuple[bool, str]]:
        def check() -> tuple[bool, str]:
            for routers_seen, services_seen in self._views():
                done, why = self._applied_in(expected, routers_seen, services_seen)
                if not done:
                    return False, why
            return True, "applied"

        return check

    def _applied_in(
        self,
        expected: dict[str, int],
        routers_seen: list[dict[str, Any]],
        services_seen: list[dict[str, Any]],
    ) -> tuple[bool, str]:
        services = {s.get("name"): s for s in services_seen}
        routers = {r.get("name"): r for r in routers_seen}
        for name, weight in expected.items():
            service = services.get(name)
            if not service:
                return False, f"{name} not loaded yet"
            if service.get("status") == "disabled":
                raise HactlError(f"Traefik refused {name}: {service.get('error')}")
            children = (service.get("weighted") or {}).get("services") or []
            canary = sum(
                int(c.get("weight") or 0) for c in children if "canary" in c.get("name", "")
            )
            if canary != weight:
                return False, f"{name} still sends {canary} % to the canary"
        for r in self.routed:
            router = routers.get(f"{r.canary_router}@file") or {}
            if router.get("status") != "enabled":
                return False, f"router {r.canary_router}@file: {router.get('error', 'absent')}"
        return True, "applied"

    def unroute(self) -> None:
        """Remove the routing file; returns once every Traefik instance dropped the canary's
        routers."""
        self.routing_path.unlink(missing_ok=True)

        def gone() -> tuple[bool, str]:
            names = {r.get("name", "") for routers, _ in self._views() for r in routers}
            left = sorted(n for n in names if n.endswith("-canary@file"))
            return not left, "still routed: " + ", ".join(left)

        wait_for("Traefik to drop the canary's routers", gone, ROUTING_TIMEOUT_S)

    # --- checks --------------------------------------------------------------------------------
    def smoke_check(self) -> list[str]:
        """Requests through Traefik that only the canary's smoke router accepts must be answered
        by canary replicas; returns those replicas. It checks the path (routers, failover,
        canary services, the replicas' liveness), not the release's quality: /healthz needs no
        token and no database, and a release that fails some API calls is the metrics' job."""
        endpoints = self.running.endpoints
        hostnames = self.hostnames()
        answered: list[str] = []
        with httpx.Client(base_url=endpoints.load_balancer_url, timeout=5.0) as client:
            for _ in range(SMOKE_REQUESTS):
                response = client.get(SMOKE_PATH, headers={SMOKE_HEADER: self.smoke_token})
                replica = response.headers.get("X-Replica")
                if response.status_code != 200 or replica not in hostnames:
                    raise HactlError(
                        f"smoke check: GET {SMOKE_PATH} through Traefik answered "
                        f"{response.status_code} from {replica!r}, not 200 from a canary replica",
                        "see `docker logs` of the canary replicas",
                    )
                answered.append(str(replica))
        return sorted(set(answered))

    def read_sides(self) -> tuple[SideSample, SideSample]:
        docker, project = self.running.docker, self.running.project
        if has_instances(docker, project):
            # Every instance's own counters, added up (each answers part of the traffic). An
            # instance restarted mid-step restarts its counters: that step under-counts.
            samples = add_samples(
                parse_service_samples(text)
                for text in read_instance_metrics(docker, project).values()
            )
        else:
            samples = read_service_samples(self.running.traefik)
        return side(samples, CANARY_METRIC_SERVICES), side(samples, STABLE_METRIC_SERVICES)


class SideReader(Protocol):
    def read_sides(self) -> tuple[SideSample, SideSample]: ...


def watch_step(
    canary: SideReader,
    step: CanaryStep,
    settings: CanarySettings,
    reference: SideSample,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> StepReport:
    """Read the counters every POLL_S seconds until the step is decided."""
    canary0, stable0 = canary.read_sides()
    start = clock()
    thresholds = settings.thresholds
    latency_breached_before = False
    while True:
        sleep(POLL_S)
        now_canary, now_stable = canary.read_sides()
        elapsed = clock() - start
        canary_window, stable_window = now_canary.minus(canary0), now_stable.minus(stable0)
        # At 100 % the stable side has no traffic: it is judged against the last window that had.
        enough_stable = stable_window.requests >= max(thresholds.min_requests, 1)
        baseline = stable_window if enough_stable else reference
        final = elapsed >= settings.step_seconds
        verdict = judge(canary_window, baseline, thresholds, final)
        # A p99 over a step's first seconds rests on a few requests, and a busy host's hiccup
        # moves it (a good release read 533 ms against 99 ms at 3 s in a CI run): while the
        # step runs a latency abort needs two looks in a row. Errors have their own stricter
        # bound for interim looks; the step's final look decides alone.
        held = (
            verdict.decision is Decision.ABORT
            and not final
            and not verdict.error_breach
            and not latency_breached_before
        )
        latency_breached_before = verdict.latency_breach
        output.errors.print(
            f"step {step.index} ({step.weight} %) {elapsed:.0f}s: canary "
            f"{int(canary_window.errors)}/{int(canary_window.requests)} 5xx, "
            f"p99 {_ms(verdict.canary_p99_ms)}; stable {int(baseline.errors)}/"
            f"{int(baseline.requests)} 5xx, p99 {_ms(verdict.stable_p99_ms)}"
            + ("; slower: looking again before aborting" if held else "")
        )
        if held:
            continue
        overtime = elapsed >= settings.step_seconds * EXTEND_FACTOR
        if verdict.decision in (Decision.ABORT, Decision.PROMOTE) or (
            verdict.decision is Decision.NOT_ENOUGH_DATA and overtime
        ):
            return StepReport(step, elapsed, canary_window, baseline, verdict)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def leftovers(running: RunningStack) -> tuple[Path, list[str]]:
    """A routing file or canary containers of an earlier run that did not finish."""
    path = routing_file(dynamic_dir(running), running.project)
    every = project_containers(running.docker, running.project, CANARY_SERVICE, True)
    return path, [c.name for c in every]


@holds_operation_lease("hactl rollout --abort-canary")
def abort_canary(running: RunningStack) -> list[StoppedReplica]:
    """Switch all traffic back to the stable side and remove the canary (a left-over one)."""
    require_running(running)
    canary = Canary(running)
    canary.unroute()
    return canary.stop()


@holds_operation_lease("hactl rollout --canary")  # the self-healing controller stands off
def canary_rollout(running: RunningStack, image: str, settings: CanarySettings) -> CanaryResult:
    validate_settings(settings)
    require_image(running.docker, image)
    require_running(running)
    path, names = leftovers(running)
    if path.exists() or names:
        raise HactlError(
            f"a canary of {running.project} is running or was left over "
            f"({path.name if path.exists() else 'no routing file'}; {', '.join(names) or 'no'} "
            "canary containers)",
            "if no other hactl runs, remove it with `hactl rollout --abort-canary`",
        )
    stable = sorted(web_containers(running), key=container_number)
    result = CanaryResult(image=image, previous_image=stable[0].config.image)
    start = time.monotonic()
    canary = Canary(running)
    canary.discover_routes()
    if settings.migrate:
        migrate_or_fail(running, image)
    reference0 = canary.read_sides()[1]
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        steps = plan_steps(settings.steps, len(stable))
        result.started += canary.scale(steps[0].replicas, image, settings.timeout)
        canary.route(0)  # the routers' copies and the smoke router; no client on the canary yet
        result.smoke_replicas = canary.smoke_check()
        reference = canary.read_sides()[1].minus(reference0)
        for step in steps:
            result.started += canary.scale(step.replicas, image, settings.timeout)
            canary.route(step.weight)
            report = watch_step(canary, step, settings, reference)
            result.steps.append(report)
            if report.verdict.decision is not Decision.PROMOTE:
                raise _StepFailedError(report)
            if step.weight < FULL and report.stable.requests:
                reference = report.stable
        _promote(running, canary, stable, image, settings, result)
    except BaseException as error:  # Ctrl-C too: never leave clients on a half-done canary
        result.stopped += _switch_back(canary)
        result.seconds = time.monotonic() - start
        aborted = _aborted(error, result)
        if aborted is None:
            raise
        raise aborted from error
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    result.stopped += canary.stop()
    result.promoted = True
    result.seconds = time.monotonic() - start
    record_state(running.stack, WEB_IMAGE=image, WEB_REPLICAS=str(len(stable)))
    return result


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a CI timeout, `kill`) ends the canary like Ctrl-C: switched back, then exit."""
    raise KeyboardInterrupt(f"signal {signum}")


class _StepFailedError(Exception):
    def __init__(self, report: StepReport) -> None:
        super().__init__("; ".join(report.verdict.reasons))
        self.report = report


def _promote(
    running: RunningStack,
    canary: Canary,
    stable: list[Any],
    image: str,
    settings: CanarySettings,
    result: CanaryResult,
) -> None:
    """The canary carries all the traffic: replace the stable replicas by the new image, then
    send every client back to `web` (now the new image) and let the canary go."""
    progress = RolloutResult(image=image, previous_image=result.previous_image)
    replaced: list[str] = []
    try:
        replace_replicas(
            running,
            [c.name for c in stable],
            image,
            settings.batch_size,
            settings.timeout,
            progress,
            replaced,
        )
    except BatchFailedError as failure:
        if replaced:  # put the old image back where it was replaced, then give up
            replace_replicas(
                running,
                replaced,
                result.previous_image,
                settings.batch_size,
                settings.timeout,
                progress,
                [],
            )
        raise HactlError(f"promotion: {failure.reason}") from failure
    finally:
        result.started += progress.started
        result.stopped += progress.stopped
    canary.unroute()


def _switch_back(canary: Canary) -> list[StoppedReplica]:
    """All traffic to the stable side first (one reload), then the canary goes."""
    try:
        canary.unroute()
    except (WaitFailedError, OSError) as error:
        output.warn(f"removing the canary's routing: {error}")
    return canary.stop()


def _aborted(error: BaseException, result: CanaryResult) -> CanaryAbortedError | None:
    """The error the caller sees once the canary is gone; None: re-raise the original (a bug,
    an interrupt)."""
    hint = f"every client is on {result.previous_image} again; the canary was removed"
    if isinstance(error, _StepFailedError):
        step = error.report.step
        return CanaryAbortedError(
            f"canary aborted at step {step.index} ({step.weight} %): {error}", hint, result
        )
    if isinstance(error, OPERATION_ERRORS):
        message = error.message if isinstance(error, HactlError) else str(error)
        return CanaryAbortedError(f"canary aborted: {message}", hint, result)
    return None
