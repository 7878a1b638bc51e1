"""``dealwatch worker stats``: counts interruptions and tasks into the ``stats`` table.

Its own consumer group on the interruptions and tasks topics (and the dead-letter topic, for metrics). Each
batch's counter changes, the facts they come from and the consumed offsets are written in one transaction, and
the database's offsets decide where reading continues, so a restart neither loses nor double-counts. A database
without offsets (new, emptied, or reset with ``dealwatch stats --rebuild``) is rebuilt from offset 0; if that
happens while the worker runs, it notices at its next batch (the stored offsets are not the ones it wrote) and
reads the topics again from where the database now says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import DBAPIError

from schemas import InterruptionMessage, TaskMessage, Topics
from services.common.broker import ensure_topics
from services.common.consumer_group import leave_group
from services.common.db import make_engine
from services.common.metrics import EVENTS_IN, label, reason_class
from services.common.settings import Settings
from services.common.stats_repository import SqlAlchemyStatsStore, StatCell
from services.stats import metrics
from services.stats.domain.aggregate import Event, Fact, apply_events, latencies, subject

GROUP_ID = "dealwatch-stats"
SERVICE = "stats"
log = logging.getLogger(__name__)
Record: TypeAlias = Any
"""aiokafka's ``ConsumerRecord`` (the library has no type information)."""
Partition: TypeAlias = tuple[str, int]
Known: TypeAlias = MutableMapping[Partition, int | None]
"""Per owned partition, the next offset this worker last read from or wrote to the database (None: none)."""
_INTERRUPTION: TypeAdapter[Event] = TypeAdapter(InterruptionMessage)
_TASK: TypeAdapter[Event] = TypeAdapter(TaskMessage)


class StoredOffsetsMoved(Exception):
    """The database's offsets are not the ones this worker wrote: the statistics were reset meanwhile."""


@dataclass
class Batch:
    events: list[Event] = field(default_factory=list)
    dead_letters: list[tuple[str, str, str]] = field(default_factory=list)
    """(stage, source, reason class) of each dead-letter record."""
    offsets: dict[Partition, int] = field(default_factory=dict)
    read: list[tuple[str, str]] = field(default_factory=list)
    """(topic, outcome) of each record."""


async def resume(
    consumer: AIOKafkaConsumer,
    store: SqlAlchemyStatsStore,
    known: Known,
    partitions: Iterable[TopicPartition],
) -> None:
    """Continue each partition at the database's offset, or from the beginning when it has none."""
    partitions = list(partitions)
    stored = await asyncio.to_thread(store.load_offsets, GROUP_ID, sorted({tp.topic for tp in partitions}))
    fresh = []
    for tp in partitions:
        key = (tp.topic, tp.partition)
        known[key] = stored.get(key)
        if key in stored:
            consumer.seek(tp, stored[key])
        else:
            fresh.append(tp)
    if fresh:
        await consumer.seek_to_beginning(*fresh)


class ResumeFromStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """The database's offsets are the truth: continue there, or from the beginning when it has none."""

    def __init__(self, consumer: AIOKafkaConsumer, store: SqlAlchemyStatsStore, known: Known) -> None:
        self.consumer, self.store, self.known = consumer, store, known

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        for tp in revoked:
            self.known.pop((tp.topic, tp.partition), None)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await resume(self.consumer, self.store, self.known, assigned)


def decode(record: Record, topics: Topics) -> Event | None:
    adapter = _INTERRUPTION if record.topic == topics.interruptions else _TASK
    try:
        return adapter.validate_json(record.value or b"")
    except ValidationError:
        return None


def dead_letter_labels(record: Record) -> tuple[str, str, str]:
    headers = dict(record.headers or ())
    return (
        label(headers.get("dlq.stage"), "unknown"),
        label(headers.get("dlq.source"), "unknown"),
        reason_class(headers.get("dlq.reason")),
    )


def collect(records: Sequence[Record], topics: Topics) -> Batch:
    batch = Batch()
    for record in records:
        if record.topic == topics.dead_letters:
            batch.dead_letters.append(dead_letter_labels(record))
            batch.read.append((record.topic, "dead_letter"))
        else:
            event = decode(record, topics)
            batch.read.append((record.topic, "counted" if event else "skipped"))
            if event is not None:
                batch.events.append(event)
        key = (record.topic, record.partition)
        batch.offsets[key] = max(batch.offsets.get(key, 0), record.offset + 1)
    return batch


@dataclass
class Measured:
    """What a stored batch taught for the Prometheus metrics."""

    latencies: list[tuple[str, float]]
    first_seen: list[tuple[str, str]]
    """(kind, cause) of each interruption counted for the first time."""


def store_batch(store: SqlAlchemyStatsStore, batch: Batch, known: Known, tz: ZoneInfo) -> Measured:
    """One transaction: facts, counter deltas, offsets, after checking that the database's offsets are still
    the ones this worker knows. What the batch taught for the metrics."""
    with store.transaction() as tx:
        stored = tx.load_offsets(GROUP_ID, sorted({topic for topic, _ in batch.offsets}))
        moved = [key for key in batch.offsets if stored.get(key) != known.get(key)]
        if moved:
            raise StoredOffsetsMoved(", ".join(f"{t}[{p}]" for t, p in moved))
        before = {k: Fact.from_json(v) for k, v in tx.load_facts(subject(e) for e in batch.events).items()}
        changed, deltas = apply_events(before, batch.events, tz)
        tx.save_facts({k: f.to_json() for k, f in changed.items()})
        tx.add_counts({StatCell(**asdict(cell)): n for cell, n in deltas.items()})
        tx.save_offsets(GROUP_ID, batch.offsets)
    known.update(batch.offsets)
    return Measured(
        latencies=[m for key, fact in changed.items() for m in latencies(before.get(key), fact)],
        first_seen=[
            (fact.kind, fact.cause)
            for key, fact in changed.items()
            if fact.detected_at is not None and (key not in before or before[key].detected_at is None)
        ],
    )


async def handle(
    records: Sequence[Record], store: SqlAlchemyStatsStore, topics: Topics, tz: ZoneInfo, known: Known
) -> None:
    batch = collect(records, topics)
    measured = await asyncio.to_thread(store_batch, store, batch, known, tz)
    for topic, outcome in batch.read:
        EVENTS_IN.labels(SERVICE, topic).inc()
        metrics.EVENTS_COUNTED.labels(topic, outcome).inc()
    for stage, source, reason in batch.dead_letters:
        metrics.DEAD_LETTER_RECORDS.labels(stage, source, reason).inc()
    for name, seconds in measured.latencies:
        metrics.LATENCIES[name].observe(seconds)
    for kind, cause in measured.first_seen:
        metrics.INTERRUPTIONS.labels(kind, cause).inc()


async def consume(
    consumer: AIOKafkaConsumer,
    store: SqlAlchemyStatsStore,
    topics: Topics,
    tz: ZoneInfo,
    stop: asyncio.Event,
    known: Known,
) -> None:
    failures = 0
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=500)
        records = [r for part in batch.values() for r in part]
        if not records:
            continue
        try:
            await handle(records, store, topics, tz, known)
            failures = 0
        except StoredOffsetsMoved as exc:
            metrics.STATS_REWINDS.inc()
            log.warning("stats: stored offsets changed under the worker (%s); reading again from them", exc)
            await resume(consumer, store, known, consumer.assignment())
            continue
        except (DBAPIError, OSError) as exc:
            failures += 1
            log.warning("stats: batch not stored (%s); reading it again", type(exc).__name__)
            for tp, part in batch.items():
                consumer.seek(tp, part[0].offset)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(0.2 * 2**failures, 5.0))
            with contextlib.suppress(DBAPIError, OSError):  # a database that lost its tables gets them back
                await asyncio.to_thread(store.create_schema)
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
    subscribed = [topics.interruptions, topics.recovery_tasks, topics.dead_letters]
    await ensure_topics(
        settings.kafka_bootstrap, subscribed, settings.topic_partitions, settings.topic_replication
    )
    engine = make_engine(settings.database_url)
    store = SqlAlchemyStatsStore(engine)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{topics.prefix}{GROUP_ID}",  # as the detector and the recovery worker name theirs
        client_id=GROUP_ID,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1000,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        session_timeout_ms=int(settings.session_timeout * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
    )
    known: Known = {}
    try:
        await asyncio.to_thread(store.create_schema)
        consumer.subscribe(subscribed, listener=ResumeFromStoredOffsets(consumer, store, known))
        await consumer.start()
        loop = asyncio.ensure_future(
            consume(consumer, store, topics, ZoneInfo(settings.calendar.timezone), stop, known)
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
            await leave_group(consumer)
        with contextlib.suppress(Exception):
            await consumer.stop()
        engine.dispose()
