"""Closed-loop saturation runs with wrk (compiled, LuaJIT), from a container on the stack's network.

Replicas publish no host port, so the generator runs in a throwaway container on
`<project>_backend`: it reaches one replica directly at `http://<ip>:8000` and Traefik at
`http://traefik:80` from the same place, which makes the two numbers comparable.

A Lua script (made here) sets the bearer token, gives every chat POST its own Idempotency-Key,
counts responses per replica (the `X-Replica` header) and per status, and prints one JSON line
(`BENCH_RESULT {...}`) from wrk's `done()`. The container's shell prints its own
`/proc/self/stat` after wrk exits: the children's CPU time in it is the generator's CPU use.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from hactl.errors import HactlError

RESULT_MARKER = "BENCH_RESULT "
STAT_MARKER = "BENCH_STAT "
NO_REPLICA = "none"  # responses without X-Replica (e.g. Traefik's own 429/502)
DEFAULT_WRK_IMAGE = "compose-ha/wrk:4.1.0"


class BenchKind(StrEnum):
    WHOAMI = "whoami"  # GET /api/v1/whoami
    CHAT_POST = "chat_post"  # POST /api/v1/conversations/{id}/messages, one key per request


LUA_COMMON = r"""
local threads = {}
replicas = {}
statuses = {}
counter = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  kind = os.getenv("BENCH_KIND")
  run_id = os.getenv("BENCH_RUN")
  conversations = {}
  for c in string.gmatch(os.getenv("BENCH_CONVERSATIONS") or "", "[^,]+") do
    table.insert(conversations, c)
  end
  auth = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
  wrk.headers["Authorization"] = auth
  wrk.path = "/api/v1/whoami"
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local r = headers["X-Replica"] or headers["x-replica"] or "none"
  replicas[r] = (replicas[r] or 0) + 1
end

local function object(t)
  local parts = {}
  for k, v in pairs(t) do
    table.insert(parts, string.format('"%s":%d', tostring(k), v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local reps, sts = {}, {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("replicas") or {}) do reps[k] = (reps[k] or 0) + v end
    for k, v in pairs(t:get("statuses") or {}) do
      local key = tostring(k)
      sts[key] = (sts[key] or 0) + v
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},' ..
    '"replicas":%s,"statuses":%s}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, object(reps), object(sts)))
end
"""

# Only the POST script defines request(): a script without it sends one pre-built request,
# which keeps the GET runs as cheap for the generator as plain wrk.
LUA_POST_REQUEST = r"""
function request()
  counter = counter + 1
  local conversation = conversations[(id + counter) % #conversations + 1]
  local headers = {
    ["Authorization"] = auth,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("bench-%s-%d-%d", run_id, id, counter),
  }
  local body = string.format('{"content":"bench %s %d %d"}', run_id, id, counter)
  return wrk.format("POST", "/api/v1/conversations/" .. conversation .. "/messages",
                    headers, body)
end
"""


def lua_script(kind: BenchKind) -> str:
    return LUA_COMMON + (LUA_POST_REQUEST if kind is BenchKind.CHAT_POST else "")


# `$$` is the shell: after `wait`, its cutime/cstime hold wrk's CPU time.
SHELL_WRAPPER = (
    'printf "%s" "$BENCH_LUA" > /tmp/bench.lua && wrk "$@"; rc=$?; '
    'printf "BENCH_STAT %s\\n" "$(cat /proc/$$/stat)"; exit $rc'
)


@dataclass(frozen=True)
class WrkSpec:
    """One wrk run: who to hit, with what, how hard, for how long."""

    target: str  # "traefik" or "direct"
    url: str  # http://traefik:80 or http://<replica ip>:8000
    replicas: int  # replicas in the stack during the run
    kind: BenchKind
    connections: int
    duration_s: float
    threads: int = 2
    timeout_s: float = 5.0

    def wrk_args(self) -> list[str]:
        threads = max(1, min(self.threads, self.connections))
        return [
            "-t",
            str(threads),
            "-c",
            str(self.connections),
            "-d",
            f"{self.duration_s:g}s",
            "--timeout",
            f"{self.timeout_s:g}s",
            "-s",
            "/tmp/bench.lua",
            self.url,
        ]


@dataclass
class WrkResult:
    target: str
    replicas: int
    kind: str
    connections: int
    threads: int
    duration_s: float
    requests: int
    ok: int
    rps: float
    ok_rps: float
    latency_ms: dict[str, float]
    errors: dict[str, int]
    statuses: dict[str, int]
    replica_counts: dict[str, int]
    replica_share: dict[str, float]
    generator_cpu_s: float
    generator_cpu_percent: float  # of one core, over the run
    load_average: list[float] = field(default_factory=list)
    # docker stats during the run (runs at the highest concurrency): Traefik and the replicas
    stack_cpu_percent: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_proc_stat_children_cpu(stat_line: str, clock_ticks: int = 100) -> float:
    """CPU seconds (user + system) of the waited-for children from a /proc/<pid>/stat line."""
    rest = stat_line.rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state); cutime and cstime are fields 16 and 17.
    return (int(rest[13]) + int(rest[14])) / clock_ticks


def parse_wrk_output(output: str, spec: WrkSpec, clock_ticks: int = 100) -> WrkResult:
    """Turn the container's output (wrk's text, our JSON line, the stat line) into a result."""
    data: dict[str, Any] | None = None
    cpu_s = 0.0
    for line in output.splitlines():
        if line.startswith(RESULT_MARKER):
            data = json.loads(line[len(RESULT_MARKER) :])
        elif line.startswith(STAT_MARKER):
            cpu_s = parse_proc_stat_children_cpu(line[len(STAT_MARKER) :], clock_ticks)
    if data is None:
        raise HactlError(
            f"wrk printed no result for {spec.target} {spec.kind}: {output.strip()[-500:]}",
            "check the wrk image (WRK_IMAGE)",
        )
    seconds = data["duration_us"] / 1e6 or spec.duration_s
    statuses = {str(k): int(v) for k, v in sorted(data["statuses"].items())}
    ok = sum(v for k, v in statuses.items() if 200 <= int(k) < 300)
    counts = {str(k): int(v) for k, v in sorted(data["replicas"].items())}
    total = sum(counts.values())
    lat = data["latency_us"]
    return WrkResult(
        target=spec.target,
        replicas=spec.replicas,
        kind=spec.kind.value,
        connections=spec.connections,
        threads=max(1, min(spec.threads, spec.connections)),
        duration_s=round(seconds, 3),
        requests=int(data["requests"]),
        ok=ok,
        rps=round(data["requests"] / seconds, 1),
        ok_rps=round(ok / seconds, 1),
        latency_ms={k: round(lat[k] / 1000, 3) for k in ("p50", "p90", "p99", "max", "mean")},
        errors={k: int(v) for k, v in data["errors"].items()},
        statuses=statuses,
        replica_counts=counts,
        replica_share={k: round(v / total, 4) for k, v in counts.items()} if total else {},
        generator_cpu_s=round(cpu_s, 2),
        generator_cpu_percent=round(100 * cpu_s / seconds, 1) if seconds else 0.0,
    )


def run_wrk(
    docker: DockerClient,
    image: str,
    network: str,
    spec: WrkSpec,
    token: str,
    run_id: str,
    conversations: list[str],
) -> WrkResult:
    """Run wrk once in a throwaway container on `network`; bounded by wrk's own -d/--timeout."""
    envs = {
        "BENCH_LUA": lua_script(spec.kind),
        "BENCH_KIND": spec.kind.value,
        "BENCH_TOKEN": token,
        "BENCH_RUN": run_id,
        "BENCH_CONVERSATIONS": ",".join(conversations),
    }
    load = [round(x, 2) for x in os.getloadavg()]
    try:
        output = docker.run(
            image,
            ["-c", SHELL_WRAPPER, "sh", *spec.wrk_args()],
            entrypoint="sh",
            networks=[network],
            remove=True,
            envs=envs,
            pull="never",
            healthcheck=False,
        )
    except DockerException as error:
        raise HactlError(
            f"wrk against {spec.url} failed: {error.stderr or error}",
            "check that the stack runs and WRK_IMAGE exists "
            "(bash scripts/airgap/build_images.sh wrk)",
        ) from error
    result = parse_wrk_output(str(output), spec, os.sysconf("SC_CLK_TCK"))
    result.load_average = load
    return result


def wrk_version(docker: DockerClient, image: str) -> str:
    try:
        output = docker.run(
            image, ["-c", "wrk -v 2>&1 | head -1"], entrypoint="sh", remove=True, pull="never"
        )
    except DockerException:
        return "?"
    words = str(output).split()
    return words[1] if len(words) > 1 else str(output).strip()
