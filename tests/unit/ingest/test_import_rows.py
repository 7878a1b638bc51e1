"""Rows of an import file (JSONL, CSV) as normalized events, or the reason each one is refused."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas import DealChanged
from services.ingest.bulk.importer import format_of
from services.ingest.bulk.rows import (
    CSV_COLUMNS,
    BadHeader,
    Rejected,
    check_csv_header,
    csv_item,
    parse_csv_row,
    parse_jsonl_line,
    read_csv,
    read_jsonl,
)

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
EVENT: dict[str, Any] = {
    "event_id": "evt-8812",
    "occurred_at": "2026-11-02T09:15:00+09:00",
    "type": "deal.updated",
    "deal": {"id": "D-1001", "stage": "proposal", "owner_id": "u-7", "amount": 1200000},
    "previous": {"owner_id": "u-2"},
}
HEADER = [
    "event_id",
    "occurred_at",
    "type",
    "deal_id",
    "stage",
    "amount",
    "previous_owner_id",
    "activity_kind",
]


def jsonl(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def test_a_jsonl_line_normalizes_like_the_generic_webhook() -> None:
    row = parse_jsonl_line(jsonl(EVENT), line=1, source="generic", received_at=NOW, max_depth=32)
    assert isinstance(row, DealChanged)
    assert (row.key, row.event_id, row.received_at) == ("generic:D-1001", "evt-8812", NOW)
    assert row.previous is not None and row.previous.owner_id == "u-2"


def test_the_source_option_names_the_source_and_the_deal_key() -> None:
    row = parse_jsonl_line(jsonl(EVENT), line=1, source="legacy-crm", received_at=NOW, max_depth=32)
    assert isinstance(row, DealChanged)
    assert (row.source, row.key) == ("legacy-crm", "legacy-crm:D-1001")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "not_json"),
        (b'{"event_id": "a", "event_id": "b"}', "duplicate_key"),
        (b"[1, 2]", "not_an_object"),
        (b'{"amount": NaN}', "non_finite_number"),
        (b"\xff\xfe{}", "bad_utf8"),
    ],
)
def test_a_line_that_is_not_one_strict_json_object_is_refused_with_the_parsers_reason(
    line: bytes, reason: str
) -> None:
    row = parse_jsonl_line(line, line=7, source="generic", received_at=NOW, max_depth=32)
    assert isinstance(row, Rejected)
    assert (row.reason, row.line, row.raw) == (reason, 7, line)


def test_an_invalid_event_is_refused_with_the_fields_at_fault_and_keeps_its_deal_key() -> None:
    bad = {**EVENT, "type": "deal.exploded", "occurred_at": "2026-11-02T09:15:00"}
    row = parse_jsonl_line(jsonl(bad), line=3, source="generic", received_at=NOW, max_depth=32)
    assert isinstance(row, Rejected)
    assert row.reason == "invalid_event"
    assert "type" in row.detail and "occurred_at" in row.detail
    assert row.deal_key == "generic:D-1001"
    assert row.example().startswith("line 3: invalid_event: ")


def test_an_event_without_a_deal_id_is_refused_without_a_deal_key() -> None:
    bad = {**EVENT, "deal": {"stage": "proposal"}}
    row = parse_jsonl_line(jsonl(bad), line=1, source="generic", received_at=NOW, max_depth=32)
    assert isinstance(row, Rejected) and row.deal_key is None
    assert "deal.id" in row.detail


def test_blank_jsonl_lines_are_skipped_and_line_numbers_count_them() -> None:
    stream = io.BytesIO(jsonl(EVENT) + b"\n\n  \n" + b"oops\n")
    rows = list(read_jsonl(stream, source="generic", received_at=NOW, max_depth=32))
    assert [type(r).__name__ for r in rows] == ["DealChanged", "Rejected"]
    assert isinstance(rows[1], Rejected) and rows[1].line == 4


def test_empty_csv_cells_are_absent_and_parts_exist_only_when_a_cell_is_filled() -> None:
    cells = {
        "event_id": "e1",
        "occurred_at": "2026-11-02T09:15:00Z",
        "type": "deal.updated",
        "deal_id": "D-1",
    }
    item = csv_item({**cells, "stage": "", "activity_kind": "", "previous_owner_id": "u-2"})
    assert item == {**{k: cells[k] for k in ("event_id", "occurred_at", "type")}, "deal": {"id": "D-1"},
                    "previous": {"owner_id": "u-2"}}  # fmt: skip


def test_a_csv_row_becomes_the_same_event_as_its_json_form() -> None:
    cells = [
        "evt-8812",
        "2026-11-02T09:15:00+09:00",
        "deal.updated",
        "D-1001",
        "proposal",
        "1200000",
        "u-2",
        "",
    ]
    from_csv = parse_csv_row(HEADER, cells, line=2, source="generic", received_at=NOW)
    from_json = parse_jsonl_line(jsonl(EVENT), line=1, source="generic", received_at=NOW, max_depth=32)
    assert isinstance(from_csv, DealChanged)
    assert from_csv.deal.amount == 1_200_000
    assert from_csv.model_dump(exclude={"deal"}) == from_json.model_dump(exclude={"deal"})
    assert from_csv.deal.stage == "proposal"


def test_csv_cells_are_typed_by_the_event_model() -> None:
    header = ["event_id", "occurred_at", "type", "deal_id", "close_date", "activity_kind", "activity_done"]
    cells = ["e1", "2026-11-02T09:15:00Z", "activity.logged", "D-1", "2026-12-20", "call", "true"]
    row = parse_csv_row(header, cells, line=2, source="generic", received_at=NOW)
    assert isinstance(row, DealChanged)
    assert row.deal.close_date == date(2026, 12, 20)
    assert row.activity is not None and (row.activity.kind, row.activity.done) == ("call", True)


@pytest.mark.parametrize(
    ("cells", "reason", "mentions"),
    [
        (
            ["e1", "2026-11-02T09:15:00Z", "deal.updated", "D-1", "x", "lots", "", ""],
            "invalid_event",
            "amount",
        ),
        (["e1", "2026-11-02T09:15:00Z", "deal.updated", "", "", "", "", ""], "invalid_event", "deal"),
        (["e1", "yesterday", "deal.updated", "D-1", "", "", "", ""], "invalid_event", "occurred_at"),
        (
            ["e1", "2026-11-02T09:15:00Z", "deal.updated", "D-1", "", "", "", "fax"],
            "invalid_event",
            "activity",
        ),
        (["e1", "2026-11-02T09:15:00Z"], "wrong_cell_count", "2 cells"),
    ],
)
def test_an_invalid_csv_row_is_refused_with_a_reason_and_written_back_as_a_csv_line(
    cells: list[str], reason: str, mentions: str
) -> None:
    row = parse_csv_row(HEADER, cells, line=5, source="generic", received_at=NOW)
    assert isinstance(row, Rejected)
    assert (row.reason, row.line) == (reason, 5)
    assert mentions in row.detail
    assert row.raw == (",".join(cells) + "\n").encode()


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        (["event_id", "occurred_at", "type", "deal_id", "dealname"], "unknown column(s) 'dealname'"),
        (["event_id", "occurred_at", "type", "deal_id", "stage", "stage"], "named twice: stage"),
        (["event_id", "occurred_at", "deal_id"], "missing required column(s): type"),
    ],
)
def test_a_csv_header_outside_the_documented_layout_is_refused(header: list[str], complaint: str) -> None:
    with pytest.raises(BadHeader, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        check_csv_header(header)


def test_every_documented_column_is_accepted_in_any_order() -> None:
    assert check_csv_header(reversed(CSV_COLUMNS)) == list(reversed(CSV_COLUMNS))


def test_a_csv_file_reads_row_by_row_with_quoted_multiline_text_and_physical_line_numbers() -> None:
    text = (
        "event_id,occurred_at,type,deal_id,activity_kind,activity_text\n"
        'e1,2026-11-02T09:15:00Z,activity.logged,D-1,note,"先方、競合A社\n値引き"\n'
        ",,,,,\n"
        "e2,2026-11-02T09:16:00Z,activity.logged,D-1,fax,hello\n"
    )
    rows = list(read_csv(io.StringIO(text, newline=""), source="generic", received_at=NOW))
    assert len(rows) == 2
    first, second = rows
    assert isinstance(first, DealChanged) and first.activity is not None
    assert first.activity.text == "先方、競合A社\n値引き"
    assert isinstance(second, Rejected) and second.line == 5


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("h.jsonl", "jsonl"), ("H.NDJSON", "jsonl"), ("export.csv", "csv"), ("export.json", None), ("x", None)],
)
def test_the_format_comes_from_the_extension_and_plain_json_is_not_guessed(
    name: str, fmt: str | None
) -> None:
    assert format_of(Path(name)) == fmt
