"""The generic event (version 1) into DealChanged, and the all-or-nothing batch rule."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.domain.normalize import normalize_generic
from services.ingest.domain.outcome import InvalidEvent, TooManyEvents
from services.ingest.domain.records import to_json

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


# ------------------------------------------------------------------ one validation, the same result as two

_FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.sampled_from(["2026-11-02T09:15:00+09:00", "2026-11-02T09:15:00", "2026-12-20", "open", "deleted"]),
    st.sampled_from(["deal.deleted", "activity.logged", "note", "left_company", "generic", ""]),
    st.just("x" * 201),
    st.dictionaries(st.sampled_from(["id", "kind", "status", "owner_id"]), st.text(max_size=3), max_size=2),
)
_EVENT_KEYS = st.sampled_from(
    [
        *CONTRACT_EXAMPLE,
        "schema_version",
        "source",
        "deal_id",
        "received_at",
        "unknown",
    ]
)
_DEAL_KEYS = st.sampled_from([*CONTRACT_EXAMPLE["deal"], "unknown"])


def _normalized(payload: Any) -> tuple[str, Any]:
    try:
        return "ok", normalize_generic(payload, received_at=NOW, max_events=10).events
    except InvalidEvent as exc:
        return "invalid", (exc.reason, exc.detail, exc.deal_key)


def _two_steps(payload: Any) -> tuple[str, Any]:
    from schemas import GenericEvent
    from services.ingest.domain.normalize import generic_deal_id, normalize_generic_event, validate_item

    try:
        event = validate_item(GenericEvent, payload, 0, "generic", generic_deal_id)
    except InvalidEvent as exc:
        return "invalid", (exc.reason, exc.detail, exc.deal_key)
    return "ok", (normalize_generic_event(event, received_at=NOW),)


@settings(max_examples=500, deadline=None)
@given(
    top=st.dictionaries(_EVENT_KEYS, _FIELD_VALUES, max_size=4),
    deal=st.dictionaries(_DEAL_KEYS, _FIELD_VALUES, max_size=4),
    drop=st.sets(st.sampled_from([*CONTRACT_EXAMPLE, "deal.id", "deal.status"]), max_size=2),
)
def test_one_validation_gives_what_the_event_and_the_change_validated_in_turn_give(
    top: dict[str, Any], deal: dict[str, Any], drop: set[str]
) -> None:
    """A valid event is validated once as the change (its fields are the change's; a sender's keys named like
    the change's own fields are ignored, as the event ignores them); anything else goes through the event's
    own validation, which says why. Either way the result is what the two validations in turn give."""
    payload = event(**top)
    if isinstance(payload.get("deal"), dict):
        payload["deal"] = {**payload["deal"], **deal}
        for name in ("id", "status"):
            if f"deal.{name}" in drop:
                payload["deal"].pop(name, None)
    for name in drop:
        payload.pop(name, None)
    assert _normalized(payload) == _two_steps(payload)


@pytest.mark.parametrize(
    "changes",
    [
        {"source": "hubspot", "deal_id": "other", "received_at": "2020-01-01T00:00:00Z", "schema_version": 7},
        {"deal": {**CONTRACT_EXAMPLE["deal"], "id": 1001}},
        {"deal": {**CONTRACT_EXAMPLE["deal"], "id": True}},
        {"type": "deal.deleted", "deal": {"id": "D-1"}},
        {"occurred_at": "2026-11-02T09:15:00"},
    ],
    ids=["change-only-keys", "numeric-id", "boolean-id", "deleted-without-status", "naive-time"],
)
def test_the_cases_one_validation_must_not_read_differently(changes: dict[str, Any]) -> None:
    assert _normalized(event(**changes)) == _two_steps(event(**changes))
