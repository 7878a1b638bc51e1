from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dealwatch.demo import load_demo_events, render, standard_webhook_headers
from schemas.events import GenericEvent
from tests.helpers import TEST_GENERIC_SECRET, standard_webhooks_headers

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def events() -> list[GenericEvent]:
    return [GenericEvent.model_validate(e) for e in load_demo_events(NOW)]


def by_deal() -> dict[str, list[GenericEvent]]:
    deals: dict[str, list[GenericEvent]] = {}
    for event in events():
        deals.setdefault(event.deal.id, []).append(event)
    return deals


def texts() -> list[str]:
    return [e.activity.text for e in events() if e.activity is not None and e.activity.text]


def test_every_demo_line_is_a_valid_generic_event_with_a_unique_id() -> None:
    ids = [e.event_id for e in events()]

    assert len(ids) == len(set(ids)) > 0


def test_the_demo_covers_about_a_dozen_deals_in_japanese_and_english() -> None:
    assert 10 <= len(by_deal()) <= 14
    assert any(JAPANESE.search(t) for t in texts())
    assert any(not JAPANESE.search(t) for t in texts())


def test_the_demo_has_an_owner_change_and_a_bulk_reassignment() -> None:
    changes = [e for e in events() if e.previous is not None and e.previous.owner_id is not None]
    by_old_owner: dict[str, set[str]] = {}
    for e in changes:
        assert e.deal.owner_id != e.previous.owner_id  # type: ignore[union-attr]
        by_old_owner.setdefault(e.previous.owner_id, set()).add(e.deal.id)  # type: ignore[union-attr, arg-type]

    assert max(len(deals) for deals in by_old_owner.values()) >= 2


def test_the_demo_has_deals_whose_last_activity_lies_sixty_days_back_or_more() -> None:
    quiet = [
        deal for deal, evs in by_deal().items() if NOW - max(e.occurred_at for e in evs) >= timedelta(60)
    ]

    assert len(quiet) >= 2


def test_the_demo_has_a_contact_who_left_the_company() -> None:
    assert any(e.contact is not None and e.contact.change == "left_company" for e in events())


def test_the_demo_has_a_close_date_pushed_repeatedly() -> None:
    pushes: dict[str, int] = {}
    for e in events():
        if (
            e.previous
            and e.previous.close_date
            and e.deal.close_date
            and e.deal.close_date > e.previous.close_date
        ):
            pushes[e.deal.id] = pushes.get(e.deal.id, 0) + 1

    assert max(pushes.values()) >= 2


def test_the_demo_has_a_deal_lost_to_a_competitor() -> None:
    lost = [e for e in events() if e.deal.status == "lost"]

    assert lost
    assert any("competitor" in (e.deal.lost_reason or "").lower() for e in lost)


def test_the_demo_has_healthy_controls_with_recent_activity() -> None:
    healthy = [
        deal
        for deal, evs in by_deal().items()
        if all(e.type in ("deal.created", "activity.logged") for e in evs)
        and NOW - max(e.occurred_at for e in evs) <= timedelta(days=3)
    ]

    assert len(healthy) >= 2


def test_placeholders_are_filled_relative_to_now() -> None:
    filled: Any = render({"a": "{{ts-70d}}", "b": ["{{date+30d}}", "{{ts}}"], "c": 5}, NOW)

    assert filled == {"a": "2026-08-24T09:00:00Z", "b": ["2026-12-02", "2026-11-02T09:00:00Z"], "c": 5}
    assert date.fromisoformat(filled["b"][0]) == NOW.date() + timedelta(30)


def test_the_demo_signs_like_the_standard_webhooks_reference() -> None:
    body = b'{"event_id":"x"}'

    ours = standard_webhook_headers(TEST_GENERIC_SECRET, "msg_1", 1_700_000_000, body)

    assert ours == standard_webhooks_headers(TEST_GENERIC_SECRET, body, "msg_1", 1_700_000_000)
