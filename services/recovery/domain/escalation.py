"""Overdue tasks go to the manager, once: when a task is overdue, and what it looks like escalated."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from schemas import RecoveryTask

ESCALABLE = ("open", "in_progress", "snoozed")
"""Statuses whose tasks can become overdue (``done`` and ``dismissed`` are final)."""


def escalation_deadline(task: RecoveryTask) -> datetime:
    """When the task becomes overdue. A snoozed task's clock restarts at its until-date: it gets the time it
    had from creation to due again, counted from there (never less than its due time)."""
    if task.status == "snoozed" and task.snoozed_until is not None:
        return max(task.due_at, task.snoozed_until + (task.due_at - task.created_at))
    return task.due_at


def manager_for(rep: str | None, managers: Mapping[str, str]) -> str | None:
    """The rep's manager from the configured mapping, else the ``default`` one."""
    return managers.get(rep or "") or managers.get("default")


def escalate(task: RecoveryTask, managers: Mapping[str, str], now: datetime) -> RecoveryTask | None:
    """The task escalated to the manager, or None when it is not overdue at ``now`` or already escalated."""
    if task.escalated or task.status not in ESCALABLE or now < escalation_deadline(task):
        return None
    manager = manager_for(task.assignee, managers) or task.manager
    participants = list(task.participants)
    if manager and manager not in participants and manager != task.assignee:
        participants.append(manager)
    return task.model_copy(
        update={
            "escalated": True,
            "escalated_at": now,
            "manager": manager,
            "participants": participants,
            "updated_at": now,
            "version": task.version + 1,
        }
    )
