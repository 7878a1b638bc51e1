"""The generic webhook event (version 1) into ``DealChanged``; and the batch rules every source shares.

A batch is all or nothing: one invalid event refuses the whole request (422, the body goes to the dead-letter
topic), so a sender can fix and resend it without half of it already published.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas import DealChanged, GenericEvent, deal_key
from services.ingest.domain.outcome import Batch, InvalidEvent, TooManyEvents

SOURCE = "generic"
M = TypeVar("M", bound=BaseModel)


def normalize_generic_event(event: GenericEvent, *, received_at: datetime) -> DealChanged:
    """One generic event as the normalized change; ``event_id`` is the sender's own, stable across retries."""
    deal = event.deal
    if event.type == "deal.deleted" and deal.status is None:
        deal = deal.model_copy(update={"status": "deleted"})
    # ``model_validate`` of a dict: the nested parts are already validated models, taken as they are, and it
    # costs less than the keyword constructor (or ``model_construct``, which is pure Python).
    return DealChanged.model_validate(
        {
            "event_id": event.event_id,
            "source": SOURCE,
            "deal_id": deal.id,
            "occurred_at": event.occurred_at,
            "received_at": received_at,
            "type": event.type,
            "deal": deal,
            "previous": event.previous,
            "activity": event.activity,
            "contact": event.contact,
        }
    )


def normalize_generic(
    payload: dict[str, Any] | list[Any], *, received_at: datetime, max_events: int
) -> Batch:
    """A generic body (one event or an array of them) as a batch, or ``InvalidEvent``/``TooManyEvents``."""
    items = as_items(payload, max_events)
    events = []
    for index, item in enumerate(items):
        try:
            events.append(change_of_generic(item, received_at))
        except ValidationError as exc:
            raise invalid_item(exc, item, index, SOURCE, generic_deal_id) from None
    return Batch(events=tuple(events))


def change_of_generic(item: Any, received_at: datetime) -> DealChanged:
    """One generic event as its change, for the webhook and the importer alike: in one validation when it is
    plainly valid (``generic_change``), else through the event's own model, whose ``ValidationError`` says where
    and why (or which, should it pass, gives the change)."""
    change = generic_change(item, received_at)
    if change is None:
        change = normalize_generic_event(GenericEvent.model_validate(item), received_at=received_at)
    return change


def generic_change(item: Any, received_at: datetime) -> DealChanged | None:
    """The change of a valid generic event in one validation (the event's fields are the change's, with its
    source, deal id and receipt time added), or None when it is not one, or not plainly one.

    What ``normalize_generic_event(GenericEvent.model_validate(item))`` gives, for about a sixth less: the two
    steps validate every field twice (once in the event, once more in the change)."""
    deal = item.get("deal") if isinstance(item, dict) else None
    if not isinstance(deal, dict):
        return None
    deal_id = deal.get("id")
    if isinstance(deal_id, int) and not isinstance(deal_id, bool):
        deal_id = str(deal_id)  # as ``DealFields`` reads a numeric id
    elif not isinstance(deal_id, str):
        return None
    # A sender's keys named like the change's own fields are overwritten here (or, ``schema_version``, refused
    # unless 1, which sends the event the long way), as the event itself ignores them.
    fields = {**item, "source": SOURCE, "deal_id": deal_id, "received_at": received_at}
    try:
        change = DealChanged.model_validate(fields)
    except ValidationError:
        return None
    if change.type == "deal.deleted" and change.deal.status is None:
        return None  # the rare case the two steps complete
    return change


def as_items(payload: dict[str, Any] | list[Any], max_events: int) -> Sequence[Any]:
    """The events of a body that may hold one object or an array of them, bounded and non-empty."""
    items: Sequence[Any] = payload if isinstance(payload, list) else [payload]
    if len(items) > max_events:
        raise TooManyEvents(len(items), max_events)
    if not items:
        raise InvalidEvent("empty_batch", "the array holds no events")
    return items


def validate_item(
    model: type[M], item: Any, index: int, source: str, read_deal_id: Callable[[Any], str | None]
) -> M:
    """``model`` validated from one item of a batch, or ``InvalidEvent`` that says where and why."""
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        raise invalid_item(exc, item, index, source, read_deal_id) from None


def invalid_item(
    exc: ValidationError, item: Any, index: int, source: str, read_deal_id: Callable[[Any], str | None]
) -> InvalidEvent:
    """The refusal of one item of a batch that failed validation: where and why, and its deal if it names one."""
    deal_id = read_deal_id(item)
    return InvalidEvent(
        "invalid_event",
        describe(exc, index),
        index=index,
        deal_key=deal_key(source, deal_id) if deal_id else None,
    )


def describe(exc: ValidationError, index: int | None = None) -> str:
    """A short, body-free account of what failed: field paths and messages, never the input values."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "(event)"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(parts)
    text = "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    return f"event {index}: {text}" if index is not None else text


def readable_id(value: Any) -> str | None:
    """An id as a key can carry it: a non-empty short string or an integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 200:
        return value
    return None


def generic_deal_id(item: Any) -> str | None:
    """The deal id a generic event names, if it can be read as a key."""
    deal = item.get("deal") if isinstance(item, dict) else None
    return readable_id(deal.get("id")) if isinstance(deal, dict) else None
