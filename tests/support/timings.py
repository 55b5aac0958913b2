"""Measured durations from end-to-end tests go to a file, never into assertions."""

from __future__ import annotations

import json
import time
from pathlib import Path

TIMINGS_FILE = Path(__file__).resolve().parents[2] / "results" / "e2e-timings.jsonl"


def record_timing(name: str, seconds: float, **details: object) -> None:
    TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "name": name,
        "seconds": round(seconds, 3),
        "at": time.strftime("%FT%TZ", time.gmtime()),
    }
    with TIMINGS_FILE.open("a") as f:
        f.write(json.dumps({**line, **details}) + "\n")
