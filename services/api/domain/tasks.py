"""What a person may do to a recovery task: move its status along the legal moves, tick checklist items."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas import ChecklistItem, RecoveryTask, can_move


class IllegalMove(Exception):
    """The status cannot move there from where it is (``done`` and ``dismissed`` are final)."""


class InvalidChange(ValueError):
    """The change is incomplete or names something the task does not have."""


@dataclass(frozen=True)
class Tick:
    done: bool
    index: int | None = None
    item: str | None = None


@dataclass(frozen=True)
class TaskChange:
    status: str | None = None
    reason: str | None = None
    until: datetime | None = None
    ticks: tuple[Tick, ...] = ()


@dataclass(frozen=True)
class Changed:
    task: RecoveryTask
    change: str
    """``status`` or ``checklist``: what the ``RecoveryTaskUpdated`` message says changed."""


def apply_change(task: RecoveryTask, change: TaskChange, now: datetime) -> Changed | None:
    """The task after ``change``, or None when it changes nothing. Raises IllegalMove or InvalidChange."""
    status_fields = _status_fields(task, change, now)
    checklist = _ticked(task, change.ticks)
    moved = status_fields is not None
    ticked = checklist != task.checklist
    if not moved and not ticked:
        return None
    update: dict[str, object] = {"checklist": checklist, "updated_at": now, "version": task.version + 1}
    update.update(status_fields or {})
    responded = (moved and update.get("status") != "open") or any(c.done for c in checklist)
    if task.first_response_at is None and responded:
        update["first_response_at"] = now
    return Changed(task.model_copy(update=update), "status" if moved else "checklist")


def _status_fields(task: RecoveryTask, change: TaskChange, now: datetime) -> dict[str, object] | None:
    target = change.status
    reason = (change.reason or "").strip() or None
    if target is None or (target == task.status and target != "snoozed"):
        if change.until is not None:
            raise InvalidChange("'until' goes with the status 'snoozed'")
        return None
    if target != task.status and not can_move(task.status, target):
        raise IllegalMove(f"a {task.status} task cannot move to {target}")
    if target in ("dismissed", "snoozed") and reason is None:
        raise InvalidChange(f"'{target}' needs a reason")
    if target == "snoozed":
        if change.until is None or change.until <= now:
            raise InvalidChange("'snoozed' needs an 'until' time in the future")
    elif change.until is not None:
        raise InvalidChange("'until' goes with the status 'snoozed'")
    return {
        "status": target,
        "status_reason": reason,
        "snoozed_until": change.until if target == "snoozed" else None,
    }


def _ticked(task: RecoveryTask, ticks: tuple[Tick, ...]) -> list[ChecklistItem]:
    checklist = list(task.checklist)
    for tick in ticks:
        position = _position(task, tick)
        checklist[position] = checklist[position].model_copy(update={"done": tick.done})
    return checklist


def _position(task: RecoveryTask, tick: Tick) -> int:
    if (tick.index is None) == (tick.item is None):
        raise InvalidChange("a checklist tick names either an index or an item")
    if tick.index is not None:
        if not 0 <= tick.index < len(task.checklist):
            raise InvalidChange(f"the checklist has no item {tick.index}")
        return tick.index
    wanted = (tick.item or "").strip().casefold()
    for position, entry in enumerate(task.checklist):
        if entry.item.strip().casefold() == wanted:
            return position
    raise InvalidChange("the checklist has no such item")
