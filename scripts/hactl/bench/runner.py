"""`hactl bench`: speed, scaling and cost of the running HA stack, side by side, in one run.

Order of a run (every step bounded; the stack ends with the replica count it started with):
1. versions, machine (cores, load average), memory of every replica at idle;
2. for each replica count (1, 3, 5; scaled with hactl's drain-aware scale, each scale timed):
   the idle CPU of every container over a window with no load (hactl.bench.idle); then wrk
   saturation runs at each concurrency, whoami GETs and chat POSTs, through the project's
   Traefik (`http://traefik:80`), through a plain Traefik of the same image over the same
   replicas (hactl.bench.plain) and, at the first count, direct to one replica
   (`http://<ip>:8000`), alternating the paths so that drift in the machine's load hits all
   alike; memory under load is read during the 3-replica runs at the highest concurrency;
3. back to 3 replicas: latency percentiles with hactl's open-loop loadgen at a moderate rate
   through Traefik's published port; an unready replica leaving the rotation (and coming back);
   a 3-replica rollout to the same image under a new tag, and back to the original image;
4. the result file `results/bench/<timestamp>.json`, plots, and the targets table.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from hactl.bench.idle import IdleCpu, idle_summary, measure_idle_cpu
from hactl.bench.memory import ReplicaMemory, sample_memory
from hactl.bench.plain import PLAIN_SERVICE, plain_traefik
from hactl.bench.report import (
    evaluate_targets,
    memory_summary,
    plot_latency,
    plot_throughput,
    throughput_summary,
    write_json,
)
from hactl.bench.timings import timed_rollout, timed_scale, timed_unready
from hactl.bench.wrk import DEFAULT_WRK_IMAGE, BenchKind, WrkResult, WrkSpec, run_wrk, wrk_version
from hactl.errors import OPERATION_ERRORS, HactlError, InvalidInputError, describe
from hactl.loadgen.generator import CONVERSATIONS_PATH, LoadConfig, WorkloadMix, run_load
from hactl.ops.preflight import require_image, require_running
from hactl.stack.endpoints import Endpoints
from hactl.stack.project import (
    LABEL_SERVICE,
    TRAEFIK_SERVICES,
    Stack,
    container_number,
    project_containers,
)
from hactl.stack.project import RESULTS_DIR as PROJECT_RESULTS_DIR
from hactl.stack.replicas import container_facts, web_containers, whoami_version
from hactl.stack.running import RunningStack
from hactl.validation import validate_replica_count

SCHEMA = 1
RESULTS_DIR = PROJECT_RESULTS_DIR / "bench"
MEMORY_REPLICAS = 3  # memory under load is read with this many replicas (or the nearest count)


@dataclass(frozen=True)
class BenchConfig:
    replicas: tuple[int, ...] = (1, 3, 5)
    connections: tuple[int, ...] = (2, 8, 32)
    duration_s: float = 8.0
    threads: int = 2
    p99_budget_ms: float = 50.0
    latency_rate: float = 50.0
    latency_duration_s: float = 10.0
    unready_trials: int = 3
    rollouts: int = 2  # 1: to the new tag only; 2: and back to the original image
    timeout_s: float = 120.0
    conversations: int = 4
    plain: bool = True  # also through a plain Traefik over the same replicas
    idle_window_s: float = 10.0  # idle CPU window at each replica count (0: none)

    @classmethod
    def quick(cls) -> BenchConfig:
        """The tiny configuration: a few hundred requests per section, every section once."""
        return cls(
            connections=(4,),
            duration_s=1.0,
            latency_rate=20.0,
            latency_duration_s=2.0,
            unready_trials=1,
            rollouts=1,
            idle_window_s=3.0,
        )

    def validate(self) -> None:
        if not self.replicas or not self.connections:
            raise InvalidInputError("give at least one replica count and one concurrency")
        for n in self.replicas:
            validate_replica_count(n)
        if min(self.connections) < 1 or self.duration_s <= 0 or self.latency_rate <= 0:
            raise InvalidInputError("connections, durations and rates must be positive")
        if self.latency_duration_s <= 0 or self.timeout_s <= 0:
            raise InvalidInputError("durations and timeouts must be positive")
        if self.idle_window_s < 0:
            raise InvalidInputError("the idle window cannot be negative")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchOutcome:
    result: dict[str, Any]
    json_path: Path
    plots: list[Path] = field(default_factory=list)


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _replica_names(running: RunningStack) -> list[str]:
    return [c.name for c in sorted(web_containers(running), key=container_number)]


def collect_versions(running: RunningStack, wrk_image: str) -> dict[str, Any]:
    docker, endpoints = running.docker, running.endpoints
    versions: dict[str, Any] = {
        "python_on_whales": metadata.version("python-on-whales"),
        "wrk_image": wrk_image,
    }
    try:
        response = httpx.get(
            endpoints.traefik_api_url + "/api/version",
            timeout=3,
            auth=("admin", endpoints.dashboard_password),
        )
        versions["traefik"] = response.json().get("Version")
    except (httpx.HTTPError, ValueError):
        versions["traefik"] = None
    with contextlib.suppress(DockerException, AttributeError):
        versions["engine"] = docker.version().server.version
    with contextlib.suppress(DockerException):
        versions["compose"] = str(docker.compose.version()).strip()
    names = _replica_names(running)
    if names:
        replica = docker.container.inspect(names[0])
        versions["backend"] = whoami_version(docker, names[0])
        versions["backend_image"] = replica.config.image
        versions["backend_image_id"] = replica.image
    versions["wrk"] = wrk_version(docker, wrk_image)
    return versions


def create_conversations(endpoints: Endpoints, count: int) -> list[str]:
    """Conversations the chat POSTs write into (through Traefik's published port)."""
    ids = []
    headers = {"Authorization": f"Bearer {endpoints.api_token}"}
    with httpx.Client(base_url=endpoints.load_balancer_url, headers=headers, timeout=10) as c:
        for i in range(count):
            response = c.post(CONVERSATIONS_PATH, json={"title": f"bench {i}"})
            if response.status_code not in (200, 201):
                raise HactlError(
                    f"could not create a conversation: HTTP "
                    f"{response.status_code} {response.text[:200]}",
                    "check `hactl verify` and the API token in secrets/api_tokens",
                )
            ids.append(str(response.json()["id"]))
    return ids


class _DuringLoad:
    """Reads, once and `delay` seconds into a run (in a background thread), the CPU use of
    Traefik and the replicas (`docker stats`) and, when asked, the replicas' memory."""

    def __init__(
        self, docker: DockerClient, names: list[str], traefik: list[str], delay: float, memory: bool
    ) -> None:
        self.readings: list[ReplicaMemory] = []
        self.cpu_percent: dict[str, float] = {}
        self._thread = threading.Thread(
            target=self._run, args=(docker, names, traefik, delay, memory), daemon=True
        )

    def _run(
        self, docker: DockerClient, names: list[str], traefik: list[str], delay: float, memory: bool
    ) -> None:
        time.sleep(delay)
        with contextlib.suppress(Exception):
            self.cpu_percent = {
                s.container_name: float(s.cpu_percentage or 0)
                for s in docker.stats([*traefik, *names])
            }
        if memory:
            with contextlib.suppress(Exception):
                self.readings = sample_memory(docker, names)

    def __enter__(self) -> _DuringLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=60)


def _direct_url(running: RunningStack, name: str) -> str:
    container = running.docker.container.inspect(name)
    networks = container.network_settings.networks or {}
    net = networks.get(f"{running.project}_backend")
    ip = net.ip_address if net and net.ip_address else container_facts(container).ips[0]
    return f"http://{ip}:8000"


def _failures(run: WrkResult) -> str:
    bad = {k: v for k, v in run.statuses.items() if not k.startswith("2")}
    bad.update({k: v for k, v in run.errors.items() if v and k != "status"})
    return ", ".join(f"{k}: {v}" for k, v in bad.items())


def _cpu(run: WrkResult) -> str:
    parts = {"traefik": 0.0, PLAIN_SERVICE: 0.0, "web": 0.0}
    for name, value in run.stack_cpu_percent.items():
        key = PLAIN_SERVICE if PLAIN_SERVICE in name else "traefik" if "traefik" in name else "web"
        parts[key] += value
    return " ".join(f"{k} {v:.0f} %" for k, v in parts.items() if v or k != PLAIN_SERVICE)


def _describe(run: WrkResult) -> str:
    return (
        f"{run.target:7} N={run.replicas} {run.kind:9} c={run.connections:<3} "
        f"{run.ok_rps:8.1f} ok req/s  p99 {run.latency_ms['p99']:7.1f} ms  "
        f"wrk CPU {run.generator_cpu_percent:.0f} %"
        + (f"  stack CPU {_cpu(run)}" if run.stack_cpu_percent else "")
        + (f"  not 2xx: {_failures(run)}" if run.ok != run.requests else "")
    )


def _idle_at(running: RunningStack, n: int, window_s: float) -> IdleCpu:
    """CPU of every container of the stack over `window_s` seconds with no load."""
    found = project_containers(running.docker, running.project)
    containers = {c.name: c.id for c in found}
    services = {c.name: c.config.labels.get(LABEL_SERVICE, "") for c in found}
    idle = measure_idle_cpu(containers, services, n, window_s)
    summary = idle_summary([idle.as_dict()])["by_replicas"][str(n)]
    _say(
        f"idle N={n} over {idle.window_s} s: a replica {summary['replica_own_percent']} % "
        f"of a core (its shim {summary['replica_shim_percent']} %), traefik "
        f"{summary['traefik_percent']} %"
    )
    return idle


@dataclass(frozen=True)
class _WrkSession:
    """What every wrk run of one bench shares: the stack, the settings, the wrk image, the token,
    the run id (names of the wrk containers) and the conversations the chat POSTs write to."""

    running: RunningStack
    config: BenchConfig
    image: str
    token: str
    run_id: str
    conversations: list[str]


def _throughput_at(
    session: _WrkSession,
    n: int,
    with_direct: bool,
    memory_readings: list[dict[str, Any]] | None,
) -> list[WrkResult]:
    running, config = session.running, session.config
    docker = running.docker
    names = _replica_names(running)
    with contextlib.ExitStack() as stack:
        targets = [("traefik", "http://traefik:80")]
        if config.plain:
            urls = [_direct_url(running, name) for name in names]
            plain_url = stack.enter_context(
                plain_traefik(docker, running.project, urls, session.token, config.timeout_s)
            )
            targets.insert(0, ("plain", plain_url))
        if with_direct:
            targets.insert(0, ("direct", _direct_url(running, names[0])))
        return _wrk_runs(session, n, targets, memory_readings)


def _wrk_runs(
    session: _WrkSession,
    n: int,
    targets: list[tuple[str, str]],
    memory_readings: list[dict[str, Any]] | None,
) -> list[WrkResult]:
    running, config = session.running, session.config
    docker = running.docker
    names = _replica_names(running)
    network = f"{running.project}_backend"
    # Every instance: the one serving is whichever listened first (docs/load-balancer.md).
    traefik = [
        c.name
        for service in (*TRAEFIK_SERVICES, PLAIN_SERVICE)
        for c in project_containers(docker, running.project, service)
    ]
    top = max(config.connections)
    results = []
    for kind in BenchKind:
        for connections in sorted(config.connections):
            for target, url in targets:
                spec = WrkSpec(target, url, n, kind, connections, config.duration_s, config.threads)
                sampler = None
                with contextlib.ExitStack() as during:
                    if connections == top:
                        memory = memory_readings is not None and target == "traefik"
                        sampler = during.enter_context(
                            _DuringLoad(docker, names, traefik, config.duration_s * 0.4, memory)
                        )
                    run = run_wrk(
                        docker,
                        session.image,
                        network,
                        spec,
                        session.token,
                        session.run_id,
                        session.conversations,
                    )
                if sampler is not None:
                    run.stack_cpu_percent = sampler.cpu_percent
                    if memory_readings is not None:
                        memory_readings.extend(
                            {**m.as_dict(), "kind": kind.value} for m in sampler.readings
                        )
                _say(_describe(run))
                results.append(run)
    return results


def _latency(endpoints: Endpoints, config: BenchConfig) -> dict[str, Any]:
    mixes = {
        "whoami": WorkloadMix(whoami=1, write=0, read=0),
        "chat_post": WorkloadMix(whoami=0, write=1, read=0),
    }
    out: dict[str, Any] = {}
    for kind, mix in mixes.items():
        load = asyncio.run(
            run_load(
                LoadConfig(
                    base_url=endpoints.load_balancer_url,
                    token=endpoints.api_token,
                    rate=config.latency_rate,
                    duration_s=config.latency_duration_s,
                    mix=mix,
                    clients=4,
                    timeout_s=5.0,
                )
            )
        )
        summary = load.summary()
        out[kind] = {
            "rate": config.latency_rate,
            "duration_s": config.latency_duration_s,
            "summary": summary.to_json(),
            "generator_cpu_percent": load.cpu_percent,
            "load_average": _load(),
        }
        _say(
            f"latency {kind} at {config.latency_rate:g} req/s: p50 "
            f"{summary.latency_ms['p50']} ms p90 {summary.latency_ms['p90']} ms p99 "
            f"{summary.latency_ms['p99']} ms ({summary.failed} failed, loadgen CPU "
            f"{load.cpu_percent} %)"
        )
    return out


def restore_replicas(
    running: RunningStack,
    count: int,
    timeout: float,
    scaler: Callable[[RunningStack, int, float], object] = timed_scale,
) -> str | None:
    """Scale back to the count the bench found. A failure (any of OPERATION_ERRORS, a drain
    timeout included) is said and returned, never raised over the bench's own outcome."""
    _say(f"restoring {count} replicas")
    try:
        scaler(running, count, timeout)
    except OPERATION_ERRORS as error:
        message = describe(error)[0]
        _say(f"could not restore {count} replicas: {message}")
        return message
    return None


def run_bench(stack: Stack, config: BenchConfig, out_dir: Path) -> BenchOutcome:
    config.validate()
    running = RunningStack.connect(stack)
    docker, endpoints = running.docker, running.endpoints
    require_running(running)
    if not endpoints.api_token:
        raise HactlError("no API token in secrets/api_tokens", "run `make secrets`")
    wrk_image = stack.env_value("WRK_IMAGE", DEFAULT_WRK_IMAGE)
    require_image(docker, wrk_image)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run_id = started.strftime("%H%M%S") + os.urandom(2).hex()
    clock = time.monotonic()
    initial = len(_replica_names(running))
    original_image = docker.container.inspect(_replica_names(running)[0]).config.image
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "timestamp": started.isoformat(),
        "project": stack.project,
        "config": config.as_dict(),
        "machine": {
            "cores": os.cpu_count(),
            "kernel": platform.release(),
            "load_average_start": _load(),
        },
    }
    _say(
        f"{stack.project}: {initial} replicas, load average "
        f"{result['machine']['load_average_start']} on {os.cpu_count()} cores"
    )
    result["versions"] = collect_versions(running, wrk_image)
    idle = sample_memory(docker, _replica_names(running))
    conversations = create_conversations(endpoints, config.conversations)
    session = _WrkSession(running, config, wrk_image, endpoints.api_token, run_id, conversations)
    runs: list[WrkResult] = []
    idle_windows: list[IdleCpu] = []
    scales: list[dict[str, Any]] = []
    under_load: list[dict[str, Any]] = []
    counts = sorted(set(config.replicas))
    memory_n = min(counts, key=lambda n: (abs(n - MEMORY_REPLICAS), n))
    current: int | None = initial
    try:
        for n in counts:
            if n != current:
                _say(f"scaling {current} → {n}")
                current = None  # unknown until the scale returns: a failed one is restored too
                scales.append(timed_scale(running, n, config.timeout_s).as_dict())
                current = n
                _say(f"scaled {scales[-1]['before']} → {n} in {scales[-1]['seconds']} s")
            if config.idle_window_s > 0:
                idle_windows.append(_idle_at(running, n, config.idle_window_s))
            runs += _throughput_at(
                session, n, n == counts[0], under_load if n == memory_n else None
            )
        if current != 3:
            current = None
            scales.append(timed_scale(running, 3, config.timeout_s).as_dict())
            current = 3
        latency = _latency(endpoints, config)
        unready = []
        names = _replica_names(running)
        for i in range(config.unready_trials):
            timing = timed_unready(running, names[i % len(names)], config.timeout_s)
            _say(
                f"unready {timing.replica}: out of rotation after {timing.leave_seconds} s, "
                f"back after {timing.return_seconds} s"
            )
            unready.append(timing.as_dict())
        rollouts = []
        for i in range(config.rollouts):
            timing = timed_rollout(
                running, config.timeout_s, image=original_image if i % 2 else None
            )
            _say(f"rollout of {timing.replicas} replicas to {timing.image}: {timing.seconds} s")
            rollouts.append(timing.as_dict())
    finally:
        if current != initial:
            result["restore_error"] = restore_replicas(running, initial, config.timeout_s)
    result["throughput"] = {
        "runs": [r.as_dict() for r in runs],
        "summary": throughput_summary([r.as_dict() for r in runs], config.p99_budget_ms),
    }
    result["latency"] = latency
    windows = [w.as_dict() for w in idle_windows]
    result["idle_cpu"] = {
        "windows": windows,
        "summary": idle_summary(windows),
    }
    result["memory"] = {
        "idle": [m.as_dict() for m in idle],
        "load": under_load,
        "idle_summary": memory_summary([m.as_dict() for m in idle]),
        "load_summary": memory_summary(under_load),
    }
    result["timings"] = {"scale": scales, "rollouts": rollouts, "unready": unready}
    result["generator"] = {
        "wrk_max_cpu_percent": max((r.generator_cpu_percent for r in runs), default=0.0),
        "loadgen_max_cpu_percent": max(v["generator_cpu_percent"] for v in latency.values()),
    }
    limited = sum(r.statuses.get("429", 0) for r in runs)
    result["warnings"] = []
    if limited:
        result["warnings"].append(
            f"Traefik's rate limit answered 429 to {limited} requests: those runs measure the "
            "limit, not the stack; bench a stack started with RATE_LIMIT_AVERAGE=1000000 "
            "RATE_LIMIT_BURST=1000000"
        )
    for warning in result["warnings"]:
        _say(f"warning: {warning}")
    result["machine"]["load_average_end"] = _load()
    result["seconds"] = round(time.monotonic() - clock, 1)
    result["targets"] = [t.as_dict() for t in evaluate_targets(result)]
    json_path = out_dir / f"{stamp}.json"
    write_json(result, json_path)
    plots = [out_dir / f"{stamp}-throughput.png", out_dir / f"{stamp}-latency.png"]
    plot_throughput(result["throughput"]["summary"], plots[0], config.p99_budget_ms)
    plot_latency(latency, plots[1])
    return BenchOutcome(result, json_path, plots)
