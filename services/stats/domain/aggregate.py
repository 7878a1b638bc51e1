"""Statistics as differences: each interruption is one *fact* (its dimensions, whether it resumed, its task's
status); an event changes the fact, and the counters change by what the fact contributes after minus before.

So a redelivered message changes nothing, a revised cause moves the interruption from one cell to another, and
a task that moves from ``open`` to ``done`` leaves ``task_open`` and enters ``task_done``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Any

from schemas import DealInterrupted, DealResumed, RecoveryTaskCreated, RecoveryTaskUpdated

PERIODS = ("day", "week", "month")
Event = DealInterrupted | DealResumed | RecoveryTaskCreated | RecoveryTaskUpdated


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
    revision: int = -1
    resumed: bool = False
    recovered: bool = False
    task_status: str | None = None
    task_version: int = 0

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
            revision=event.revision,
        )
    if isinstance(event, DealResumed):
        return replace(fact, resumed=True)
    if event.task.version <= fact.task_version:
        return fact
    return replace(
        fact,
        task_status=event.task.status,
        task_version=event.task.version,
        recovered=fact.recovered or bool(event.task.recovered),
    )


def contribution(fact: Fact | None, tz: tzinfo = UTC) -> Counter[Cell]:
    """The counters this fact adds to: nothing until its interruption was seen."""
    out: Counter[Cell] = Counter()
    if fact is None or fact.detected_at is None:
        return out
    metrics = ["interruptions"]
    metrics += ["resumed"] if fact.resumed else []
    metrics += ["recovered"] if fact.recovered else []
    metrics += [f"task_{fact.task_status}"] if fact.task_status else []
    at = datetime.fromisoformat(fact.detected_at)
    for period in PERIODS:
        where = bucket(at, period, tz)
        for metric in metrics:
            out[Cell(metric, period, where, fact.kind, fact.cause, fact.side, fact.stage, fact.owner)] += 1
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
