"""Signed outgoing webhooks to the configured subscribers, from a delivery queue kept in the database.

The relay queues a delivery per subscriber and task message in the transaction that marks the message
published; this loop posts them (Standard Webhooks: ``webhook-id``, ``webhook-timestamp``,
``webhook-signature``), retries with exponential backoff, and after the subscriber's last attempt keeps the
delivery as a dead-letter record in the database and writes the message to the dead-letter topic
(``dlq.stage=subscriber``). Nothing here blocks the relay or the consumer, and a restart loses nothing: the
queue is a table. Each try first claims its delivery, so workers running side by side post it once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError

from services.common.broker import dlq_headers, utc_now
from services.common.repositories import PendingDelivery, SqlAlchemyStore
from services.common.settings import Settings, Subscriber
from services.recovery.domain.delivery import headers, next_attempt_at
from services.recovery.metrics import WEBHOOK_DELIVERIES
from services.recovery.relay import wait_any

log = logging.getLogger(__name__)
LEASE_TIMEOUTS = 3
"""A try holds its delivery for this many request timeouts; a worker that dies mid-try frees it then."""


class Deliverer:
    def __init__(
        self,
        store: SqlAlchemyStore,
        producer: AIOKafkaProducer,
        settings: Settings,
        dead_letter_topic: str,
        *,
        batch_size: int = 100,
        idle_seconds: float = 1.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.producer = producer
        self.subscribers = {s.url: s for s in settings.subscribers}
        self.base = settings.subscriber_retry_base_seconds
        self.cap = settings.subscriber_retry_max_seconds
        self.timeout = settings.subscriber_timeout_seconds
        self.dead_letter_topic = dead_letter_topic
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.clock = clock

    async def run(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        """Deliver what is due; then wait for the relay's wake, the next retry time, or ``idle_seconds``."""
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            while not stop.is_set():
                wake.clear()
                try:
                    due = await asyncio.to_thread(self.store.due_deliveries, self.clock(), self.batch_size)
                    await asyncio.gather(*(self.deliver(client, d) for d in due))
                    if len(due) == self.batch_size:
                        continue
                    upcoming = await asyncio.to_thread(self.store.next_delivery_at)
                except (DBAPIError, KafkaError, OSError) as exc:
                    log.warning("webhooks: cannot deliver yet (%s)", type(exc).__name__)
                    upcoming = None
                wait = self.idle_seconds
                if upcoming is not None:
                    wait = min(wait, max((upcoming - self.clock()).total_seconds(), 0.0))
                await wait_any(wake, stop, timeout=wait)

    async def deliver(self, client: httpx.AsyncClient, delivery: PendingDelivery) -> None:
        subscriber = self.subscribers.get(delivery.subscriber)
        if subscriber is None:
            log.warning("webhooks: dropping a delivery to a subscriber no longer configured")
            await _to_the_end(self.store.finish_delivery, delivery.id)
            return
        now = self.clock()
        lease = timedelta(seconds=self.timeout * LEASE_TIMEOUTS)
        claim = asyncio.ensure_future(
            asyncio.to_thread(self.store.claim_delivery, delivery, now, now + lease)
        )
        try:
            claimed = await asyncio.shield(claim)
        except asyncio.CancelledError:
            # Stopped while the claim ran in its thread: if it went through, give the delivery back at once.
            if await claim:
                await _to_the_end(self.store.release_delivery, delivery, self.clock())
            raise
        if not claimed:
            return  # another worker took it
        try:
            error = await self._post(client, subscriber, delivery)
        except asyncio.CancelledError:
            # Stopping mid-try: the delivery is due again at once (for the next start), not when the lease ends.
            await _to_the_end(self.store.release_delivery, delivery, self.clock())
            raise
        if error is None:
            WEBHOOK_DELIVERIES.labels(outcome="delivered").inc()
            await _to_the_end(self.store.finish_delivery, delivery.id)
            return
        attempts = delivery.attempts + 1
        if attempts >= subscriber.max_attempts:
            await _to_the_end(self.store.bury_delivery, delivery.id, attempts, error, self.clock())
            WEBHOOK_DELIVERIES.labels(outcome="dead_lettered").inc()
            await self._dead_letter(delivery, attempts, error)
            return
        WEBHOOK_DELIVERIES.labels(outcome="retried").inc()
        when = next_attempt_at(attempts, self.clock(), self.base, self.cap)
        await _to_the_end(self.store.retry_delivery, delivery.id, attempts, when, error)

    async def _post(
        self, client: httpx.AsyncClient, subscriber: Subscriber, delivery: PendingDelivery
    ) -> str | None:
        """None when the subscriber took it (2xx), else why not."""
        body = delivery.body.encode()
        signed = headers(subscriber.secret.get_secret_value(), delivery.message_id, self.clock(), body)
        try:
            response = await client.post(subscriber.url, content=body, headers=signed)
        except httpx.HTTPError as exc:
            return f"request failed: {type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def _dead_letter(self, delivery: PendingDelivery, attempts: int, error: str) -> None:
        """Also on the dead-letter topic (``dlq.stage=subscriber``), for whoever watches it."""
        extra = {
            "dlq.subscriber": delivery.subscriber,
            "dlq.message_id": delivery.message_id,
            "dlq.attempts": str(attempts),
        }
        record_headers = dlq_headers(
            f"subscriber gave up after {attempts} attempts: {error}",
            source="recovery",
            stage="subscriber",
            extra=extra,
        )
        try:
            await self.producer.send_and_wait(
                self.dead_letter_topic,
                delivery.body.encode(),
                key=delivery.key.encode(),
                headers=record_headers,
            )
        except KafkaError as exc:  # the database keeps the dead-letter record regardless
            log.warning("webhooks: dead letter not published to the topic (%s)", type(exc).__name__)


async def _to_the_end(write: Callable[..., object], *args: object) -> None:
    """Run a store write in its thread and see it finish even when the worker is stopping.

    A plain ``to_thread`` cancelled before its thread starts never runs at all: the outcome of a try (or the
    release of its claim) would be lost, and the delivery would stay claimed until its lease ends.
    """
    write_done = asyncio.ensure_future(asyncio.to_thread(write, *args))
    try:
        await asyncio.shield(write_done)
    except asyncio.CancelledError:
        await write_done
        raise


def subscriber_urls(subscribers: Sequence[Subscriber]) -> list[str]:
    return [s.url for s in subscribers]
