"""``dealwatch worker stats``: counts interruptions and tasks into the ``stats`` table.

Its own consumer group on the interruptions and tasks topics. Each batch's counter changes, the facts they
come from and the consumed offsets are written in one transaction, and the database's offsets decide where
reading continues, so a restart neither loses nor double-counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import Counter
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import DBAPIError

from schemas import InterruptionMessage, TaskMessage, Topics
from services.common.broker import ensure_topics
from services.common.db import make_engine
from services.common.settings import Settings
from services.common.stats_repository import SqlAlchemyStatsStore, StatCell
from services.stats.domain.aggregate import Event, Fact, apply_events, subject

GROUP_ID = "dealwatch-stats"
log = logging.getLogger(__name__)
Record: TypeAlias = Any
"""aiokafka's ``ConsumerRecord`` (the library has no type information)."""
EVENTS_COUNTED = Counter("dealwatch_stats_events", "Messages the stats worker read", ["topic", "outcome"])
_INTERRUPTION: TypeAdapter[Event] = TypeAdapter(InterruptionMessage)
_TASK: TypeAdapter[Event] = TypeAdapter(TaskMessage)


class ResumeFromStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """The database's offsets are the truth: continue there, or from the beginning when it has none."""

    def __init__(self, consumer: AIOKafkaConsumer, store: SqlAlchemyStatsStore) -> None:
        self.consumer, self.store = consumer, store

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        stored = await asyncio.to_thread(
            self.store.load_offsets, GROUP_ID, sorted({tp.topic for tp in assigned})
        )
        fresh = [tp for tp in assigned if (tp.topic, tp.partition) not in stored]
        for tp in assigned:
            if (tp.topic, tp.partition) in stored:
                self.consumer.seek(tp, stored[(tp.topic, tp.partition)])
        if fresh:
            await self.consumer.seek_to_beginning(*fresh)


def decode(record: Record, topics: Topics) -> Event | None:
    adapter = _INTERRUPTION if record.topic == topics.interruptions else _TASK
    try:
        return adapter.validate_json(record.value or b"")
    except ValidationError:
        return None


def store_batch(
    store: SqlAlchemyStatsStore, events: Sequence[Event], offsets: dict[tuple[str, int], int], tz: ZoneInfo
) -> int:
    """One transaction: facts, counter deltas, offsets. The number of counters changed."""
    with store.transaction() as tx:
        facts = {k: Fact.from_json(v) for k, v in tx.load_facts(subject(e) for e in events).items()}
        changed, deltas = apply_events(facts, events, tz)
        tx.save_facts({k: f.to_json() for k, f in changed.items()})
        tx.add_counts({StatCell(**asdict(cell)): n for cell, n in deltas.items()})
        tx.save_offsets(GROUP_ID, offsets)
    return len(deltas)


async def handle(
    records: Sequence[Record], store: SqlAlchemyStatsStore, topics: Topics, tz: ZoneInfo
) -> None:
    events = []
    offsets: dict[tuple[str, int], int] = {}
    for record in records:
        event = decode(record, topics)
        EVENTS_COUNTED.labels(record.topic, "counted" if event else "skipped").inc()
        if event is not None:
            events.append(event)
        key = (record.topic, record.partition)
        offsets[key] = max(offsets.get(key, 0), record.offset + 1)
    await asyncio.to_thread(store_batch, store, events, offsets, tz)


async def consume(
    consumer: AIOKafkaConsumer, store: SqlAlchemyStatsStore, topics: Topics, tz: ZoneInfo, stop: asyncio.Event
) -> None:
    failures = 0
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=500)
        records = [r for part in batch.values() for r in part]
        if not records:
            continue
        try:
            await handle(records, store, topics, tz)
            failures = 0
        except (DBAPIError, OSError) as exc:
            failures += 1
            log.warning("stats: batch not stored (%s); reading it again", type(exc).__name__)
            for tp, part in batch.items():
                consumer.seek(tp, part[0].offset)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(0.2 * 2**failures, 5.0))
            continue
        with contextlib.suppress(KafkaError):  # for lag monitoring only: the database holds the offsets
            await consumer.commit(
                {tp: OffsetAndMetadata(part[-1].offset + 1, "") for tp, part in batch.items()}
            )


async def run(settings: Settings, topics: Topics | None = None, stop: asyncio.Event | None = None) -> None:
    """Until ``stop`` is set or the task is cancelled."""
    topics = topics or Topics(prefix=settings.topic_prefix)
    stop = stop or asyncio.Event()
    if not settings.kafka_bootstrap:
        raise RuntimeError("the stats worker needs DEALWATCH_KAFKA_BOOTSTRAP")
    await ensure_topics(
        settings.kafka_bootstrap,
        [topics.interruptions, topics.recovery_tasks],
        settings.topic_partitions,
        settings.topic_replication,
    )
    engine = make_engine(settings.database_url)
    store = SqlAlchemyStatsStore(engine)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=GROUP_ID,
        client_id=GROUP_ID,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1000,
        session_timeout_ms=int(settings.session_timeout * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
    )
    try:
        await asyncio.to_thread(store.create_schema)
        consumer.subscribe(
            [topics.interruptions, topics.recovery_tasks], listener=ResumeFromStoredOffsets(consumer, store)
        )
        await consumer.start()
        loop = asyncio.ensure_future(
            consume(consumer, store, topics, ZoneInfo(settings.calendar.timezone), stop)
        )
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([loop, stopped], return_when=asyncio.FIRST_COMPLETED)
            if loop.done():
                loop.result()
        finally:
            for task in (loop, stopped):
                task.cancel()
            await asyncio.gather(loop, stopped, return_exceptions=True)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        engine.dispose()
