"""POST /webhooks/hubspot and /webhooks/pipedrive on the real broker, in process and through uvicorn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from schemas import DealChanged, Topics
from services.common.broker import free_port
from services.ingest.web import IngestService
from tests.conftest import eventually
from tests.helpers import compact, read_topic

from .conftest import (
    BASE_URL,
    generic_event,
    hubspot_headers,
    ingest_app,
    pipedrive_headers,
    post_generic,
    topic_values,
)

pytestmark = pytest.mark.integration
HUBSPOT_URI = BASE_URL + "/webhooks/hubspot"


def hubspot_batch(deal: int = 16277004512, attempt: int = 0) -> list[dict[str, Any]]:
    common = {
        "subscriptionId": 1804420,
        "portalId": 4417702,
        "occurredAt": int(time.time() * 1000),
        "attemptNumber": attempt,
        "objectId": deal,
    }
    return [
        {
            **common,
            "eventId": 101,
            "subscriptionType": "deal.propertyChange",
            "propertyName": "dealstage",
            "propertyValue": "closedlost",
        },
        {
            **common,
            "eventId": 102,
            "subscriptionType": "deal.propertyChange",
            "propertyName": "closed_lost_reason",
            "propertyValue": "競合に決定。提案内容より価格重視とのこと",
        },
        {
            **common,
            "eventId": 103,
            "subscriptionType": "contact.propertyChange",
            "propertyName": "jobtitle",
            "propertyValue": "CEO",
        },
    ]


def pipedrive_deal_change(attempt: int = 1) -> dict[str, Any]:
    return {
        "meta": {
            "action": "change",
            "entity": "deal",
            "entity_id": "3225",
            "id": "0e6f4c1c-5c1e-4d4e-9a63-1",
            "timestamp": "2026-11-20T06:26:14Z",
            "attempt": attempt,
            "version": "2.0",
        },
        "data": {
            "id": 3225,
            "title": "東和テキスタイル 生産計画",
            "status": "open",
            "stage_id": 3,
            "owner_id": 2290471,
            "person_id": 690,
            "value": 6900000,
            "currency": "JPY",
        },
        "previous": {"person_id": 684},
    }


async def changes_on(bootstrap: str, topics: Topics) -> list[DealChanged]:
    return [DealChanged.model_validate_json(v) for v in await topic_values(bootstrap, topics.deal_changes)]


async def test_a_signed_hubspot_batch_publishes_its_deal_events_and_ignores_the_rest(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics
) -> None:
    body = compact(hubspot_batch())
    response = await client.post(
        "/webhooks/hubspot", content=body, headers=hubspot_headers(body, HUBSPOT_URI)
    )
    assert response.status_code == 202
    assert (response.json()["accepted"], response.json()["ignored"]) == (2, 1)
    changes = await changes_on(broker_bootstrap, topics)
    assert [(c.key, c.deal.status, c.deal.lost_reason) for c in changes] == [
        ("hubspot:16277004512", "lost", None),
        ("hubspot:16277004512", None, "競合に決定。提案内容より価格重視とのこと"),
    ]


async def test_a_hubspot_retry_carries_the_same_event_ids(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics
) -> None:
    batch = hubspot_batch()
    for attempt in (0, 1):
        body = compact([{**e, "attemptNumber": attempt} for e in batch])
        response = await client.post(
            "/webhooks/hubspot", content=body, headers=hubspot_headers(body, HUBSPOT_URI)
        )
        assert response.status_code == 202
    ids = [c.event_id for c in await changes_on(broker_bootstrap, topics)]
    assert len(ids) == 4 and len(set(ids)) == 2


@pytest.mark.parametrize(
    "headers",
    [
        lambda body: hubspot_headers(body, HUBSPOT_URI, secret="another-secret"),
        lambda body: hubspot_headers(body, BASE_URL + "/webhooks/other"),
        lambda body: hubspot_headers(body, HUBSPOT_URI, ts_ms=int(time.time() * 1000) - 301_000),
        lambda body: {"content-type": "application/json"},
    ],
    ids=["other-secret", "other-uri", "expired", "unsigned"],
)
async def test_an_unauthentic_hubspot_request_gets_401_and_writes_nothing(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics, headers: Any
) -> None:
    body = compact(hubspot_batch())
    response = await client.post("/webhooks/hubspot", content=body, headers=headers(body))
    assert response.status_code == 401
    assert await topic_values(broker_bootstrap, topics.deal_changes) == []
    assert await topic_values(broker_bootstrap, topics.dead_letters) == []


async def test_an_invalid_hubspot_event_gets_422_and_is_dead_lettered_under_its_deal(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics
) -> None:
    batch = hubspot_batch(deal=42)
    batch[1]["propertyName"], batch[1]["propertyValue"] = "amount", "a lot"
    body = compact(batch)
    response = await client.post(
        "/webhooks/hubspot", content=body, headers=hubspot_headers(body, HUBSPOT_URI)
    )
    assert response.status_code == 422
    [record] = await read_topic(broker_bootstrap, topics.dead_letters)
    assert (record.key, record.value, dict(record.headers)["dlq.source"]) == (b"hubspot:42", body, b"hubspot")
    assert await topic_values(broker_bootstrap, topics.deal_changes) == []


async def test_a_pipedrive_person_change_publishes_the_update_and_the_contact_changes(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics
) -> None:
    response = await client.post(
        "/webhooks/pipedrive", content=compact(pipedrive_deal_change()), headers=pipedrive_headers()
    )
    assert response.status_code == 202
    changes = await changes_on(broker_bootstrap, topics)
    assert [(c.type, c.contact.change if c.contact else None) for c in changes] == [
        ("deal.updated", None),
        ("contact.changed", "removed"),
        ("contact.changed", "added"),
    ]
    assert {c.key for c in changes} == {"pipedrive:3225"}


async def test_a_pipedrive_retry_with_a_higher_attempt_carries_the_same_event_ids(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics
) -> None:
    for attempt in (1, 2):
        response = await client.post(
            "/webhooks/pipedrive",
            content=compact(pipedrive_deal_change(attempt)),
            headers=pipedrive_headers(),
        )
        assert response.status_code == 202
    ids = [c.event_id for c in await changes_on(broker_bootstrap, topics)]
    assert len(ids) == 6 and len(set(ids)) == 3


@pytest.mark.parametrize(
    "headers",
    [
        pipedrive_headers(password="wrong"),
        pipedrive_headers(user="wrong"),
        {"content-type": "application/json"},
    ],
)
async def test_wrong_pipedrive_credentials_get_401_with_a_basic_challenge_and_write_nothing(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics, headers: dict[str, str]
) -> None:
    response = await client.post(
        "/webhooks/pipedrive", content=compact(pipedrive_deal_change()), headers=headers
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert await topic_values(broker_bootstrap, topics.deal_changes) == []
    assert await topic_values(broker_bootstrap, topics.dead_letters) == []


@asynccontextmanager
async def served(service: IngestService) -> AsyncIterator[str]:
    """The app on a real uvicorn server on a free loopback port, in this event loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(ingest_app(service), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(
            lambda: asyncio.sleep(0, result=server.started or task.done()), what="uvicorn started"
        )
        assert not task.done(), "uvicorn stopped at once"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_webhooks_of_every_source_are_accepted_through_a_real_http_server(
    make_service: Any, broker_bootstrap: str, topics: Topics
) -> None:
    async with served(make_service()) as url, httpx.AsyncClient(base_url=url) as http:
        generic = await post_generic(http, generic_event("evt-http", "D-http"))
        body = compact(hubspot_batch(deal=777))
        hubspot = await http.post(
            "/webhooks/hubspot", content=body, headers=hubspot_headers(body, url + "/webhooks/hubspot")
        )
        pipedrive = await http.post(
            "/webhooks/pipedrive", content=compact(pipedrive_deal_change()), headers=pipedrive_headers()
        )
        too_big = await http.post(
            "/webhooks/generic", content=b"x" * 2_000_000, headers={"content-type": "application/json"}
        )
    assert [r.status_code for r in (generic, hubspot, pipedrive, too_big)] == [202, 202, 202, 413]
    keys = {c.key for c in await changes_on(broker_bootstrap, topics)}
    assert keys == {"generic:D-http", "hubspot:777", "pipedrive:3225"}
