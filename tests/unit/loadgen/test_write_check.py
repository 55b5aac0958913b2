"""The write-set check on crafted logs: lost, duplicated, unexpected writes are caught."""

from hactl.loadgen.generator import RequestRecord, content_token
from hactl.loadgen.write_check import check_write_set, parse_psql_rows, stored_messages_sql


def _write(seq: int, *, acked: bool, response_id: str | None = None) -> RequestRecord:
    return RequestRecord(
        seq=seq,
        client=0,
        kind="write",
        method="POST",
        path="/api/v1/conversations/c/messages",
        intended_s=seq / 100,
        status=201 if acked else None,
        error=None if acked else "ReadTimeout: timed out",
        idempotency_key=f"key-{seq}",
        content_token=content_token("run", seq),
        response_id=response_id if acked else None,
        acknowledged=acked,
    )


def _stored(*seqs: int) -> dict[str, list[str]]:
    stored: dict[str, list[str]] = {}
    for seq in seqs:
        stored.setdefault(content_token("run", seq), []).append(f"id-{seq}")
    return stored


def test_clean_run_passes() -> None:
    records = [_write(i, acked=True, response_id=f"id-{i}") for i in range(5)]
    check = check_write_set(records, _stored(0, 1, 2, 3, 4))
    assert check.ok
    assert (check.attempted, check.acknowledged, check.stored) == (5, 5, 5)


def test_lost_acknowledged_write_is_detected() -> None:
    records = [_write(i, acked=True) for i in range(3)]
    check = check_write_set(records, _stored(0, 2))
    assert not check.ok
    assert check.lost == [content_token("run", 1)]


def test_duplicate_under_one_key_is_detected_by_content() -> None:
    records = [_write(0, acked=True, response_id="id-0"), _write(1, acked=True)]
    stored = _stored(0, 1)
    stored[content_token("run", 1)].append("id-1-again")  # a retry inserted a second row
    check = check_write_set(records, stored)
    assert not check.ok
    assert check.duplicated == {content_token("run", 1): 2}
    assert check.lost == []


def test_duplicate_of_an_unacknowledged_write_is_detected() -> None:
    check = check_write_set([_write(0, acked=False)], _stored(0, 0))
    assert not check.ok
    assert check.duplicated == {content_token("run", 0): 2}


def test_unacknowledged_writes_may_be_present_or_absent() -> None:
    records = [_write(0, acked=False), _write(1, acked=False), _write(2, acked=True)]
    check = check_write_set(records, _stored(0, 2))
    assert check.ok
    assert check.unacknowledged_present == [content_token("run", 0)]
    assert check.unacknowledged_absent == 1


def test_unattempted_row_is_unexpected() -> None:
    check = check_write_set([_write(0, acked=True)], _stored(0, 9))
    assert not check.ok
    assert check.unexpected == [content_token("run", 9)]


def test_acknowledged_id_must_be_the_stored_row() -> None:
    check = check_write_set([_write(0, acked=True, response_id="other")], _stored(0))
    assert not check.ok
    assert check.id_mismatch == [content_token("run", 0)]


def test_json_report_has_counts() -> None:
    data = check_write_set([_write(0, acked=True)], {}).to_json()
    assert data["ok"] is False and data["lost_count"] == 1


def test_psql_rows_parse_and_query_shape() -> None:
    output = "lg-run-0000001|a\nlg-run-0000001|b\nlg-run-0000002|c\n\n"
    assert parse_psql_rows(output) == {"lg-run-0000001": ["a", "b"], "lg-run-0000002": ["c"]}
    assert "LIKE 'lg-run-%'" in stored_messages_sql("run")
