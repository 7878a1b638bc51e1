"""The recovery worker reads the change events and records a task's first response to the customer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas import DealChanged, RecoveryTask, Topics
from services.common.repositories import SqlAlchemyStore, TaskFilter
from services.common.settings import Settings
from services.recovery.worker import group_id, run
from tests.conftest import eventually
from tests.helpers import read_topic
from tests.unit.recovery.factories import activity_logged, interruption

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(broker_bootstrap: str, db_url: str) -> Settings:
    return Settings(kafka_bootstrap=broker_bootstrap, database_url=db_url)


@pytest.fixture
async def worker(settings: Settings, created_topics: Topics) -> AsyncIterator[Callable[[], Any]]:
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, created_topics, stop))
    yield lambda: task
    stop.set()
    await asyncio.wait_for(task, timeout=30)


def activity(deal_id: str, direction: str, at: datetime, n: int) -> DealChanged:
    text = "Following up with a case study"
    return activity_logged(deal_id, at, direction=direction, kind="email", text=text, event_id=f"evt-{n}")


async def test_the_first_outbound_activity_after_the_task_was_created_is_recorded_once(
    broker_bootstrap: str,
    created_topics: Topics,
    producer: AIOKafkaProducer,
    store: SqlAlchemyStore,
    worker: Callable[[], Any],
) -> None:
    i = interruption(deal_id="D-1", detected_at=datetime.now(UTC))  # due in days: no escalation here
    await producer.send_and_wait(
        created_topics.interruptions, i.model_dump_json().encode(), key=b"generic:D-1"
    )

    async def the_task() -> list[RecoveryTask]:
        return (await asyncio.to_thread(store.list_tasks, TaskFilter())).items

    (task,) = await eventually(the_task, what="the task")
    created = task.created_at
    first = datetime.now(UTC) + timedelta(minutes=1)
    changes = [
        activity("D-1", "outbound", created - timedelta(minutes=5), 1),  # before the task: not a response
        activity("D-1", "inbound", first - timedelta(seconds=30), 2),  # from the customer
        activity("D-2", "outbound", first, 3),  # a deal without a task
        activity("D-1", "outbound", first, 4),  # the first response
        activity("D-1", "outbound", first + timedelta(hours=1), 5),  # a later one
    ]
    for change in changes:
        key = change.key.encode()
        await producer.send_and_wait(created_topics.deal_changes, change.model_dump_json().encode(), key=key)

    async def all_read() -> bool:
        offsets = await asyncio.to_thread(
            store.load_offsets, group_id(created_topics), [created_topics.deal_changes]
        )
        return sum(offsets.values()) == len(changes)

    async def all_published() -> bool:
        return await asyncio.to_thread(lambda: store.outbox_backlog()[0] == 0)

    await eventually(all_read, what="the worker reading every change event")
    await eventually(all_published, what="the relay publishing the updates")
    stored = store.get_task(task.id)
    assert stored is not None and stored.first_response_at == first and stored.version == 2
    messages = [
        json.loads(r.value) for r in await read_topic(broker_bootstrap, created_topics.recovery_tasks)
    ]
    assert [(m["event"], m.get("change")) for m in messages] == [
        ("RecoveryTaskCreated", None),
        ("RecoveryTaskUpdated", "first_response"),
    ]
    assert worker().done() is False
