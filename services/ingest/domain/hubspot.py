"""HubSpot webhook arrays into ``DealChanged``.

Deal subscriptions (``deal.creation``, ``deal.propertyChange``, ``deal.deletion``, ``deal.associationChange``,
``deal.restore``, ``deal.merge``) and the generic ``object.*`` ones for deals (``objectTypeId`` ``0-3``).
Subscriptions about other objects are acknowledged and not published (``Batch.ignored``).

HubSpot sends only the new value of a property, so ``previous`` stays empty. Deal properties map to the deal's
fields; the text properties (``description``, ``hs_next_step``) become an internal note, so their words reach
the cause detector; the engagement roll-ups become activities (``notes_last_contacted``: an outbound contact,
recorded as a call since HubSpot does not say which kind; ``notes_last_updated``: an internal note;
``notes_next_activity_date``: a booked meeting with ``scheduled_at``). Other properties give a
``deal.updated`` that carries the deal id only.

Identity: ``eventId`` alone is not unique, so the event id is built from the portal, the subscription, the
event id and a digest of what changed (object, time, property, value, association), never the attempt number.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from schemas import ActivityInfo, ContactInfo, DealChanged, DealFields
from schemas.events import EventType
from services.ingest.domain.normalize import as_items, describe, readable_id, validate_item
from services.ingest.domain.outcome import Batch, InvalidEvent

SOURCE = "hubspot"
DEAL_TYPE_ID = "0-3"
CONTACT_TYPE_ID = "0-1"
CLOSED_STAGES = {"closedwon": "won", "closedlost": "lost"}
OPEN_STAGES = {
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
}
TEXT_PROPERTIES = {"description", "hs_next_step", "closed_won_reason"}
IdValue = int | str


class HubSpotEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)

    event_id: IdValue
    subscription_id: IdValue | None = None
    portal_id: IdValue | None = None
    occurred_at: int = Field(ge=946_684_800_000, le=4_102_444_800_000)
    subscription_type: str = Field(min_length=1, max_length=100)
    attempt_number: int | None = None
    object_id: IdValue | None = None
    object_type_id: str | None = Field(default=None, max_length=20)
    property_name: str | None = Field(default=None, max_length=200)
    property_value: Any = None
    source_id: str | None = Field(default=None, max_length=200)
    association_type: str | None = Field(default=None, max_length=100)
    from_object_id: IdValue | None = None
    to_object_id: IdValue | None = None
    from_object_type_id: str | None = Field(default=None, max_length=20)
    to_object_type_id: str | None = Field(default=None, max_length=20)
    association_removed: bool | None = None
    primary_object_id: IdValue | None = None
    merged_object_ids: list[IdValue] = Field(default_factory=list, max_length=100)
    new_object_id: IdValue | None = None


def normalize_hubspot(
    payload: dict[str, Any] | list[Any], *, received_at: datetime, max_events: int
) -> Batch:
    items = as_items(payload, max_events)
    events: list[DealChanged] = []
    ignored = 0
    for index, item in enumerate(items):
        event = validate_item(HubSpotEvent, item, index, SOURCE, _deal_id_of)
        changes = normalize_hubspot_event(event, index=index, received_at=received_at)
        events.extend(changes)
        ignored += not changes
    return Batch(events=tuple(events), ignored=ignored)


def normalize_hubspot_event(event: HubSpotEvent, *, index: int, received_at: datetime) -> list[DealChanged]:
    """The changes one HubSpot event makes to deals; empty when it is not about a deal."""
    scope, _, action = event.subscription_type.partition(".")
    if scope == "object" and action != "associationChange" and event.object_type_id != DEAL_TYPE_ID:
        return []
    if scope not in ("deal", "object"):
        return []
    base = _Base(event, index, received_at)
    if action == "creation":
        return [base.change("deal.created", DealFields(id=base.deal_id(event.object_id)))]
    if action == "deletion":
        return [base.change("deal.deleted", DealFields(id=base.deal_id(event.object_id), status="deleted"))]
    if action == "restore":
        return [base.change("deal.updated", DealFields(id=base.deal_id(event.object_id)))]
    if action == "propertyChange":
        return [_property_change(base, event)]
    if action == "associationChange":
        return _association_change(base, event)
    if action == "merge":
        survivor = {str(event.primary_object_id), str(event.new_object_id)}
        gone = [str(i) for i in event.merged_object_ids if str(i) not in survivor]
        return [
            base.change("deal.deleted", DealFields(id=base.deal_id(i), status="deleted"), suffix=i)
            for i in gone
        ]
    return []


class _Base:
    """What every change made from one HubSpot event shares: identity, times, error reporting."""

    def __init__(self, event: HubSpotEvent, index: int, received_at: datetime) -> None:
        self.event = event
        self.index = index
        self.received_at = received_at
        self.occurred_at = datetime.fromtimestamp(event.occurred_at / 1000, tz=UTC)
        self.event_id = hubspot_event_id(event)

    def deal_id(self, value: IdValue | None) -> str:
        deal_id = readable_id(value)
        if deal_id is None:
            raise self.invalid("the event names no deal (objectId)")
        return deal_id

    def invalid(self, detail: str, deal_id: str | None = None) -> InvalidEvent:
        key = f"{SOURCE}:{deal_id}" if deal_id else None
        return InvalidEvent("invalid_event", f"event {self.index}: {detail}", index=self.index, deal_key=key)

    def change(
        self,
        type_: EventType,
        deal: DealFields,
        *,
        activity: ActivityInfo | None = None,
        contact: ContactInfo | None = None,
        suffix: str = "",
    ) -> DealChanged:
        return DealChanged(
            event_id=self.event_id + (f":{suffix}" if suffix else ""),
            source=SOURCE,
            deal_id=deal.id,
            occurred_at=self.occurred_at,
            received_at=self.received_at,
            type=type_,
            deal=deal,
            activity=activity,
            contact=contact,
        )


def hubspot_event_id(event: HubSpotEvent) -> str:
    identity = [
        event.portal_id,
        event.subscription_id,
        event.event_id,
        event.subscription_type,
        event.object_id,
        event.object_type_id,
        event.occurred_at,
        event.property_name,
        event.property_value,
        event.association_type,
        event.from_object_id,
        event.to_object_id,
        event.association_removed,
        event.primary_object_id,
    ]
    digest = hashlib.sha256(json.dumps(identity, default=str, ensure_ascii=False).encode()).hexdigest()
    return f"hs-{str(event.event_id)[:40]}-{digest[:24]}"


def _property_change(base: _Base, event: HubSpotEvent) -> DealChanged:
    deal_id = base.deal_id(event.object_id)
    name, value = event.property_name or "", event.property_value
    text = _text(value)
    fields: dict[str, Any] = {"id": deal_id}
    activity: ActivityInfo | None = None
    try:
        if name == "dealname":
            fields["name"] = text
        elif name == "dealstage":
            fields["stage"] = text
            fields["status"] = _status_of_stage(text)
        elif name == "hubspot_owner_id":
            fields["owner_id"] = text
        elif name == "amount":
            fields["amount"] = _number(text)
        elif name == "closedate":
            fields["close_date"] = _date(text)
        elif name == "deal_currency_code":
            fields["currency"] = text
        elif name == "closed_lost_reason":
            fields["lost_reason"] = text
        elif name in ("hs_is_closed_won", "hs_is_closed_lost") and text == "true":
            fields["status"] = "won" if name == "hs_is_closed_won" else "lost"
        elif name in TEXT_PROPERTIES and text:
            activity = ActivityInfo(kind="note", direction="internal", text=text)
        elif name == "notes_last_updated":
            activity = ActivityInfo(kind="note", direction="internal")
        elif name == "notes_last_contacted" and text:
            activity = ActivityInfo(kind="call", direction="outbound", done=True)
        elif name == "notes_next_activity_date" and text:
            activity = ActivityInfo(
                kind="meeting", direction="outbound", done=False, scheduled_at=_instant(text)
            )
        deal = DealFields.model_validate(fields)
    except ValidationError as exc:
        raise base.invalid(f"property {name[:60]!r}: {describe(exc)}", deal_id) from None
    except (ValueError, OverflowError, OSError) as exc:
        raise base.invalid(f"property {name[:60]!r}: {_first_line(exc)}", deal_id) from None
    return base.change("deal.updated", deal, activity=activity)


def _association_change(base: _Base, event: HubSpotEvent) -> list[DealChanged]:
    kind = (event.association_type or "").upper()
    if kind == "DEAL_TO_CONTACT" or (event.from_object_type_id, event.to_object_type_id) == (
        DEAL_TYPE_ID,
        CONTACT_TYPE_ID,
    ):
        deal_side, contact_side = event.from_object_id, event.to_object_id
    elif kind == "CONTACT_TO_DEAL" or (event.from_object_type_id, event.to_object_type_id) == (
        CONTACT_TYPE_ID,
        DEAL_TYPE_ID,
    ):
        deal_side, contact_side = event.to_object_id, event.from_object_id
    else:
        return []
    deal_id = base.deal_id(deal_side)
    contact_id = readable_id(contact_side)
    if contact_id is None:
        raise base.invalid("the association names no contact", deal_id)
    change = "removed" if event.association_removed else "added"
    return [
        base.change(
            "contact.changed", DealFields(id=deal_id), contact=ContactInfo(id=contact_id, change=change)
        )
    ]


def _deal_id_of(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    if str(item.get("associationType", "")).upper() == "CONTACT_TO_DEAL":
        return readable_id(item.get("toObjectId"))
    return readable_id(item.get("objectId")) or readable_id(item.get("fromObjectId"))


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip() if not isinstance(value, bool) else str(value).lower()
    return text or None


def _status_of_stage(stage: str | None) -> str | None:
    if stage is None:
        return None
    if stage in CLOSED_STAGES:
        return CLOSED_STAGES[stage]
    return "open" if stage in OPEN_STAGES else None


def _number(text: str | None) -> float | None:
    return None if text is None else float(text.replace(",", ""))


def _date(text: str | None) -> date | None:
    """HubSpot date properties: midnight UTC in epoch milliseconds, or an ISO date or date-time."""
    if text is None:
        return None
    return _instant(text).date() if text.isdigit() or "T" in text else date.fromisoformat(text)


def _instant(text: str) -> datetime:
    if text.isdigit():
        if len(text) > 15:
            raise ValueError("not a time in epoch milliseconds")
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
