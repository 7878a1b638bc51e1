"""The webhook receiver: ``POST /webhooks/{generic,hubspot,pipedrive}``.

Per request: in-flight bound (429) → source configured (503) → content type (415) → header auth (401) →
body bounded while reading (413) and in time (408) → signature over the raw body (401) → one strict JSON parse
(400) → validation and normalization (422; 413 for too many events) → every event published to
``crm.deal-changes.v1`` and acknowledged (acks=all) → 202. Bodies refused with 400/422 are authentic, so they
go to the dead-letter topic with the reason; an unauthenticated body is never written anywhere. When the
broker does not acknowledge in ``broker_timeout_seconds``: 503 with Retry-After, never 202.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from schemas import Topics
from services.common.broker import dlq_headers, utc_now
from services.common.settings import Settings
from services.ingest import metrics
from services.ingest.domain.jsonbody import parse_json
from services.ingest.domain.outcome import Batch, InvalidEvent, MalformedBody, TooManyEvents
from services.ingest.domain.records import to_json
from services.ingest.domain.signatures import AuthFailure
from services.ingest.http import WebhookError, check_content, json_response, read_body
from services.ingest.openapi import operation
from services.ingest.publisher import BrokerUnavailable, KafkaEventPublisher, OutgoingRecord
from services.ingest.sources import WebhookSource, authenticate, build_sources

log = logging.getLogger(__name__)

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Malformed body (not UTF-8 JSON, duplicate keys, NaN, too deep, ...); dead-lettered"
    },
    401: {"description": "Missing or wrong signature or credentials, or a timestamp outside 5 minutes"},
    408: {
        "description": "The body did not arrive in full within http_body_timeout_seconds; nothing was written"
    },
    413: {"description": "Body over the size limit, or more events than the batch limit"},
    415: {"description": "Content type is not application/json (UTF-8, uncompressed)"},
    422: {
        "description": "Valid JSON that is not a valid event; the whole request is refused and dead-lettered"
    },
    429: {"description": "Too many requests in flight; retry after Retry-After seconds"},
    503: {"description": "The broker did not acknowledge in time, or the source is not configured"},
}


class IngestService:
    """The webhook side of dealwatch: ``router`` to mount, ``start``/``stop`` around serving, ``ready``."""

    def __init__(self, settings: Settings, topics: Topics | None = None) -> None:
        self.settings = settings
        self.topics = topics or Topics(prefix=settings.topic_prefix)
        self.publisher = KafkaEventPublisher(
            settings.kafka_bootstrap,
            idempotent=settings.idempotent_producer,
            timeout_seconds=settings.broker_timeout_seconds,
            topics=[self.topics.deal_changes, self.topics.dead_letters],
            partitions=settings.topic_partitions,
            replication=settings.topic_replication,
        )
        self.sources = build_sources(settings)
        self.retry_after = max(1, round(settings.broker_timeout_seconds))
        self._in_flight = 0
        # The labelled metrics of each (source, status) and topic, looked up once: ``labels`` takes a lock and
        # builds its key on every call. A few sources, statuses and topics: the caches stay small.
        self._answered = functools.cache(
            lambda name, status: metrics.WEBHOOK_RESPONSES.labels(name, str(status))
        )
        self._seconds = functools.cache(metrics.REQUEST_SECONDS.labels)
        self._published = functools.cache(metrics.EVENTS_PUBLISHED.labels)
        self.router = APIRouter(tags=["webhooks"])
        for source in self.sources.values():
            self.router.add_api_route(
                f"/webhooks/{source.name}",
                self._endpoint(source),
                methods=["POST"],
                status_code=202,
                summary=f"Receive {source.name} webhooks",
                openapi_extra=operation(source.name, settings.max_batch_events, ERRORS),
            )

    async def start(self) -> None:
        for source in self.sources.values():
            if source.problem:
                log.warning("webhooks from %s are refused: %s", source.name, source.problem)
        await self.publisher.start()
        metrics.BROKER_READY.set_function(lambda: float(self.publisher.ready()))
        metrics.IN_FLIGHT.set_function(lambda: float(self._in_flight))

    async def stop(self) -> None:
        await self.publisher.stop()

    def ready(self) -> bool:
        return self.publisher.ready()

    def _endpoint(self, source: WebhookSource) -> Callable[[Request], Awaitable[Response]]:
        async def receive(request: Request) -> Response:
            return await self.receive(source, request)

        receive.__name__ = f"receive_{source.name}_webhook"
        return receive

    async def receive(self, source: WebhookSource, request: Request) -> Response:
        started = time.perf_counter()
        if self._in_flight >= self.settings.ingest_max_in_flight:
            response = WebhookError(
                429, "overloaded", "too many webhook requests in flight", retry_after=1
            ).response()
        else:
            self._in_flight += 1  # the gauge reads it when scraped
            try:
                response = await self._handle(source, request)
            except WebhookError as exc:
                response = exc.response()
            except Exception:
                log.exception("webhook from %s failed", source.name)
                response = WebhookError(
                    500, "internal_error", "the webhook could not be processed"
                ).response()
            finally:
                self._in_flight -= 1
        self._answered(source.name, response.status_code).inc()
        self._seconds(source.name).observe(time.perf_counter() - started)
        return response

    async def _handle(self, source: WebhookSource, request: Request) -> Response:
        if source.problem:
            raise WebhookError(
                503, "source_not_configured", f"{source.name}: {source.problem}", retry_after=60
            )
        media = check_content(request.headers, allow_xml=source.accepts_xml)
        try:
            authenticate(source, request, None, utc_now())
            body = await read_body(
                request, self.settings.max_body_bytes, self.settings.http_body_timeout_seconds
            )
            received_at = utc_now()
            authenticate(source, request, body, received_at)
        except AuthFailure as exc:
            raise WebhookError(
                401,
                "unauthorized",
                exc.reason,
                headers={"WWW-Authenticate": 'Basic realm="dealwatch"'} if source.verify_headers else None,
            ) from None
        batch = await self._normalize(source, request, body, received_at, media)
        topic = self.topics.deal_changes
        records = [OutgoingRecord(topic, e.key.encode(), to_json(e)) for e in batch.events]
        await self._publish(topic, records)
        if batch.ignored:
            metrics.EVENTS_IGNORED.labels(source.name).inc(batch.ignored)
        if media == "xml" and source.xml_ack is not None:
            return Response(content=source.xml_ack, status_code=200, media_type="text/xml")
        return json_response(
            202,
            {
                "accepted": len(records),
                "ignored": batch.ignored,
                "event_ids": [e.event_id for e in batch.events],
            },
        )

    async def _normalize(
        self, source: WebhookSource, request: Request, body: bytes, received_at: datetime, media: str
    ) -> Batch:
        depth = self.settings.max_json_depth
        try:
            payload = (
                source.decode(body, media, depth) if source.decode else parse_json(body, max_depth=depth)
            )
        except MalformedBody as exc:
            await self._dead_letter(source, request, body, exc.reason, exc.detail, None, received_at)
            raise WebhookError(400, "malformed", exc.detail) from None
        try:
            return source.normalize(
                payload, received_at=received_at, max_events=self.settings.max_batch_events
            )
        except TooManyEvents as exc:
            raise WebhookError(413, "too_many_events", str(exc)) from None
        except InvalidEvent as exc:
            await self._dead_letter(source, request, body, exc.reason, exc.detail, exc.deal_key, received_at)
            raise WebhookError(422, "invalid_event", exc.detail) from None

    async def _dead_letter(
        self,
        source: WebhookSource,
        request: Request,
        body: bytes,
        reason: str,
        detail: str,
        deal_key: str | None,
        received_at: datetime,
    ) -> None:
        delivery = source.delivery_id(request, body)
        headers = dlq_headers(
            f"{reason}: {detail}", source.name, "ingest", received_at, extra={"dlq.delivery_id": delivery}
        )
        topic = self.topics.dead_letters
        await self._publish(
            topic, [OutgoingRecord(topic, (deal_key or delivery).encode(), body, tuple(headers))]
        )
        metrics.DEAD_LETTERS.labels(source.name, reason).inc()

    async def _publish(self, topic: str, records: list[OutgoingRecord]) -> None:
        """Publish ``records``, all of them to ``topic``; 503 unless the broker acknowledged every one."""
        try:
            await self.publisher.publish(records)
        except BrokerUnavailable as exc:
            raise WebhookError(503, "broker_unavailable", str(exc), retry_after=self.retry_after) from None
        self._published(topic).inc(len(records))
