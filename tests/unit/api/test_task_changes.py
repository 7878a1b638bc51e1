"""What a person may do to a task: legal status moves, reasons, snoozing, checklist ticks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas import TASK_TRANSITIONS, RecoveryTask
from services.api.domain.stats import group_counts
from services.api.domain.tasks import IllegalMove, InvalidChange, TaskChange, Tick, apply_change
from services.recovery.domain.playbooks import TaskPolicy, build_task, load_playbooks
from tests.unit.recovery.factories import NOW, interruption

LATER = NOW + timedelta(hours=1)
STATUSES = list(TASK_TRANSITIONS)


def task(status: str = "open") -> RecoveryTask:
    return build_task(interruption(), NOW, TaskPolicy(load_playbooks())).model_copy(update={"status": status})


def full_change(target: str) -> TaskChange:
    return TaskChange(
        status=target,
        reason="customer asked",
        until=LATER + timedelta(days=3) if target == "snoozed" else None,
    )


@pytest.mark.parametrize("current", STATUSES)
@pytest.mark.parametrize("target", STATUSES)
def test_a_status_moves_only_along_the_legal_moves(current: str, target: str) -> None:
    change = full_change(target)
    if target == current and target != "snoozed":
        assert apply_change(task(current), change, LATER) is None
    elif target in TASK_TRANSITIONS[current] or target == current:
        changed = apply_change(task(current), change, LATER)
        assert changed is not None and changed.task.status == target and changed.change == "status"
    else:
        with pytest.raises(IllegalMove):
            apply_change(task(current), change, LATER)


def test_a_move_raises_the_version_and_records_the_first_response() -> None:
    changed = apply_change(task(), TaskChange(status="in_progress"), LATER)
    assert changed is not None
    assert (changed.task.version, changed.task.updated_at, changed.task.first_response_at) == (
        2,
        LATER,
        LATER,
    )
    again = apply_change(changed.task, TaskChange(status="done"), LATER + timedelta(hours=1))
    assert again is not None and again.task.first_response_at == LATER and again.task.version == 3


@pytest.mark.parametrize(
    "change",
    [
        TaskChange(status="dismissed"),
        TaskChange(status="dismissed", reason="   "),
        TaskChange(status="snoozed", reason="on holiday"),
        TaskChange(status="snoozed", until=LATER + timedelta(days=1)),
        TaskChange(status="snoozed", reason="on holiday", until=LATER - timedelta(minutes=1)),
        TaskChange(status="in_progress", until=LATER + timedelta(days=1)),
        TaskChange(until=LATER + timedelta(days=1)),
    ],
)
def test_dismissing_needs_a_reason_and_snoozing_a_reason_and_a_future_time(change: TaskChange) -> None:
    with pytest.raises(InvalidChange):
        apply_change(task(), change, LATER)


def test_a_snoozed_task_keeps_its_reason_and_time_until_it_moves_on() -> None:
    until = LATER + timedelta(days=2)
    snoozed = apply_change(task(), TaskChange(status="snoozed", reason="budget meeting", until=until), LATER)
    assert snoozed is not None
    assert (snoozed.task.status_reason, snoozed.task.snoozed_until) == ("budget meeting", until)
    woken = apply_change(snoozed.task, TaskChange(status="open"), LATER)
    assert woken is not None and woken.task.snoozed_until is None


def test_checklist_items_are_ticked_by_index_or_by_text() -> None:
    t = task()
    second = t.checklist[1].item
    changed = apply_change(
        t, TaskChange(ticks=(Tick(True, index=0), Tick(True, item=f"  {second.upper()} "))), LATER
    )
    assert changed is not None and changed.change == "checklist"
    assert [c.done for c in changed.task.checklist][:3] == [True, True, False]
    assert changed.task.first_response_at == LATER
    assert apply_change(changed.task, TaskChange(ticks=(Tick(True, index=0),)), LATER) is None


@pytest.mark.parametrize(
    "tick", [Tick(True), Tick(True, index=0, item="x"), Tick(True, index=99), Tick(True, item="no such step")]
)
def test_a_tick_must_name_exactly_one_existing_item(tick: Tick) -> None:
    with pytest.raises(InvalidChange):
        apply_change(task(), TaskChange(ticks=(tick,)), LATER)


def test_stats_rows_group_into_counts_rates_and_totals() -> None:
    rows = [
        ({"kind": "went_quiet"}, "interruptions", 4),
        ({"kind": "went_quiet"}, "resumed", 1),
        ({"kind": "stalled"}, "interruptions", 2),
        ({"kind": "went_quiet"}, "task_done", 2),
        ({"kind": "closed_lost"}, "resumed", 0),
    ]
    groups, totals = group_counts(rows)
    assert [g.group for g in groups] == [{"kind": "went_quiet"}, {"kind": "stalled"}, {"kind": "closed_lost"}]
    assert groups[0].rates == {
        "resumed": 0.25,
        "recovered": 0.0,
        "tasks_done": 0.5,
        "responded": None,
        "overdue": None,
        "handover_completion": None,
        "lost_reason_disagreement": None,
    }
    assert groups[2].rates["resumed"] is None
    assert {k: v for k, v in totals.counts.items() if v} == {"interruptions": 6, "resumed": 1, "task_done": 2}
    assert set(groups[1].counts) >= {"interruptions", "resumed", "recovered", "task_open", "task_done"}
