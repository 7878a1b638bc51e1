"""Salesforce into ``DealChanged``: Change Data Capture events (JSON, as a relay posts them) and Outbound
Message notifications (SOAP, read by ``salesforce_soap``).

- Opportunity → the deal: Name, StageName, IsClosed/IsWon (or the stage "Closed Won"/"Closed Lost") as the
  status, Amount, CurrencyIsoCode, CloseDate, OwnerId, AccountId, and a lost reason from the usual custom
  fields (``Loss_Reason__c``, ...). Description and NextStep become an internal note (their words are
  evidence).
  CDC ``CREATE`` → ``deal.created``, ``UPDATE``/``UNDELETE`` → ``deal.updated`` (only the changed fields),
  ``DELETE`` → ``deal.deleted``; an Outbound Message is a snapshot → ``deal.updated``.
- OpportunityContactRole → ``contact.changed`` (created → ``added``, role changed → ``role_changed``).
- Task and Event on an opportunity (``WhatId`` 006...) → ``activity.logged``; the kind from TaskSubtype/Type,
  the direction inferred from the words, an open Task's ActivityDate or an Event's StartDateTime as
  ``scheduled_at``.
- Gap events, wildcard record ids, deletions without the opportunity, and other objects are acknowledged and
  not published (``Batch.ignored``).

Identity: CDC ``transactionKey`` + ``sequenceNumber`` (+ the record when one event names several); an Outbound
Message's notification ``Id``, which Salesforce keeps across its retries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from schemas import ActivityInfo, ContactInfo, DealChanged, DealFields
from schemas.events import ActivityKind, EventType
from services.ingest.domain.direction import infer_direction
from services.ingest.domain.normalize import as_items, describe
from services.ingest.domain.outcome import Batch, InvalidEvent, TooManyEvents
from services.ingest.domain.salesforce_soap import Notification, OutboundMessage

SOURCE = "salesforce"
OPPORTUNITY_PREFIX = "006"
LOST_REASON_FIELDS = (
    "Loss_Reason__c",
    "Lost_Reason__c",
    "Reason_Lost__c",
    "Closed_Lost_Reason__c",
    "LossReason__c",
)
_KINDS: dict[str, ActivityKind] = {
    "call": "call",
    "email": "email",
    "listemail": "email",
    "meeting": "meeting",
    "event": "meeting",
    "task": "task",
}
_CHANGE_TYPES: dict[str, EventType] = {
    "CREATE": "deal.created",
    "UPDATE": "deal.updated",
    "UNDELETE": "deal.updated",
    "DELETE": "deal.deleted",
}


class ChangeEventHeader(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)

    entity_name: str = Field(min_length=1, max_length=100)
    record_ids: list[str] = Field(min_length=1, max_length=200)
    change_type: str = Field(min_length=1, max_length=32)
    transaction_key: str | None = Field(default=None, max_length=200)
    sequence_number: int | None = None
    commit_timestamp: int = Field(ge=946_684_800_000, le=4_102_444_800_000)
    changed_fields: list[str] = Field(default_factory=list)
    nulled_fields: list[str] = Field(default_factory=list)


def normalize_salesforce(payload: Any, *, received_at: datetime, max_events: int) -> Batch:
    if isinstance(payload, OutboundMessage):
        return _outbound(payload, received_at, max_events)
    events: list[DealChanged] = []
    ignored = 0
    for index, item in enumerate(as_items(payload, max_events)):
        body, replay_id = _unwrap(item)
        try:
            header = ChangeEventHeader.model_validate(body.get("ChangeEventHeader") if body else None)
            changes = _cdc_changes(header, body or {}, replay_id, received_at)
        except ValidationError as exc:
            raise _invalid(index, describe(exc), body) from None
        except (ValueError, OverflowError) as exc:
            raise _invalid(index, str(exc).splitlines()[0][:200], body) from None
        events.extend(changes)
        ignored += not changes
    return Batch(events=tuple(events), ignored=ignored)


def _unwrap(item: Any) -> tuple[dict[str, Any] | None, Any]:
    """The change event of an item as a relay posts it: bare, ``{"payload", "event"}`` or under ``data``."""
    if isinstance(item, dict) and isinstance(item.get("data"), dict) and "ChangeEventHeader" not in item:
        item = item["data"]
    if not isinstance(item, dict):
        return None, None
    if "ChangeEventHeader" in item:
        return item, None
    event = item.get("event")
    replay = event.get("replayId") if isinstance(event, dict) else None
    payload = item.get("payload")
    return (payload if isinstance(payload, dict) else None), replay


def _cdc_changes(
    header: ChangeEventHeader, body: dict[str, Any], replay_id: Any, received_at: datetime
) -> list[DealChanged]:
    type_ = _CHANGE_TYPES.get(header.change_type)
    records = [r for r in header.record_ids if r and not r.endswith("*")]
    if type_ is None or not records:
        return []
    base = _cdc_event_id(header, replay_id)
    occurred_at = datetime.fromtimestamp(header.commit_timestamp / 1000, tz=UTC)
    values = {**body, **dict.fromkeys(header.nulled_fields)}
    changes = []
    for record in records:
        event_id = f"{base}:{record}" if len(records) > 1 else base
        change = _record_change(
            header.entity_name,
            type_,
            record,
            values,
            event_id,
            occurred_at,
            received_at,
            created=header.change_type == "CREATE",
            changed=header.changed_fields,
        )
        if change is not None:
            changes.append(change)
    return changes


def _cdc_event_id(header: ChangeEventHeader, replay_id: Any) -> str:
    if header.transaction_key:
        return f"sf-{header.transaction_key}-{header.sequence_number}"
    if replay_id is not None:
        return f"sf-replay-{str(replay_id)[:100]}"
    identity = [
        header.entity_name,
        header.record_ids,
        header.change_type,
        header.commit_timestamp,
        header.changed_fields,
    ]
    return "sf-" + hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]


def _record_change(
    entity: str,
    type_: EventType,
    record: str,
    values: Mapping[str, Any],
    event_id: str,
    occurred_at: datetime,
    received_at: datetime,
    *,
    created: bool,
    changed: list[str],
) -> DealChanged | None:
    def change(kind: EventType, deal: DealFields, **parts: Any) -> DealChanged:
        return DealChanged(
            event_id=event_id,
            source=SOURCE,
            deal_id=deal.id,
            occurred_at=occurred_at,
            received_at=received_at,
            type=kind,
            deal=deal,
            **parts,
        )

    if entity == "Opportunity":
        deal, note = _opportunity(record, values)
        if type_ == "deal.deleted":
            deal = deal.model_copy(update={"status": "deleted"})
        return change(type_, deal, activity=note)
    if entity == "OpportunityContactRole" and type_ != "deal.deleted":
        deal_id, contact_id = _str(values.get("OpportunityId")), _str(values.get("ContactId"))
        if not deal_id or not contact_id:
            return None
        how = "added" if created else ("role_changed" if "Role" in changed else "updated")
        role = _str(values.get("Role"))
        contact = ContactInfo(
            id=contact_id,
            title=role,
            change=how,
            decision_maker=role in ("Decision Maker", "Economic Buyer") if role else None,
        )
        return change("contact.changed", DealFields(id=deal_id), contact=contact)
    if entity in ("Task", "Event") and type_ != "deal.deleted":
        what = _str(values.get("WhatId"))
        if not what or not what.startswith(OPPORTUNITY_PREFIX):
            return None
        return change("activity.logged", DealFields(id=what), activity=_activity(entity, values, occurred_at))
    return None


def _opportunity(record: str, values: Mapping[str, Any]) -> tuple[DealFields, ActivityInfo | None]:
    lost_reason = next((values[f] for f in LOST_REASON_FIELDS if values.get(f)), None)
    deal = DealFields.model_validate(
        {
            "id": record,
            "name": values.get("Name"),
            "stage": values.get("StageName"),
            "status": _status(values),
            "amount": values.get("Amount"),
            "currency": values.get("CurrencyIsoCode"),
            "close_date": values.get("CloseDate") or None,
            "owner_id": values.get("OwnerId"),
            "account_id": values.get("AccountId"),
            "lost_reason": lost_reason,
        }
    )
    words = "\n".join(str(values[f]) for f in ("NextStep", "Description") if values.get(f))
    note = ActivityInfo(kind="note", direction="internal", text=words[:20_000]) if words else None
    return deal, note


def _status(values: Mapping[str, Any]) -> str | None:
    is_closed, is_won = _flag(values.get("IsClosed")), _flag(values.get("IsWon"))
    if is_won:
        return "won"
    if is_closed is True:
        return "lost"
    if is_closed is False:
        return "open"
    stage = str(values.get("StageName") or "").strip().lower()
    return {"closed won": "won", "closed lost": "lost"}.get(stage)


def _activity(entity: str, values: Mapping[str, Any], occurred_at: datetime) -> ActivityInfo:
    subtype = str(values.get("TaskSubtype") or values.get("Type") or entity).strip().lower().replace(" ", "")
    kind = _KINDS.get(subtype, "meeting" if entity == "Event" else "task")
    subject, text = _str(values.get("Subject")), _str(values.get("Description"))
    done = _flag(values.get("IsClosed"))
    if done is None and values.get("Status") is not None:
        done = str(values.get("Status")).lower() in ("completed", "closed")
    scheduled = _when(values.get("StartDateTime") or values.get("ActivityDateTime"))
    if scheduled is None and not done:
        scheduled = _when(values.get("ActivityDate"))
    words = "\n".join(t for t in (subject, text) if t)[:20_000] or None
    return ActivityInfo(
        kind=kind,
        direction=infer_direction(kind, subject, text),
        text=words,
        actor_id=_str(values.get("OwnerId")),
        done=done,
        scheduled_at=scheduled if scheduled and scheduled >= occurred_at else None,
    )


def _outbound(message: OutboundMessage, received_at: datetime, max_events: int) -> Batch:
    if len(message.notifications) > max_events:
        raise TooManyEvents(len(message.notifications), max_events)
    events: list[DealChanged] = []
    ignored = 0
    for index, notification in enumerate(message.notifications):
        try:
            change = _notification_change(notification, received_at)
        except ValidationError as exc:
            raise _invalid(index, describe(exc), notification.fields) from None
        except (ValueError, OverflowError) as exc:
            raise _invalid(index, str(exc).splitlines()[0][:200], notification.fields) from None
        if change is None:
            ignored += 1
        else:
            events.append(change)
    return Batch(events=tuple(events), ignored=ignored)


def _notification_change(notification: Notification, received_at: datetime) -> DealChanged | None:
    values = notification.fields
    record = _str(values.get("Id"))
    if not record:
        raise ValueError("the sObject has no Id")
    occurred_at = _when(values.get("LastModifiedDate") or values.get("SystemModstamp")) or received_at
    return _record_change(
        notification.object_type,
        "deal.updated",
        record,
        values,
        f"sf-om-{notification.id}",
        occurred_at,
        received_at,
        created=False,
        changed=[],
    )


def _when(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    if len(value) == 10:
        day = date.fromisoformat(value)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _flag(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = str(value).strip()
    return text[:200] or None


def _invalid(index: int, detail: str, values: Mapping[str, Any] | None) -> InvalidEvent:
    header = (values or {}).get("ChangeEventHeader")
    ids = header.get("recordIds") if isinstance(header, dict) else [(values or {}).get("Id")]
    record = ids[0] if isinstance(ids, list) and ids and isinstance(ids[0], str) else None
    return InvalidEvent(
        "invalid_event",
        f"event {index}: {detail}",
        index=index,
        deal_key=f"{SOURCE}:{record}" if record and record.startswith(OPPORTUNITY_PREFIX) else None,
    )
