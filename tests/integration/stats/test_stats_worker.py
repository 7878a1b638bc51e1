"""The stats worker against the real broker and database: a restart neither loses nor double-counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas import RecoveryTaskCreated, RecoveryTaskUpdated, Topics
from services.common.db import make_engine
from services.common.settings import Settings
from services.common.stats_repository import SqlAlchemyStatsStore
from services.recovery.domain.playbooks import TaskPolicy, build_task, load_playbooks
from services.stats.worker import GROUP_ID, run
from tests.conftest import eventually
from tests.unit.recovery.factories import NOW, interruption

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(broker_bootstrap: str, db_url: str) -> Settings:
    return Settings(kafka_bootstrap=broker_bootstrap, database_url=db_url, topic_partitions=3)


@pytest.fixture
def stats(settings: Settings) -> Iterator[SqlAlchemyStatsStore]:
    store = SqlAlchemyStatsStore(make_engine(settings.database_url))
    store.create_schema()
    yield store
    store.engine.dispose()


@pytest.fixture
async def producer(broker_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=broker_bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()


async def publish(producer: AIOKafkaProducer, topic: str, *messages: Any) -> None:
    for m in messages:
        key = (m.deal_key if hasattr(m, "deal_key") else m.task.deal_key).encode()
        await producer.send_and_wait(topic, m.model_dump_json().encode(), key=key)
    await producer.send_and_wait(topic, b"garbage", key=b"x")


def counts(stats: SqlAlchemyStatsStore) -> dict[tuple[str, str], int]:
    return {(c.group["kind"], c.metric): c.count for c in stats.counts("month", ["kind"]) if c.count}


async def caught_up(stats: SqlAlchemyStatsStore, topics: Topics, published: int) -> None:
    async def done() -> bool:
        offsets = await asyncio.to_thread(
            stats.load_offsets, GROUP_ID, [topics.interruptions, topics.recovery_tasks]
        )
        return sum(offsets.values()) == published

    await eventually(done, what=f"the stats worker consuming all {published} messages")


async def run_until_caught_up(
    settings: Settings, topics: Topics, stats: SqlAlchemyStatsStore, published: int
) -> None:
    stop = asyncio.Event()
    worker = asyncio.create_task(run(settings, topics, stop))
    try:
        await caught_up(stats, topics, published)
        assert not worker.done()
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)


async def test_a_restarted_stats_worker_neither_loses_nor_double_counts(
    settings: Settings,
    created_topics: Topics,
    producer: AIOKafkaProducer,
    stats: SqlAlchemyStatsStore,
) -> None:
    quiet, stalled = (
        interruption("went_quiet", deal_id="D-1"),
        interruption("stalled", "budget", deal_id="D-2"),
    )
    task = build_task(quiet, NOW, TaskPolicy(load_playbooks()))
    await publish(producer, created_topics.interruptions, quiet, stalled, quiet)
    await publish(producer, created_topics.recovery_tasks, RecoveryTaskCreated(task=task))
    await run_until_caught_up(settings, created_topics, stats, published=4 + 2)
    assert counts(stats) == {
        ("went_quiet", "interruptions"): 1,
        ("stalled", "interruptions"): 1,
        ("went_quiet", "tasks"): 1,
        ("went_quiet", "task_open"): 1,
    }

    done = task.model_copy(update={"status": "done", "version": 2})
    lost = interruption("closed_lost", deal_id="D-3")
    await publish(producer, created_topics.interruptions, stalled, lost)
    await publish(
        producer,
        created_topics.recovery_tasks,
        RecoveryTaskUpdated(change="status", task=done),
        RecoveryTaskCreated(task=task),
    )
    await run_until_caught_up(settings, created_topics, stats, published=6 + 3 + 3)
    assert counts(stats) == {
        ("went_quiet", "interruptions"): 1,
        ("stalled", "interruptions"): 1,
        ("closed_lost", "interruptions"): 1,
        ("went_quiet", "tasks"): 1,
        ("went_quiet", "task_done"): 1,
    }
