"""The generic event (version 1) into DealChanged, and the all-or-nothing batch rule."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from services.ingest.domain.normalize import normalize_generic
from services.ingest.domain.outcome import InvalidEvent, TooManyEvents
from services.ingest.web import to_json

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
CONTRACT_EXAMPLE: dict[str, Any] = {
    "event_id": "evt-8812",
    "occurred_at": "2026-11-02T09:15:00+09:00",
    "type": "deal.updated",
    "deal": {
        "id": "D-1001",
        "name": "Northwind 40 seats",
        "stage": "proposal",
        "status": "open",
        "amount": 1200000,
        "currency": "JPY",
        "close_date": "2026-12-20",
        "owner_id": "u-7",
        "account_id": "A-3",
        "account_tier": "key",
        "lost_reason": None,
    },
    "previous": {"owner_id": "u-2"},
    "activity": {
        "kind": "note",
        "direction": "internal",
        "text": "先方、競合A社の値引き提案を検討中とのこと",
        "actor_id": "u-7",
    },
    "contact": {"id": "C-9", "name": "Sato", "title": "部長", "change": "left_company"},
}


def event(**changes: Any) -> dict[str, Any]:
    ev = copy.deepcopy(CONTRACT_EXAMPLE)
    ev.update(changes)
    return ev


def test_the_contract_example_normalizes_to_a_deal_change_keyed_by_source_and_deal() -> None:
    [change] = normalize_generic(event(), received_at=NOW, max_events=10).events
    assert change.key == "generic:D-1001"
    assert change.event_id == "evt-8812"
    assert change.source == "generic"
    assert change.received_at == NOW
    assert change.occurred_at == datetime(2026, 11, 2, 9, 15, tzinfo=timezone(timedelta(hours=9)))
    assert change.deal.close_date == date(2026, 12, 20)
    assert change.previous is not None and change.previous.owner_id == "u-2"
    assert change.activity is not None and change.activity.text == "先方、競合A社の値引き提案を検討中とのこと"
    assert change.contact is not None and change.contact.change == "left_company"


def test_a_redelivered_event_keeps_its_event_id() -> None:
    first = normalize_generic(event(), received_at=NOW, max_events=10).events[0]
    again = normalize_generic(event(), received_at=NOW + timedelta(minutes=3), max_events=10).events[0]
    assert first.event_id == again.event_id


def test_numeric_deal_and_owner_ids_become_strings() -> None:
    ev = event(deal={"id": 1001, "owner_id": 7})
    [change] = normalize_generic(ev, received_at=NOW, max_events=10).events
    assert (change.deal_id, change.deal.owner_id) == ("1001", "7")


def test_a_deleted_deal_is_marked_deleted() -> None:
    [change] = normalize_generic(
        event(type="deal.deleted", deal={"id": "D-1"}), received_at=NOW, max_events=10
    ).events
    assert change.deal.status == "deleted"


def test_an_array_keeps_the_senders_order() -> None:
    batch = normalize_generic(
        [event(event_id="a"), event(event_id="b"), event(event_id="c")], received_at=NOW, max_events=10
    )
    assert [e.event_id for e in batch.events] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "changes",
    [
        {"event_id": ""},
        {"occurred_at": "2026-11-02T09:15:00"},
        {"occurred_at": "yesterday"},
        {"type": "deal.exploded"},
        {"deal": {"name": "no id"}},
        {"deal": {"id": "D-1", "amount": "lots"}},
        {"deal": {"id": "D-1", "status": "paused"}},
        {"activity": {"kind": "fax"}},
        {"contact": {"id": "C-1", "change": "vanished"}},
    ],
)
def test_an_invalid_event_is_refused_with_the_failing_field(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent) as caught:
        normalize_generic(event(**changes), received_at=NOW, max_events=10)
    assert caught.value.index == 0
    assert str(next(iter(changes))) in caught.value.detail


def test_a_missing_event_id_is_refused() -> None:
    ev = event()
    del ev["event_id"]
    with pytest.raises(InvalidEvent, match="event_id"):
        normalize_generic(ev, received_at=NOW, max_events=10)


def test_one_invalid_event_refuses_the_whole_batch_and_names_its_deal() -> None:
    bad = event(event_id="bad", deal={"id": "D-9", "status": "paused"})
    with pytest.raises(InvalidEvent) as caught:
        normalize_generic([event(), bad, event()], received_at=NOW, max_events=10)
    assert caught.value.index == 1
    assert caught.value.deal_key == "generic:D-9"


def test_the_refusal_detail_does_not_echo_the_senders_values() -> None:
    with pytest.raises(InvalidEvent) as caught:
        normalize_generic(
            event(deal={"id": "D-1", "status": "secret-token-123"}), received_at=NOW, max_events=1
        )
    assert "secret-token-123" not in caught.value.detail


@pytest.mark.parametrize("payload", [[], [1], ["text"], [[{"event_id": "x"}]]])
def test_an_empty_batch_or_a_batch_of_non_objects_is_refused(payload: list[Any]) -> None:
    with pytest.raises(InvalidEvent):
        normalize_generic(payload, received_at=NOW, max_events=10)


def test_a_batch_longer_than_the_bound_is_refused() -> None:
    with pytest.raises(TooManyEvents):
        normalize_generic([event()] * 4, received_at=NOW, max_events=3)


def test_the_record_value_is_the_changes_json() -> None:
    [change] = normalize_generic(event(), received_at=NOW, max_events=10).events
    assert to_json(change) == change.model_dump_json().encode()
