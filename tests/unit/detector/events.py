"""Builders of change events for detector tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events import DealChanged

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # a Friday
_ids = itertools.count(1)


def days_ago(d: float) -> datetime:
    return NOW - timedelta(days=d)


def change(
    deal_id: str = "D-1",
    *,
    at: datetime,
    type: str = "deal.updated",
    event_id: str | None = None,
    deal: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
    activity: dict[str, Any] | None = None,
    contact: dict[str, Any] | None = None,
    source: str = "generic",
) -> dict[str, Any]:
    """A change event as the detector reads it: the contract's JSON, validated by the contract's model."""
    return DealChanged.model_validate(
        {
            "event_id": event_id or f"e-{next(_ids)}",
            "source": source,
            "deal_id": deal_id,
            "occurred_at": at,
            "received_at": NOW,
            "type": type,
            "deal": {"id": deal_id, **(deal or {})},
            "previous": previous,
            "activity": activity,
            "contact": contact,
        }
    ).model_dump(mode="json")


def created(
    deal_id: str = "D-1",
    *,
    at: datetime,
    owner: str = "u-1",
    stage: str = "proposal",
    tier: str = "standard",
    **deal: Any,
) -> dict[str, Any]:
    return change(
        deal_id,
        at=at,
        type="deal.created",
        deal={"owner_id": owner, "stage": stage, "status": "open", "account_tier": tier, **deal},
    )


def activity(
    deal_id: str = "D-1",
    *,
    at: datetime,
    kind: str = "email",
    direction: str = "outbound",
    text: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return change(
        deal_id,
        at=at,
        type="activity.logged",
        activity={"kind": kind, "direction": direction, "text": text, **extra},
    )
