"""Replica state switches kept as files in APP_STATE_DIR (a tmpfs in the container).

Files rather than memory because three different processes flip or read them: the gunicorn
master (SIGTERM -> `draining`), every worker (`/readyz`), and operators via `docker exec
python -m app.control`. Pure standard library: the gunicorn master imports this module.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

DRAINING = "draining"
UNREADY = "unready"
# Who wrote `draining`: SIGTERM drains are a one-way street, `app.control ready` may not undo them.
BY_SIGTERM = "sigterm"
BY_CONTROL = "control"


def state_dir() -> Path:
    return Path(os.environ.get("APP_STATE_DIR", "/run/app"))


def _path(name: str, base: Path | None = None) -> Path:
    return (base or state_dir()) / name


def is_set(name: str, base: Path | None = None) -> bool:
    return _path(name, base).exists()


def set_flag(name: str, content: str = "", base: Path | None = None) -> Path:
    path = _path(name, base)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename so a reader never sees a half-written file.
    tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
    tmp.write_text(content)
    tmp.replace(path)
    return path


def clear_flag(name: str, base: Path | None = None) -> bool:
    try:
        _path(name, base).unlink()
    except FileNotFoundError:
        return False
    return True


def read_flag(name: str, base: Path | None = None) -> str | None:
    try:
        return _path(name, base).read_text().strip()
    except FileNotFoundError:
        return None


def draining_since(base: Path | None = None) -> float | None:
    """Wall-clock time the `draining` file was written (its mtime), or None."""
    try:
        return _path(DRAINING, base).stat().st_mtime
    except FileNotFoundError:
        return None


def drain_remaining(
    drain_seconds: float, base: Path | None = None, now: float | None = None
) -> float:
    """Seconds still to wait before stopping: the full drain, or its remainder if an operator
    already started draining (`app.control drain`) earlier."""
    since = draining_since(base)
    if since is None:
        return drain_seconds
    elapsed = (time.time() if now is None else now) - since
    return max(0.0, drain_seconds - max(0.0, elapsed))
