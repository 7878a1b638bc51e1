"""HubSpot webhook arrays into DealChanged: properties, associations, identity, and what is ignored."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.ingest.domain.hubspot import normalize_hubspot
from services.ingest.domain.outcome import InvalidEvent

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
OCCURRED_MS = 1_790_000_000_000


def hs(subscription: str, **fields: Any) -> dict[str, Any]:
    base = {
        "eventId": 1001,
        "subscriptionId": 77,
        "portalId": 4417702,
        "appId": 1,
        "occurredAt": OCCURRED_MS,
        "subscriptionType": subscription,
        "attemptNumber": 0,
        "objectId": 16277004512,
        "changeSource": "CRM_UI",
    }
    base.update(fields)
    return base


def prop(name: str, value: Any, **fields: Any) -> dict[str, Any]:
    return hs("deal.propertyChange", propertyName=name, propertyValue=value, **fields)


def one(item: dict[str, Any]) -> Any:
    [change] = normalize_hubspot([item], received_at=NOW, max_events=100).events
    return change


def test_a_deal_creation_becomes_deal_created_keyed_by_the_hubspot_deal() -> None:
    change = one(hs("deal.creation", changeFlag="CREATED"))
    assert (change.type, change.key) == ("deal.created", "hubspot:16277004512")
    assert change.occurred_at == datetime.fromtimestamp(OCCURRED_MS / 1000, tz=UTC)
    assert change.previous is None


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("dealname", "白鷺不動産 物件管理クラウド", "name", "白鷺不動産 物件管理クラウド"),
        ("dealstage", "qualifiedtobuy", "stage", "qualifiedtobuy"),
        ("hubspot_owner_id", "41877203", "owner_id", "41877203"),
        ("amount", "4500000", "amount", 4_500_000.0),
        ("amount", "1,250.5", "amount", 1250.5),
        ("closedate", "1798761600000", "close_date", date(2027, 1, 1)),
        ("closedate", "2027-01-01", "close_date", date(2027, 1, 1)),
        ("closed_lost_reason", "競合に決定。価格重視", "lost_reason", "競合に決定。価格重視"),
        ("deal_currency_code", "JPY", "currency", "JPY"),
    ],
)
def test_a_deal_property_change_sets_that_field_only(
    name: str, value: str, field: str, expected: Any
) -> None:
    change = one(prop(name, value))
    assert change.type == "deal.updated"
    assert getattr(change.deal, field) == expected
    assert change.previous is None


@pytest.mark.parametrize(
    ("stage", "status"),
    [("closedlost", "lost"), ("closedwon", "won"), ("presentationscheduled", "open"), ("custom-123", None)],
)
def test_the_stage_tells_the_status_for_hubspots_own_stages(stage: str, status: str | None) -> None:
    assert one(prop("dealstage", stage)).deal.status == status


@pytest.mark.parametrize("name", ["description", "hs_next_step"])
def test_a_text_property_becomes_an_internal_note_with_its_words(name: str) -> None:
    change = one(prop(name, "Budget cut - phase 1 only"))
    assert change.activity.kind == "note"
    assert change.activity.direction == "internal"
    assert change.activity.text == "Budget cut - phase 1 only"


def test_a_new_last_contacted_time_is_an_outbound_contact() -> None:
    activity = one(prop("notes_last_contacted", str(OCCURRED_MS))).activity
    assert (activity.kind, activity.direction) == ("call", "outbound")


def test_a_next_activity_date_books_a_meeting_for_that_time() -> None:
    activity = one(prop("notes_next_activity_date", "1798761600000")).activity
    assert activity.scheduled_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert activity.done is False


def test_an_unmapped_property_gives_an_update_that_names_only_the_deal() -> None:
    change = one(prop("hs_priority", "high"))
    assert change.deal.model_dump(exclude_none=True) == {"id": "16277004512"}


@pytest.mark.parametrize(
    ("item", "contact_id", "how"),
    [
        (
            hs(
                "deal.associationChange",
                associationType="DEAL_TO_CONTACT",
                fromObjectId=5,
                toObjectId=9,
                associationRemoved=True,
            ),
            "9",
            "removed",
        ),
        (
            hs(
                "deal.associationChange",
                associationType="CONTACT_TO_DEAL",
                fromObjectId=9,
                toObjectId=5,
                associationRemoved=False,
            ),
            "9",
            "added",
        ),
        (
            hs(
                "object.associationChange",
                fromObjectTypeId="0-3",
                toObjectTypeId="0-1",
                fromObjectId=5,
                toObjectId=9,
                associationRemoved=True,
            ),
            "9",
            "removed",
        ),
    ],
)
def test_a_contact_association_change_is_a_contact_change_of_the_deal(
    item: dict[str, Any], contact_id: str, how: str
) -> None:
    change = one(item)
    assert (change.type, change.deal_id) == ("contact.changed", "5")
    assert (change.contact.id, change.contact.change) == (contact_id, how)


def test_a_deal_deletion_marks_the_deal_deleted() -> None:
    change = one(hs("deal.deletion", changeFlag="DELETED"))
    assert (change.type, change.deal.status) == ("deal.deleted", "deleted")


def test_generic_object_events_for_deals_are_read_like_deal_events() -> None:
    change = one(
        hs("object.propertyChange", objectTypeId="0-3", propertyName="dealstage", propertyValue="closedlost")
    )
    assert (change.deal.stage, change.deal.status) == ("closedlost", "lost")


def test_a_merge_deletes_the_deals_merged_away() -> None:
    batch = normalize_hubspot(
        [hs("deal.merge", primaryObjectId=1, mergedObjectIds=[1, 2, 3], newObjectId=1)],
        received_at=NOW,
        max_events=10,
    )
    assert [(e.deal_id, e.type) for e in batch.events] == [("2", "deal.deleted"), ("3", "deal.deleted")]
    assert len({e.event_id for e in batch.events}) == 2


def test_events_about_other_objects_are_acknowledged_and_not_published() -> None:
    items = [
        hs("contact.propertyChange", propertyName="jobtitle", propertyValue="CEO"),
        hs("object.creation", objectTypeId="0-2"),
        hs("deal.associationChange", associationType="DEAL_TO_COMPANY", fromObjectId=5, toObjectId=7),
        prop("dealname", "kept"),
    ]
    batch = normalize_hubspot(items, received_at=NOW, max_events=10)
    assert batch.ignored == 3
    assert [e.deal.name for e in batch.events] == ["kept"]


def test_a_retry_with_a_higher_attempt_number_has_the_same_event_id() -> None:
    assert (
        one(prop("amount", "10", attemptNumber=0)).event_id
        == one(prop("amount", "10", attemptNumber=3)).event_id
    )


@pytest.mark.parametrize(
    "other",
    [
        {"subscriptionId": 78},
        {"portalId": 1},
        {"occurredAt": OCCURRED_MS + 1},
        {"objectId": 2},
        {"propertyValue": "11"},
        {"propertyName": "hs_priority"},
    ],
)
def test_two_events_sharing_an_event_id_but_not_their_change_have_different_ids(
    other: dict[str, Any],
) -> None:
    base = prop("amount", "10")
    assert one(base).event_id != one({**base, **other}).event_id


@pytest.mark.parametrize(
    "item",
    [
        {"subscriptionType": "deal.creation"},
        hs("deal.creation", occurredAt="yesterday"),
        hs("deal.creation", objectId=None),
        prop("amount", "a lot"),
        prop("closedate", "31/12/2026"),
        prop("closedate", "9" * 15),
        hs("deal.associationChange", associationType="DEAL_TO_CONTACT", fromObjectId=5, toObjectId=None),
        "not an object",
    ],
)
def test_an_event_hubspot_would_not_send_is_refused(item: Any) -> None:
    with pytest.raises(InvalidEvent):
        normalize_hubspot([item], received_at=NOW, max_events=10)


def test_a_refused_property_names_the_deal_for_the_dead_letter_key() -> None:
    with pytest.raises(InvalidEvent) as caught:
        normalize_hubspot(
            [prop("dealname", "ok"), prop("amount", "a lot", objectId=42)], received_at=NOW, max_events=10
        )
    assert (caught.value.index, caught.value.deal_key) == (1, "hubspot:42")
