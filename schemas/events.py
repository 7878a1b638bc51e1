"""Change events: the generic webhook event (version 1) and the normalized ``DealChanged`` on the topic."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

EventType = Literal["deal.created", "deal.updated", "deal.deleted", "activity.logged", "contact.changed"]
ActivityKind = Literal["note", "call", "email", "meeting", "task"]
Direction = Literal["inbound", "outbound", "internal"]
ContactChange = Literal["added", "removed", "left_company", "role_changed", "updated"]
DealStatus = Literal["open", "won", "lost", "deleted"]

Source = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")]
Id = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=20_000)]


def _aware(value: datetime) -> datetime:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("timestamp needs a time zone (Z or +09:00)")
    if offset.seconds % 60 or offset.microseconds:
        # An offset of seconds (a parser's historic local mean time, say) cannot be written as ``+HH:MM``:
        # JSON writers cut or round it and move the moment. The same moment in UTC can be.
        try:
            return value.astimezone(UTC)
        except OverflowError:  # within a second of year 1 or 9999: in UTC it falls outside the calendar
            raise ValueError("timestamp out of range once in UTC") from None
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


def deal_key(source: str, deal_id: str) -> str:
    """The Kafka key and table key of a deal: its source and the CRM's own id."""
    return f"{source}:{deal_id}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DealFields(_Model):
    """A deal's fields as far as the sender knows them; absent means unknown, not cleared."""

    id: Id
    name: Text | None = None
    stage: Annotated[str, Field(max_length=200)] | None = None
    status: DealStatus | None = None
    amount: float | None = Field(default=None, allow_inf_nan=False)
    currency: Annotated[str, Field(max_length=8)] | None = None
    close_date: date | None = None
    owner_id: Annotated[str, Field(max_length=200)] | None = None
    account_id: Annotated[str, Field(max_length=200)] | None = None
    account_tier: Annotated[str, Field(max_length=64)] | None = None
    lost_reason: Text | None = None

    @field_validator("id", "owner_id", "account_id", mode="before")
    @classmethod
    def _ids_as_strings(cls, value: Any) -> Any:
        # CRMs send ids as numbers or strings; they are the same id.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value


class PreviousFields(_Model):
    """Old values of the fields that changed."""

    name: Text | None = None
    stage: Annotated[str, Field(max_length=200)] | None = None
    status: DealStatus | None = None
    amount: float | None = Field(default=None, allow_inf_nan=False)
    close_date: date | None = None
    owner_id: Annotated[str, Field(max_length=200)] | None = None
    account_tier: Annotated[str, Field(max_length=64)] | None = None

    @field_validator("owner_id", mode="before")
    @classmethod
    def _ids_as_strings(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value


class ActivityInfo(_Model):
    kind: ActivityKind
    direction: Direction = "internal"
    text: Text | None = None
    actor_id: Annotated[str, Field(max_length=200)] | None = None
    scheduled_at: AwareDatetime | None = None
    """For a booked meeting or call: when it will happen (postpones the quiet deadline)."""
    done: bool | None = None


class ContactInfo(_Model):
    id: Id
    name: Annotated[str, Field(max_length=500)] | None = None
    title: Annotated[str, Field(max_length=500)] | None = None
    change: ContactChange = "updated"
    decision_maker: bool | None = None


class GenericEvent(_Model):
    """The generic webhook event, version 1, as ``POST /webhooks/generic`` takes it."""

    model_config = ConfigDict(extra="ignore", frozen=True, title="GenericEventV1")

    event_id: Id
    occurred_at: AwareDatetime
    type: EventType
    deal: DealFields
    previous: PreviousFields | None = None
    activity: ActivityInfo | None = None
    contact: ContactInfo | None = None


class DealChanged(_Model):
    """The normalized change event on ``crm.deal-changes.v1``; one per CRM change, whatever the source."""

    model_config = ConfigDict(extra="ignore", frozen=True, title="DealChanged")

    schema_version: Literal[1] = 1
    event_id: Id
    """Stable per source: a redelivery carries the same id, so consumers can drop it."""
    source: Source
    deal_id: Id
    occurred_at: AwareDatetime
    received_at: AwareDatetime
    type: EventType
    deal: DealFields
    previous: PreviousFields | None = None
    activity: ActivityInfo | None = None
    contact: ContactInfo | None = None

    @property
    def key(self) -> str:
        return deal_key(self.source, self.deal_id)
