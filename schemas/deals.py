"""``GET /api/deals/{id}``: a deal's tracked state as the detector keeps it."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.interruptions import RelationshipProfile


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TrackedContact(_Model):
    id: str
    decision_maker: bool
    active: bool
    changed_at: datetime


class OpenInterruption(_Model):
    id: str
    kind: str
    cause: str
    side: str | None = None
    occurred_at: datetime
    revision: int = 0


class DealView(_Model):
    model_config = ConfigDict(extra="ignore", frozen=True, title="DealView")

    source: str
    deal_id: str
    name: str | None = None
    owner_id: str | None = None
    previous_owner_id: str | None = None
    stage: str | None = None
    status: str | None = None
    amount: float | None = None
    currency: str | None = None
    close_date: date | None = None
    account_tier: str | None = None
    created_at: datetime | None = None
    last_activity_at: datetime | None = None
    last_inbound_at: datetime | None = None
    last_outbound_at: datetime | None = None
    quiet_deadline: datetime | None = None
    """When the deal counts as quiet if nothing qualifying happens (None: closed, or already quiet)."""
    snoozed_until: datetime | None = None
    contacts: list[TrackedContact] = Field(default_factory=list)
    open_interruptions: list[OpenInterruption] = Field(default_factory=list)
    relationship: RelationshipProfile = Field(default_factory=RelationshipProfile)
