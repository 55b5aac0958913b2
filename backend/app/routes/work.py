"""`POST /api/v1/work?cpu_ms=N`: burn CPU on demand, for autoscaling and load tests."""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from app.auth import require_principal

router = APIRouter(dependencies=[Depends(require_principal)])


def _burn(cpu_ms: int) -> float:
    """Spin until this thread used `cpu_ms` of CPU time; return the CPU time used (ms)."""
    start = time.thread_time()
    target = start + cpu_ms / 1000
    acc = 0
    while time.thread_time() < target:
        for i in range(2000):
            acc += i * i
    return (time.thread_time() - start) * 1000


@router.post("/api/v1/work")
def work(request: Request, cpu_ms: int = Query(..., ge=0)) -> dict[str, object]:
    # A plain `def`: FastAPI runs it in a thread, so the event loop keeps answering probes
    # while a burn runs (the GIL still makes it cost this worker's CPU, which is the point).
    limit = request.app.state.settings.work_max_cpu_ms
    if cpu_ms > limit:
        raise HTTPException(422, detail=f"cpu_ms must be at most {limit}")
    started = time.perf_counter()
    used = _burn(cpu_ms)
    return {
        "cpu_ms_requested": cpu_ms,
        "cpu_ms_used": round(used, 2),
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
        "pid": os.getpid(),
        "replica_id": request.app.state.settings.replica_id,
    }
