"""Rows of an import file as normalized events, or the reason each one is refused. Pure: no broker, no clock.

Every row goes through the webhook's own code: the strict JSON parser (JSONL) and the generic event model and
normalizer, so a file imports exactly what ``POST /webhooks/generic`` would accept.

CSV layout (one row per event, a header row first, UTF-8 with or without a byte order mark; column order free):

- event: ``event_id``, ``occurred_at`` (ISO-8601 with a zone), ``type`` (required);
- deal: ``deal_id`` (required), ``deal_name``, ``stage``, ``status``, ``amount``, ``currency``, ``close_date``,
  ``owner_id``, ``account_id``, ``account_tier``, ``lost_reason``;
- previous values: ``previous_owner_id``, ``previous_stage``, ``previous_status``, ``previous_amount``,
  ``previous_close_date``, ``previous_name``, ``previous_account_tier``;
- activity: ``activity_kind``, ``activity_direction``, ``activity_text``, ``activity_actor_id``,
  ``activity_scheduled_at``, ``activity_done``;
- contact: ``contact_id``, ``contact_name``, ``contact_title``, ``contact_change``, ``contact_decision_maker``.

An empty cell means absent (unknown, not cleared), exactly as a missing key in the generic event. The
``activity``, ``contact`` and ``previous`` parts exist only when one of their cells is filled. A column outside
this list is refused when the header is read (a misspelt column would otherwise lose data silently).

A CSV file may instead be a CRM's deals export (HubSpot, Pipedrive, Salesforce; ``layouts.py``), told by its
header: each row is one deal as exported, read into the events that lead to it (``snapshots.py``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from schemas import DealChanged, deal_key
from services.ingest.bulk.layouts import LAYOUTS, ColumnMap, Layout, column_map, detect_layout
from services.ingest.bulk.snapshots import ExportOptions, ExportRow, RowRefused, export_row_events
from services.ingest.domain.jsonbody import parse_json
from services.ingest.domain.normalize import SOURCE as GENERIC
from services.ingest.domain.normalize import change_of_generic, describe, generic_deal_id
from services.ingest.domain.outcome import MalformedBody
from services.ingest.domain.records import to_json

_TOP = ("event_id", "occurred_at", "type")
_DEAL = {
    "deal_id": "id",
    "deal_name": "name",
    "stage": "stage",
    "status": "status",
    "amount": "amount",
    "currency": "currency",
    "close_date": "close_date",
    "owner_id": "owner_id",
    "account_id": "account_id",
    "account_tier": "account_tier",
    "lost_reason": "lost_reason",
}
_PREVIOUS = {
    f"previous_{name}": name
    for name in ("owner_id", "stage", "status", "amount", "close_date", "name", "account_tier")
}
_ACTIVITY = {
    f"activity_{name}": name for name in ("kind", "direction", "text", "actor_id", "scheduled_at", "done")
}
_CONTACT = {f"contact_{name}": name for name in ("id", "name", "title", "change", "decision_maker")}
CSV_COLUMNS: tuple[str, ...] = (*_TOP, *_DEAL, *_PREVIOUS, *_ACTIVITY, *_CONTACT)
REQUIRED_CSV_COLUMNS: tuple[str, ...] = (*_TOP, "deal_id")


@dataclass(frozen=True)
class Rejected:
    """A row that is not a valid event: why, where, and its bytes for the dead-letter topic."""

    reason: str
    detail: str
    line: int
    raw: bytes
    deal_key: str | None = None

    def example(self) -> str:
        return f"line {self.line}: {self.reason}: {self.detail}"


@dataclass(frozen=True)
class Skipped:
    """A line that holds no deal by design (a report's footer): neither read nor refused."""

    reason: str


@dataclass(frozen=True)
class Expanded:
    """The events of one export row, ready to send, and notes for the summary (``OWNER_NAME_SKIPPED``)."""

    events: tuple[Encoded, ...]
    notes: tuple[str, ...] = ()


Row = DealChanged | Rejected


class BadHeader(ValueError):
    """The CSV header cannot be read as the documented layout; nothing in the file is imported."""


def event_from_item(
    item: Any, *, line: int, raw: bytes, source: str, received_at: datetime
) -> DealChanged | Rejected:
    """One generic event (already parsed) validated and normalized like the webhook, under ``source``."""
    try:
        changed = change_of_generic(item, received_at)
    except ValidationError as exc:
        deal_id = generic_deal_id(item)
        return Rejected(
            "invalid_event", describe(exc), line, raw, deal_key(source, deal_id) if deal_id else None
        )
    return changed if source == GENERIC else changed.model_copy(update={"source": source})


def parse_jsonl_line(
    raw: bytes, *, line: int, source: str, received_at: datetime, max_depth: int
) -> DealChanged | Rejected:
    """One line of a JSONL file: one generic event object."""
    try:
        item = parse_json(raw, max_depth=max_depth)
    except MalformedBody as exc:
        return Rejected(exc.reason, exc.detail, line, raw)
    if not isinstance(item, dict):
        return Rejected("not_an_object", "a line must hold one event object", line, raw)
    return event_from_item(item, line=line, raw=raw, source=source, received_at=received_at)


def check_csv_header(header: Iterable[str]) -> list[str]:
    """The header's column names (stripped), or ``BadHeader`` naming unknown, repeated or missing columns."""
    names = [name.strip() for name in header]
    unknown = [n for n in names if n not in CSV_COLUMNS]
    if unknown:
        raise BadHeader(f"unknown column(s) {', '.join(map(repr, unknown))}; known: {', '.join(CSV_COLUMNS)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BadHeader(f"column(s) named twice: {', '.join(repeated)}")
    missing = [n for n in REQUIRED_CSV_COLUMNS if n not in names]
    if missing:
        raise BadHeader(f"missing required column(s): {', '.join(missing)}")
    return names


def csv_item(cells: Mapping[str, str]) -> dict[str, Any]:
    """A CSV row (column -> cell) as a generic event object; empty cells are left out."""
    item: dict[str, Any] = {name: cells[name] for name in _TOP if cells.get(name)}
    for key, columns in (
        ("deal", _DEAL),
        ("previous", _PREVIOUS),
        ("activity", _ACTIVITY),
        ("contact", _CONTACT),
    ):
        part = {name: cells[column] for column, name in columns.items() if cells.get(column)}
        if part:
            item[key] = part
    return item


def parse_csv_row(
    header: list[str], cells: list[str], *, line: int, source: str, received_at: datetime
) -> DealChanged | Rejected:
    """One CSV record (its cells in header order) validated and normalized like a generic event."""
    raw = csv_line(cells)
    if len(cells) != len(header):
        return Rejected(
            "wrong_cell_count", f"{len(cells)} cells where the header has {len(header)}", line, raw
        )
    item = csv_item(dict(zip(header, cells, strict=True)))
    return event_from_item(item, line=line, raw=raw, source=source, received_at=received_at)


def csv_line(cells: list[str]) -> bytes:
    """A record written back as one CSV line, for the dead-letter topic."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().encode("utf-8")


Record = tuple[int, bytes | list[str] | Rejected | Skipped]
"""One record of a file before validation: its line number and its JSONL line, its CSV cells, or why the CSV
reader could not read it."""

Encoded = tuple[bytes, bytes]
"""A valid event ready to send: the deal key and the JSON value, as on ``crm.deal-changes.v1``."""


@dataclass(frozen=True)
class Rules:
    """How the records of one file are read: everything ``normalize_records`` needs besides the records."""

    source: str
    received_at: datetime
    max_depth: int
    header: tuple[str, ...] = ()
    """The CSV header (empty for JSONL)."""
    layout: str | None = None
    """A CRM export's layout (``hubspot-csv``, ...); None for generic events."""
    columns: ColumnMap = ()
    """Where the export's fields are (with ``layout``)."""
    options: ExportOptions = field(default_factory=ExportOptions)


def jsonl_records(lines: Iterable[bytes]) -> Iterator[Record]:
    """The non-blank lines of a JSONL stream with their line numbers."""
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if stripped:
            yield number, stripped


@dataclass(frozen=True)
class CsvHeader:
    """What the header row of a CSV file says: the generic event columns, or a CRM export's layout."""

    names: tuple[str, ...]
    layout: Layout | None = None
    columns: ColumnMap = ()
    ignored: tuple[str, ...] = ()

    @property
    def format(self) -> str:
        return self.layout.name if self.layout else "generic-csv"


CSV_FORMATS = ("generic-csv", *LAYOUTS)


def read_csv_header(names: list[str], wanted: str = "csv") -> CsvHeader:
    """The layout of a header: ``wanted`` (one of ``CSV_FORMATS``), or with ``csv`` the one the names tell."""
    generic = wanted == "generic-csv" or (wanted == "csv" and "event_id" in (n.strip() for n in names))
    if generic:
        return CsvHeader(tuple(check_csv_header(names)))
    layout = LAYOUTS.get(wanted) if wanted != "csv" else detect_layout(names)
    if layout is None:
        raise BadHeader(
            "the header is neither the generic event columns (event_id, occurred_at, type, deal_id, ...) nor a "
            "HubSpot, Pipedrive or Salesforce deals export; name the layout with --format"
        )
    columns, ignored = column_map(layout, names)
    if "id" not in dict(columns):
        raise BadHeader(f"no deal id column for {layout.name}: one of {', '.join(layout.columns['id'])}")
    return CsvHeader(tuple(names), layout, columns, ignored)


def csv_records(text: Iterable[str], wanted: str = "generic-csv") -> tuple[CsvHeader, Iterator[Record]]:
    """The checked header of a CSV stream (or ``BadHeader``) and its non-blank records. In a CRM export, lines
    of one cell after a blank line are the report's footer (Salesforce adds its copyright and the like)."""
    reader = csv.reader(text, strict=True)
    header = read_csv_header(next(reader, []), wanted)
    footer_possible = header.layout is not None and len(header.names) > 1

    def records() -> Iterator[Record]:
        blank_seen = False
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield reader.line_num, Rejected("bad_csv", str(exc), reader.line_num, b"")
                continue
            filled = sum(1 for cell in cells if cell.strip())
            if not filled:
                blank_seen = True
            elif footer_possible and blank_seen and len(cells) == 1:
                yield reader.line_num, Skipped("report_footer")
            else:
                yield reader.line_num, cells

    return header, records()


def parse_export_row(cells: list[str], *, line: int, rules: Rules) -> Expanded | Rejected:
    """One row of a CRM export as its events, encoded for the topic, or the reason it is refused."""
    raw = csv_line(cells)
    extra = cells[len(rules.header) :]
    if len(cells) < len(rules.header) or any(cell.strip() for cell in extra):
        return Rejected(
            "wrong_cell_count", f"{len(cells)} cells where the header has {len(rules.header)}", line, raw
        )
    layout = LAYOUTS[rules.layout or ""]
    try:
        row: ExportRow = export_row_events(
            layout,
            rules.columns,
            rules.header,
            cells,
            source=rules.source,
            received_at=rules.received_at,
            options=rules.options,
        )
    except RowRefused as exc:
        key = deal_key(rules.source, exc.deal_id) if exc.deal_id else None
        return Rejected(exc.reason, exc.detail, line, raw, key)
    return Expanded(tuple((e.key.encode(), to_json(e)) for e in row.events), row.notes)


def parse_record(record: Record, rules: Rules) -> Row | Skipped:
    line, payload = record
    if isinstance(payload, Rejected | Skipped):
        return payload
    if isinstance(payload, bytes):
        return parse_jsonl_line(
            payload, line=line, source=rules.source, received_at=rules.received_at, max_depth=rules.max_depth
        )
    return parse_csv_row(
        list(rules.header), payload, line=line, source=rules.source, received_at=rules.received_at
    )


Outcome = Encoded | Expanded | Rejected | Skipped


def normalize_records(records: list[Record], rules: Rules) -> list[Outcome]:
    """A chunk of records validated, normalized and serialized (a top-level function: a worker process can run
    it on a chunk while the importer sends the previous one)."""
    out: list[Outcome] = []
    if rules.layout is not None:
        for line, payload in records:
            if isinstance(payload, list):
                out.append(parse_export_row(payload, line=line, rules=rules))
            elif isinstance(payload, Rejected | Skipped):
                out.append(payload)
        return out
    for record in records:
        row = parse_record(record, rules)
        out.append(row if isinstance(row, Rejected | Skipped) else (row.key.encode(), to_json(row)))
    return out


def read_jsonl(
    lines: Iterable[bytes], *, source: str, received_at: datetime, max_depth: int
) -> Iterator[Row]:
    """The events of a JSONL stream, line by line; blank lines are skipped."""
    return _rows(jsonl_records(lines), Rules(source, received_at, max_depth))


def read_csv(text: Iterable[str], *, source: str, received_at: datetime) -> Iterator[Row]:
    """The events of a generic CSV stream (``BadHeader`` if its header is not the documented layout)."""
    header, records = csv_records(text)
    rules = Rules(source, received_at, 0, header.names)
    return _rows(records, rules)


def _rows(records: Iterator[Record], rules: Rules) -> Iterator[Row]:
    for record in records:
        row = parse_record(record, rules)
        if not isinstance(row, Skipped):
            yield row
