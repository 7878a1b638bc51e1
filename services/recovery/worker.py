"""``dealwatch worker recovery``: interruptions in, recovery tasks stored and published through the outbox.

It reads the interruptions and, read-only, the change events (for first responses: outbound activities on
deals with an open task). For each batch: decode (what does not validate goes to the dead-letter topic),
store the interruptions, their tasks, the outbox messages and the consumed offsets in one transaction, then
commit the offsets to the broker and wake the relay. Offsets stored in the database win on (re)assignment, so a
crash between the two commits reprocesses nothing, and reprocessing would create nothing anyway (ids are
deterministic). Beside the consumer run the outbox relay, the periodic escalation of overdue tasks and the
delivery of task messages to webhook subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from sqlalchemy.exc import DBAPIError

from schemas import DealChanged
from schemas.topics import Topics
from services.common.broker import dlq_headers, ensure_topics, make_producer, utc_now
from services.common.consumer_group import leave_group
from services.common.db import make_engine
from services.common.metrics import EVENTS_IN
from services.common.repositories import SqlAlchemyStore
from services.common.settings import Settings
from services.recovery.escalation import Escalator, escalate_overdue_tasks
from services.recovery.handling import (
    Message,
    Outcome,
    Recorder,
    WriteConflict,
    decode,
    decode_response,
    is_transient,
)
from services.recovery.metrics import INTERRUPTIONS_CONSUMED
from services.recovery.policy import task_policy
from services.recovery.relay import OutboxRelay, wait_any
from services.recovery.subscribers import Deliverer, subscriber_urls

GROUP_ID = "dealwatch-recovery"
"""The consumer group's name; :func:`group_id` puts the topic prefix in front of it."""
log = logging.getLogger(__name__)
Record: TypeAlias = Any
"""aiokafka's ``ConsumerRecord`` (the library has no type information)."""


class SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, continue where the database says this group's results end."""

    def __init__(self, consumer: AIOKafkaConsumer, store: SqlAlchemyStore, group_id: str) -> None:
        self.consumer, self.store, self.group_id = consumer, store, group_id

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        topics = sorted({tp.topic for tp in assigned})
        stored = await asyncio.to_thread(self.store.load_offsets, self.group_id, topics)
        ours = {tp: stored[(tp.topic, tp.partition)] for tp in assigned if (tp.topic, tp.partition) in stored}
        for tp, offset in ours.items():
            self.consumer.seek(tp, offset)
        if not ours:
            return
        # The broker's copy, for the group's lag: a worker killed after storing a batch and before committing it
        # left it behind, and with nothing more to read it would stay behind (lag that never drains).
        try:
            await self.consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in ours.items()})
        except KafkaError as exc:
            log.info("recovery: offsets not copied to the broker on assignment (%s)", exc)


@dataclass
class BatchHandler:
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    recorder: Recorder
    topics: Topics
    wake: asyncio.Event
    stop: asyncio.Event

    async def handle(self, records: Sequence[Record]) -> None:
        messages: list[tuple[Record, Message]] = []
        rejected: list[tuple[Record, str]] = []
        responses: list[DealChanged] = []
        for record in records:
            if record.topic == self.topics.deal_changes:
                response = decode_response(record.value)
                if response is not None:
                    responses.append(response)
                continue
            decoded = decode(record.value)
            if isinstance(decoded, str):
                rejected.append((record, decoded))
            else:
                messages.append((record, decoded))
        await self.dead_letter(rejected)
        offsets = _next_offsets(records)
        outcome = await self.store([m for _, m in messages], offsets, responses)
        if outcome is None:
            return
        await self.dead_letter([(messages[i][0], reason) for i, reason in outcome.rejected])
        if outcome.events:
            self.wake.set()
        _count(messages, len(rejected) + len(outcome.rejected))
        for topic, n in Counter(r.topic for r in records).items():
            EVENTS_IN.labels("recovery", topic).inc(n)
        await self.commit(offsets)

    async def store(
        self,
        messages: list[Message],
        offsets: dict[tuple[str, int], int],
        responses: Sequence[DealChanged] = (),
    ) -> Outcome | None:
        """Store, retrying while the database is unreachable; None when stopped first."""
        failures = 0
        while not self.stop.is_set():
            try:
                return await asyncio.to_thread(
                    self.recorder.store_batch, messages, offsets, utc_now(), responses
                )
            except (DBAPIError, WriteConflict) as exc:
                if not is_transient(exc):
                    raise
                failures += 1
                log.warning("recovery: database unavailable (%s); retrying", type(exc).__name__)
                await wait_any(self.stop, timeout=min(0.2 * 2**failures, 5.0))
        return None

    async def dead_letter(self, rejected: Sequence[tuple[Record, str]]) -> None:
        acks = []
        for record, reason in rejected:
            where = {
                "dlq.topic": record.topic,
                "dlq.partition": str(record.partition),
                "dlq.offset": str(record.offset),
            }
            headers = dlq_headers(reason, source="detector", stage="recovery", extra=where)
            acks.append(
                await self.producer.send(
                    self.topics.dead_letters, record.value or b"", key=record.key, headers=headers
                )
            )
        await asyncio.gather(*acks)

    async def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Tell the broker too (for lag monitoring); the database already holds the truth."""
        try:
            await self.consumer.commit(
                {TopicPartition(t, p): OffsetAndMetadata(o, "") for (t, p), o in offsets.items()}
            )
        except (CommitFailedError, KafkaError) as exc:
            log.info("recovery: offset commit to the broker failed (%s); the database has them", exc)


def _next_offsets(records: Sequence[Record]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        offsets[key] = max(offsets.get(key, 0), r.offset + 1)
    return offsets


def _count(messages: Sequence[tuple[Record, Message]], dead_lettered: int) -> None:
    for _, message in messages:
        INTERRUPTIONS_CONSUMED.labels(event=message.event, outcome="consumed").inc()
    if dead_lettered:
        INTERRUPTIONS_CONSUMED.labels(event="unknown", outcome="dead_lettered").inc(dead_lettered)


def group_id(topics: Topics) -> str:
    """The consumer group of the worker reading ``topics``: the topic prefix, then :data:`GROUP_ID` (as the
    detector names its own). Deployments, or tests, that share a cluster under different topic prefixes then
    never land in one group, where one's restarts would stall the other's rebalances."""
    return f"{topics.prefix}{GROUP_ID}"


def _consumer(settings: Settings, bootstrap: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        session_timeout_ms=int(settings.session_timeout * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
        rebalance_timeout_ms=int(max(settings.rebalance_timeout, settings.session_timeout) * 1000),
    )


async def consume(consumer: AIOKafkaConsumer, handler: BatchHandler, stop: asyncio.Event) -> None:
    failures = 0
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=500)
        records = [r for part in batch.values() for r in part]
        if not records:
            continue
        try:
            await handler.handle(records)
            failures = 0
        except (KafkaError, DBAPIError, OSError) as exc:
            failures += 1
            log.warning("recovery: batch not done (%s); reading it again", type(exc).__name__)
            for tp, part in batch.items():
                consumer.seek(tp, part[0].offset)
            await wait_any(stop, timeout=min(0.2 * 2**failures, 5.0))


async def start_and_consume(consumer: AIOKafkaConsumer, handler: BatchHandler, stop: asyncio.Event) -> None:
    """Join the group (which can take a while after a rebalance) and consume; the relay, the escalation check
    and the deliveries run meanwhile, as they do not depend on the group."""
    await consumer.start()
    await consume(consumer, handler, stop)


async def run(settings: Settings, topics: Topics | None = None, stop: asyncio.Event | None = None) -> None:
    """Until ``stop`` is set or the task is cancelled."""
    topics = topics or Topics(prefix=settings.topic_prefix)
    stop = stop or asyncio.Event()
    bootstrap = settings.kafka_bootstrap
    if not bootstrap:
        raise RuntimeError("the recovery worker needs DEALWATCH_KAFKA_BOOTSTRAP")
    await ensure_topics(
        bootstrap,
        [topics.interruptions, topics.deal_changes, topics.recovery_tasks, topics.dead_letters],
        settings.topic_partitions,
        settings.topic_replication,
    )
    engine = make_engine(settings.database_url)
    store = SqlAlchemyStore(engine)
    group = group_id(topics)
    producer = make_producer(bootstrap, idempotent=settings.idempotent_producer, client_id=GROUP_ID)
    consumer = _consumer(settings, bootstrap, group)
    try:
        await asyncio.to_thread(store.create_schema)
        recorder = Recorder(store, task_policy(settings), topics.recovery_tasks, group)
        await producer.start()
        consumer.subscribe(
            [topics.interruptions, topics.deal_changes],
            listener=SeekToStoredOffsets(consumer, store, group),
        )
        wake, delivered = asyncio.Event(), asyncio.Event()
        handler = BatchHandler(consumer, producer, recorder, topics, wake, stop)
        relay = OutboxRelay(
            store,
            producer,
            wake,
            tasks_topic=topics.recovery_tasks,
            subscribers=subscriber_urls(settings.subscribers),
            delivered=delivered,
        )
        escalator = Escalator(store, dict(settings.managers), topics.recovery_tasks)
        deliverer = Deliverer(store, producer, settings, topics.dead_letters)
        await _until_stopped(
            stop,
            start_and_consume(consumer, handler, stop),
            relay.run(stop),
            escalate_overdue_tasks(escalator, wake, stop, settings.escalation_interval_seconds),
            deliverer.run(delivered, stop),
        )
    finally:
        with contextlib.suppress(Exception):
            await leave_group(consumer)
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await producer.stop()
        engine.dispose()


async def _until_stopped(stop: asyncio.Event, *loops: Coroutine[Any, Any, None]) -> None:
    """Run the loops until ``stop`` is set; the first to fail stops the others and raises."""
    tasks = [asyncio.ensure_future(loop) for loop in loops]
    stopped = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopped:
                task.result()
    finally:
        for task in [*tasks, stopped]:
            task.cancel()
        await asyncio.gather(*tasks, stopped, return_exceptions=True)
