"""The recovery worker against the real broker and a real database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from schemas import DealInterrupted, RecoveryTask, RecoveryTaskCreated, Topics
from services.common.repositories import SqlAlchemyStore, TaskFilter
from services.common.settings import Settings
from services.recovery.worker import group_id
from tests.conftest import eventually
from tests.helpers import read_topic
from tests.unit.recovery.factories import interruption, resumed

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(broker_bootstrap: str, db_url: str) -> Settings:
    return Settings(kafka_bootstrap=broker_bootstrap, database_url=db_url, topic_partitions=3)


async def send(producer: AIOKafkaProducer, topic: str, message: Any, key: str = "generic:D-1001") -> None:
    value = message if isinstance(message, bytes) else message.model_dump_json().encode()
    await producer.send_and_wait(topic, value, key=key.encode())


def recent(**kwargs: Any) -> DealInterrupted:
    """An interruption detected now, so that its task is not overdue (and not escalated) during the test."""
    return interruption(detected_at=datetime.now(UTC), **kwargs)


def tasks(store: SqlAlchemyStore) -> list[RecoveryTask]:
    return store.list_tasks(TaskFilter(), limit=500).items


def tasks_created_metric() -> float:
    return REGISTRY.get_sample_value("dealwatch_tasks_created_total", {"kind": "went_quiet"}) or 0.0


async def task_messages(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in await read_topic(bootstrap, topic)]


async def test_a_thrice_delivered_interruption_and_a_garbage_message_give_one_task_and_one_dead_letter(
    broker_bootstrap: str,
    created_topics: Topics,
    producer: AIOKafkaProducer,
    store: SqlAlchemyStore,
    worker: Callable[[], Any],
) -> None:
    created_before = tasks_created_metric()
    i = recent()
    for _ in range(3):
        await send(producer, created_topics.interruptions, i)
    await send(producer, created_topics.interruptions, b'{"event": "DealInterrupted", "id": 42')
    _, task = await worker()

    async def published() -> list[dict[str, Any]]:
        return await task_messages(broker_bootstrap, created_topics.recovery_tasks)

    async def all_consumed() -> bool:
        offsets = await asyncio.to_thread(
            store.load_offsets, group_id(created_topics), [created_topics.interruptions]
        )
        return sum(offsets.values()) == 4

    await eventually(all_consumed, what="the worker storing all four messages")
    messages = await eventually(published, what="a task message")
    dead = await eventually(
        lambda: read_topic(broker_bootstrap, created_topics.dead_letters), what="a dead letter"
    )
    assert [m["event"] for m in messages] == ["RecoveryTaskCreated"]
    created = RecoveryTaskCreated.model_validate(messages[0])
    assert created.task.interruption_id == i.id and created.task.version == 1
    assert [t.id for t in await asyncio.to_thread(tasks, store)] == [created.task.id]
    headers = dict(dead[0].headers)
    assert len(dead) == 1 and dead[0].value == b'{"event": "DealInterrupted", "id": 42'
    assert headers["dlq.source"] == b"detector" and headers["dlq.stage"] == b"recovery"
    assert headers["dlq.reason"].startswith(b"invalid")
    assert not task.done()
    assert tasks_created_metric() == created_before + 1


async def test_a_restarted_worker_creates_nothing_new_for_what_it_read_before_or_reads_again(
    broker_bootstrap: str,
    created_topics: Topics,
    producer: AIOKafkaProducer,
    store: SqlAlchemyStore,
    worker: Callable[[], Any],
) -> None:
    first = recent(deal_id="D-1")
    await send(producer, created_topics.interruptions, first, key=first.deal_key)
    await send(producer, created_topics.interruptions, b"not json", key=first.deal_key)
    stop, task = await worker()
    await eventually(lambda: asyncio.to_thread(tasks, store), what="the first task")
    await eventually(
        lambda: task_messages(broker_bootstrap, created_topics.recovery_tasks), what="its message"
    )
    stop.set()
    await asyncio.wait_for(task, timeout=30)

    await worker()
    await send(producer, created_topics.interruptions, first, key=first.deal_key)  # the detector again
    sentinel = recent(deal_id="D-1", kind="stalled")  # same key: same partition, read after the others
    await send(producer, created_topics.interruptions, sentinel, key=sentinel.deal_key)

    async def both_published() -> list[dict[str, Any]] | None:
        messages = await task_messages(broker_bootstrap, created_topics.recovery_tasks)
        return messages if len(messages) >= 2 else None

    messages = await eventually(both_published, what="the sentinel's task message")
    assert sorted(m["task"]["interruption_id"] for m in messages) == sorted([first.id, sentinel.id])
    assert len(await asyncio.to_thread(tasks, store)) == 2
    assert len(await read_topic(broker_bootstrap, created_topics.dead_letters)) == 1


async def test_a_resumed_deal_marks_its_task_recovered_and_publishes_the_update(
    broker_bootstrap: str,
    created_topics: Topics,
    producer: AIOKafkaProducer,
    store: SqlAlchemyStore,
    worker: Callable[[], Any],
) -> None:
    i = recent()
    await send(producer, created_topics.interruptions, i)
    await send(producer, created_topics.interruptions, resumed(i))
    await send(producer, created_topics.interruptions, resumed(i))
    await worker()

    async def updated() -> list[dict[str, Any]] | None:
        messages = await task_messages(broker_bootstrap, created_topics.recovery_tasks)
        return messages if len(messages) >= 2 else None

    messages = await eventually(updated, what="the task update")
    assert [(m["event"], m["task"]["version"]) for m in messages] == [
        ("RecoveryTaskCreated", 1),
        ("RecoveryTaskUpdated", 2),
    ]
    assert messages[1]["change"] == "recovered" and messages[1]["task"]["recovered"] is True
    stored = await asyncio.to_thread(store.get_interruption, i.id)
    assert stored is not None and stored.status == "resumed"


async def test_a_revised_cause_updates_the_task_instead_of_adding_one(
    broker_bootstrap: str,
    created_topics: Topics,
    producer: AIOKafkaProducer,
    store: SqlAlchemyStore,
    worker: Callable[[], Any],
) -> None:
    await send(producer, created_topics.interruptions, recent(cause="unknown"))
    await send(producer, created_topics.interruptions, recent(cause="budget", revision=1))
    await worker()

    async def revised() -> list[RecoveryTask] | None:
        found = await asyncio.to_thread(tasks, store)
        return found if found and found[0].cause == "budget" else None

    found = await eventually(revised, what="the revised task")
    assert len(found) == 1 and found[0].version == 2
    stored = await asyncio.to_thread(store.get_interruption, interruption().id)
    assert stored is not None and stored.interruption.cause == "budget"


async def test_outbox_messages_left_unpublished_by_a_crash_are_published_on_start(
    broker_bootstrap: str,
    created_topics: Topics,
    store: SqlAlchemyStore,
    worker: Callable[[], Any],
) -> None:
    from services.recovery.domain.playbooks import TaskPolicy, build_task, load_playbooks

    now = datetime.now(UTC)
    task = build_task(recent(), now, TaskPolicy(load_playbooks()))
    with store.transaction() as tx:
        tx.create_task(task)
        tx.append_outbox(
            created_topics.recovery_tasks,
            task.deal_key,
            RecoveryTaskCreated(task=task).model_dump_json(),
            now,
        )
    await worker()
    messages = await eventually(
        lambda: task_messages(broker_bootstrap, created_topics.recovery_tasks), what="the leftover message"
    )
    assert [m["task"]["id"] for m in messages] == [task.id]
    assert await eventually(
        lambda: asyncio.to_thread(lambda: store.outbox_backlog()[0] == 0), what="the message marked published"
    )


async def test_a_worker_that_stored_a_batch_but_died_before_committing_it_tells_the_broker_on_its_restart(
    broker_bootstrap: str,
    created_topics: Topics,
    producer: AIOKafkaProducer,
    store: SqlAlchemyStore,
    worker: Callable[[], Any],
) -> None:
    """The database holds the group's offsets; the broker's copy is for its lag. Put back to nothing, as a kill
    between the two leaves it, the copy is brought to the stored offsets on assignment, with nothing to read."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    first = recent(deal_id="D-7")
    await send(producer, created_topics.interruptions, first, key=first.deal_key)
    stop, task = await worker()
    await eventually(lambda: asyncio.to_thread(tasks, store), what="the task")
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    group = group_id(created_topics)
    stored = {
        TopicPartition(t, p): o
        for (t, p), o in (
            await asyncio.to_thread(store.load_offsets, group, [created_topics.interruptions])
        ).items()
    }
    assert sum(stored.values()) == 1

    async def committed() -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=broker_bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            return {tp: (await consumer.committed(tp)) or 0 for tp in stored}
        finally:
            await consumer.stop()

    rewind = AIOKafkaConsumer(bootstrap_servers=broker_bootstrap, group_id=group, enable_auto_commit=False)
    await rewind.start()
    try:
        rewind.assign(list(stored))
        await rewind.commit({tp: OffsetAndMetadata(0, "") for tp in stored})
    finally:
        await rewind.stop()
    assert set((await committed()).values()) == {0}

    await worker()

    async def caught_up() -> bool:
        return await committed() == stored

    await eventually(caught_up, what="the broker's offsets brought to the stored ones")
    assert len(await asyncio.to_thread(tasks, store)) == 1
