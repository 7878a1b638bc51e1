"""The ingest service on the real broker: an app around its router, clients that sign like the CRMs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from schemas import Topics
from services.common.settings import Settings
from services.ingest.web import IngestService
from tests.helpers import TEST_GENERIC_SECRET, compact, read_topic, standard_webhooks_headers

HUBSPOT_SECRET = "hubspot-client-secret-for-tests"
PIPEDRIVE_USER, PIPEDRIVE_PASSWORD = "dealwatch-hook", "pipedrive-password-for-tests"
BASE_URL = "http://ingest.test"


def ingest_settings(bootstrap: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "generic_secret": TEST_GENERIC_SECRET,
        "hubspot_client_secret": HUBSPOT_SECRET,
        "pipedrive_user": PIPEDRIVE_USER,
        "pipedrive_password": PIPEDRIVE_PASSWORD,
        "broker_timeout_seconds": 5.0,
        "topic_partitions": 3,
    }
    values.update(overrides)
    return Settings(**values)


def ingest_app(service: IngestService) -> FastAPI:
    """The smallest app that serves the router, starting and stopping the service with it."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.stop()

    app = FastAPI(lifespan=lifespan)
    app.include_router(service.router)
    return app


@asynccontextmanager
async def running(service: IngestService, base_url: str = BASE_URL) -> AsyncIterator[httpx.AsyncClient]:
    """The service started, and a client that talks to it in process."""
    await service.start()
    try:
        transport = httpx.ASGITransport(app=ingest_app(service))
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
    finally:
        await service.stop()


def hubspot_headers(
    body: bytes, uri: str, secret: str = HUBSPOT_SECRET, ts_ms: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time() * 1000) if ts_ms is None else ts_ms)
    mac = hmac.new(secret.encode(), b"POST" + uri.encode() + body + ts.encode(), hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "X-HubSpot-Request-Timestamp": ts,
        "X-HubSpot-Signature-v3": base64.b64encode(mac).decode(),
    }


def pipedrive_headers(user: str = PIPEDRIVE_USER, password: str = PIPEDRIVE_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"content-type": "application/json", "authorization": f"Basic {token}"}


def generic_event(event_id: str = "evt-1", deal_id: str = "D-1001", **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": event_id,
        "occurred_at": "2026-11-02T09:15:00+09:00",
        "type": "deal.updated",
        "deal": {"id": deal_id, "stage": "proposal", "status": "open", "owner_id": "u-7"},
        "activity": {"kind": "note", "direction": "internal", "text": "先方、競合A社の値引き提案を検討中"},
    }
    event.update(changes)
    return event


async def post_generic(client: httpx.AsyncClient, payload: Any, **sign: Any) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else compact(payload)
    return await client.post(
        "/webhooks/generic",
        content=body,
        headers=standard_webhooks_headers(TEST_GENERIC_SECRET, body, **sign),
    )


async def topic_values(bootstrap: str, topic: str) -> list[bytes]:
    return [r.value for r in await read_topic(bootstrap, topic) if r.value is not None]


@pytest.fixture
def make_service(broker_bootstrap: str, topics: Topics) -> Callable[..., IngestService]:
    def make(**overrides: Any) -> IngestService:
        return IngestService(ingest_settings(broker_bootstrap, **overrides), topics)

    return make


@pytest.fixture
async def client(make_service: Callable[..., IngestService]) -> AsyncIterator[httpx.AsyncClient]:
    async with running(make_service()) as c:
        yield c
