"""The outcome of a task: when the deal came back, and the first response to the customer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.recovery.domain.lifecycle import mark_recovered, record_first_response
from services.recovery.domain.playbooks import TaskPolicy, build_task, load_playbooks
from tests.unit.recovery.factories import NOW, interruption

POLICY = TaskPolicy(load_playbooks())
LATER = NOW + timedelta(hours=2)


def test_a_recovered_task_records_when_the_deal_came_back() -> None:
    task = build_task(interruption(), NOW, POLICY)
    back = NOW + timedelta(minutes=30)
    recovered = mark_recovered(task, LATER, at=back)
    assert recovered is not None and (recovered.recovered_at, recovered.updated_at) == (back, LATER)


def test_the_first_outbound_activity_after_the_task_was_created_is_its_first_response_once() -> None:
    task = build_task(interruption(), NOW, POLICY)
    answered = record_first_response(task, NOW + timedelta(minutes=40), LATER)
    assert answered is not None
    assert (answered.first_response_at, answered.version) == (NOW + timedelta(minutes=40), task.version + 1)
    assert record_first_response(answered, NOW + timedelta(minutes=50), LATER) is None


def test_an_activity_from_before_the_task_is_not_a_response_to_it() -> None:
    task = build_task(interruption(), NOW, POLICY)
    assert record_first_response(task, NOW - timedelta(minutes=1), LATER) is None
    assert record_first_response(task, NOW, LATER) is None


@pytest.mark.parametrize("status", ["done", "dismissed"])
def test_a_finished_task_takes_no_first_response(status: str) -> None:
    task = build_task(interruption(), NOW, POLICY).model_copy(update={"status": status})
    assert record_first_response(task, LATER, LATER) is None
