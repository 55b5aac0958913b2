"""Read and update dotenv files the way Compose reads them (KEY=VALUE, # comments, quotes)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def parse_env_text(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def read_env_file(path: Path) -> dict[str, str]:
    try:
        return parse_env_text(path.read_text())
    except FileNotFoundError:
        return {}


def update_env_file(path: Path, updates: Mapping[str, str], header: str = "") -> None:
    """Set keys in a dotenv file, keeping other lines; write atomically."""
    lines = path.read_text().splitlines() if path.is_file() else [f"# {header}"] if header else []
    pending = dict(updates)
    kept: list[str] = []
    for line in lines:
        key = line.split("=", 1)[0].strip().removeprefix("export ").strip()
        if "=" in line and not line.lstrip().startswith("#") and key in pending:
            kept.append(f"{key}={pending.pop(key)}")
        else:
            kept.append(line)
    kept.extend(f"{key}={value}" for key, value in pending.items())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(kept) + "\n")
    tmp.replace(path)
