"""``deals.interruptions.v1``: an interruption opened (``DealInterrupted``) or its episode closed (``DealResumed``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["went_quiet", "reassigned", "contact_left", "stalled", "closed_lost"]
Cause = Literal[
    "competitor",
    "budget",
    "staff_change",
    "policy_change",
    "needs_change",
    "external",
    "internal_resources",
    "no_response",
    "follow_up_lapsed",
    "unknown",
]
Side = Literal["ours", "customer"]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]

KINDS: tuple[str, ...] = get_args(Kind)
CAUSES: tuple[str, ...] = get_args(Cause)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Alternative(_Model):
    cause: Cause
    confidence: Confidence


class Evidence(_Model):
    event_id: str | None = None
    signal: str
    """What kind of evidence: a text match (``text:competitor``) or a field change (``field:owner_id``)."""
    excerpt: str = ""


class RelationshipProfile(_Model):
    """The relationship strengths the CRM shows for the deal (see DOMAIN.md, seeds/003)."""

    existing_customer: bool = False
    contacts: int = 0
    decision_maker: bool = False
    inbound_activity: bool = False
    recent_contribution: bool = False
    risk: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5


class DealSnapshot(_Model):
    name: str | None = None
    stage: str | None = None
    status: str | None = None
    amount: float | None = None
    currency: str | None = None
    close_date: date | None = None
    owner_id: str | None = None
    previous_owner_id: str | None = None
    account_id: str | None = None
    account_tier: str | None = None
    lost_reason: str | None = None
    last_activity_at: datetime | None = None
    contacts: list[str] = Field(default_factory=list)


class DealInterrupted(_Model):
    model_config = ConfigDict(extra="ignore", frozen=True, title="DealInterrupted")

    event: Literal["DealInterrupted"] = "DealInterrupted"
    schema_version: Literal[1] = 1
    id: str
    """Deterministic from the deal, the kind and the episode: a re-detection after a crash has the same id."""
    deal_key: str
    source: str
    deal_id: str
    kind: Kind
    cause: Cause
    side: Side | None = None
    confidence: Confidence
    alternatives: list[Alternative] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    occurred_at: datetime
    """Event time of the interruption: the trigger event's time, or the quiet deadline that passed."""
    detected_at: datetime
    deal: DealSnapshot
    relationship: RelationshipProfile = Field(default_factory=RelationshipProfile)
    batch_id: str | None = None
    """Set when one change moved many deals at once (a rep's whole book reassigned)."""
    flags: list[str] = Field(default_factory=list)
    """Extra findings, e.g. ``no_contact_left`` or ``no_decision_maker`` on ``contact_left``."""
    revision: int = Field(default=0, ge=0)
    """0 when first detected; later evidence may revise the cause: the same id comes again, revision + 1."""


class DealResumed(_Model):
    """The deal came back (customer activity, stage progress, won): the interruption's episode closed."""

    model_config = ConfigDict(extra="ignore", frozen=True, title="DealResumed")

    event: Literal["DealResumed"] = "DealResumed"
    schema_version: Literal[1] = 1
    interruption_id: str
    deal_key: str
    source: str
    deal_id: str
    kind: Kind
    reason: str
    event_id: str | None = None
    occurred_at: datetime
    detected_at: datetime


InterruptionMessage = Annotated[DealInterrupted | DealResumed, Field(discriminator="event")]
