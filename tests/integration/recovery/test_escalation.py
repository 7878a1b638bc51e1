"""Overdue tasks are escalated to the manager exactly once: across passes, two workers and a restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from schemas import RecoveryTask, Topics
from services.common.db import OutboxRow
from services.common.repositories import SqlAlchemyStore
from services.common.settings import Settings
from services.recovery.domain.playbooks import TaskPolicy, build_task, load_playbooks
from services.recovery.escalation import Escalator
from tests.conftest import eventually
from tests.helpers import read_topic
from tests.unit.recovery.factories import NOW, interruption

pytestmark = pytest.mark.integration
MANAGERS = {"u-7": "m-1", "default": "m-9"}


def overdue_task(store: SqlAlchemyStore, deal_id: str = "D-1001", **changes: Any) -> RecoveryTask:
    """A task created on NOW (weeks ago), so long past its due time."""
    task = build_task(interruption(deal_id=deal_id), NOW, TaskPolicy(load_playbooks()))
    task = task.model_copy(update=changes)
    with store.transaction() as tx:
        assert tx.create_task(task)
    return task


def test_an_overdue_task_is_escalated_in_the_first_pass_and_left_alone_in_the_next(
    store: SqlAlchemyStore,
) -> None:
    task = overdue_task(store)
    not_yet = overdue_task(store, deal_id="D-2", due_at=NOW + timedelta(days=400))
    escalator = Escalator(store, MANAGERS, "tasks")
    now = NOW + timedelta(days=30)
    first = escalator.escalate_overdue(now)
    second = escalator.escalate_overdue(now + timedelta(minutes=1))
    assert [(e.change, e.task.id, e.task.manager) for e in first] == [("escalated", task.id, "m-1")]
    assert second == []
    stored = store.get_task(task.id)
    assert stored is not None and stored.escalated and "m-1" in stored.participants
    assert [json.loads(m.value)["change"] for m in store.pending_outbox()] == ["escalated"]
    untouched = store.get_task(not_yet.id)
    assert untouched is not None and not untouched.escalated


def test_two_workers_that_read_the_same_overdue_task_escalate_it_once(store: SqlAlchemyStore) -> None:
    task = overdue_task(store)
    one, two = Escalator(store, MANAGERS, "tasks"), Escalator(store, MANAGERS, "tasks")
    now = NOW + timedelta(days=30)
    (seen_by_one,) = store.overdue_tasks(now)
    (seen_by_two,) = store.overdue_tasks(now)
    assert one.escalate_task(seen_by_one, now) is not None
    assert two.escalate_task(seen_by_two, now) is None
    assert len(store.pending_outbox()) == 1
    assert seen_by_one.id == task.id


def test_the_overdue_query_pages_past_snoozed_tasks_whose_clock_restarted(store: SqlAlchemyStore) -> None:
    now = NOW + timedelta(days=30)
    for n in range(5):
        overdue_task(store, deal_id=f"S-{n}", status="snoozed", snoozed_until=now + timedelta(days=1))
    late = overdue_task(store, deal_id="D-late", due_at=NOW + timedelta(days=20))
    events = Escalator(store, MANAGERS, "tasks", page_size=2).escalate_overdue(now)
    assert [e.task.id for e in events] == [late.id]


def outbox_rows(store: SqlAlchemyStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(OutboxRow)).scalar_one())


def passes() -> float:
    return REGISTRY.get_sample_value("dealwatch_escalation_passes_total") or 0.0


@pytest.fixture
def settings(broker_bootstrap: str, db_url: str) -> Settings:
    return Settings(
        kafka_bootstrap=broker_bootstrap,
        database_url=db_url,
        managers=MANAGERS,
        escalation_interval_seconds=0.05,
    )


async def test_an_overdue_task_is_escalated_once_by_two_workers_and_again_after_a_restart(
    broker_bootstrap: str, created_topics: Topics, store: SqlAlchemyStore, worker: Callable[[], Any]
) -> None:
    task = overdue_task(store)
    first, second = await worker(), await worker()

    async def escalation_messages() -> list[dict[str, Any]]:
        records = await read_topic(broker_bootstrap, created_topics.recovery_tasks)
        return [json.loads(r.value) for r in records]

    def passes_beyond(count: float) -> Callable[[], Any]:
        target = passes() + count

        async def check() -> bool:
            return passes() >= target

        return check

    await eventually(escalation_messages, what="the escalation message")
    await eventually(passes_beyond(4), what="more passes of both workers")
    for stop, running in (first, second):
        stop.set()
        await asyncio.wait_for(running, timeout=30)
    # read once both have stopped: the second relay's copy of the row (see below) may come after the first one
    published = await escalation_messages()
    await worker()
    await eventually(passes_beyond(2), what="passes of the restarted worker")

    messages = await escalation_messages()
    assert len(messages) == len(published), "the restarted worker escalated or published again"
    # Two relays may both publish one outbox row (at-least-once; the version lets consumers drop the copy),
    # but the task was escalated once: one outbox row, one version.
    assert {(m["event"], m["change"], m["task"]["version"]) for m in messages} == {
        ("RecoveryTaskUpdated", "escalated", 2)
    }
    assert outbox_rows(store) == 1
    assert messages[0]["task"]["manager"] == "m-1" and "m-1" in messages[0]["task"]["participants"]
    stored = store.get_task(task.id)
    assert stored is not None and stored.escalated and stored.version == 2
