"""Publishing to Kafka for the webhooks: every record of a request acknowledged (acks=all) within a deadline,
or ``BrokerUnavailable``. The producer connects in the background and keeps probing the broker, so the service
starts while the broker is down, reports itself not ready, and recovers by itself when the broker returns."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.common.broker import ensure_topics, make_producer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingRecord:
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
        futures: list[asyncio.Future[object]] = []
        try:
            async with asyncio.timeout(self._timeout):
                for r in records:
                    # aiokafka's C record builder takes headers as a list only
                    headers = list(r.headers) if r.headers else None
                    futures.append(await producer.send(r.topic, r.value, key=r.key, headers=headers))
                # The records of a request mostly travel in the same produce request: once the first one is
                # acknowledged the rest usually are too, and a finished one needs no wait (``asyncio.wait`` over
                # all of them would add and remove a callback on each). ``wait``, unlike ``await``, never
                # cancels a record's future when the deadline passes.
                for future in futures:
                    if not future.done():
                        await asyncio.wait((future,))
        except (TimeoutError, KafkaError) as exc:
            self._healthy = False
            for future in futures:
                future.add_done_callback(_retrieve)
            raise BrokerUnavailable(
                f"no acknowledgement from the broker in time ({type(exc).__name__})"
            ) from None
        failed = next((f.exception() for f in futures if f.exception() is not None), None)
        if failed is not None:
            self._healthy = False
            raise BrokerUnavailable(f"the broker refused the records ({type(failed).__name__})")
        self._healthy = True
        self._last_ack = time.monotonic()

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


def _retrieve(future: asyncio.Future[object]) -> None:
    """Mark a late result as seen, so that a send we stopped waiting for logs nothing when it fails."""
    if not future.cancelled():
        future.exception()
