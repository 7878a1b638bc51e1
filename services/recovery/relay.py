"""The outbox relay: publishes the task messages that were stored with their tasks, then marks them published.

At-least-once: a crash between the broker's acknowledgement and the mark publishes them again on restart;
every message carries the whole task with its ``version``, so subscribers can drop what they have seen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError

from services.common.broker import utc_now
from services.common.repositories import NewDelivery, OutboxMessage, SqlAlchemyStore
from services.recovery.domain.delivery import message_id
from services.recovery.metrics import OUTBOX_LAG, OUTBOX_PENDING, OUTBOX_PUBLISHED

log = logging.getLogger(__name__)


async def wait_any(*events: asyncio.Event, timeout: float) -> None:
    """Until one of ``events`` is set or ``timeout`` seconds pass."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class OutboxRelay:
    def __init__(
        self,
        store: SqlAlchemyStore,
        producer: AIOKafkaProducer,
        wake: asyncio.Event,
        *,
        idle_seconds: float = 0.5,
        batch_size: int = 500,
        keep_published: timedelta = timedelta(days=1),
        clock: Callable[[], datetime] = utc_now,
        tasks_topic: str | None = None,
        subscribers: Sequence[str] = (),
        delivered: asyncio.Event | None = None,
    ) -> None:
        """``subscribers`` (URLs) get every published message of ``tasks_topic`` through the delivery queue;
        ``delivered`` is set when deliveries were queued."""
        self.tasks_topic = tasks_topic
        self.subscribers = list(subscribers)
        self.delivered = delivered
        self.store = store
        self.producer = producer
        self.wake = wake
        self.idle_seconds = idle_seconds
        self.batch_size = batch_size
        self.keep_published = keep_published
        self.clock = clock
        self._pruned_at = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Publish whenever woken (right after the worker commits) and every ``idle_seconds`` besides, for the
        messages other processes (the API) write."""
        failures = 0
        while not stop.is_set():
            self.wake.clear()
            try:
                sent = await self.publish_pending()
                failures = 0
            except (KafkaError, DBAPIError, OSError) as exc:
                failures += 1
                log.warning("outbox relay: cannot publish yet (%s)", type(exc).__name__)
                await wait_any(stop, timeout=min(0.2 * 2**failures, 5.0))
                continue
            if sent < self.batch_size:
                await self.prune()
                await wait_any(self.wake, stop, timeout=self.idle_seconds)

    async def publish_pending(self) -> int:
        messages = await asyncio.to_thread(self.store.pending_outbox, self.batch_size)
        OUTBOX_PENDING.set(len(messages))
        if not messages:
            OUTBOX_LAG.set(0)
            return 0
        OUTBOX_LAG.set(max(0.0, (self.clock() - messages[0].created_at).total_seconds()))
        acks = [await self.producer.send(m.topic, m.value.encode(), key=m.key.encode()) for m in messages]
        await asyncio.gather(*acks)
        deliveries = self.deliveries(messages)
        await asyncio.to_thread(
            self.store.mark_published, [m.seq for m in messages], self.clock(), deliveries
        )
        if deliveries and self.delivered is not None:
            self.delivered.set()
        OUTBOX_PUBLISHED.inc(len(messages))
        return len(messages)

    def deliveries(self, messages: Sequence[OutboxMessage]) -> list[NewDelivery]:
        return [
            NewDelivery(url, message_id(m.value, f"msg_outbox_{m.seq}"), m.key, m.value)
            for m in messages
            if m.topic == self.tasks_topic
            for url in self.subscribers
        ]

    async def prune(self) -> None:
        """Now and then, forget messages published long ago."""
        if time.monotonic() - self._pruned_at < 600:
            return
        self._pruned_at = time.monotonic()
        await asyncio.to_thread(self.store.prune_outbox, self.clock() - self.keep_published)
