"""Open-loop, constant-rate load generator for the compose-ha API.

Request ``i`` is scheduled at ``t0 + i / rate`` and leaves on schedule even when earlier
responses are slow (one task per request); its latency is counted from the intended send
time, so a stalled backend shows up as latency instead of as a lower request rate.
Every run is bounded by a request count and a wall-clock deadline.

The workload mixes ``whoami`` GETs, chat message POSTs (each with a unique
``Idempotency-Key`` and a unique content token, so that the write-set check can find every
write in PostgreSQL) and message-list reads. Every request is recorded (see
:class:`RequestRecord`); :func:`summarize` turns records into a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx

API_PREFIX = "/api/v1"
WHOAMI_PATH = f"{API_PREFIX}/whoami"
CONVERSATIONS_PATH = f"{API_PREFIX}/conversations"
CHAT_PATH = f"{API_PREFIX}/chat"
REPLICA_HEADERS = ("x-replica", "x-served-by")
CONTENT_TOKEN_PREFIX = "lg"


class RequestKind(StrEnum):
    WHOAMI = "whoami"
    WRITE = "write"  # POST a message to a conversation
    READ = "read"
    CHAT = "chat"  # POST /api/v1/chat: a message and the assistant's reply (ASSISTANT_LATENCY_MS)


# Kinds that store a message under a unique content token, with an Idempotency-Key.
WRITE_KINDS = frozenset({RequestKind.WRITE, RequestKind.CHAT})


@dataclass(frozen=True)
class WorkloadMix:
    """Relative weights of the request kinds (they need not sum to 1)."""

    whoami: float = 0.5
    write: float = 0.3
    read: float = 0.2
    chat: float = 0.0

    def __post_init__(self) -> None:
        weights = self.weights()
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"workload weights must be >= 0 and not all 0, got {weights}")

    @classmethod
    def parse(cls, text: str) -> WorkloadMix:
        """Parse ``"whoami=5,write=3,read=2"`` (missing kinds weigh 0)."""
        weights = {kind.value: 0.0 for kind in RequestKind}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            if name.strip() not in weights:
                raise ValueError(f"unknown request kind {name!r} in mix {text!r}")
            weights[name.strip()] = float(value)
        return cls(**weights)

    def weights(self) -> tuple[float, ...]:
        """The weights in the order of ``RequestKind``."""
        return tuple(getattr(self, kind.value) for kind in RequestKind)

    def pick(self, rng: random.Random) -> RequestKind:
        return rng.choices(list(RequestKind), weights=self.weights())[0]


@dataclass
class LoadConfig:
    base_url: str
    token: str | None = None
    rate: float = 100.0
    duration_s: float = 30.0
    max_requests: int | None = None
    timeout_s: float = 5.0
    mix: WorkloadMix = field(default_factory=WorkloadMix)
    clients: int = 20
    sticky: bool = False
    # One browser: the first ``browser_clients`` virtual clients share one cookie jar seeded
    # with ``browser_cookie`` ({name: value}), as one browser's many connections do, so a re-pin
    # by Traefik's Set-Cookie is seen by all of them at once; the other clients send no cookie.
    # A fault aimed at the replica this cookie names is what a real user pinned there sees.
    browser_cookie: dict[str, str] | None = None
    browser_clients: int = 0
    concurrency: int = 1000
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    seed: int | None = None
    log_path: Path | None = None
    read_limit: int = 20
    setup_timeout_s: float = 60.0

    def request_count(self) -> int:
        scheduled = math.ceil(self.rate * self.duration_s)
        return scheduled if self.max_requests is None else min(scheduled, self.max_requests)

    def hard_deadline_s(self) -> float:
        """Seconds after t0 after which unfinished requests are cancelled."""
        return self.duration_s + self.timeout_s + 2.0


@dataclass
class RequestRecord:
    """One request; times are seconds since the run's t0 (monotonic clock)."""

    seq: int
    client: int
    kind: str
    method: str
    path: str
    intended_s: float
    sent_s: float | None = None
    done_s: float | None = None
    latency_s: float | None = None
    status: int | None = None
    error: str | None = None
    replica: str | None = None
    idempotency_key: str | None = None
    content_token: str | None = None
    response_id: str | None = None
    retry_after: str | None = None
    set_cookie: str | None = None
    acknowledged: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def failure_kind(self) -> str | None:
        if self.ok:
            return None
        if self.status is not None:
            return f"HTTP {self.status}"
        return self.error.split(":", 1)[0] if self.error else "unknown"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestRecord:
        return cls(**data)


def schedule_offsets(rate: float, count: int) -> list[float]:
    """Intended send offsets (seconds after t0) of an open-loop run: ``i / rate``."""
    if rate <= 0:
        raise ValueError("rate must be > 0")
    return [i / rate for i in range(count)]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); ``None`` for no values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_stats_ms(latencies_s: Iterable[float]) -> dict[str, float | None]:
    values = [v * 1000 for v in latencies_s]
    return {
        "p50": _round(percentile(values, 50)),
        "p90": _round(percentile(values, 90)),
        "p99": _round(percentile(values, 99)),
        "max": _round(max(values) if values else None),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass
class LoadSummary:
    total: int
    succeeded: int
    failed: int
    success_ratio: float
    failures_by_kind: dict[str, int]
    latency_ms: dict[str, float | None]
    replica_share: dict[str, float]
    requests_by_kind: dict[str, int]
    writes_acknowledged: int
    span_s: float
    achieved_rate: float
    # How late requests left compared with their schedule: large values mean the generator
    # itself was starved of CPU, and latencies include that delay.
    send_lag_ms: dict[str, float | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(records: Sequence[RequestRecord]) -> LoadSummary:
    """Aggregate request records (pure: no I/O)."""
    total = len(records)
    succeeded = sum(1 for r in records if r.ok)
    failures = Counter(kind for r in records if (kind := r.failure_kind) is not None)
    replicas = Counter(r.replica for r in records if r.ok and r.replica)
    served = sum(replicas.values())
    span = max((r.intended_s for r in records), default=0.0) - min(
        (r.intended_s for r in records), default=0.0
    )
    return LoadSummary(
        total=total,
        succeeded=succeeded,
        failed=total - succeeded,
        success_ratio=round(succeeded / total, 6) if total else 1.0,
        failures_by_kind=dict(failures.most_common()),
        latency_ms=latency_stats_ms(r.latency_s for r in records if r.latency_s is not None),
        replica_share={k: round(v / served, 4) for k, v in sorted(replicas.items())},
        requests_by_kind=dict(Counter(r.kind for r in records)),
        writes_acknowledged=sum(1 for r in records if r.kind in WRITE_KINDS and r.acknowledged),
        span_s=round(span, 3),
        achieved_rate=round((total - 1) / span, 2) if span > 0 else float(total),
        send_lag_ms=latency_stats_ms(
            r.sent_s - r.intended_s for r in records if r.sent_s is not None
        ),
    )


def write_records(records: Iterable[RequestRecord], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record.to_json(), separators=(",", ":")) + "\n")


def read_records(path: Path) -> list[RequestRecord]:
    with path.open(encoding="utf-8") as src:
        return [RequestRecord.from_json(json.loads(line)) for line in src if line.strip()]


def content_token(run_id: str, seq: int) -> str:
    """The unique message content of write ``seq``; the write check searches for it."""
    return f"{CONTENT_TOKEN_PREFIX}-{run_id}-{seq:07d}"


def content_token_pattern(run_id: str) -> str:
    """SQL LIKE pattern matching every content token of one run."""
    return f"{CONTENT_TOKEN_PREFIX}-{run_id}-%"


def _no_cookies_jar() -> CookieJar:
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _browser_jar(base_url: str, cookie: dict[str, str]) -> CookieJar:
    """One jar for every connection (httpx keeps the jar object, it does not copy it)."""
    cookies = httpx.Cookies()
    host = httpx.URL(base_url).host
    for name, value in cookie.items():
        cookies.set(name, value, domain=host)
    return cookies.jar


@dataclass
class LoadResult:
    config: LoadConfig
    records: list[RequestRecord]
    t0_wall: float
    wall_s: float
    cpu_s: float

    @property
    def cpu_percent(self) -> float:
        """CPU used by this process over the run, in percent of one core."""
        return round(100 * self.cpu_s / self.wall_s, 1) if self.wall_s > 0 else 0.0

    def summary(self) -> LoadSummary:
        return summarize(self.records)


class LoadGenerator:
    """Runs one bounded open-loop load; ``started`` is set at t0 (``t0`` is monotonic)."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.started = asyncio.Event()
        self.t0: float = 0.0
        self.records: list[RequestRecord] = []
        self._rng = random.Random(config.seed)
        self._conversations: list[str] = []
        self._clients: list[httpx.AsyncClient] = []
        self._finish_s = config.duration_s

    def elapsed(self) -> float:
        """Seconds since t0 on the generator's clock (``time.monotonic``)."""
        return time.monotonic() - self.t0

    def finish_at(self, offset_s: float) -> None:
        """End the run early: nothing is sent after ``offset_s`` seconds of it (callable from
        another thread; never extends the configured duration)."""
        self._finish_s = min(self._finish_s, offset_s)

    async def run(self) -> LoadResult:
        cfg = self.config
        headers = {"Authorization": f"Bearer {cfg.token}"} if cfg.token else {}
        n_clients = max(1, cfg.clients)
        # One connection pool per virtual client: httpcore's pool does work linear in its
        # number of connections on every request, so one pool with hundreds of connections
        # (a stalled backend at 100+ req/s) would stall the event loop and the schedule.
        transports = [
            httpx.AsyncHTTPTransport(
                limits=httpx.Limits(
                    max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency
                )
            )
            for _ in range(n_clients)
        ]
        browser_jar = _browser_jar(cfg.base_url, cfg.browser_cookie or {})
        self._clients = [
            httpx.AsyncClient(
                base_url=cfg.base_url,
                transport=transport,
                headers=headers,
                timeout=cfg.timeout_s + 1.0,  # the per-request total in _send fires first
                cookies=browser_jar
                if index < cfg.browser_clients
                else (None if cfg.sticky else _no_cookies_jar()),
            )
            for index, transport in enumerate(transports)
        ]
        try:
            if cfg.mix.write > 0 or cfg.mix.read > 0:
                await self._create_conversations()
            return await self._run_open_loop()
        finally:
            for transport in transports:
                await transport.aclose()

    async def _create_conversations(self) -> None:
        deadline = time.monotonic() + self.config.setup_timeout_s
        for client in self._clients:
            while True:
                try:
                    response = await client.post(CONVERSATIONS_PATH, json={"title": "loadgen"})
                    if response.status_code in (200, 201):
                        self._conversations.append(str(response.json()["id"]))
                        break
                    problem = f"HTTP {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    raise RuntimeError(f"could not create a conversation: {problem}")
                await asyncio.sleep(0.5)

    async def _run_open_loop(self) -> LoadResult:
        cfg = self.config
        count = cfg.request_count()
        limiter = asyncio.Semaphore(cfg.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        cpu_start = time.process_time()
        self.t0 = time.monotonic() + 0.05
        t0_wall = time.time() + 0.05
        self.started.set()
        hard_deadline = self.t0 + cfg.hard_deadline_s()
        for seq, offset in enumerate(schedule_offsets(cfg.rate, count)):
            delay = self.t0 + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if offset > self._finish_s or time.monotonic() > hard_deadline:
                break
            record = self._new_record(seq, offset)
            self.records.append(record)
            task = asyncio.create_task(self._send(record, limiter))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            remaining = max(0.0, hard_deadline - time.monotonic())
            _, pending = await asyncio.wait(set(tasks), timeout=remaining)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
        for record in self.records:
            if record.status is None and record.error is None:
                record.error = "Cancelled: still running at the run's hard deadline"
        wall = time.monotonic() - self.t0
        result = LoadResult(
            config=cfg,
            records=self.records,
            t0_wall=t0_wall,
            wall_s=wall,
            cpu_s=time.process_time() - cpu_start,
        )
        if cfg.log_path is not None:
            write_records(self.records, cfg.log_path)
        return result

    def _new_record(self, seq: int, offset: float) -> RequestRecord:
        cfg = self.config
        kind = cfg.mix.pick(self._rng) if self._conversations else RequestKind.WHOAMI
        client = seq % len(self._clients)
        if kind is RequestKind.WHOAMI:
            return RequestRecord(seq, client, kind.value, "GET", WHOAMI_PATH, offset)
        path = f"{CONVERSATIONS_PATH}/{self._conversation(client)}/messages"
        if kind is RequestKind.READ:
            return RequestRecord(seq, client, kind.value, "GET", path, offset)
        return RequestRecord(
            seq,
            client,
            kind.value,
            "POST",
            CHAT_PATH if kind is RequestKind.CHAT else path,
            offset,
            idempotency_key=str(uuid.uuid4()),
            content_token=content_token(cfg.run_id, seq),
        )

    def _conversation(self, client: int) -> str:
        """The conversation a virtual client writes to and reads from."""
        return self._conversations[client % len(self._conversations)]

    async def _send(self, record: RequestRecord, limiter: asyncio.Semaphore) -> None:
        client = self._clients[record.client]
        async with limiter:
            record.sent_s = time.monotonic() - self.t0
            try:
                # httpx's timeout bounds each phase (connect, write, each read); this bounds
                # the whole request, so a trickling or stalled response cannot outlive it.
                async with asyncio.timeout(self.config.timeout_s):
                    response = await self._request(client, record)
            except TimeoutError:
                record.error = f"Timeout: no complete response within {self.config.timeout_s} s"
            except (httpx.HTTPError, OSError) as exc:
                record.error = f"{type(exc).__name__}: {exc}"[:300]
            else:
                record.status = response.status_code
                record.retry_after = response.headers.get("retry-after")
                record.replica = _replica_of(response)
                if self.config.browser_cookie and record.client < self.config.browser_clients:
                    # A re-pin: the balancer gave this browser a new sticky cookie.
                    record.set_cookie = next(
                        (
                            response.cookies[n]
                            for n in self.config.browser_cookie
                            if n in response.cookies
                        ),
                        None,
                    )
                if record.ok and record.method == "POST":
                    record.acknowledged = True
                    record.response_id = _response_id(response)
            finally:
                record.done_s = time.monotonic() - self.t0
                record.latency_s = record.done_s - record.intended_s

    async def _request(self, client: httpx.AsyncClient, record: RequestRecord) -> httpx.Response:
        if record.method == "POST":
            body: dict[str, str | None] = {"content": record.content_token}
            if record.kind == RequestKind.CHAT:
                body = {
                    "conversation_id": self._conversation(record.client),
                    "message": record.content_token,
                }
            return await client.post(
                record.path, json=body, headers={"Idempotency-Key": record.idempotency_key or ""}
            )
        if record.kind == RequestKind.READ:
            return await client.get(record.path, params={"limit": self.config.read_limit})
        return await client.get(record.path)


def _replica_of(response: httpx.Response) -> str | None:
    for name in REPLICA_HEADERS:
        if value := response.headers.get(name):
            return value
    if response.request.url.path == WHOAMI_PATH and response.status_code == 200:
        with contextlib.suppress(ValueError, AttributeError):
            replica = response.json().get("replica")
            return str(replica) if replica else None
    return None


def _response_id(response: httpx.Response) -> str | None:
    """The stored message's id: a chat turn answers with ``user_message``, a message with
    itself."""
    with contextlib.suppress(ValueError, AttributeError):
        body = response.json()
        value = (body.get("user_message") or body).get("id")
        return None if value is None else str(value)
    return None


async def run_load(config: LoadConfig) -> LoadResult:
    return await LoadGenerator(config).run()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hactl.loadgen", description="Open-loop constant-rate load."
    )
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", default=None, help="bearer token")
    parser.add_argument("--token-file", type=Path, default=None, help="first line is the token")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--mix", default="whoami=5,write=3,read=2")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--sticky", action="store_true", help="one cookie jar per client")
    parser.add_argument("--log", type=Path, default=None, help="JSONL file of every request")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    token = args.token
    if token is None and args.token_file is not None:
        token = args.token_file.read_text(encoding="utf-8").split()[0]
    config = LoadConfig(
        base_url=args.url,
        token=token,
        rate=args.rate,
        duration_s=args.duration,
        max_requests=args.max_requests,
        timeout_s=args.timeout,
        mix=WorkloadMix.parse(args.mix),
        clients=args.clients,
        sticky=args.sticky,
        log_path=args.log,
    )
    result = asyncio.run(run_load(config))
    output = {
        "run_id": config.run_id,
        "summary": result.summary().to_json(),
        "generator_cpu_percent_of_one_core": result.cpu_percent,
    }
    print(json.dumps(output, indent=2))
    return 0 if result.summary().failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
