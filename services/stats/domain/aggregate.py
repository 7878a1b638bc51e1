"""Statistics as differences: each interruption is one *fact* (its dimensions, whether it resumed, its task's
status, first response, lateness); an event changes the fact, and the counters change by what the fact
contributes after minus before.

So a redelivered message changes nothing, a revised cause moves the interruption from one cell to another, and
a task that moves from ``open`` to ``done`` leaves ``task_open`` and enters ``task_done``. Interruptions count
in the period of their event time (``occurred_at``): an imported history lands in the months it happened.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Any

from schemas import DealInterrupted, DealResumed, RecoveryTaskCreated, RecoveryTaskUpdated
from services.stats.domain.lost_reasons import stated_cause

PERIODS = ("day", "week", "month")
Event = DealInterrupted | DealResumed | RecoveryTaskCreated | RecoveryTaskUpdated
SUMS = ("first_response_seconds",)
"""Counters that hold a sum (seconds) rather than a number of interruptions."""


@dataclass(frozen=True)
class Cell:
    """One counter: a metric in one period bucket for one combination of dimensions."""

    metric: str
    period: str
    bucket: str
    kind: str = ""
    cause: str = ""
    side: str = ""
    stage: str = ""
    owner: str = ""


@dataclass(frozen=True)
class Fact:
    interruption_id: str
    kind: str = ""
    cause: str = ""
    side: str = ""
    stage: str = ""
    owner: str = ""
    detected_at: str | None = None
    """ISO time; None until the ``DealInterrupted`` was seen (a task or resume may come first)."""
    occurred_at: str | None = None
    """ISO event time of the interruption (the period it counts in)."""
    revision: int = -1
    resumed: bool = False
    recovered: bool = False
    task_status: str | None = None
    task_version: int = 0
    task_created_at: str | None = None
    first_response_at: str | None = None
    overdue: bool = False
    """The task went past its due time unfinished (escalated), or was finished late."""
    stated_cause: str | None = None
    """For a lost deal: the cause its CRM lost reason names (None when it names none)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fact:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def bucket(at: datetime, period: str, tz: tzinfo = UTC) -> str:
    local = at.astimezone(tz)
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02}"
    return f"{local.year}-{local.month:02}"


def subject(event: Event) -> str:
    if isinstance(event, DealInterrupted):
        return event.id
    if isinstance(event, DealResumed):
        return event.interruption_id
    return event.task.interruption_id


def fold(fact: Fact | None, event: Event) -> Fact:
    """The fact after the event. Older revisions and older task versions change nothing."""
    fact = fact or Fact(subject(event))
    if isinstance(event, DealInterrupted):
        if event.revision <= fact.revision:
            return fact
        deal = event.deal
        return replace(
            fact,
            kind=event.kind,
            cause=event.cause,
            side=event.side or "",
            stage=deal.stage or "",
            owner=deal.owner_id or "",
            detected_at=fact.detected_at or event.detected_at.isoformat(),
            occurred_at=fact.occurred_at or event.occurred_at.isoformat(),
            revision=event.revision,
            stated_cause=stated_cause(deal.lost_reason) if event.kind == "closed_lost" else None,
        )
    if isinstance(event, DealResumed):
        return replace(fact, resumed=True)
    task = event.task
    if task.version <= fact.task_version:
        return fact
    late = task.escalated or (task.status == "done" and task.updated_at > task.due_at)
    first = task.first_response_at.isoformat() if task.first_response_at else None
    return replace(
        fact,
        task_status=task.status,
        task_version=task.version,
        recovered=fact.recovered or bool(task.recovered),
        task_created_at=fact.task_created_at or task.created_at.isoformat(),
        first_response_at=fact.first_response_at or first,
        overdue=fact.overdue or late,
    )


def metrics_of(fact: Fact) -> Counter[str]:
    """What one seen interruption adds to each metric of its cell."""
    out: Counter[str] = Counter(interruptions=1)
    out["resumed"] += fact.resumed
    out["recovered"] += fact.recovered
    if fact.task_status:
        out["tasks"] += 1
        out[f"task_{fact.task_status}"] += 1
        out["task_overdue"] += fact.overdue
    if fact.first_response_at and fact.detected_at:
        waited = datetime.fromisoformat(fact.first_response_at) - datetime.fromisoformat(fact.detected_at)
        out["responded"] += 1
        out["first_response_seconds"] += max(0, int(waited.total_seconds()))
    if fact.kind == "reassigned":
        out["handovers"] += 1
        out["handovers_completed"] += fact.task_status == "done"
    if fact.kind == "closed_lost" and fact.stated_cause:
        out["lost_reason_known"] += 1
        out["lost_reason_disagrees"] += fact.stated_cause != fact.cause
    return +out


def contribution(fact: Fact | None, tz: tzinfo = UTC) -> Counter[Cell]:
    """The counters this fact adds to: nothing until its interruption was seen."""
    out: Counter[Cell] = Counter()
    if fact is None or fact.detected_at is None:
        return out
    at = datetime.fromisoformat(fact.occurred_at or fact.detected_at)
    metrics = metrics_of(fact)
    for period in PERIODS:
        where = bucket(at, period, tz)
        for metric, n in metrics.items():
            out[Cell(metric, period, where, fact.kind, fact.cause, fact.side, fact.stage, fact.owner)] += n
    return out


def apply_events(
    facts: Mapping[str, Fact], events: Iterable[Event], tz: tzinfo = UTC
) -> tuple[dict[str, Fact], dict[Cell, int]]:
    """Fold the events into the facts; the facts that changed, and the counter deltas (zeros left out)."""
    current = dict(facts)
    changed: dict[str, Fact] = {}
    for event in events:
        key = subject(event)
        after = fold(current.get(key), event)
        if after != current.get(key):
            current[key] = changed[key] = after
    deltas: Counter[Cell] = Counter()
    for key, after in changed.items():
        deltas.update(contribution(after, tz))
        deltas.subtract(contribution(facts.get(key), tz))
    return changed, {cell: n for cell, n in deltas.items() if n != 0}


def latencies(before: Fact | None, after: Fact) -> list[tuple[str, float]]:
    """Seconds from event time to detection, and from detection to the task, each when first known."""
    out: list[tuple[str, float]] = []
    seen_before = before is not None and before.detected_at is not None
    task_before = seen_before and before is not None and before.task_created_at is not None
    if after.detected_at is None:
        return out
    detected = datetime.fromisoformat(after.detected_at)
    if not seen_before and after.occurred_at:
        out.append(
            ("event_to_interruption", (detected - datetime.fromisoformat(after.occurred_at)).total_seconds())
        )
    if not task_before and after.task_created_at:
        out.append(
            (
                "interruption_to_task",
                (datetime.fromisoformat(after.task_created_at) - detected).total_seconds(),
            )
        )
    return [(name, max(0.0, seconds)) for name, seconds in out]
