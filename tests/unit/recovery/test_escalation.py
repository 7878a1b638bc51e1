"""When a task is overdue, and what escalating it changes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas import RecoveryTask
from services.recovery.domain.escalation import escalate, escalation_deadline, manager_for
from services.recovery.domain.playbooks import TaskPolicy, build_task, load_playbooks
from tests.unit.recovery.factories import NOW, interruption

MANAGERS = {"u-7": "m-1", "default": "m-9"}


def task(**changes: object) -> RecoveryTask:
    built = build_task(interruption(), NOW, TaskPolicy(load_playbooks()))
    return built.model_copy(update=changes)


def test_a_task_is_not_escalated_before_its_due_time() -> None:
    t = task()
    assert escalate(t, MANAGERS, t.due_at - timedelta(seconds=1)) is None


def test_an_overdue_task_goes_to_the_reps_manager_once() -> None:
    t = task()
    later = t.due_at + timedelta(minutes=5)
    escalated = escalate(t, MANAGERS, later)
    assert escalated is not None
    assert (escalated.escalated, escalated.escalated_at, escalated.manager) == (True, later, "m-1")
    assert "m-1" in escalated.participants and escalated.version == t.version + 1
    assert escalate(escalated, MANAGERS, later + timedelta(days=1)) is None


def test_a_rep_without_a_manager_of_their_own_gets_the_default_manager() -> None:
    t = task(assignee="u-unknown")
    escalated = escalate(t, MANAGERS, t.due_at)
    assert escalated is not None and escalated.manager == "m-9" and "m-9" in escalated.participants


@pytest.mark.parametrize("status", ["done", "dismissed"])
def test_a_finished_task_is_never_escalated(status: str) -> None:
    t = task(status=status)
    assert escalate(t, MANAGERS, t.due_at + timedelta(days=30)) is None


def test_a_snoozed_tasks_clock_restarts_at_its_until_date() -> None:
    t = task()
    allowance = t.due_at - t.created_at
    until = t.due_at + timedelta(days=3)
    snoozed = t.model_copy(update={"status": "snoozed", "snoozed_until": until})
    assert escalation_deadline(snoozed) == until + allowance
    assert escalate(snoozed, MANAGERS, until + allowance - timedelta(seconds=1)) is None
    assert escalate(snoozed, MANAGERS, until + allowance) is not None


def test_the_manager_is_the_configured_one_for_the_rep_else_the_default() -> None:
    assert manager_for("u-7", MANAGERS) == "m-1"
    assert manager_for(None, MANAGERS) == "m-9"
    assert manager_for("u-7", {}) is None
