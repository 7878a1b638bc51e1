"""Publishing to Kafka for the webhooks: every record of a request acknowledged (acks=all) within a deadline,
or ``BrokerUnavailable``. The producer connects in the background and keeps probing the broker, so the service
starts while the broker is down, reports itself not ready, and recovers by itself when the broker returns."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.common.broker import MeasuredProducer, ensure_topics, key_partition, make_producer

log = logging.getLogger(__name__)


class OutgoingRecord(NamedTuple):
    """One record to publish (a tuple: made for every event of every webhook, at half a frozen dataclass's cost)."""

    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class BrokerUnavailable(Exception):
    """The broker did not acknowledge in time, or the producer is not connected."""


class KafkaEventPublisher:
    def __init__(
        self,
        bootstrap: str | None,
        *,
        idempotent: bool,
        timeout_seconds: float,
        topics: Sequence[str],
        partitions: int,
        replication: int,
        client_id: str = "dealwatch-ingest",
        probe_interval: float = 1.0,
    ) -> None:
        self._bootstrap = bootstrap
        self._idempotent = idempotent
        self._timeout = timeout_seconds
        self._topics = list(topics)
        self._partitions = partitions
        self._replication = replication
        self._client_id = client_id
        self._probe_interval = probe_interval
        self._producer: AIOKafkaProducer | None = None
        self._topics_ready = False
        self._healthy = False
        self._last_ack = 0.0
        self._task: asyncio.Task[None] | None = None
        self._batches = RecordBatches(self._current_producer)

    def ready(self) -> bool:
        return self._producer is not None and self._healthy

    async def start(self) -> None:
        """Try to connect once (bounded by the timeout), then keep connecting and probing in background."""
        if self._bootstrap is None:
            raise ValueError("no Kafka bootstrap servers configured (DEALWATCH_KAFKA_BOOTSTRAP)")
        try:
            await asyncio.wait_for(self._connect_once(), timeout=self._timeout * 2)
        except (TimeoutError, KafkaError, OSError) as exc:
            log.warning(
                "the broker is not reachable yet (%s); connecting in the background", type(exc).__name__
            )
        self._task = asyncio.create_task(self._keep_connected(), name="ingest-broker-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        producer, self._producer = self._producer, None
        self._healthy = False
        self._batches.close(BrokerUnavailable("the publisher stopped"))
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=self._timeout)

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        """Send all records at once; wait until each one is acknowledged, or raise ``BrokerUnavailable``."""
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("not connected to the broker")
        if not records:
            return
        waits: list[asyncio.Future[None]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        try:
            partitions: dict[str, Sequence[int]] = {}
            for r in records:
                among = partitions.get(r.topic)
                if among is None:
                    among = partitions[r.topic] = await _partitions(producer, r.topic, deadline)
                # aiokafka's C record builder takes headers as a list only
                headers = list(r.headers) if r.headers else []
                done = self._batches.add(r.topic, key_partition(r.key, among), r.key, r.value, headers)
                if done not in waits:  # a request's records share a few batches: wait on each once
                    waits.append(done)
            await _all_done(waits, deadline)
        except (TimeoutError, KafkaError) as exc:
            self._healthy = False
            raise BrokerUnavailable(
                f"no acknowledgement from the broker in time ({type(exc).__name__})"
            ) from None
        failed = next((f.exception() for f in waits if f.exception() is not None), None)
        if failed is not None:
            self._healthy = False
            raise BrokerUnavailable(f"the broker refused the records ({type(failed).__name__})")
        self._healthy = True
        self._last_ack = time.monotonic()

    def _current_producer(self) -> AIOKafkaProducer | None:
        return self._producer

    async def _connect_once(self) -> None:
        assert self._bootstrap is not None
        if not self._topics_ready:
            await ensure_topics(
                self._bootstrap,
                self._topics,
                partitions=self._partitions,
                replication=self._replication,
                timeout=self._timeout,
            )
            self._topics_ready = True
        producer = make_producer(
            self._bootstrap,
            idempotent=self._idempotent,
            client_id=self._client_id,
            request_timeout_ms=max(1000, int(self._timeout * 1000)),
        )
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer
        self._healthy = True

    async def _keep_connected(self) -> None:
        backoff = self._probe_interval
        while True:
            try:
                if self._producer is None:
                    await asyncio.wait_for(self._connect_once(), timeout=self._timeout * 2)
                    log.info("ingest connected to the broker at %s", self._bootstrap)
                    backoff = self._probe_interval
                elif time.monotonic() - self._last_ack > self._probe_interval or not self._healthy:
                    await self._probe(self._producer)
            except (TimeoutError, KafkaError, OSError) as exc:
                log.warning("the broker is not reachable yet: %s", type(exc).__name__)
                backoff = min(backoff * 2, 10.0)
            await asyncio.sleep(backoff if self._producer is None else self._probe_interval)

    async def _probe(self, producer: AIOKafkaProducer) -> None:
        was = self._healthy
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout=self._timeout)
            self._healthy = True
        except (TimeoutError, KafkaError, OSError):
            self._healthy = False
        if was != self._healthy:
            log.warning("the broker is %s", "reachable again" if self._healthy else "not reachable")


class _Batch:
    """Records of one partition on their way as one record batch, and the future their senders wait for."""

    __slots__ = ("alone", "builder", "done", "records")

    def __init__(self, builder: Any, done: asyncio.Future[None]) -> None:
        self.builder = builder
        self.done = done
        self.records = 0
        self.alone: tuple[bytes, bytes, list[Any]] | None = None
        """A record larger than a whole batch, which the producer sends by itself."""


class RecordBatches:
    """The records of concurrent requests gathered into one record batch per partition, with one future a batch.

    aiokafka's per-record ``send`` (a partition lookup, a batch lookup, a future and its callbacks for each
    record) cost the webhook about as much as validating its events. Here a record is appended to its partition's
    open batch; one sending task a partition hands the batches to the producer in order (``send_batch``) and
    keeps one of them unacknowledged at a time, so that the records that arrive while a batch is on its way
    travel together in the next, as the producer's own batching would have them. A batch that fills up
    (``max_batch_size``) is closed and the next one opened; a record larger than a whole batch goes alone.
    """

    def __init__(self, producer: Callable[[], AIOKafkaProducer | None]) -> None:
        self._producer = producer
        self._queued: dict[tuple[str, int], deque[_Batch]] = {}
        self._senders: dict[tuple[str, int], asyncio.Task[None]] = {}

    def add(
        self, topic: str, partition: int, key: bytes, value: bytes, headers: list[Any]
    ) -> asyncio.Future[None]:
        """Queue one record; the future is done when its batch is acknowledged (or failed)."""
        tp = (topic, partition)
        queue = self._queued.get(tp)
        if queue is None:
            queue = self._queued[tp] = deque()
        batch = queue[-1] if queue else None
        if (
            batch is None
            or batch.alone is not None
            or batch.builder.append(timestamp=None, key=key, value=value, headers=headers) is None
        ):
            batch = self._open(queue)
            if batch.builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                batch.alone = (key, value, headers)
        batch.records += 1
        if tp not in self._senders:
            self._senders[tp] = asyncio.create_task(self._send(tp, queue), name=f"ingest-send-{partition}")
        return batch.done

    def close(self, reason: Exception) -> None:
        """Fail what has not been acknowledged (the publisher stops)."""
        for task in self._senders.values():
            task.cancel()
        self._senders.clear()
        for queue in self._queued.values():
            while queue:
                _settle(queue.popleft().done, reason)

    def _open(self, queue: deque[_Batch]) -> _Batch:
        producer = self._producer()
        if producer is None:
            raise BrokerUnavailable("not connected to the broker")
        batch = _Batch(producer.create_batch(), asyncio.get_running_loop().create_future())
        queue.append(batch)
        return batch

    async def _send(self, tp: tuple[str, int], queue: deque[_Batch]) -> None:
        topic, partition = tp
        sent: list[tuple[_Batch, asyncio.Future[Any], AIOKafkaProducer]] = []
        try:
            while queue:
                # What is queued now goes in this round (full batches and the open one, closed); what arrives
                # while the round is on its way waits for the next, which starts once this one is answered.
                sent = []
                for _ in range(len(queue)):
                    batch = queue.popleft()
                    try:
                        sent.append((batch, await self._hand_over(batch, topic, partition), self._producer()))
                    except Exception as exc:  # every failure reaches the requests waiting for the batch
                        _settle(batch.done, exc)
                for batch, future, producer in sent:
                    if not future.done():
                        await asyncio.wait((future,))
                    failed = (
                        BrokerUnavailable("the send was cancelled")
                        if future.cancelled()
                        else future.exception()
                    )
                    _settle(batch.done, failed)
                    if failed is None and isinstance(producer, MeasuredProducer):
                        producer.count_acknowledged(topic, batch.records)
                sent = []
        finally:
            for batch, future, _ in sent:  # cancelled (the publisher stops) while a round was on its way
                _settle(batch.done, BrokerUnavailable("the publisher stopped"))
                future.add_done_callback(_retrieve)
            if self._senders.get(tp) is asyncio.current_task():
                del self._senders[tp]

    async def _hand_over(self, batch: _Batch, topic: str, partition: int) -> asyncio.Future[Any]:
        producer = self._producer()
        if producer is None:
            raise BrokerUnavailable("not connected to the broker")
        if batch.alone is not None:
            key, value, headers = batch.alone
            sent: asyncio.Future[Any] = await producer.send(
                topic, value, key=key, partition=partition, headers=headers or None
            )
            return sent
        batch.builder.close()  # nothing joins it any more
        handed: asyncio.Future[Any] = await producer.send_batch(batch.builder, topic, partition=partition)
        return handed


async def _partitions(producer: AIOKafkaProducer, topic: str, deadline: float) -> list[int]:
    """The topic's partitions, sorted: from the metadata the producer holds, else fetched by the deadline."""
    known = producer.client.cluster.partitions_for_topic(topic)
    if known is None:
        async with asyncio.timeout_at(deadline):
            known = await producer.partitions_for(topic)
    return sorted(known)


async def _all_done(futures: list[asyncio.Future[None]], deadline: float) -> None:
    """Wait until every future is done, or raise ``TimeoutError`` at ``deadline`` (loop time), through a waiter of
    our own: a batch's future is shared by the requests whose records it carries, so a request that gives up at
    its deadline must not cancel it (``asyncio.wait`` would not either, at twice the cost). One timer handle, not
    ``asyncio.timeout``'s context, which costs a request about as much as the rest of its wait."""
    left = sum(1 for f in futures if not f.done())
    if not left:
        return
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def one_done(_: asyncio.Future[None]) -> None:
        nonlocal left
        left -= 1
        if not left and not waiter.done():
            waiter.set_result(None)

    def too_late() -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError())

    for future in futures:
        if not future.done():
            future.add_done_callback(one_done)
    timer = loop.call_at(deadline, too_late)
    try:
        await waiter
    except BaseException:  # too late, or the request is cancelled: the batches go on without it
        for future in futures:
            future.remove_done_callback(one_done)
        raise
    finally:
        timer.cancel()


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a late result as seen, so that a send nobody waits for any more logs nothing when it fails."""
    if not future.cancelled():
        future.exception()


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)
        done.exception()  # seen: nobody may be waiting any more
