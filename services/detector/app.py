"""The detector's Faust app: one agent over the change events and the detector's own ticks, one table of deals.

Wiring only; the decisions are in ``domain/`` and the stream step in ``processor.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.types import TP

from schemas.topics import Topics
from services.common.metrics import EVENTS_OUT
from services.common.runtime import calm_garbage_collector
from services.common.settings import Settings
from services.detector.changelog import read_changelog_to_end
from services.detector.delivery import deliver_without_a_task_per_record
from services.detector.domain.state import DealState
from services.detector.domain.view import deal_view
from services.detector.processor import DetectorProcessor, Incoming
from services.detector.sensors import SERVICE, StreamClockMonitor, TopicTrafficSensor
from services.detector.wiring import build_detector

log = logging.getLogger(__name__)


def _prompt_fetches(wait_ms: int) -> None:
    """Faust (0.15.3) creates its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting for it. A
    broker that does not answer a waiting fetch as soon as records arrive (Tansu, the embedded one, checks
    now and then) then holds every event up to that long. The wait is set on the consumer before it starts."""
    from faust.transport.drivers import aiokafka as driver

    thread = driver.AIOKafkaConsumerThread
    if getattr(thread, "_dealwatch_fetch_wait_ms", None) == wait_ms:
        return
    create = getattr(thread, "_dealwatch_create", thread._create_worker_consumer)

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = wait_ms
        return consumer

    thread._dealwatch_create = create  # type: ignore[attr-defined]
    thread._dealwatch_fetch_wait_ms = wait_ms  # type: ignore[attr-defined]
    thread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]


def create_app(settings: Settings, topics: Topics | None = None, bootstrap: str | None = None) -> faust.App:
    topics = topics or Topics(prefix=settings.topic_prefix)
    bootstrap = bootstrap or settings.kafka_bootstrap
    if not bootstrap:
        raise ValueError(
            "the detector needs DEALWATCH_KAFKA_BOOTSTRAP (dealwatch up passes the embedded broker's)"
        )
    _prompt_fetches(settings.fetch_max_wait_ms)
    web: dict[str, Any] = {"web_enabled": False}
    if settings.web_port is not None:
        web = {
            "web_enabled": True,
            "web_host": settings.web_host,
            "web_port": settings.web_port,
            "web_bind": settings.web_host,
        }
    app = faust.App(
        f"{topics.prefix}dealwatch-detector",
        broker=[f"kafka://{b.strip()}" for b in bootstrap.split(",")],
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        table_standby_replicas=settings.standby_replicas,
        # The check compares a partition's stored offset with the broker's listed end, to catch a store file
        # left from deleted topics. The tables live in memory, so the stored offset is one this process read
        # from the changelog itself; and the embedded broker lists the end of a partition's last batch, not of
        # its last record, so the check would stop a worker that took over a standby copy (ConsistencyError).
        recovery_consistency_check=False,
        stream_buffer_maxsize=max(4096, settings.detector_batch_size * 4),
        # A batch's deal states go to the producer as one record batch per partition (ChangelogBatches, below):
        # room for a batch of 500 states of about 400 bytes on one partition, so that one rarely waits for another.
        producer_max_batch_size=256 * 1024,
        worker_redirect_stdouts=False,
        autodiscover=False,
        monitor=StreamClockMonitor(),  # Faust's own per-record statistics, which nothing here reads, left out
        **web,
    )
    new_consumer = app._new_consumer

    def consumer_delivering_directly() -> Any:
        consumer = new_consumer()
        # see services/detector/delivery.py; a quarter of the channels' size lets a whole batch wait in them
        deliver_without_a_task_per_record(consumer, ahead=app.conf.stream_buffer_maxsize // 4)
        return consumer

    app._new_consumer = consumer_delivering_directly  # type: ignore[method-assign]
    raw: Any = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    source = app.topic(topics.deal_changes, topics.deal_commands, topics.detector_ticks, schema=raw)
    ticks = app.topic(topics.detector_ticks, partitions=settings.topic_partitions, schema=raw)
    interruptions = app.topic(topics.interruptions, schema=raw)
    dead_letters = app.topic(topics.dead_letters, schema=raw)
    deals = app.Table(
        "deals",
        default=None,
        partitions=settings.topic_partitions,
        schema=raw,
        key_type=bytes,
        value_type=bytes,
    )

    # The stream step hands its records straight to the producer (no per-record future message of Faust's
    # buffer): interruptions join the producer's batch at once, a batch's states at its end as record batches
    # (ChangelogBatches), and Faust flushes the producer before it commits the offsets of the events they came
    # from, so nothing is acknowledged before what it caused is in the broker.
    # (Faust's sensors do not see these sends: they are counted here, when the broker acknowledges them.)
    changelog_topic = deals.changelog_topic.get_topic_name()
    interruptions_topic = interruptions.get_topic_name()
    interruptions_acked = _acked_counter(interruptions_topic)

    changelog = ChangelogBatches(app, changelog_topic)

    async def send_interruption(key: bytes, value: bytes) -> Awaitable[Any]:
        """Hands the record to the producer's batch; the broker's acknowledgement is the awaitable returned."""
        sent = await app.producer.send(interruptions_topic, key, value, None, None, None)
        sent.add_done_callback(interruptions_acked)  # type: ignore[attr-defined]
        return sent

    async def send_dead_letter(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        await dead_letters.send(key=key, value=value, headers=headers)

    processor = DetectorProcessor(
        detector=build_detector(settings),
        store=deals.data,
        changelog=changelog.write,
        changelog_done=changelog.send,
        send_interruption=send_interruption,
        send_dead_letter=send_dead_letter,
        ticks_topic=topics.detector_ticks,
        commands_topic=topics.deal_commands,
        cache_size=settings.detector_state_cache,
    )
    app.dealwatch_processor = processor  # type: ignore[attr-defined]
    app.sensors.add(TopicTrafficSensor())  # records in, and Faust's own sends out, per topic

    @app.agent(source, name="detect_interruptions")
    async def detect_interruptions(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.detector_batch_size, within=0.02
        ):
            await processor.process(
                Incoming(e.message.topic, e.message.partition, e.message.key, e.message.value) for e in events
            )

    if settings.web_port is not None:

        @app.page("/deals/{deal_key}")  # type: ignore[untyped-decorator]
        class DealPage(faust.web.View):  # type: ignore[misc]
            """The deal's tracked state, asked by the API; routed to the worker that owns the deal."""

            @app.table_route(table=deals, match_info="deal_key")  # type: ignore[untyped-decorator,arg-type]
            async def get(self, request: faust.web.Request, deal_key: str) -> faust.web.Response:
                raw = deals.data.get(deal_key.encode())
                if raw is None:
                    return self.json({"error": "not_tracked"}, status=404)
                view = deal_view(DealState.decode(raw), processor.detector, deal_key, time.time())
                return self.json(view.model_dump(mode="json"))

    @app.task  # type: ignore[untyped-decorator]
    async def calm_collector() -> None:
        """Once the worker runs: what start-up built is never scanned again, and young collections come less
        often (every event allocates a decoded event, triggers, outcomes; a batch, its deal states)."""
        calm_garbage_collector()

    @app.timer(settings.quiet_scan_interval)  # type: ignore[untyped-decorator]
    async def expire_quiet_deals() -> None:
        """One tick per partition this worker owns; the agent checks that partition's due deadlines."""
        now = json.dumps({"t": time.time()}).encode()
        for tp in app.assignor.assigned_actives():
            if tp.topic == topics.deal_changes:
                await ticks.send(value=now, partition=tp.partition)

    @app.timer(0.25)  # type: ignore[untyped-decorator]
    async def keep_rebuilding() -> None:
        """While deadlines are being read back from the table (after an assignment), a tick now and then keeps
        that work going in slices between batches of events, even when no events come."""
        pending = processor.rebuilding
        if pending:
            await ticks.send(value=json.dumps({"t": time.time()}).encode(), partition=min(pending))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        keep_events_drained_while_held(app.consumer, set(source.topics))
        processor.forget(tp.partition for tp in revoked if tp.topic == topics.deal_changes)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def rebuild_assigned(sender: Any, assigned: set[TP], **_: Any) -> None:
        keep_events_drained_while_held(app.consumer, set(source.topics))
        processor.forget(tp.partition for tp in assigned if tp.topic == topics.deal_changes)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def hold_events_until_seeked(sender: Any, **_: Any) -> None:
        """Once the table is recovered, Faust (0.15.3, ``Recovery.on_recovery_completed``) resumes the event
        partitions before it seeks them back to their committed offsets, one by one, while the flow is open for
        the changelogs: events fetched during recovery reach the agent, and come again after the seek. Each is
        then processed and acked twice, and Faust's commit of the partition crawls (one offset per commit),
        so every later restart processes everything since again. Stopping the flow here closes that window;
        Faust opens it again once the seek is done. Meanwhile the changelog's last records, which recovery can
        leave out on the embedded broker, are applied (``services/detector/changelog.py``)."""
        app.consumer.stop_flow()
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topics.deal_changes}
        await read_changelog_to_end(bootstrap, changelog_topic, owned, deals.data)
        await rewind_uncommitted(app.consumer, set(source.topics))

    return app


def keep_events_drained_while_held(consumer: Any, topics: set[str]) -> None:
    """Make Faust put back the events it takes from the consumer while the flow is stopped, instead of losing them.

    Faust (0.15.3, ``Consumer.getmany``) drops the records a fetch returns when the flow was stopped meanwhile
    (by a rebalance, or by the hold above), and the consumer's position is already past them. It counts on
    its seek to the committed offsets to read them again, but aiokafka seeks only to a committed offset above 0:
    on a partition with no committed offset (a new group, or owners all stopped before their first commit) the
    events were gone until the next restart. Seen in the restart benchmark: the probe event at offset 0 was
    fetched again after the rewind below, dropped, and never processed.

    Wrapped here: when a fetch returns records of ``topics`` while the flow is stopped, each partition is sought
    back to its first returned offset, in the consumer's own thread, if its position is still where that fetch
    left it (if something sought it since, that seek stands). Installed once per consumer."""
    if getattr(consumer, "_dealwatch_keeps_drained", False):
        return
    original = consumer._wait_next_records

    async def wait_next_records(timeout: float) -> Any:
        records, active = await original(timeout)
        if records and not consumer.flow_active:
            drained = {
                tp: (got[0].offset, got[-1].offset + 1)
                for tp, got in records.items()
                if got and tp.topic in topics
            }
            if drained:
                await consumer._thread.call_thread(_seek_back, consumer._thread._ensure_consumer(), drained)
                log.info(
                    "detector: %d events fetched while the flow was held put back",
                    sum(len(records[tp]) for tp in drained),
                )
        return records, active

    consumer._wait_next_records = wait_next_records
    consumer._dealwatch_keeps_drained = True


async def _seek_back(aioconsumer: Any, drained: dict[TP, tuple[int, int]]) -> None:
    """In the consumer's thread: each partition back to ``first`` if nothing moved it since it reached ``after``."""
    assignment = (
        aioconsumer._subscription.subscription.assignment if aioconsumer._subscription.subscription else None
    )
    for tp, (first, after) in drained.items():
        state = assignment.state_value(tp) if assignment is not None else None
        if state is not None and state.has_valid_position and state.position == after:
            aioconsumer.seek(tp, first)


async def rewind_uncommitted(consumer: Any, topics: set[str]) -> list[TP]:
    """Seek the assigned partitions of ``topics`` that have no committed offset back to their beginning; the
    ones rewound.

    Faust's seek after recovery leaves such a partition where it is (aiokafka seeks only to a committed offset
    above 0), and the events fetched from it while the flow was open for the changelogs are dropped when the flow
    is held (above): the position stays past them and nothing reads them until a restart. A partition whose
    owners were all stopped before their first commit is in that state, and so is every partition of a new
    group with a backlog. Seen with two detectors taken down in turns: one partition's 1,242 events stayed
    unread for minutes while its worker idled at the end of it.

    The seek runs in the consumer's own thread (``seek_wait``, as Faust's recovery seeks the changelogs), not
    through ``Consumer.seek``, which calls aiokafka from this thread: a seek made there races the fetcher and the
    record drain in the consumer's thread, which can set the position back past the first event. Seen in the
    restart benchmark: a new group's probe event, at offset 0, was never processed after "Worker ready"."""
    if not consumer.assignment():
        return []
    committed = await consumer.seek_to_committed()
    rewound = [tp for tp, offset in committed.items() if tp.topic in topics and not offset]
    if rewound:
        await consumer.seek_wait(dict.fromkeys(rewound, 0))
        log.info("detector: %d partitions without a committed offset read from their beginning", len(rewound))
    return rewound


def _acked_counter(topic: str) -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback for a send's future that counts the record in ``dealwatch_events_out`` once acked."""
    child = EVENTS_OUT.labels(SERVICE, topic)

    def acked(sent: asyncio.Future[Any]) -> None:
        if not sent.cancelled() and sent.exception() is None:
            child.inc()

    return acked


class ChangelogBatches:
    """The deal states a batch writes, as one record batch per changelog partition, handed to the producer when
    the batch is done (``send``) instead of one ``send`` a record: aiokafka's per-record send (a future, a
    partition lookup, a batch lookup) cost about as much as encoding the state. A record batch that fills up
    (``producer_max_batch_size``) goes to the producer at once and a new one is started. Faust flushes the
    producer before it commits the events' offsets, so nothing is acknowledged before its state is in the broker."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self._app = app
        self._topic = topic
        self._open: dict[int, Any] = {}
        self._counted = EVENTS_OUT.labels(SERVICE, topic)

    async def write(self, partition: int, key: bytes, value: bytes) -> None:
        batch = self._open.get(partition)
        if batch is None:
            batch = self._open[partition] = self._producer().create_batch()
        if batch.append(key=key, value=value, timestamp=None) is not None:
            return
        if batch.record_count():  # full: send it, start another
            await self._send(partition, batch)
            batch = self._open[partition] = self._producer().create_batch()
            if batch.append(key=key, value=value, timestamp=None) is not None:
                return
        del self._open[partition]  # a record larger than a whole batch: alone, as the producer splits it
        sent = await self._app.producer.send(self._topic, key, value, partition, None, None)
        sent.add_done_callback(self._acked(1))  # type: ignore[attr-defined]

    async def send(self) -> None:
        batches, self._open = self._open, {}
        for partition, batch in batches.items():
            await self._send(partition, batch)

    async def _send(self, partition: int, batch: Any) -> None:
        batch.close()  # nothing else joins it
        sent = await self._producer().send_batch(batch, self._topic, partition=partition)
        sent.add_done_callback(self._acked(batch.record_count()))

    def _acked(self, records: int) -> Callable[[asyncio.Future[Any]], None]:
        counted = self._counted

        def acked(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is None:
                counted.inc(records)

        return acked

    def _producer(self) -> Any:
        """The aiokafka producer under Faust's (faust 0.15.3: ``Producer._ensure_producer``)."""
        return self._app.producer._ensure_producer()  # type: ignore[attr-defined]
