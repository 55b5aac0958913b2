"""Jepsen-style set check of the chat writes a load run made.

Every write carries a unique content token (``hactl.loadgen.generator.content_token``), so rows are
counted by content, not by Idempotency-Key: a retried POST stored twice under the same key
would still show up as a duplicate. Rules:

- every acknowledged write (2xx) is stored exactly once (``lost`` = 0, ``duplicated`` = 0);
- the id the API acknowledged is the id of the stored row;
- an attempted but unacknowledged write (timeout, 5xx) may be stored once, or not at all;
- nothing is stored that the run never attempted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from python_on_whales import Container, DockerClient

from hactl.loadgen.generator import WRITE_KINDS, RequestRecord, content_token_pattern

EXAMPLES_KEPT = 20


@dataclass
class WriteCheck:
    attempted: int
    acknowledged: int
    stored: int
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    unacknowledged_present: list[str] = field(default_factory=list)
    unacknowledged_absent: int = 0
    unexpected: list[str] = field(default_factory=list)
    id_mismatch: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.id_mismatch)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["lost_count"] = len(self.lost)
        data["duplicated_count"] = len(self.duplicated)
        data["unacknowledged_present_count"] = len(self.unacknowledged_present)
        for name in ("lost", "unacknowledged_present", "unexpected", "id_mismatch"):
            data[name] = data[name][:EXAMPLES_KEPT]
        data["duplicated"] = dict(list(self.duplicated.items())[:EXAMPLES_KEPT])
        return data


def check_write_set(
    records: Sequence[RequestRecord], stored: Mapping[str, Sequence[str]]
) -> WriteCheck:
    """Compare the run's writes with the stored rows (content token -> ids of its rows)."""
    writes = [r for r in records if r.kind in WRITE_KINDS and r.content_token]
    attempted = {r.content_token for r in writes if r.content_token}
    acknowledged = [r for r in writes if r.acknowledged]
    acked_tokens = {r.content_token for r in acknowledged}
    check = WriteCheck(
        attempted=len(attempted),
        acknowledged=len(acked_tokens),
        stored=sum(len(ids) for ids in stored.values()),
    )
    for record in acknowledged:
        token = record.content_token or ""
        ids = stored.get(token, ())
        if not ids:
            check.lost.append(token)
        elif record.response_id is not None and record.response_id not in ids:
            check.id_mismatch.append(token)
    check.duplicated = {token: len(ids) for token, ids in stored.items() if len(ids) > 1}
    for token in sorted(attempted - acked_tokens):
        if stored.get(token):
            check.unacknowledged_present.append(token)
        else:
            check.unacknowledged_absent += 1
    check.unexpected = sorted(token for token in stored if token not in attempted)
    check.lost.sort()
    return check


def parse_psql_rows(output: str) -> dict[str, list[str]]:
    """``psql -At -F '|'`` output of ``content|id`` rows -> content token -> ids."""
    stored: dict[str, list[str]] = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        token, _, row_id = line.rpartition("|")
        stored.setdefault(token, []).append(row_id)
    return stored


def stored_messages_sql(run_id: str) -> str:
    pattern = content_token_pattern(run_id)
    if "'" in pattern:
        raise ValueError(f"run id {run_id!r} must not contain quotes")
    return f"SELECT content, id FROM messages WHERE content LIKE '{pattern}' ORDER BY seq"


def fetch_stored_writes(
    docker: DockerClient,
    postgres: Container | str,
    run_id: str,
    user: str = "app",
    database: str = "app",
) -> dict[str, list[str]]:
    """Rows of one run, read with psql inside the postgres container (no published port)."""
    output = docker.container.execute(
        postgres,
        ["psql", "-U", user, "-d", database, "-At", "-F", "|", "-c", stored_messages_sql(run_id)],
    )
    return parse_psql_rows(str(output or ""))
