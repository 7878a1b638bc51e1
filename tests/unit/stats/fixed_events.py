"""A fixed set of interruption and task messages, with the statistics computed by hand from it.

Seven interruptions (times in UTC; 09:00 UTC is 18:00 in Tokyo, the same day in both zones):

| id | kind         | cause          | owner | stage       | occurred   | task                                   |
|----|--------------|----------------|-------|-------------|------------|----------------------------------------|
| A  | went_quiet   | no_response    | u-1   | proposal    | 2026-10-20 | done, responded in 2 h, recovered      |
| B  | reassigned   | staff_change   | u-2   | negotiation | 2026-11-02 | done, first response 1 h after         |
| C  | reassigned   | staff_change   | u-2   | proposal    | 2026-11-02 | open, escalated (overdue)              |
| D  | closed_lost  | competitor     | u-1   | negotiation | 2026-11-01 | -; CRM says 予算不足 (budget): disagrees |
| E  | closed_lost  | budget         | u-3   | negotiation | 2026-11-01 | -; CRM says "No budget": agrees        |
| F  | closed_lost  | unknown        | u-3   | proposal    | 2026-11-01 | -; CRM says "Other": names no cause    |
| G  | stalled      | budget, revised to competitor | u-3 | proposal | 2026-11-03 | dismissed                   |

Redeliveries and stale task versions are mixed in; they must change nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from schemas import DealInterrupted, RecoveryTask, RecoveryTaskCreated, RecoveryTaskUpdated
from tests.unit.recovery.factories import interruption, resumed


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T09:00:00+00:00")


def task(of: DealInterrupted, version: int, status: str = "open", **fields: Any) -> RecoveryTask:
    created = of.detected_at + timedelta(seconds=30)
    return RecoveryTask(
        id=f"task-{of.id}",
        interruption_id=of.id,
        deal_key=of.deal_key,
        source=of.source,
        deal_id=of.deal_id,
        kind=of.kind,
        cause=of.cause,
        side=of.side,
        title=f"Recover {of.deal_id}",
        assignee=of.deal.owner_id,
        status=status,  # type: ignore[arg-type]
        due_at=of.detected_at + timedelta(days=3),
        created_at=created,
        updated_at=created + timedelta(hours=version),
        version=version,
        **fields,
    )


def fixed_events() -> list[Any]:
    a = interruption("went_quiet", "no_response", deal_id="A", owner_id="u-1", detected_at=at("2026-10-20"))
    b = interruption(
        "reassigned",
        "staff_change",
        deal_id="B",
        side="ours",
        owner_id="u-2",
        stage="negotiation",
        detected_at=at("2026-11-02"),
    )
    c = interruption(
        "reassigned", "staff_change", deal_id="C", side="ours", owner_id="u-2", detected_at=at("2026-11-02")
    )
    d = interruption(
        "closed_lost",
        "competitor",
        deal_id="D",
        owner_id="u-1",
        stage="negotiation",
        status="lost",
        lost_reason="予算不足",
        detected_at=at("2026-11-01"),
    )
    e = interruption(
        "closed_lost",
        "budget",
        deal_id="E",
        owner_id="u-3",
        stage="negotiation",
        status="lost",
        lost_reason="No budget",
        detected_at=at("2026-11-01"),
    )
    f = interruption(
        "closed_lost",
        "unknown",
        deal_id="F",
        owner_id="u-3",
        status="lost",
        lost_reason="Other",
        detected_at=at("2026-11-01"),
    )
    g = interruption("stalled", "budget", deal_id="G", owner_id="u-3", detected_at=at("2026-11-03"))
    g_revised = interruption(
        "stalled", "competitor", deal_id="G", owner_id="u-3", detected_at=at("2026-11-03"), revision=1
    )
    a_first = a.detected_at + timedelta(hours=2)
    b_first = b.detected_at + timedelta(hours=1)
    return [
        a,
        RecoveryTaskCreated(task=task(a, 1)),
        a,  # redelivered
        RecoveryTaskUpdated(
            change="first_response", task=task(a, 2, "in_progress", first_response_at=a_first)
        ),
        resumed(a, at=a.detected_at + timedelta(days=1)),
        RecoveryTaskUpdated(
            change="recovered",
            task=task(a, 3, "done", first_response_at=a_first, recovered=True),
        ),
        RecoveryTaskUpdated(
            change="first_response", task=task(a, 2, "in_progress", first_response_at=a_first)
        ),
        b,
        RecoveryTaskCreated(task=task(b, 1)),
        RecoveryTaskUpdated(change="status", task=task(b, 2, "done", first_response_at=b_first)),
        c,
        RecoveryTaskCreated(task=task(c, 1)),
        RecoveryTaskUpdated(change="escalated", task=task(c, 2, escalated=True)),
        d,
        e,
        f,
        f,  # redelivered
        g,
        RecoveryTaskCreated(task=task(g, 1)),
        g_revised,
        RecoveryTaskUpdated(change="status", task=task(g_revised, 2, "dismissed", status_reason="no budget")),
        g,  # an older revision, late
    ]


EXPECTED_TOTALS = {
    "interruptions": 7,
    "resumed": 1,
    "recovered": 1,
    "tasks": 4,
    "task_open": 1,
    "task_done": 2,
    "task_dismissed": 1,
    "task_overdue": 1,
    "responded": 2,
    "first_response_seconds": 2 * 3600 + 3600,
    "handovers": 2,
    "handovers_completed": 1,
    "lost_reason_known": 2,
    "lost_reason_disagrees": 1,
}
"""Every interruption, whichever period granularity (each counts once in each)."""

EXPECTED_BY_MONTH_AND_CAUSE = {
    ("2026-10", "no_response"): {
        "interruptions": 1,
        "resumed": 1,
        "recovered": 1,
        "tasks": 1,
        "task_done": 1,
        "responded": 1,
        "first_response_seconds": 7200,
    },
    ("2026-11", "staff_change"): {
        "interruptions": 2,
        "tasks": 2,
        "task_done": 1,
        "task_open": 1,
        "task_overdue": 1,
        "responded": 1,
        "first_response_seconds": 3600,
        "handovers": 2,
        "handovers_completed": 1,
    },
    ("2026-11", "competitor"): {
        "interruptions": 2,
        "tasks": 1,
        "task_dismissed": 1,
        "lost_reason_known": 1,
        "lost_reason_disagrees": 1,
    },
    ("2026-11", "budget"): {"interruptions": 1, "lost_reason_known": 1},
    ("2026-11", "unknown"): {"interruptions": 1},
}

EXPECTED_RATES = {
    "recovered": 1 / 7,
    "resumed": 1 / 7,
    "handover_completion": 1 / 2,
    "overdue": 1 / 4,
    "lost_reason_disagreement": 1 / 2,
    "responded": 2 / 4,
}
EXPECTED_AVERAGES = {"first_response_seconds": 5400.0}
