"""How hactl prints results: rich tables for people, `--json` for machines (stdout only)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from hactl.ops.verify import CheckResult
from hactl.stack.replicas import Replica

# Not a terminal (CI logs, pipes): wide enough that tables are not truncated to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


_STATE_STYLE = {
    "UP": "green",
    "DOWN": "red",
    "absent": "yellow",
    "healthy": "green",
    "unhealthy": "red",
    "starting": "yellow",
}


def _styled(value: str) -> str:
    style = _STATE_STYLE.get(value)
    return f"[{style}]{value}[/{style}]" if style else value


def replicas_table(replicas: Sequence[Replica], title: str) -> Table:
    table = Table(title=title)
    for column in (
        "container",
        "image",
        "version",
        "status",
        "health",
        "traefik",
        "ip",
        "uptime",
        "restarts",
    ):
        table.add_column(column)
    for r in replicas:
        table.add_row(
            r.name,
            r.image,
            r.version,
            r.status,
            _styled(r.health),
            _styled(r.traefik.value),
            r.ip,
            _uptime(r.uptime_seconds),
            str(r.restarts),
        )
    return table


def checks_table(checks: Sequence[CheckResult], title: str) -> Table:
    table = Table(title=title)
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for check in checks:
        table.add_row(
            check.name, "[green]PASS[/green]" if check.passed else "[red]FAIL[/red]", check.detail
        )
    return table


def warn(message: str) -> None:
    errors.print(f"[yellow]warning:[/yellow] {message}")


def fail(message: str, hint: str = "") -> None:
    errors.print(f"[red]error:[/red] {message}")
    if hint:
        errors.print(f"  next: {hint}")
