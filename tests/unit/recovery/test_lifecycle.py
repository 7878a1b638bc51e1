"""A stored task follows its interruption: the deal came back, or the detector revised the cause."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.recovery.domain.lifecycle import mark_recovered, revise_task
from services.recovery.domain.playbooks import TaskPolicy, build_task, load_playbooks
from services.recovery.domain.workdays import WorkCalendar, add_working_days
from tests.unit.recovery.factories import NOW, interruption

POLICY = TaskPolicy(load_playbooks())
LATER = NOW + timedelta(hours=2)


def test_a_resumed_deal_marks_its_task_recovered_once() -> None:
    task = build_task(interruption(), NOW, POLICY)
    recovered = mark_recovered(task, LATER)
    assert recovered is not None
    assert (recovered.recovered, recovered.version, recovered.updated_at) == (True, 2, LATER)
    assert recovered.status == task.status
    assert mark_recovered(recovered, LATER) is None


def test_a_revised_cause_renames_the_task_and_keeps_the_ticks_and_status() -> None:
    first = build_task(interruption(cause="unknown"), NOW, POLICY)
    ticked = first.checklist[0].model_copy(update={"done": True})
    worked = first.model_copy(update={"status": "in_progress", "checklist": [ticked, *first.checklist[1:]]})
    fresh = build_task(interruption(cause="competitor", revision=1), LATER, POLICY)
    revised = revise_task(worked, fresh, LATER)
    assert revised is not None
    assert (revised.cause, revised.status, revised.version, revised.id) == (
        "competitor",
        "in_progress",
        2,
        first.id,
    )
    assert "competitor" in revised.title
    assert revised.checklist[0].done is True
    assert any("competitor offered" in c.item for c in revised.checklist)
    unknown_step = POLICY.playbooks["en"].causes["unknown"].checklist[0].item
    assert unknown_step not in [c.item for c in revised.checklist]


def test_a_ticked_step_of_the_old_cause_stays_on_the_revised_task() -> None:
    first = build_task(interruption(cause="unknown"), NOW, POLICY)
    old_step = POLICY.playbooks["en"].causes["unknown"].checklist[0].item
    checklist = [c.model_copy(update={"done": c.item == old_step}) for c in first.checklist]
    fresh = build_task(interruption(cause="budget", revision=1), LATER, POLICY)
    revised = revise_task(first.model_copy(update={"checklist": checklist}), fresh, LATER)
    assert revised is not None
    assert [c.done for c in revised.checklist if c.item == old_step] == [True]


def test_a_revision_with_the_same_cause_changes_nothing() -> None:
    task = build_task(interruption(cause="budget"), NOW, POLICY)
    assert (
        revise_task(task, build_task(interruption(cause="budget", revision=1), LATER, POLICY), LATER) is None
    )


def test_working_days_count_from_the_next_working_day_when_starting_on_a_weekend() -> None:
    saturday = datetime(2026, 10, 31, 15, 30, tzinfo=UTC)
    assert add_working_days(saturday, 0, WorkCalendar()) == datetime(2026, 11, 2, 15, 30, tzinfo=UTC)
    assert add_working_days(saturday, 1, WorkCalendar()) == datetime(2026, 11, 3, 15, 30, tzinfo=UTC)


def test_working_days_are_counted_in_the_calendars_time_zone() -> None:
    from zoneinfo import ZoneInfo

    tokyo = ZoneInfo("Asia/Tokyo")
    friday_night_utc_is_saturday_in_tokyo = datetime(2026, 10, 30, 16, 0, tzinfo=UTC)
    due = add_working_days(friday_night_utc_is_saturday_in_tokyo, 1, WorkCalendar(tz=tokyo))
    assert due.astimezone(tokyo).date() == date(2026, 11, 3)


def test_a_calendar_without_working_days_still_answers() -> None:
    never = WorkCalendar(weekend=frozenset(range(7)))
    assert add_working_days(NOW, 3, never) > NOW
