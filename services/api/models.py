"""The API's request and response bodies (they are what the OpenAPI document describes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas import Alternative, DealSnapshot, Evidence, RecoveryTask
from schemas.interruptions import Cause, Kind, Side
from schemas.tasks import TaskStatus

Reason = Annotated[str, Field(min_length=1, max_length=2000)]


class ErrorAnswer(BaseModel):
    """A refusal, in words (400, 404, 409, 503)."""

    detail: str


class ValidationIssue(BaseModel):
    """One field that failed validation, as FastAPI reports it."""

    loc: list[str | int]
    msg: str
    type: str


class InvalidRequestAnswer(BaseModel):
    """A request refused as invalid (422): FastAPI's list of the fields that failed and why, or, for a rule
    between fields or against the present (a snooze's ``until`` in the past), a sentence."""

    detail: str | list[ValidationIssue]


class InterruptionItem(BaseModel):
    model_config = ConfigDict(title="Interruption")

    id: str
    deal_key: str
    source: str
    deal_id: str
    """The CRM's own id of the deal, as a string."""
    kind: Kind
    cause: Cause
    side: Side | None = None
    confidence: float
    alternatives: list[Alternative]
    evidence: list[Evidence]
    occurred_at: datetime
    detected_at: datetime
    status: Literal["open", "resumed"]
    resumed_at: datetime | None = None
    resumed_reason: str | None = None
    revision: int = 0
    flags: list[str] = Field(default_factory=list)
    deal: DealSnapshot


class InterruptionPage(BaseModel):
    items: list[InterruptionItem]
    next_cursor: str | None


class TaskPage(BaseModel):
    items: list[RecoveryTask]
    next_cursor: str | None


class ChecklistTick(BaseModel):
    """Tick (or untick) one checklist item, named by its position or by its text."""

    model_config = ConfigDict(extra="forbid")

    index: Annotated[int, Field(ge=0, le=10_000)] | None = None
    item: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    done: bool = True


class TaskPatch(BaseModel):
    """Move the status and/or tick checklist items. Other fields are refused (422), never applied."""

    model_config = ConfigDict(extra="forbid")

    status: TaskStatus | None = None
    reason: Reason | None = None
    """Required for ``dismissed`` and ``snoozed``."""
    until: AwareDatetime | None = None
    """Required for ``snoozed``: when the task comes back."""
    checklist: Annotated[list[ChecklistTick], Field(max_length=200)] = Field(default_factory=list)
    version: Annotated[int, Field(ge=1)] | None = None
    """When given, the change applies only to this version of the task (else 409)."""


class StatsItem(BaseModel):
    group: dict[str, str]
    counts: dict[str, int]
    """``interruptions``, ``resumed``, ``recovered``, ``tasks``, ``task_<status>`` (tasks by their current
    status), ``task_overdue`` (went past due unfinished, or finished late), ``responded`` (had a first
    response), ``handovers`` and ``handovers_completed`` (reassignments and their done handover tasks),
    ``lost_reason_known`` and ``lost_reason_disagrees`` (lost deals whose CRM reason names a cause, and those
    where it is not the detected one)."""
    rates: dict[str, float | None]
    """``resumed``, ``recovered``, ``tasks_done`` (of interruptions), ``responded``, ``overdue`` (of tasks),
    ``handover_completion`` (of handovers), ``lost_reason_disagreement`` (of lost deals with a known CRM
    reason); None when the whole is zero."""
    averages: dict[str, float | None]
    """``first_response_seconds``: mean time from detection to the first response, of those responded."""


class StatsAnswer(BaseModel):
    period: Literal["day", "week", "month"]
    group_by: list[str]
    since: str | None = None
    """The first bucket included (of ``period``), when asked with ``since``."""
    until: str | None = None
    items: list[StatsItem]
    totals: StatsItem


class LagItem(BaseModel):
    group: str
    topic: str
    partition: int
    committed: int
    end: int
    lag: int


class TopicItem(BaseModel):
    topic: str
    partitions: int
    end_offsets: int
    """Records written so far, summed over the partitions."""


class OverdueTaskItem(BaseModel):
    id: str
    deal_id: str
    title: str
    assignee: str | None
    kind: str
    cause: str
    due_at: datetime


class OperationsAnswer(BaseModel):
    """What the dashboard shows besides the statistics: tasks now, and the broker's topics and lag."""

    now: datetime
    tasks_by_status: dict[str, int]
    overdue_tasks: int
    oldest_overdue: list[OverdueTaskItem]
    broker: Literal["ok", "unavailable", "not_configured"]
    broker_checked_at: datetime | None = None
    topics: list[TopicItem]
    lag: list[LagItem]
