"""Values for recovery, storage and API tests: interruptions as the detector publishes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas import DealChanged, DealInterrupted, DealResumed, DealSnapshot, Evidence, RelationshipProfile
from schemas.events import ActivityInfo, DealFields

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday


def interruption(
    kind: str = "went_quiet",
    cause: str = "competitor",
    *,
    deal_id: str = "D-1001",
    source: str = "generic",
    iid: str | None = None,
    excerpt: str = "Customer is comparing with rival X",
    detected_at: datetime = NOW,
    side: str | None = None,
    flags: tuple[str, ...] = (),
    revision: int = 0,
    relationship_risk: float = 0.5,
    signal: str | None = None,
    **deal: Any,
) -> DealInterrupted:
    snapshot: dict[str, Any] = {
        "name": "Northwind 40 seats",
        "stage": "proposal",
        "status": "open",
        "amount": 1_200_000,
        "currency": "JPY",
        "owner_id": "u-7",
        "account_tier": "standard",
    }
    snapshot.update(deal)
    return DealInterrupted(
        id=iid or f"int-{source}-{deal_id}-{kind}",
        deal_key=f"{source}:{deal_id}",
        source=source,
        deal_id=deal_id,
        kind=kind,
        cause=cause,
        side=side,
        confidence=0.8,
        alternatives=[{"cause": "budget", "confidence": 0.2}],
        evidence=[Evidence(event_id="evt-1", signal=signal or f"text:{cause}", excerpt=excerpt)],
        occurred_at=detected_at,
        detected_at=detected_at,
        deal=DealSnapshot(**snapshot),
        relationship=RelationshipProfile(risk=relationship_risk),
        flags=list(flags),
        revision=revision,
    )


def resumed(of: DealInterrupted, at: datetime = NOW) -> DealResumed:
    return DealResumed(
        interruption_id=of.id,
        deal_key=of.deal_key,
        source=of.source,
        deal_id=of.deal_id,
        kind=of.kind,
        reason="customer_activity",
        occurred_at=at,
        detected_at=at,
    )


def activity_logged(
    deal_id: str,
    at: datetime,
    *,
    direction: str = "outbound",
    kind: str = "call",
    text: str | None = None,
    event_id: str = "evt-reply",
) -> DealChanged:
    """An activity logged on the deal at ``at``; by default a call to the customer, which answers a task open
    on the deal."""
    return DealChanged(
        event_id=event_id,
        source="generic",
        deal_id=deal_id,
        occurred_at=at,
        received_at=at,
        type="activity.logged",
        deal=DealFields(id=deal_id),
        activity=ActivityInfo(kind=kind, direction=direction, text=text),
    )
