"""Pipedrive webhooks v2 (``meta`` / ``data`` / ``previous``) into ``DealChanged``.

- deal: ``create`` → ``deal.created`` (with the deal's person as an added contact), ``change`` →
  ``deal.updated`` with ``previous``; a changed ``person_id`` also gives ``contact.changed`` events (the old
  person ``removed``, the new one ``added``); ``delete`` → ``deal.deleted``.
- activity (call, meeting, email, task, ...) and note on a deal → ``activity.logged``; the direction is
  inferred from the kind and the words (``direction.py``); an activity not yet done with a due date carries
  ``scheduled_at`` (Pipedrive's due date and time are UTC).
- person with a deal link → ``contact.changed`` (deleted → ``removed``, organization changed →
  ``left_company``, job title changed → ``role_changed``).
- Anything else (other entities, notes and activities without a deal, deleted notes and activities) is
  acknowledged and not published (``Batch.ignored``).

Ids may be numbers or strings. Identity: ``meta.id`` (the event's id); without it a digest of the company,
entity, id, action and times. Never ``meta.attempt``, so a retry has the same event id.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas import ActivityInfo, ContactInfo, DealChanged, DealFields
from schemas.events import ActivityKind, ContactChange, EventType, PreviousFields
from services.ingest.domain.direction import infer_direction
from services.ingest.domain.normalize import as_items, describe, readable_id, validate_item
from services.ingest.domain.outcome import Batch, InvalidEvent

SOURCE = "pipedrive"
IdValue = int | str
MAX_TEXT = 20_000
_ACTIONS = {"added": "create", "updated": "change", "deleted": "delete"}
_KINDS: dict[str, ActivityKind] = {
    "call": "call",
    "meeting": "meeting",
    "lunch": "meeting",
    "email": "email",
    "task": "task",
    "deadline": "task",
}
_KIND_WORDS: list[tuple[re.Pattern[str], ActivityKind]] = [
    (re.compile(r"call|phone|tel|電話", re.IGNORECASE), "call"),
    (re.compile(r"meet|lunch|demo|visit|訪問|打合|面談|商談", re.IGNORECASE), "meeting"),
    (re.compile(r"mail|メール", re.IGNORECASE), "email"),
]


class PipedriveMeta(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    action: str = Field(min_length=1, max_length=32)
    entity: str = Field(min_length=1, max_length=64)
    entity_id: IdValue | None = None
    id: IdValue | None = None
    timestamp: str | int | None = None
    attempt: int | None = None
    user_id: IdValue | None = None
    company_id: IdValue | None = None


class PipedriveEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    meta: PipedriveMeta
    data: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None


def normalize_pipedrive(
    payload: dict[str, Any] | list[Any], *, received_at: datetime, max_events: int
) -> Batch:
    items = as_items(payload, max_events)
    events: list[DealChanged] = []
    ignored = 0
    for index, item in enumerate(items):
        event = validate_item(PipedriveEvent, item, index, SOURCE, _deal_id_of)
        try:
            changes = normalize_pipedrive_event(event, received_at=received_at)
        except ValidationError as exc:
            raise _invalid(index, describe(exc), item) from None
        except (ValueError, OverflowError, OSError) as exc:
            raise _invalid(index, str(exc).splitlines()[0][:200], item) from None
        events.extend(changes)
        ignored += not changes
    return Batch(events=tuple(events), ignored=ignored)


def normalize_pipedrive_event(event: PipedriveEvent, *, received_at: datetime) -> list[DealChanged]:
    """The deal changes of one Pipedrive event; empty when it is not about a deal. Raises ``ValueError``."""
    action = _ACTIONS.get(event.meta.action, event.meta.action)
    entity = event.meta.entity
    if entity == "deal":
        return _deal(event, action, received_at)
    if entity in ("activity", "note") and action in ("create", "change") and event.data:
        change = _activity(event, entity, received_at)
        return [change] if change else []
    if entity == "person":
        return _person(event, action, received_at)
    return []


def pipedrive_event_id(event: PipedriveEvent) -> str:
    if event.meta.id is not None and str(event.meta.id):
        return f"pd-{str(event.meta.id)[:180]}"
    data = event.data or {}
    identity = [
        event.meta.company_id,
        event.meta.entity,
        event.meta.entity_id,
        event.meta.action,
        event.meta.timestamp,
        data.get("id"),
        data.get("update_time"),
    ]
    return "pd-" + hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()[:32]


def _change(
    event: PipedriveEvent,
    type_: EventType,
    deal: DealFields,
    received_at: datetime,
    *,
    suffix: str = "",
    **parts: Any,
) -> DealChanged:
    return DealChanged(
        event_id=pipedrive_event_id(event) + suffix,
        source=SOURCE,
        deal_id=deal.id,
        occurred_at=_occurred_at(event, received_at),
        received_at=received_at,
        type=type_,
        deal=deal,
        **parts,
    )


def _deal(event: PipedriveEvent, action: str, received_at: datetime) -> list[DealChanged]:
    data = event.data or {}
    previous = event.previous or {}
    deal_id = readable_id(_id(data.get("id"))) or readable_id(event.meta.entity_id)
    if deal_id is None:
        raise ValueError("the deal event names no deal id")
    if action == "delete":
        deal = _deal_fields(deal_id, {**previous, **data})
        return [_change(event, "deal.deleted", deal.model_copy(update={"status": "deleted"}), received_at)]
    deal = _deal_fields(deal_id, data)
    if action == "create":
        person = readable_id(_id(data.get("person_id")))
        contact = ContactInfo(id=person, change="added") if person else None
        return [_change(event, "deal.created", deal, received_at, contact=contact)]
    changes = [_change(event, "deal.updated", deal, received_at, previous=_previous_fields(previous))]
    if "person_id" in previous:
        old, new = readable_id(_id(previous.get("person_id"))), readable_id(_id(data.get("person_id")))
        for person, how in ((old, "removed"), (new, "added")):
            if person and old != new:
                changes.append(
                    _change(
                        event,
                        "contact.changed",
                        DealFields(id=deal_id),
                        received_at,
                        suffix=f":contact-{how}:{person}",
                        contact=ContactInfo(id=person, change=how),
                    )
                )
    return changes


def _deal_fields(deal_id: str, data: dict[str, Any]) -> DealFields:
    status = data.get("status")
    if data.get("is_deleted") is True:
        status = "deleted"
    return DealFields.model_validate(
        {
            "id": deal_id,
            "name": data.get("title"),
            "stage": _str_id(data.get("stage_id")),
            "status": status,
            "amount": data.get("value"),
            "currency": data.get("currency"),
            "close_date": data.get("expected_close_date") or None,
            "owner_id": _str_id(data.get("owner_id", data.get("user_id"))),
            "account_id": _str_id(data.get("org_id")),
            "lost_reason": data.get("lost_reason") or None,
        }
    )


def _previous_fields(previous: dict[str, Any]) -> PreviousFields | None:
    names = {
        "title": "name",
        "stage_id": "stage",
        "status": "status",
        "value": "amount",
        "expected_close_date": "close_date",
        "owner_id": "owner_id",
        "user_id": "owner_id",
    }
    fields: dict[str, Any] = {}
    for theirs, ours in names.items():
        if theirs in previous and ours not in fields:
            value = previous[theirs]
            fields[ours] = (
                _str_id(value) if ours in ("stage", "owner_id") else (value if value != "" else None)
            )
    return PreviousFields.model_validate(fields) if fields else None


def _activity(event: PipedriveEvent, entity: str, received_at: datetime) -> DealChanged | None:
    data = event.data or {}
    deal_id = readable_id(_id(data.get("deal_id")))
    if deal_id is None:
        return None
    actor = _str_id(data.get("owner_id", data.get("user_id"))) or _str_id(event.meta.user_id)
    if entity == "note":
        text = _plain(data.get("content"))
        info = ActivityInfo(kind="note", direction=infer_direction("note", text), text=text, actor_id=actor)
    else:
        kind = _activity_kind(data.get("type"))
        subject, note = _plain(data.get("subject")), _plain(data.get("note"))
        text = "\n".join(t for t in (subject, note) if t)[:MAX_TEXT] or None
        done = _flag(data.get("done"))
        scheduled = None if done else _due(data.get("due_date"), data.get("due_time"))
        info = ActivityInfo(
            kind=kind,
            direction=infer_direction(kind, subject, note),
            text=text,
            actor_id=actor,
            done=done,
            scheduled_at=scheduled,
        )
    return _change(event, "activity.logged", DealFields(id=deal_id), received_at, activity=info)


def _person(event: PipedriveEvent, action: str, received_at: datetime) -> list[DealChanged]:
    data = event.data or event.previous or {}
    previous = event.previous or {}
    person = readable_id(_id(data.get("id"))) or readable_id(event.meta.entity_id)
    linked = data.get("deal_ids")
    deals: list[Any] = linked if isinstance(linked, list) else [data.get("deal_id")]
    deal_ids = [d for d in (readable_id(_id(x)) for x in deals[:50]) if d]
    if person is None or not deal_ids:
        return []
    how: ContactChange = "updated"
    if action == "delete":
        how = "removed"
    elif "org_id" in previous and _id(previous.get("org_id")) != _id(data.get("org_id")):
        how = "left_company"
    elif "job_title" in previous:
        how = "role_changed"
    contact = ContactInfo(
        id=person, name=_plain(data.get("name")), title=_plain(data.get("job_title")), change=how
    )
    return [
        _change(
            event,
            "contact.changed",
            DealFields(id=d),
            received_at,
            contact=contact,
            suffix=f":deal-{d}" if len(deal_ids) > 1 else "",
        )
        for d in deal_ids
    ]


def _activity_kind(value: Any) -> ActivityKind:
    key = str(value or "").strip().lower()
    if key in _KINDS:
        return _KINDS[key]
    for pattern, kind in _KIND_WORDS:
        if pattern.search(key):
            return kind
    return "task"


def _occurred_at(event: PipedriveEvent, received_at: datetime) -> datetime:
    for value in (event.meta.timestamp, (event.data or {}).get("update_time")):
        when = _instant(value)
        if when is not None:
            return when
    return received_at


def _instant(value: Any) -> datetime | None:
    """ISO date-time, Pipedrive's ``YYYY-MM-DD HH:MM:SS`` (UTC), or epoch seconds/milliseconds."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        number = float(value)
        return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, tz=UTC)
    if not isinstance(value, str):
        raise ValueError("a time that is neither text nor a number")
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _due(due_date: Any, due_time: Any) -> datetime | None:
    if not isinstance(due_date, str) or not due_date:
        return None
    day = date.fromisoformat(due_date[:10])
    at = time.fromisoformat(due_time) if isinstance(due_time, str) and due_time else time(0, 0)
    return datetime.combine(day, at.replace(tzinfo=None), tzinfo=UTC)


def _flag(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes")


def _id(value: Any) -> Any:
    """An id, also when Pipedrive sends the object it names (``{"id": 7, "name": ...}``, ``{"value": 7}``)."""
    if isinstance(value, dict):
        return value.get("id", value.get("value"))
    return value


def _str_id(value: Any) -> str | None:
    value = _id(value)
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)[:200]


_BREAKS = re.compile(r"<\s*(br|/p|/div|/li|/h\d)\s*/?\s*>", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]{0,2000}>")
_BLANKS = re.compile(r"[ \t\u3000]*\n\s*")


def _plain(value: Any) -> str | None:
    """Text from Pipedrive's HTML fields: tags out, entities decoded, lines kept."""
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = str(value)
    if "<" in text:
        text = _TAGS.sub("", _BREAKS.sub("\n", text))
    text = _BLANKS.sub("\n", html.unescape(text)).strip()
    return text[:MAX_TEXT] or None


def _deal_id_of(item: Any) -> str | None:
    if not isinstance(item, dict) or not isinstance(item.get("meta"), dict):
        return None
    given = item.get("data")
    data: dict[str, Any] = given if isinstance(given, dict) else {}
    if item["meta"].get("entity") == "deal":
        return readable_id(_id(data.get("id"))) or readable_id(item["meta"].get("entity_id"))
    return readable_id(_id(data.get("deal_id")))


def _invalid(index: int, detail: str, item: Any) -> InvalidEvent:
    deal_id = _deal_id_of(item)
    return InvalidEvent(
        "invalid_event",
        f"event {index}: {detail}",
        index=index,
        deal_key=f"{SOURCE}:{deal_id}" if deal_id else None,
    )
