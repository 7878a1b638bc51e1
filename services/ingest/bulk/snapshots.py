"""A row of a CRM's deal export as the change events that lead to it. Pure: the import time is an argument.

An export holds each deal as it is now, with a few dates of its past. A row gives, in time order:

1. ``deal.created`` at the creation date (the name, account and currency only: the rest may have changed since);
2. ``activity.logged`` at the last contact or activity date. The export says when, not how: HubSpot's
   ``Last Contacted`` and the others' last activity date become a done outbound call, HubSpot's ``Last Activity
   Date`` an internal note, exactly as the HubSpot webhook reads those properties;
3. ``activity.logged``, an internal note with the description, next step and won reason, so that their words
   reach the cause detector;
4. the deal as exported (``deal.updated``; ``deal.deleted`` for a deleted deal) at the latest date of the row
   (last modification, close, activity or creation), with the next activity date as a booked meeting.

Event ids are derived from the deal, the event's role and its content, so importing the same export again
publishes the same ids, and a later export repeats only what did not change.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from schemas import ActivityInfo, DealChanged, DealFields
from schemas.events import DealStatus, EventType
from services.ingest.bulk.cells import (
    BadCell,
    first_id,
    read_amount,
    read_date,
    read_flag,
    read_id,
    read_instant,
    read_text,
    salesforce_id18,
)
from services.ingest.bulk.layouts import ColumnMap, Layout
from services.ingest.domain.hubspot import CLOSED_STAGES, OPEN_STAGES
from services.ingest.domain.normalize import describe

OWNER_NAME_SKIPPED = "owner_name_not_an_id"
"""A note of the report: the export names the owner, not their id, and ``--owner-names`` was not given."""


@dataclass(frozen=True)
class ExportOptions:
    timezone: str = "UTC"
    """The zone of times written without one (the exporting user's zone in the CRM)."""
    day_first: bool = False
    """``01/02/2026`` is 1 February (else 2 January, as a US-English export writes it)."""
    owner_names: bool = False
    """Use an owner's name as their id when the export has no owner id. Off by default: the webhooks of the
    same CRM name owners by id, and a name followed by an id would look like a reassignment."""


@dataclass(frozen=True)
class Snapshot:
    deal: DealFields
    created_at: datetime | None = None
    modified_at: datetime | None = None
    closed_at: datetime | None = None
    last_activity_at: datetime | None = None
    last_contacted_at: datetime | None = None
    next_activity_at: datetime | None = None
    notes: str | None = None
    notes_kind: str = "call"
    """How the last activity date is recorded: ``call`` (outbound, done) or ``note`` (internal)."""


@dataclass(frozen=True)
class ExportRow:
    events: tuple[DealChanged, ...]
    notes: tuple[str, ...] = field(default=())


class RowRefused(ValueError):
    def __init__(self, reason: str, detail: str, deal_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.deal_id = deal_id


@lru_cache(maxsize=16)
def zone_of(name: str) -> tzinfo:
    return ZoneInfo(name)


def export_row_events(
    layout: Layout,
    columns: ColumnMap,
    header: tuple[str, ...],
    cells: list[str],
    *,
    source: str,
    received_at: datetime,
    options: ExportOptions,
) -> ExportRow:
    """The events of one export row, or ``RowRefused`` with the reason."""
    values = {name: cells[index] for name, index in columns if index < len(cells)}
    named = {name: header[index].strip() for name, index in columns if index < len(header)}
    deal_id = read_id(values.get("id", ""))
    if layout.source == "salesforce":
        deal_id = salesforce_id18(deal_id)
    if not deal_id:
        raise RowRefused("missing_id", f"no deal id in the {named.get('id', 'id')!r} column")
    try:
        snapshot, notes = _snapshot(layout, deal_id, values, named, options)
    except BadCell as exc:
        raise RowRefused(exc.reason, str(exc), deal_id) from None
    except ValidationError as exc:
        raise RowRefused("invalid_event", describe(exc), deal_id) from None
    events = _events(snapshot, layout.event_prefix, source, received_at)
    return ExportRow(events=tuple(events), notes=notes)


def _snapshot(
    layout: Layout, deal_id: str, values: dict[str, str], named: dict[str, str], options: ExportOptions
) -> tuple[Snapshot, tuple[str, ...]]:
    zone = zone_of(options.timezone)

    def column(name: str) -> str:
        return named.get(name, name)

    def when(name: str) -> datetime | None:
        return read_instant(values.get(name, ""), column(name), zone, day_first=options.day_first)

    def day(name: str) -> date | None:
        return read_date(values.get(name, ""), column(name), zone, day_first=options.day_first)

    def flag(name: str) -> bool | None:
        return read_flag(values.get(name, ""), column(name))

    text = {name: read_text(values.get(name, "")) for name in _TEXTS}
    amount, written_currency = read_amount(values.get("amount", ""), column("amount"))
    owner_id, notes = _owner(layout, values, options)
    account = first_id(values.get("account_id", ""))
    stage = text["stage"]
    status: DealStatus | None
    if layout.source == "hubspot":
        stage = _hubspot_stage(stage)
        status = _closed_status(flag("is_won"), flag("is_lost"), flag("is_closed"), stage)
        if status is None and stage in OPEN_STAGES:
            status = "open"
    elif layout.source == "pipedrive":
        status = _pipedrive_status(values.get("status", ""), column("status"))
    else:
        status = _closed_status(flag("is_won"), None, flag("is_closed"), stage)
        owner_id, account = salesforce_id18(owner_id), salesforce_id18(account)
        if flag("is_deleted"):
            status = "deleted"
    closed = [when(name) for name in ("won_at", "lost_at", "closed_at")]
    deal = DealFields(
        id=deal_id,
        name=text["name"],
        stage=stage,
        status=status,
        amount=amount,
        currency=read_text(values.get("currency", "")) or written_currency,
        close_date=day("close_date"),
        owner_id=owner_id,
        account_id=account,
        lost_reason=text["lost_reason"],
    )
    words = [
        f"{label}: {text[name]}"
        for name, label in _NOTE_PARTS
        if text[name] and text[name] != deal.lost_reason
    ]
    snapshot = Snapshot(
        deal=deal,
        created_at=when("created_at"),
        modified_at=when("modified_at"),
        closed_at=max((c for c in closed if c is not None), default=None),
        last_activity_at=when("last_activity_at"),
        last_contacted_at=when("last_contacted_at"),
        next_activity_at=when("next_activity_at"),
        notes="\n".join(words)[:20_000] or None,
        notes_kind="note" if layout.source == "hubspot" else "call",
    )
    return snapshot, notes


_TEXTS = ("name", "stage", "lost_reason", "won_reason", "description", "next_step")
_NOTE_PARTS = (("description", "Description"), ("next_step", "Next step"), ("won_reason", "Won reason"))


def _owner(
    layout: Layout, values: dict[str, str], options: ExportOptions
) -> tuple[str | None, tuple[str, ...]]:
    """The owner's id: an id column, a HubSpot owner cell that holds an id, or (with ``owner_names``) a name."""
    given = read_id(values.get("owner_id", ""))
    if given:
        return given, ()
    owner = read_text(values.get("owner", ""))
    if owner is None:
        return None, ()
    if layout.source == "hubspot" and owner.isdigit():
        return owner, ()
    if options.owner_names:
        return owner[:200], ()
    return None, (OWNER_NAME_SKIPPED,)


_LABEL_SUFFIX = re.compile(r"\s*\([^)]*\)$")


def _hubspot_stage(stage: str | None) -> str | None:
    """A default pipeline's stage label (``Appointment Scheduled``, ``Closed Won``) as the internal id the
    webhooks send; other stages (custom pipelines) as written."""
    if stage is None:
        return None
    folded = re.sub(r"[^a-z0-9]", "", _LABEL_SUFFIX.sub("", stage).lower())
    return folded if folded in OPEN_STAGES or folded in CLOSED_STAGES else stage


def _closed_status(
    won: bool | None, lost: bool | None, closed: bool | None, stage: str | None
) -> DealStatus | None:
    if won:
        return "won"
    if lost or (closed and won is False):
        return "lost"
    folded = re.sub(r"[^a-z]", "", (stage or "").lower())
    if folded in ("closedwon", "closedlost"):
        return "won" if folded == "closedwon" else "lost"
    if closed is False:
        return "open"
    return None


_PIPEDRIVE_STATUS: dict[str, DealStatus] = {
    "open": "open",
    "won": "won",
    "lost": "lost",
    "deleted": "deleted",
}


def _pipedrive_status(value: str, column: str) -> DealStatus | None:
    text = value.strip().lower()
    if not text:
        return None
    if text not in _PIPEDRIVE_STATUS:
        raise BadCell("bad_value", column, value.strip(), "Open, Won, Lost or Deleted")
    return _PIPEDRIVE_STATUS[text]


def _events(snapshot: Snapshot, prefix: str, source: str, received_at: datetime) -> list[DealChanged]:
    deal = snapshot.deal
    times = [
        snapshot.modified_at,
        snapshot.closed_at,
        snapshot.created_at,
        snapshot.last_activity_at,
        snapshot.last_contacted_at,
    ]
    at = max((t for t in times if t is not None), default=None)
    if at is None:
        raise RowRefused(
            "no_date",
            "no creation, modification, close or activity time: the events cannot be placed",
            deal.id,
        )

    def event(role: str, type_: EventType, when: datetime, fields: DealFields, **parts: Any) -> DealChanged:
        identity = [source, fields.id, role, type_, when.isoformat(), fields.model_dump(mode="json")]
        identity += [p.model_dump(mode="json") for p in parts.values()]
        digest = hashlib.sha256(json.dumps(identity, ensure_ascii=False).encode()).hexdigest()[:20]
        return DealChanged(
            event_id=f"{prefix}-import-{fields.id[:60]}-{role}-{digest}",
            source=source,
            deal_id=fields.id,
            occurred_at=when,
            received_at=received_at,
            type=type_,
            deal=fields,
            **parts,
        )

    only_id = DealFields(id=deal.id)
    events = []
    created = snapshot.created_at
    if created is not None and created < at:
        first = DealFields(id=deal.id, name=deal.name, currency=deal.currency, account_id=deal.account_id)
        events.append(event("created", "deal.created", created, first))
    contacts: list[tuple[datetime, str, ActivityInfo]] = []
    if snapshot.last_contacted_at is not None:
        contacted = ActivityInfo(kind="call", direction="outbound", done=True)
        contacts.append((snapshot.last_contacted_at, "contacted", contacted))
    if snapshot.last_activity_at is not None:
        contacts.append((snapshot.last_activity_at, "activity", _last_activity(snapshot.notes_kind)))
    for when, role, activity in sorted(contacts, key=lambda c: c[0]):
        events.append(event(role, "activity.logged", when, only_id, activity=activity))
    if snapshot.notes:
        note = ActivityInfo(kind="note", direction="internal", text=snapshot.notes)
        events.append(event("notes", "activity.logged", at, only_id, activity=note))
    kind: EventType = "deal.updated"
    if deal.status == "deleted":
        kind = "deal.deleted"
    elif created is not None and created >= at:
        kind = "deal.created"
    parts: dict[str, Any] = {}
    if snapshot.next_activity_at is not None:
        parts["activity"] = ActivityInfo(
            kind="meeting", direction="outbound", done=False, scheduled_at=snapshot.next_activity_at
        )
    events.append(event("snapshot", kind, at, deal, **parts))
    return events


def _last_activity(kind: str) -> ActivityInfo:
    if kind == "note":
        return ActivityInfo(kind="note", direction="internal")
    return ActivityInfo(kind="call", direction="outbound", done=True)
