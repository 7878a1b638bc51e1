"""``tasks.recovery-tasks.v1``: the whole recovery task, each time it is created or changes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.interruptions import Cause, Kind, Side

TaskStatus = Literal["open", "in_progress", "done", "dismissed", "snoozed"]
Priority = Literal["low", "normal", "high", "urgent"]

TASK_TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"in_progress", "done", "dismissed", "snoozed"}),
    "in_progress": frozenset({"done", "dismissed", "snoozed"}),
    "snoozed": frozenset({"open", "in_progress", "done", "dismissed"}),
    "done": frozenset(),
    "dismissed": frozenset(),
}
"""Legal status moves. ``done`` and ``dismissed`` are final."""


def can_move(current: str, target: str) -> bool:
    return target in TASK_TRANSITIONS.get(current, frozenset())


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ChecklistItem(_Model):
    item: str
    done: bool = False
    assignee: str | None = None


class RecoveryTask(_Model):
    model_config = ConfigDict(extra="ignore", frozen=True, title="RecoveryTask")

    id: str
    interruption_id: str
    deal_key: str
    source: str
    deal_id: str
    kind: Kind
    cause: Cause
    side: Side | None = None
    title: str
    description: str = ""
    assignee: str | None = None
    participants: list[str] = Field(default_factory=list)
    manager: str | None = None
    status: TaskStatus = "open"
    status_reason: str | None = None
    snoozed_until: datetime | None = None
    priority: Priority = "normal"
    due_at: datetime
    checklist: list[ChecklistItem] = Field(default_factory=list)
    language: Literal["ja", "en"] = "en"
    escalated: bool = False
    escalated_at: datetime | None = None
    """When the task, overdue, was escalated to the manager."""
    recovered: bool | None = None
    recovered_at: datetime | None = None
    """When the deal came back (the detector's ``DealResumed``)."""
    first_response_at: datetime | None = None
    """The first response: an outbound activity to the customer after the task was created, or a person's
    first move on the task, whichever came first."""
    created_at: datetime
    updated_at: datetime
    version: Annotated[int, Field(ge=1)] = 1


class RecoveryTaskCreated(_Model):
    model_config = ConfigDict(extra="ignore", frozen=True, title="RecoveryTaskCreated")

    event: Literal["RecoveryTaskCreated"] = "RecoveryTaskCreated"
    schema_version: Literal[1] = 1
    task: RecoveryTask


class RecoveryTaskUpdated(_Model):
    model_config = ConfigDict(extra="ignore", frozen=True, title="RecoveryTaskUpdated")

    event: Literal["RecoveryTaskUpdated"] = "RecoveryTaskUpdated"
    schema_version: Literal[1] = 1
    change: str
    """What changed: ``status``, ``checklist``, ``escalated``, ``recovered``, ``first_response``."""
    task: RecoveryTask


TaskMessage = Annotated[RecoveryTaskCreated | RecoveryTaskUpdated, Field(discriminator="event")]
