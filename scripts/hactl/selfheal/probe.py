"""Liveness probes: GET http://<replica IP>:<port><path> over the stack network, in parallel.

Like a Kubernetes httpGet probe: any status from 200 to 399 within the timeout is a success.
/healthz touches no database, so a database outage never restarts replicas (every replica
would fail at once and restarting them would not help). A frozen replica accepts the TCP
connection (the kernel's backlog) and never answers: a timeout, hence a failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from hactl.selfheal.decide import Replica


def probe_one(client: httpx.Client, url: str) -> bool:
    try:
        return 200 <= client.get(url).status_code < 400
    except httpx.HTTPError:
        return False


def probe_all(replicas: Sequence[Replica], port: int, path: str, timeout: float) -> dict[str, bool]:
    """Replica id -> probe passed. Each probe is bounded by `timeout` (connect and read)."""
    if not replicas:
        return {}
    with (
        httpx.Client(timeout=httpx.Timeout(timeout), trust_env=False) as client,
        ThreadPoolExecutor(max_workers=min(len(replicas), 16)) as pool,
    ):
        futures = {
            r.id: pool.submit(probe_one, client, f"http://{r.ip}:{port}{path}") for r in replicas
        }
        return {rid: future.result() for rid, future in futures.items()}
