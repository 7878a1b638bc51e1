"""Broker outages, overload, hostile bodies and metrics: 503/429 with Retry-After, never a 2xx for what was
not kept, never a 5xx for bad input, and recovery without a restart."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest

from schemas import DealChanged, Topics
from services.common.broker import EmbeddedBroker
from services.ingest.web import IngestService
from tests.conftest import eventually
from tests.helpers import TEST_GENERIC_SECRET, compact, standard_webhooks_headers

from .conftest import PIPEDRIVE_PASSWORD, generic_event, ingest_settings, post_generic, running, topic_values

pytestmark = pytest.mark.integration


async def readiness(service: IngestService, wanted: bool) -> bool:
    return service.ready() is wanted


async def event_ids(bootstrap: str, topics: Topics) -> list[str]:
    return [
        DealChanged.model_validate_json(v).event_id
        for v in await topic_values(bootstrap, topics.deal_changes)
    ]


async def test_a_frozen_broker_gets_503_with_retry_after_and_the_producer_recovers_after_the_thaw(
    own_broker: EmbeddedBroker, topics: Topics
) -> None:
    service = IngestService(ingest_settings(own_broker.bootstrap, broker_timeout_seconds=2.0), topics)
    async with running(service) as client:
        await eventually(lambda: readiness(service, True), what="ready on a live broker")
        assert (await post_generic(client, generic_event("before"))).status_code == 202
        own_broker.freeze()
        try:
            during = [await post_generic(client, generic_event(f"during-{i}")) for i in range(2)]
            await eventually(lambda: readiness(service, False), what="not ready while the broker is frozen")
        finally:
            own_broker.thaw()
        assert [r.status_code for r in during] == [503, 503]
        assert all(int(r.headers["retry-after"]) >= 1 for r in during)
        assert during[0].json()["error"] == "broker_unavailable"
        await eventually(lambda: readiness(service, True), what="ready again after the thaw")
        assert (await post_generic(client, generic_event("after"))).status_code == 202
    ids = await event_ids(own_broker.bootstrap, topics)
    assert {"before", "after"} <= set(ids)


async def test_the_service_starts_while_the_broker_is_down_and_connects_when_it_returns(
    own_broker: EmbeddedBroker, topics: Topics
) -> None:
    own_broker.freeze()
    service = IngestService(ingest_settings(own_broker.bootstrap, broker_timeout_seconds=1.0), topics)
    try:
        async with running(service) as client:
            assert not service.ready()
            refused = await post_generic(client, generic_event("too-early"))
            own_broker.thaw()
            await eventually(lambda: readiness(service, True), what="connected once the broker is back")
            accepted = await post_generic(client, generic_event("in-time"))
    finally:
        own_broker.thaw()
    assert (refused.status_code, "retry-after" in refused.headers) == (503, True)
    assert accepted.status_code == 202
    assert await event_ids(own_broker.bootstrap, topics) == ["in-time"]


async def test_requests_over_the_in_flight_bound_get_429_with_retry_after(
    broker_bootstrap: str, topics: Topics
) -> None:
    service = IngestService(ingest_settings(broker_bootstrap, ingest_max_in_flight=1), topics)
    body = compact(generic_event("slow"))
    gate = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield body[:10]
        await gate.wait()
        yield body[10:]

    async def one_in_flight() -> bool:
        return REGISTRY.get_sample_value("dealwatch_webhook_requests_in_flight") == 1

    async with running(service) as client:
        headers = standard_webhooks_headers(TEST_GENERIC_SECRET, body)
        slow = asyncio.create_task(client.post("/webhooks/generic", content=slow_body(), headers=headers))
        await eventually(one_in_flight, what="the slow request in flight")
        refused = await post_generic(client, generic_event("refused"))
        gate.set()
        accepted = await slow
    assert (refused.status_code, refused.headers["retry-after"]) == (429, "1")
    assert refused.json()["error"] == "overloaded"
    assert accepted.status_code == 202
    assert await event_ids(broker_bootstrap, topics) == ["slow"]


def mutations(seed: int, count: int) -> list[bytes]:
    """A valid event cut, flipped, spliced and wrapped, plus classic hostile bodies."""
    rng = random.Random(seed)
    valid = compact(generic_event())
    bodies = [
        b"\xef\xbb\xbf" + valid,
        b"[]",
        b"[1, 2]",
        b"{}",
        b'{"deal": []}',
        b"[" * 5000,
        b'"\\ud800"',
        b'{"a": 1e999}',
        b'{"a": -0}',
        b"\x00" * 64,
        b'{"event_id": {"$gt": ""}}',
        valid * 2,
    ]
    while len(bodies) < count:
        body = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            op = rng.choice(["flip", "cut", "insert", "wrap"])
            pos = rng.randrange(len(body)) if body else 0
            if op == "flip" and body:
                body[pos] ^= 1 << rng.randrange(8)
            elif op == "cut":
                del body[pos : pos + rng.randint(1, 20)]
            elif op == "insert":
                body[pos:pos] = rng.choice([b"{", b"}", b"[", b'"', b"\\", b"\xff", b"NaN", b",", b"9" * 50])
            else:
                body = bytearray(b"[" + bytes(body) + b"]")
        bodies.append(bytes(body))
    return bodies


async def test_hostile_bodies_get_4xx_or_202_and_never_a_5xx(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics
) -> None:
    statuses = [(await post_generic(client, body)).status_code for body in mutations(seed=7, count=150)]
    assert set(statuses) <= {202, 400, 413, 422}
    assert {400, 422} <= set(statuses)
    dead = await topic_values(broker_bootstrap, topics.dead_letters)
    assert len(dead) == sum(1 for s in statuses if s in (400, 422))


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_answers_publications_and_dead_letters_without_secrets(
    client: httpx.AsyncClient, topics: Topics
) -> None:
    before = {
        "202": sample("dealwatch_webhook_responses_total", source="generic", status="202"),
        "401": sample("dealwatch_webhook_responses_total", source="generic", status="401"),
        "published": sample("dealwatch_ingest_events_published_total", topic=topics.deal_changes),
        "dead": sample("dealwatch_ingest_dead_letters_total", source="generic", reason="duplicate_key"),
        "timed": sample("dealwatch_webhook_request_seconds_count", source="generic"),
    }
    assert (await post_generic(client, [generic_event("m1"), generic_event("m2")])).status_code == 202
    assert (await post_generic(client, b'{"a": 1, "a": 2}')).status_code == 400
    body = compact(generic_event())
    forged = {**standard_webhooks_headers(TEST_GENERIC_SECRET, body), "webhook-signature": "v1,Zm9yZ2Vk"}
    assert (await client.post("/webhooks/generic", content=body, headers=forged)).status_code == 401
    after = {
        "202": sample("dealwatch_webhook_responses_total", source="generic", status="202"),
        "401": sample("dealwatch_webhook_responses_total", source="generic", status="401"),
        "published": sample("dealwatch_ingest_events_published_total", topic=topics.deal_changes),
        "dead": sample("dealwatch_ingest_dead_letters_total", source="generic", reason="duplicate_key"),
        "timed": sample("dealwatch_webhook_request_seconds_count", source="generic"),
    }
    assert {k: after[k] - before[k] for k in before} == {
        "202": 1,
        "401": 1,
        "published": 2,
        "dead": 1,
        "timed": 3,
    }
    exposed = generate_latest(REGISTRY).decode()
    for secret in (
        TEST_GENERIC_SECRET,
        TEST_GENERIC_SECRET.removeprefix("whsec_"),
        PIPEDRIVE_PASSWORD,
        "Zm9yZ2Vk",
    ):
        assert secret not in exposed


async def test_readiness_follows_the_producer(make_service: Any) -> None:
    service = make_service()
    assert not service.ready()
    async with running(service):
        await eventually(lambda: readiness(service, True), what="ready")
    assert not service.ready()
