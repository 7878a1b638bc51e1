"""Pipedrive webhooks v2 into DealChanged: deals, contacts, activities, notes, persons, identity."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.ingest.domain.outcome import InvalidEvent
from services.ingest.domain.pipedrive import normalize_pipedrive

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
DEAL = {
    "id": 3107,
    "title": "三和フーズ 勤怠管理",
    "value": 2400000,
    "currency": "JPY",
    "status": "open",
    "stage_id": 3,
    "pipeline_id": 1,
    "owner_id": 2290411,
    "person_id": 611,
    "org_id": 204,
    "expected_close_date": "2027-01-20",
    "lost_reason": None,
}


def body(
    entity: str, action: str, data: dict[str, Any] | None, previous: dict[str, Any] | None = None, **meta: Any
) -> dict[str, Any]:
    return {
        "meta": {
            "action": action,
            "entity": entity,
            "entity_id": (data or {}).get("id", 1),
            "id": "5f0c1a2e-0000-4000-8000-000000000001",
            "timestamp": "2026-10-01T09:00:00Z",
            "attempt": 1,
            "user_id": 2290411,
            "company_id": 5520417,
            "version": "2.0",
            **meta,
        },
        "data": data,
        "previous": previous,
    }


def changes(item: dict[str, Any]) -> list[Any]:
    return list(normalize_pipedrive(item, received_at=NOW, max_events=10).events)


def one(item: dict[str, Any]) -> Any:
    [change] = changes(item)
    return change


def test_a_new_deal_is_created_with_its_fields_and_its_person_as_a_contact() -> None:
    change = one(body("deal", "create", DEAL))
    assert (change.type, change.key) == ("deal.created", "pipedrive:3107")
    assert change.deal.model_dump(exclude_none=True) == {
        "id": "3107",
        "name": "三和フーズ 勤怠管理",
        "stage": "3",
        "status": "open",
        "amount": 2400000.0,
        "currency": "JPY",
        "close_date": date(2027, 1, 20),
        "owner_id": "2290411",
        "account_id": "204",
    }
    assert (change.contact.id, change.contact.change) == ("611", "added")
    assert change.occurred_at == datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def test_ids_sent_as_strings_read_the_same_as_numbers() -> None:
    as_strings = {k: str(v) if k.endswith("id") and v is not None else v for k, v in DEAL.items()}
    assert one(body("deal", "create", as_strings)).deal == one(body("deal", "create", DEAL)).deal


def test_an_owner_change_carries_the_previous_owner() -> None:
    change = one(body("deal", "change", {**DEAL, "owner_id": 2290488}, {"owner_id": 2290471}))
    assert (change.type, change.deal.owner_id, change.previous.owner_id) == (
        "deal.updated",
        "2290488",
        "2290471",
    )


def test_a_lost_deal_carries_its_status_and_reason() -> None:
    change = one(
        body(
            "deal",
            "change",
            {**DEAL, "status": "lost", "lost_reason": "予算不足"},
            {"status": "open", "lost_reason": None, "lost_time": None},
        )
    )
    assert (change.deal.status, change.deal.lost_reason, change.previous.status) == (
        "lost",
        "予算不足",
        "open",
    )


def test_a_pushed_close_date_carries_the_old_date() -> None:
    change = one(
        body(
            "deal",
            "change",
            {**DEAL, "expected_close_date": "2027-03-01"},
            {"expected_close_date": "2027-01-20"},
        )
    )
    assert (change.deal.close_date, change.previous.close_date) == (date(2027, 3, 1), date(2027, 1, 20))


def test_a_stage_move_carries_the_old_stage() -> None:
    assert one(body("deal", "change", DEAL, {"stage_id": 2})).previous.stage == "2"


def test_a_replaced_person_removes_the_old_contact_and_adds_the_new_one() -> None:
    update, removed, added = changes(body("deal", "change", {**DEAL, "person_id": 690}, {"person_id": 684}))
    assert update.type == "deal.updated"
    assert [(c.type, c.contact.id, c.contact.change) for c in (removed, added)] == [
        ("contact.changed", "684", "removed"),
        ("contact.changed", "690", "added"),
    ]
    assert len({update.event_id, removed.event_id, added.event_id}) == 3


def test_a_cleared_person_only_removes_the_old_contact() -> None:
    _, removed = changes(body("deal", "change", {**DEAL, "person_id": None}, {"person_id": 695}))
    assert (removed.contact.id, removed.contact.change) == ("695", "removed")


def test_a_deleted_deal_is_marked_deleted() -> None:
    change = one(body("deal", "delete", None, DEAL, entity_id=3107))
    assert (change.type, change.deal_id, change.deal.status) == ("deal.deleted", "3107", "deleted")


def test_a_note_on_a_deal_is_an_internal_note_with_plain_text() -> None:
    note = {
        "id": 90008,
        "content": "<p>予算の見直しが入ったため一旦保留とのこと。<br>下期に再検討 &amp; 再提案</p>",
        "deal_id": 3107,
        "user_id": 2290411,
    }
    change = one(body("note", "create", note))
    assert (change.type, change.deal_id) == ("activity.logged", "3107")
    assert change.activity.model_dump(exclude_none=True) == {
        "kind": "note",
        "direction": "internal",
        "actor_id": "2290411",
        "text": "予算の見直しが入ったため一旦保留とのこと。\n下期に再検討 & 再提案",
    }


def test_a_note_recording_the_customer_calling_is_inbound() -> None:
    note = {"id": 1, "content": "先方より電話あり。来週打合せ希望", "deal_id": 3107}
    assert one(body("note", "create", note)).activity.direction == "inbound"


def activity(**fields: Any) -> dict[str, Any]:
    return {
        "id": 90001,
        "type": "meeting",
        "subject": "デモ実施",
        "note": "人事部 田中様、好感触",
        "deal_id": 3107,
        "person_id": 611,
        "owner_id": 2290411,
        "done": True,
        "due_date": "2026-10-01",
        "due_time": "10:00",
        **fields,
    }


@pytest.mark.parametrize(
    ("type_", "kind", "direction"),
    [
        ("meeting", "meeting", "outbound"),
        ("call", "call", "outbound"),
        ("email", "email", "outbound"),
        ("task", "task", "internal"),
        ("deadline", "task", "internal"),
        ("lunch", "meeting", "outbound"),
        ("demo_visit", "meeting", "outbound"),
        ("phone_call_custom", "call", "outbound"),
    ],
)
def test_an_activity_type_maps_to_a_kind_and_a_direction(type_: str, kind: str, direction: str) -> None:
    info = one(body("activity", "create", activity(type=type_, note="", subject="x"))).activity
    assert (info.kind, info.direction) == (kind, direction)


def test_an_email_from_the_customer_is_inbound() -> None:
    info = one(
        body("activity", "create", activity(type="email", subject="Re: 見積", note="先方より見積依頼あり"))
    ).activity
    assert info.direction == "inbound"


def test_an_activity_carries_subject_and_note_as_text_and_its_owner_as_actor() -> None:
    info = one(body("activity", "create", activity())).activity
    assert (info.text, info.actor_id, info.done, info.scheduled_at) == (
        "デモ実施\n人事部 田中様、好感触",
        "2290411",
        True,
        None,
    )


def test_an_activity_not_yet_done_is_scheduled_at_its_due_time_in_utc() -> None:
    info = one(
        body("activity", "create", activity(done=False, due_date="2026-10-11", due_time="10:00"))
    ).activity
    assert (info.done, info.scheduled_at) == (False, datetime(2026, 10, 11, 10, 0, tzinfo=UTC))


def test_an_activity_without_a_due_time_is_scheduled_at_the_start_of_its_day() -> None:
    info = one(body("activity", "create", activity(done=0, due_date="2026-10-11", due_time=""))).activity
    assert info.scheduled_at == datetime(2026, 10, 11, tzinfo=UTC)


def test_a_retry_keeps_the_event_id_whatever_its_attempt() -> None:
    first = one(body("deal", "create", DEAL, attempt=1))
    retry = one(body("deal", "create", DEAL, attempt=2))
    assert first.event_id == retry.event_id


def test_without_a_meta_id_the_event_id_still_ignores_the_attempt() -> None:
    first = one(body("deal", "create", DEAL, id=None, attempt=1))
    retry = one(body("deal", "create", DEAL, id=None, attempt=4))
    other = one(body("deal", "create", DEAL, id=None, timestamp="2026-10-02T09:00:00Z"))
    assert first.event_id == retry.event_id != other.event_id


def test_a_person_who_moved_to_another_organization_left_the_company_for_their_deals() -> None:
    person = {"id": 684, "name": "伊藤", "job_title": "課長", "org_id": 300, "deal_ids": [3107, 3108]}
    batch = changes(body("person", "change", person, {"org_id": 204}))
    assert [(c.deal_id, c.contact.change) for c in batch] == [
        ("3107", "left_company"),
        ("3108", "left_company"),
    ]


@pytest.mark.parametrize(
    "item",
    [
        body("person", "change", {"id": 684, "name": "伊藤"}, {"job_title": "係長"}),
        body("note", "create", {"id": 1, "content": "org note", "deal_id": None, "org_id": 204}),
        body("activity", "create", {"id": 1, "type": "call", "subject": "x", "deal_id": None}),
        body("activity", "delete", None, {"id": 1, "deal_id": 3107}),
        body("organization", "change", {"id": 204, "name": "Org"}),
    ],
)
def test_events_without_a_deal_are_acknowledged_and_not_published(item: dict[str, Any]) -> None:
    batch = normalize_pipedrive(item, received_at=NOW, max_events=10)
    assert (batch.events, batch.ignored) == ((), 1)


@pytest.mark.parametrize(
    "item",
    [
        {"data": DEAL},
        {"meta": {"action": "create"}, "data": DEAL},
        body("deal", "create", {**DEAL, "status": "paused"}),
        body("deal", "create", {**DEAL, "expected_close_date": "next month"}),
        body("deal", "create", {**DEAL, "id": None}, entity_id=None),
        body("activity", "create", activity(done=False, due_date="2026-13-40")),
        body("deal", "create", DEAL, timestamp="not a time"),
    ],
)
def test_an_event_pipedrive_would_not_send_is_refused(item: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent):
        normalize_pipedrive(item, received_at=NOW, max_events=10)


def test_a_refused_deal_event_names_its_deal_for_the_dead_letter_key() -> None:
    with pytest.raises(InvalidEvent) as caught:
        normalize_pipedrive(
            body("deal", "create", {**DEAL, "status": "paused"}), received_at=NOW, max_events=10
        )
    assert caught.value.deal_key == "pipedrive:3107"
