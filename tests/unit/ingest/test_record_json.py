"""The record value of a change: orjson over the models' fields writes exactly what pydantic's serializer
writes, for any change the models accept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import DealChanged
from services.ingest.domain.records import pydantic_json, to_json

texts = st.one_of(
    st.none(), st.text(max_size=30), st.sampled_from(["先方、競合A社", "a\u2028b", '\x00\x1f"\\/', "😀"])
)
floats = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e16, 1e-7, 123456789.123, 2.0**53 + 1, 5e-324, 1.7976931348623157e308]),
    st.integers(min_value=-(2**53), max_value=2**53),
)
offsets = st.one_of(
    st.just(UTC),
    st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timezone(timedelta(minutes=m))),
    st.integers(min_value=-86_399, max_value=86_399).map(lambda s: timezone(timedelta(seconds=s))),
)
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets)
"""A day from the calendar's ends: a moment with an offset of seconds is kept in UTC, which must exist."""
ids = st.text(min_size=1, max_size=12)


@st.composite
def changes(draw: Any) -> DealChanged:
    deal = {
        "id": draw(st.one_of(ids, st.integers(min_value=0, max_value=2**40))),
        "name": draw(texts),
        "stage": draw(texts),
        "status": draw(st.sampled_from([None, "open", "won", "lost", "deleted"])),
        "amount": draw(floats),
        "currency": draw(st.sampled_from([None, "JPY", "USD"])),
        "close_date": draw(st.one_of(st.none(), st.dates())),
        "owner_id": draw(st.one_of(st.none(), ids)),
        "lost_reason": draw(texts),
    }
    fields: dict[str, Any] = {
        "event_id": draw(ids),
        "source": draw(st.sampled_from(["generic", "hubspot", "pipedrive", "salesforce"])),
        "deal_id": draw(ids),
        "occurred_at": draw(moments),
        "received_at": draw(moments),
        "type": draw(st.sampled_from(["deal.created", "deal.updated", "activity.logged", "contact.changed"])),
        "deal": {k: v for k, v in deal.items() if v is not None or draw(st.booleans())},
    }
    if draw(st.booleans()):
        fields["previous"] = {"amount": draw(floats), "stage": draw(texts), "close_date": draw(st.dates())}
    if draw(st.booleans()):
        fields["activity"] = {
            "kind": draw(st.sampled_from(["note", "call", "email", "meeting", "task"])),
            "text": draw(texts),
            "scheduled_at": draw(st.one_of(st.none(), moments)),
            "done": draw(st.one_of(st.none(), st.booleans())),
        }
    if draw(st.booleans()):
        fields["contact"] = {"id": draw(ids), "decision_maker": draw(st.one_of(st.none(), st.booleans()))}
    return DealChanged.model_validate(fields)


@settings(max_examples=600, deadline=None)
@given(changes())
def test_the_record_value_is_byte_for_byte_what_pydantic_writes(change: DealChanged) -> None:
    assert to_json(change) == pydantic_json(change)


def test_a_time_zone_offset_of_seconds_keeps_the_moment_in_the_record() -> None:
    """``+HH:MM`` cannot carry seconds: written as it is, the moment would move by up to a minute."""
    odd = timezone(timedelta(hours=9, seconds=30))
    moment = datetime(2026, 11, 2, 9, 15, 0, tzinfo=odd)
    change = DealChanged.model_validate(
        {
            "event_id": "e-1",
            "source": "generic",
            "deal_id": "D-1",
            "occurred_at": moment,
            "received_at": moment,
            "type": "deal.updated",
            "deal": {"id": "D-1"},
        }
    )
    again = DealChanged.model_validate_json(to_json(change))
    assert again.occurred_at == moment
    assert again.received_at == moment


def test_a_moment_that_leaves_the_calendar_in_utc_is_a_validation_error() -> None:
    """An offset of seconds moves a moment to UTC; at year 1 that is before the calendar: refused, not a crash."""
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(seconds=1)))
    with pytest.raises(ValidationError, match="out of range"):
        DealChanged.model_validate(
            {
                "event_id": "e",
                "source": "generic",
                "deal_id": "d",
                "occurred_at": early,
                "type": "deal.updated",
            }
        )
