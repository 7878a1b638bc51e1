"""Task messages are delivered to subscribers as signed webhooks, retried, and dead-lettered at the end."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from schemas import RecoveryTaskCreated, Topics
from services.common.db import make_engine
from services.common.repositories import NewDelivery, SqlAlchemyStore
from services.common.settings import Settings, Subscriber
from services.recovery.worker import run
from tests.conftest import eventually
from tests.helpers import read_topic
from tests.unit.recovery.factories import interruption

pytestmark = pytest.mark.integration
SECRET = "whsec_" + base64.b64encode(b"a-subscriber's-own-secret-32byte").decode()


@dataclass
class Receiver:
    """A subscriber on loopback that answers 500 to the first ``failures`` tries of each message."""

    failures: int
    tries: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        message_id = request.headers.get("webhook-id", "")
        earlier = sum(1 for headers, _, _ in self.tries if headers.get("webhook-id") == message_id)
        status = 500 if earlier < self.failures else 204
        self.tries.append((dict(request.headers.items()), body, status))
        return web.Response(status=status)

    def accepted(self) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b, status in self.tries if status < 300]


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[[int], Any]]:
    runners: list[web.AppRunner] = []

    async def start(failures: int) -> Receiver:
        receiver = Receiver(failures)
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        receiver.url = f"http://{host}:{port}/hook"
        runners.append(runner)
        return receiver

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def store(db_url: str) -> Iterator[SqlAlchemyStore]:
    s = SqlAlchemyStore(make_engine(db_url))
    s.create_schema()
    yield s
    s.engine.dispose()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The Standard Webhooks check, as a subscriber would write it."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = headers["webhook-id"].encode() + b"." + headers["webhook-timestamp"].encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, o) for o in offered)


async def test_a_subscriber_that_fails_twice_gets_the_signed_task_on_the_third_try_and_a_dead_one_is_dead_lettered(
    broker_bootstrap: str,
    created_topics: Topics,
    db_url: str,
    store: SqlAlchemyStore,
    receivers: Callable[[int], Any],
) -> None:
    flaky, dead = await receivers(2), await receivers(1000)
    settings = Settings(
        kafka_bootstrap=broker_bootstrap,
        database_url=db_url,
        subscribers=[
            Subscriber(url=flaky.url, secret=SecretStr(SECRET), max_attempts=5),
            Subscriber(url=dead.url, secret=SecretStr(SECRET), max_attempts=2),
        ],
        subscriber_retry_base_seconds=0.05,
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker_bootstrap, acks="all")
    await producer.start()
    i = interruption(detected_at=datetime.now(UTC))  # due in days: no escalation in this test
    await producer.send_and_wait(
        created_topics.interruptions, i.model_dump_json().encode(), key=b"generic:D-1001"
    )
    await producer.stop()
    stop = asyncio.Event()
    worker = asyncio.create_task(run(settings, created_topics, stop))
    try:

        async def delivered() -> list[tuple[dict[str, str], bytes]]:
            return flaky.accepted()

        async def dead_lettered() -> list[Any]:
            records = await read_topic(broker_bootstrap, created_topics.dead_letters)
            return [r for r in records if dict(r.headers).get("dlq.stage") == b"subscriber"]

        ((headers, body),) = await eventually(delivered, what="the third try accepted")
        (letter,) = await eventually(dead_lettered, what="the dead letter of the failing subscriber")
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)

    assert [status for _, _, status in flaky.tries] == [500, 500, 204]
    assert len({h["webhook-id"] for h, _, _ in flaky.tries}) == 1
    assert verify(SECRET, headers, body)
    assert not verify(SECRET, {**headers, "webhook-timestamp": "1"}, body)
    created = RecoveryTaskCreated.model_validate_json(body)
    assert created.task.interruption_id == i.id
    assert headers["webhook-id"] == f"msg_{created.task.id}_v1"

    assert [status for _, _, status in dead.tries] == [500, 500]
    letter_headers = dict(letter.headers)
    assert letter_headers["dlq.reason"].startswith(b"subscriber gave up after 2 attempts")
    assert letter_headers["dlq.subscriber"] == dead.url.encode()
    assert json.loads(letter.value)["task"]["id"] == created.task.id
    assert store.due_deliveries(created.task.created_at.replace(year=9999)) == []


async def test_a_delivery_still_pending_when_the_worker_stops_is_made_after_its_restart(
    broker_bootstrap: str,
    created_topics: Topics,
    db_url: str,
    store: SqlAlchemyStore,
    receivers: Callable[[int], Any],
) -> None:
    receiver = await receivers(1000)
    settings = Settings(
        kafka_bootstrap=broker_bootstrap,
        database_url=db_url,
        subscribers=[Subscriber(url=receiver.url, secret=SecretStr(SECRET), max_attempts=1000)],
        subscriber_retry_base_seconds=0.05,
        subscriber_retry_max_seconds=0.2,
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker_bootstrap, acks="all")
    await producer.start()
    i = interruption(detected_at=datetime.now(UTC))  # due in days: no escalation in this test
    await producer.send_and_wait(
        created_topics.interruptions, i.model_dump_json().encode(), key=b"generic:D-1001"
    )
    await producer.stop()

    async def tried() -> bool:
        return bool(receiver.tries)

    stop = asyncio.Event()
    worker = asyncio.create_task(run(settings, created_topics, stop))
    await eventually(tried, what="a first, refused try")
    stop.set()
    await asyncio.wait_for(worker, timeout=30)
    (pending,) = store.due_deliveries(i.detected_at.replace(year=9999))
    assert pending.attempts >= 1 and pending.subscriber == receiver.url

    receiver.failures = 0
    stop = asyncio.Event()
    worker = asyncio.create_task(run(settings, created_topics, stop))
    try:

        async def delivered() -> list[tuple[dict[str, str], bytes]]:
            return receiver.accepted()

        ((headers, body),) = await eventually(delivered, what="the delivery after the restart")
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)
    assert headers["webhook-id"] == pending.message_id and verify(SECRET, headers, body)
    assert store.due_deliveries(i.detected_at.replace(year=9999)) == []


def test_a_message_published_twice_is_queued_once_per_subscriber(store: SqlAlchemyStore) -> None:
    now = datetime.now(UTC)
    with store.transaction() as tx:
        tx.append_outbox("tasks", "generic:D-1", "{}", now)
    (pending,) = store.pending_outbox()
    queued = [NewDelivery("http://a/hook", "msg_t_v1", "generic:D-1", "{}")]
    store.mark_published([pending.seq], now, queued)
    store.mark_published([pending.seq], now, [*queued, NewDelivery("http://b/hook", "msg_t_v1", "k", "{}")])
    due = store.due_deliveries(now)
    assert sorted((d.subscriber, d.message_id, d.attempts) for d in due) == [
        ("http://a/hook", "msg_t_v1", 0),
        ("http://b/hook", "msg_t_v1", 0),
    ]
