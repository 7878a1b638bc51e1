"""How a stored task changes when its interruption does: the deal came back, or the cause was revised."""

from __future__ import annotations

from datetime import datetime

from schemas import RecoveryTask


def mark_recovered(task: RecoveryTask, now: datetime, at: datetime | None = None) -> RecoveryTask | None:
    """The deal resumed (at ``at``, default ``now``): the task records the outcome. None when it already
    says so."""
    if task.recovered:
        return None
    update = {"recovered": True, "recovered_at": at or now, "updated_at": now, "version": task.version + 1}
    return task.model_copy(update=update)


def record_first_response(task: RecoveryTask, at: datetime, now: datetime) -> RecoveryTask | None:
    """An outbound activity at ``at`` on the task's deal: the first response, when the task is still open,
    was created before ``at`` and has none yet. None otherwise."""
    if task.first_response_at is not None or task.status in ("done", "dismissed") or at <= task.created_at:
        return None
    return task.model_copy(update={"first_response_at": at, "updated_at": now, "version": task.version + 1})


def revise_task(task: RecoveryTask, fresh: RecoveryTask, now: datetime) -> RecoveryTask | None:
    """The detector revised the interruption's cause: take the new verdict's title, texts and checklist from
    ``fresh`` (built from the revised interruption) and keep what people did: status, ticks, assignments.
    None when nothing visible changes."""
    if (task.cause, task.side) == (fresh.cause, fresh.side):
        return None
    done = {c.item for c in task.checklist if c.done}
    kept = [c for c in task.checklist if c.done and c.item not in {f.item for f in fresh.checklist}]
    checklist = [c.model_copy(update={"done": c.item in done}) for c in fresh.checklist] + kept
    return task.model_copy(
        update={
            "cause": fresh.cause,
            "side": fresh.side,
            "title": fresh.title,
            "description": fresh.description,
            "checklist": checklist,
            "priority": fresh.priority,
            "updated_at": now,
            "version": task.version + 1,
        }
    )
