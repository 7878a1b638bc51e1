"""Storing a batch of interruption messages: one transaction, and a poison message set aside, not fatal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event

from services.common.db import make_engine
from services.common.repositories import SqlAlchemyStore, TaskFilter
from services.recovery.domain.playbooks import TaskPolicy, load_playbooks
from services.recovery.escalation import Escalator
from services.recovery.handling import Recorder, decode
from tests.unit.recovery.factories import NOW, activity_logged, interruption, resumed

pytestmark = pytest.mark.integration
END_OF_TIME = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-14)))


@pytest.fixture
def recorder(db_url: str) -> Iterator[Recorder]:
    store = SqlAlchemyStore(make_engine(db_url))
    store.create_schema()
    yield Recorder(store, TaskPolicy(load_playbooks()), "tasks", "group")
    store.engine.dispose()


def test_a_message_the_store_cannot_take_is_set_aside_and_the_rest_of_the_batch_is_stored(
    recorder: Recorder,
) -> None:
    good, poison = interruption(deal_id="D-1"), interruption(deal_id="D-2", detected_at=END_OF_TIME)
    outcome = recorder.store_batch([good, poison, resumed(good)], {("t", 0): 3}, NOW)
    assert [(position, reason.split(":")[0]) for position, reason in outcome.rejected] == [(1, "not stored")]
    assert [e.event for e in outcome.events] == ["RecoveryTaskCreated", "RecoveryTaskUpdated"]
    tasks = recorder.store.list_tasks(TaskFilter()).items
    assert [(t.deal_id, t.recovered) for t in tasks] == [("D-1", True)]
    assert recorder.store.load_offsets("group", ["t"]) == {("t", 0): 3}


def test_a_batch_of_duplicates_writes_one_task_and_one_outbox_message(recorder: Recorder) -> None:
    i = interruption()
    first = recorder.store_batch([i, i], {("t", 0): 2}, NOW)
    second = recorder.store_batch([i], {("t", 0): 3}, NOW + timedelta(minutes=1))
    assert (len(first.events), len(second.events)) == (1, 0)
    assert len(recorder.store.pending_outbox()) == 1


def test_a_first_response_is_kept_when_the_escalation_check_changes_the_task_between_read_and_write(
    recorder: Recorder,
) -> None:
    recorder.store_batch([interruption(deal_id="D-1")], {}, NOW)
    escalator = Escalator(recorder.store, {"default": "m-9"}, "tasks")
    escalated: list[int] = []

    def escalate_just_before_the_first_task_write(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not escalated and statement.lstrip().upper().startswith("UPDATE TASKS"):
            escalated.append(0)  # first: the escalator's own write passes through here too
            escalated[0] = len(escalator.escalate_overdue(NOW + timedelta(days=30)))

    event.listen(recorder.store.engine, "before_cursor_execute", escalate_just_before_the_first_task_write)
    at = NOW + timedelta(hours=1)
    reply = activity_logged("D-1", at)
    outcome = recorder.store_batch([], {("changes", 0): 1}, at, responses=[reply])

    assert escalated == [1]
    assert [getattr(e, "change", None) for e in outcome.events] == ["first_response"]
    (task,) = recorder.store.list_tasks(TaskFilter()).items
    assert (task.escalated, task.first_response_at, task.version) == (True, at, 3)
    assert len(recorder.store.pending_outbox()) == 3  # created, escalated, first response


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"not json",
        b"[]",
        b"{}",
        b'{"event": "DealInterrupted"}',
        b'{"event": "Other", "id": "x"}',
        b"\xff\xfe",
        b'{"event": "DealInterrupted", "id": "' + b"x" * 100 + b'"}',
    ],
)
def test_a_message_that_is_not_an_interruption_message_is_refused_with_a_reason(value: bytes | None) -> None:
    assert isinstance(decode(value), str)


def test_an_interruption_with_an_overlong_id_is_refused_before_the_database() -> None:
    reason = decode(interruption(iid="x" * 65).model_dump_json().encode())
    assert isinstance(reason, str) and "id" in reason
    assert decode(interruption().model_dump_json().encode()) == interruption()
