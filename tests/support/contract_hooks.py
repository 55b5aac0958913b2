"""Schemathesis hooks of the contract fuzz run (tests/integration/test_api_contract.py).

Loaded by the `st` process through SCHEMATHESIS_HOOKS. One job: keep the run's CPU bounded.
`POST /api/v1/work` burns the CPU it is asked for, up to 2 s a request; a valid `cpu_ms` is
scaled down to at most 20 ms before the call (still valid, so every check still applies), and
an invalid one is sent unchanged, so the rejection of bad input is still tested.
"""

from __future__ import annotations

from typing import Any

import schemathesis

WORK_PATH = "/api/v1/work"
MAX_BURN_MS = 20


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.operation.path != WORK_PATH or not isinstance(case.query, dict):
        return
    cpu_ms = case.query.get("cpu_ms")
    # Generated as an int, or already as the query string's text in the coverage phase.
    if isinstance(cpu_ms, int) and not isinstance(cpu_ms, bool) and cpu_ms >= 0:
        case.query["cpu_ms"] = cpu_ms % (MAX_BURN_MS + 1)
    elif isinstance(cpu_ms, str) and cpu_ms.isascii() and cpu_ms.isdigit():
        case.query["cpu_ms"] = str(int(cpu_ms) % (MAX_BURN_MS + 1))
