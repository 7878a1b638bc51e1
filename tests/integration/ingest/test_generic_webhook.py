"""POST /webhooks/generic on the real broker: what is accepted is on the topic, what is refused is not."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from schemas import DealChanged, Topics
from tests.helpers import TEST_GENERIC_SECRET, compact, read_topic, standard_webhooks_headers

from .conftest import generic_event, post_generic, topic_values

pytestmark = pytest.mark.integration


async def assert_nothing_written(bootstrap: str, topics: Topics) -> None:
    assert await topic_values(bootstrap, topics.deal_changes) == []
    assert await topic_values(bootstrap, topics.dead_letters) == []


async def test_an_accepted_event_is_on_the_changes_topic_keyed_by_its_deal(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics
) -> None:
    response = await post_generic(client, generic_event("evt-8812", "D-1001"))
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "ignored": 0, "event_ids": ["evt-8812"]}
    [record] = await read_topic(broker_bootstrap, topics.deal_changes)
    assert record.key == b"generic:D-1001"
    change = DealChanged.model_validate_json(record.value or b"")
    assert (change.event_id, change.source, change.deal_id) == ("evt-8812", "generic", "D-1001")
    assert change.activity is not None and change.activity.text == "先方、競合A社の値引き提案を検討中"
    assert await topic_values(broker_bootstrap, topics.dead_letters) == []


async def test_a_batch_is_published_whole_in_the_senders_order(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics
) -> None:
    events = [generic_event(f"evt-{i}", "D-7") for i in range(20)] + [generic_event("evt-x", "D-8")]
    response = await post_generic(client, events)
    assert response.status_code == 202
    assert response.json()["accepted"] == 21
    records = await read_topic(broker_bootstrap, topics.deal_changes)
    d7 = [
        DealChanged.model_validate_json(r.value or b"").event_id for r in records if r.key == b"generic:D-7"
    ]
    assert d7 == [f"evt-{i}" for i in range(20)]
    assert sum(1 for r in records if r.key == b"generic:D-8") == 1


async def test_a_redelivery_is_accepted_again_with_the_same_event_id(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics
) -> None:
    body = compact(generic_event("evt-again"))
    first = await post_generic(client, body, msg_id="msg_1")
    again = await post_generic(client, body, msg_id="msg_1")
    assert (first.status_code, again.status_code) == (202, 202)
    ids = {
        DealChanged.model_validate_json(v).event_id
        for v in await topic_values(broker_bootstrap, topics.deal_changes)
    }
    assert ids == {"evt-again"}


@pytest.mark.parametrize(
    "forge",
    [
        lambda h: {**h, "webhook-signature": "v1," + "A" * 44},
        lambda h: {k: v for k, v in h.items() if k != "webhook-signature"},
        lambda h: {k: v for k, v in h.items() if k != "webhook-id"},
        lambda h: {k: v for k, v in h.items() if k != "webhook-timestamp"},
        lambda h: {**h, "webhook-id": "msg_other"},
        lambda h: {**h, "webhook-timestamp": "not-a-number"},
    ],
    ids=["wrong-signature", "no-signature", "no-id", "no-timestamp", "other-id", "bad-timestamp"],
)
async def test_an_unauthentic_request_gets_401_and_nothing_is_written_anywhere(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics, forge: Any
) -> None:
    body = compact(generic_event())
    response = await client.post(
        "/webhooks/generic", content=body, headers=forge(standard_webhooks_headers(TEST_GENERIC_SECRET, body))
    )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    await assert_nothing_written(broker_bootstrap, topics)


@pytest.mark.parametrize("skew", [301, -301])
async def test_a_timestamp_301_seconds_away_gets_401(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics, skew: int
) -> None:
    response = await post_generic(client, generic_event(), timestamp=int(time.time()) + skew)
    assert response.status_code == 401
    assert "timestamp" in response.json()["detail"]
    await assert_nothing_written(broker_bootstrap, topics)


async def test_a_body_signed_with_another_secret_and_malformed_is_401_not_dead_lettered(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics
) -> None:
    body = b'{"not": json'
    other = "whsec_" + "b3RoZXIgc2VjcmV0IGtleSAwMTIzNDU2Nzg5"
    response = await client.post(
        "/webhooks/generic", content=body, headers=standard_webhooks_headers(other, body)
    )
    assert response.status_code == 401
    await assert_nothing_written(broker_bootstrap, topics)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"event_id": "e", "deal": {"id": "D-1"}', "not_json"),
        (b'{"event_id": "e", "event_id": "f"}', "duplicate_key"),
        (b'{"amount": NaN}', "non_finite_number"),
        (b'{"amount": ' + b"9" * 5000 + b"}", "number_too_long"),
        (b'{"text": "\xff\xfe"}', "bad_utf8"),
        (b"[" * 50_000 + b"]" * 50_000, "too_deep"),
        (b"12", "not_an_object"),
    ],
)
async def test_an_authentic_malformed_body_gets_400_and_goes_to_the_dead_letters_with_its_reason(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics, body: bytes, reason: str
) -> None:
    response = await post_generic(client, body, msg_id="msg_malformed")
    assert response.status_code == 400
    assert set(response.json()) == {"error", "detail"}
    [record] = await read_topic(broker_bootstrap, topics.dead_letters)
    headers = dict(record.headers)
    assert (record.key, record.value) == (b"msg_malformed", body)
    assert headers["dlq.reason"].decode().startswith(reason)
    assert (headers["dlq.source"], headers["dlq.stage"]) == (b"generic", b"ingest")
    assert headers["dlq.received_at"]
    assert await topic_values(broker_bootstrap, topics.deal_changes) == []


async def test_one_invalid_event_in_a_batch_gets_422_dead_letters_the_body_and_publishes_nothing(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics
) -> None:
    events = [
        generic_event("ok-1", "D-1"),
        generic_event("bad", "D-2", type="deal.exploded"),
        generic_event("ok-2", "D-3"),
    ]
    response = await post_generic(client, events)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_event"
    assert "event 1" in response.json()["detail"]
    [record] = await read_topic(broker_bootstrap, topics.dead_letters)
    assert record.key == b"generic:D-2"
    assert json.loads(record.value or b"") == events
    assert dict(record.headers)["dlq.reason"].startswith(b"invalid_event")
    assert await topic_values(broker_bootstrap, topics.deal_changes) == []


async def test_an_event_without_a_readable_deal_is_dead_lettered_under_the_webhook_id(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics
) -> None:
    response = await post_generic(client, {"event_id": "e-1", "type": "deal.updated"}, msg_id="msg_nodeal")
    assert response.status_code == 422
    [record] = await read_topic(broker_bootstrap, topics.dead_letters)
    assert record.key == b"msg_nodeal"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", None, "application/json; charset=latin-1"],
)
async def test_a_body_that_is_not_declared_json_gets_415(
    client: httpx.AsyncClient, broker_bootstrap: str, topics: Topics, content_type: str | None
) -> None:
    body = compact(generic_event())
    headers = standard_webhooks_headers(TEST_GENERIC_SECRET, body)
    if content_type is None:
        del headers["content-type"]
    else:
        headers["content-type"] = content_type
    response = await client.post("/webhooks/generic", content=body, headers=headers)
    assert response.status_code == 415
    await assert_nothing_written(broker_bootstrap, topics)


async def test_a_compressed_body_gets_415(client: httpx.AsyncClient) -> None:
    body = compact(generic_event())
    headers = {**standard_webhooks_headers(TEST_GENERIC_SECRET, body), "content-encoding": "gzip"}
    assert (await client.post("/webhooks/generic", content=body, headers=headers)).status_code == 415


async def test_a_body_over_the_limit_gets_413_however_it_is_sent(
    make_service: Any, broker_bootstrap: str, topics: Topics
) -> None:
    from .conftest import running

    async def chunks(body: bytes) -> Any:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    big = compact([generic_event(f"e{i}") for i in range(200)])
    async with running(make_service(max_body_bytes=10_000)) as client:
        declared = await post_generic(client, big)
        headers = standard_webhooks_headers(TEST_GENERIC_SECRET, big)
        streamed = await client.post("/webhooks/generic", content=chunks(big), headers=headers)
    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert declared.json()["error"] == "payload_too_large"
    await assert_nothing_written(broker_bootstrap, topics)


async def test_more_events_than_the_batch_bound_get_413(
    make_service: Any, broker_bootstrap: str, topics: Topics
) -> None:
    from .conftest import running

    async with running(make_service(max_batch_events=5)) as client:
        response = await post_generic(client, [generic_event(f"e{i}") for i in range(6)])
    assert response.status_code == 413
    assert response.json()["error"] == "too_many_events"
    assert await topic_values(broker_bootstrap, topics.deal_changes) == []


async def test_a_source_without_a_secret_is_refused_not_open(
    make_service: Any, broker_bootstrap: str, topics: Topics
) -> None:
    from .conftest import running

    async with running(make_service(generic_secret=None)) as client:
        response = await post_generic(client, generic_event())
    assert response.status_code == 503
    assert response.json()["error"] == "source_not_configured"
    assert "DEALWATCH_GENERIC_SECRET" in response.json()["detail"]
    assert await topic_values(broker_bootstrap, topics.deal_changes) == []
