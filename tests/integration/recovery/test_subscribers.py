"""Task messages are delivered to subscribers as signed webhooks, retried, and dead-lettered at the end."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from schemas import RecoveryTaskCreated, Topics
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
    """A subscriber on loopback that answers 500 to the first ``failures`` tries of each message. With
    ``hold`` set, it answers only once that event is set."""

    failures: int
    tries: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    url: str = ""
    hold: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
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
    (record,) = store.dead_deliveries()
    assert (record.delivery.subscriber, record.delivery.message_id) == (dead.url, headers["webhook-id"])
    assert record.delivery.attempts == 2 and record.last_error == "HTTP 500"


@pytest.mark.parametrize("stopped", ["between_tries", "mid_try"])
async def test_a_delivery_still_pending_when_the_worker_stops_is_made_after_its_restart(
    stopped: str,
    broker_bootstrap: str,
    created_topics: Topics,
    db_url: str,
    store: SqlAlchemyStore,
    receivers: Callable[[int], Any],
) -> None:
    receiver = await receivers(1000)
    if stopped == "mid_try":
        receiver.hold = asyncio.Event()
    settings = Settings(
        kafka_bootstrap=broker_bootstrap,
        database_url=db_url,
        subscribers=[Subscriber(url=receiver.url, secret=SecretStr(SECRET), max_attempts=1000)],
        subscriber_retry_base_seconds=0.05,
        subscriber_retry_max_seconds=0.2,
        # A try holds its delivery for a few timeouts: far longer than this test waits, so only a delivery
        # given back on the stop can be made after the restart.
        subscriber_timeout_seconds=600,
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker_bootstrap, acks="all")
    await producer.start()
    i = interruption(detected_at=datetime.now(UTC))  # due in days: no escalation in this test
    await producer.send_and_wait(
        created_topics.interruptions, i.model_dump_json().encode(), key=b"generic:D-1001"
    )
    await producer.stop()
    some_time = i.detected_at.replace(year=9999)

    async def refused_once() -> list[Any]:
        return [d for d in await asyncio.to_thread(store.due_deliveries, some_time) if d.attempts >= 1]

    async def under_way() -> bool:
        return receiver.arrived.is_set()

    stop = asyncio.Event()
    worker = asyncio.create_task(run(settings, created_topics, stop))
    if stopped == "mid_try":
        await eventually(under_way, what="a try the receiver holds open")
    else:
        await eventually(refused_once, what="a first, refused try")
    stop.set()
    await asyncio.wait_for(worker, timeout=30)
    if receiver.hold is not None:  # the receiver answers the cut try now, to nobody

        async def answered() -> bool:
            return bool(receiver.tries)

        receiver.hold.set()
        await eventually(answered, what="the held try answered")
    (pending,) = store.due_deliveries(some_time)
    assert pending.subscriber == receiver.url
    assert pending.attempts == 0 if stopped == "mid_try" else pending.attempts >= 1

    receiver.failures, receiver.hold = 0, None
    stop = asyncio.Event()
    worker = asyncio.create_task(run(settings, created_topics, stop))
    try:

        async def delivered() -> list[tuple[dict[str, str], bytes]]:
            return receiver.accepted()

        ((headers, body),) = await eventually(delivered, what="the delivery after the restart")

        # The receiver has the try before the worker has its answer: stopping now could give the delivery back
        # again, so wait until the worker has recorded it as made.
        async def recorded() -> bool:
            return await asyncio.to_thread(store.due_deliveries, some_time) == []

        await eventually(recorded, what="the delivery recorded as made")
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)
    assert headers["webhook-id"] == pending.message_id and verify(SECRET, headers, body)
    assert store.due_deliveries(some_time) == []
    assert len(receiver.accepted()) == 1


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


def test_a_due_delivery_is_claimed_by_one_worker_only(store: SqlAlchemyStore) -> None:
    now = datetime.now(UTC)
    with store.transaction() as tx:
        tx.append_outbox("tasks", "generic:D-1", "{}", now)
    (pending,) = store.pending_outbox()
    store.mark_published([pending.seq], now, [NewDelivery("http://a/hook", "msg_t_v1", "generic:D-1", "{}")])
    (seen_by_one,) = store.due_deliveries(now)
    (seen_by_two,) = store.due_deliveries(now)
    lease = now + timedelta(seconds=30)
    assert store.claim_delivery(seen_by_one, now, lease)
    assert not store.claim_delivery(seen_by_two, now, lease)
    assert store.due_deliveries(now) == [] and store.next_delivery_at() == lease
    (again,) = store.due_deliveries(lease)  # a worker that died mid-try lets it go when the lease ends
    assert store.claim_delivery(again, lease, lease + timedelta(seconds=30))


def test_a_delivery_given_up_on_is_kept_as_a_dead_letter_and_never_tried_again(
    store: SqlAlchemyStore,
) -> None:
    now = datetime.now(UTC)
    with store.transaction() as tx:
        tx.append_outbox("tasks", "generic:D-1", "{}", now)
    (pending,) = store.pending_outbox()
    store.mark_published([pending.seq], now, [NewDelivery("http://a/hook", "msg_t_v1", "generic:D-1", "{}")])
    (delivery,) = store.due_deliveries(now)
    store.bury_delivery(delivery.id, 5, "HTTP 503", now)
    store.mark_published([pending.seq], now, [NewDelivery("http://a/hook", "msg_t_v1", "generic:D-1", "{}")])
    assert store.due_deliveries(now + timedelta(days=1)) == [] and store.next_delivery_at() is None
    (dead,) = store.dead_deliveries()
    assert (dead.delivery.id, dead.delivery.attempts, dead.last_error) == (delivery.id, 5, "HTTP 503")
    assert dead.dead_at == now


async def test_a_delivery_claimed_in_the_moment_the_worker_stops_is_given_back_at_once(
    store: SqlAlchemyStore,
) -> None:
    import threading

    import httpx

    from services.recovery.subscribers import Deliverer

    now = datetime.now(UTC)
    with store.transaction() as tx:
        tx.append_outbox("tasks", "generic:D-1", "{}", now)
    (pending,) = store.pending_outbox()
    url = "http://127.0.0.1:9/hook"
    store.mark_published([pending.seq], now, [NewDelivery(url, "msg_t_v1", "generic:D-1", "{}")])
    (delivery,) = store.due_deliveries(now)
    settings = Settings(
        subscribers=[Subscriber(url=url, secret=SecretStr(SECRET))], subscriber_timeout_seconds=600
    )
    deliverer = Deliverer(store, None, settings, "dlq")  # type: ignore[arg-type]
    claiming, go_on, claimed = threading.Event(), threading.Event(), threading.Event()
    claim = store.claim_delivery

    def slow_claim(*args: Any) -> bool:
        claiming.set()
        go_on.wait(10)
        try:
            return claim(*args)
        finally:
            claimed.set()

    store.claim_delivery = slow_claim  # type: ignore[method-assign]
    async with httpx.AsyncClient() as client:
        task = asyncio.create_task(deliverer.deliver(client, delivery))
        await asyncio.to_thread(claiming.wait, 10)
        task.cancel()  # the worker stops while the claim is being written
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(claimed.wait, 10)  # the claim went through in its thread
    (again,) = store.due_deliveries(datetime.now(UTC))  # due now, not in 3 x 600 s
    assert again.id == delivery.id and again.attempts == 0


async def test_the_outcome_of_a_try_is_recorded_even_when_the_worker_stops_before_the_write_starts(
    store: SqlAlchemyStore, receivers: Callable[[int], Any]
) -> None:
    """A stop that cancels the write of a try's outcome while the write still waits for a thread must not
    drop it: the delivery would stay claimed for the whole lease, and be posted again after it."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from services.recovery.subscribers import Deliverer

    receiver = await receivers(0)
    receiver.hold = asyncio.Event()
    now = datetime.now(UTC)
    with store.transaction() as tx:
        tx.append_outbox("tasks", "generic:D-1", "{}", now)
    (pending,) = store.pending_outbox()
    store.mark_published([pending.seq], now, [NewDelivery(receiver.url, "msg_t_v1", "generic:D-1", "{}")])
    (delivery,) = store.due_deliveries(now)
    settings = Settings(
        subscribers=[Subscriber(url=receiver.url, secret=SecretStr(SECRET))], subscriber_timeout_seconds=600
    )
    deliverer = Deliverer(store, None, settings, "dlq")  # type: ignore[arg-type]
    finish = store.finish_delivery
    queued = threading.Event()

    def finish_delivery(delivery_id: int) -> None:
        finish(delivery_id)

    class OneThread(ThreadPoolExecutor):
        """The loop's only worker thread, so that a write can be made to wait for it."""

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            if finish_delivery in getattr(fn, "args", ()):
                queued.set()
            return super().submit(fn, *args, **kwargs)

    async def write_waits() -> bool:
        return queued.is_set()

    loop = asyncio.get_running_loop()
    loop.set_default_executor(OneThread(max_workers=1))
    store.finish_delivery = finish_delivery  # type: ignore[method-assign]
    busy = threading.Event()
    try:
        async with httpx.AsyncClient() as client:
            task = asyncio.create_task(deliverer.deliver(client, delivery))
            await asyncio.wait_for(receiver.arrived.wait(), timeout=10)
            occupied = loop.run_in_executor(None, busy.wait, 10)  # the only thread is taken
            receiver.hold.set()  # the subscriber takes the try; the write of that must wait for the thread
            await eventually(write_waits, what="the write of the outcome waiting for its thread")
            task.cancel()  # the worker stops before the write has started
            busy.set()
            await occupied
            with pytest.raises(asyncio.CancelledError):
                await task
    finally:
        busy.set()
        loop.set_default_executor(ThreadPoolExecutor())  # the other tests' threads back
    assert len(receiver.accepted()) == 1
    assert store.due_deliveries(now.replace(year=9999)) == []  # recorded, not left claimed for the lease
