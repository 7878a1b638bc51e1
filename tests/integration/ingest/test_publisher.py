"""The webhook publisher on the real broker: records of concurrent requests share record batches, yet every one
arrives once, on its key's partition, in the order each request gave; a full batch, a record larger than a whole
batch and a stop while records are on their way."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from services.common.broker import ensure_topics, kafka_partition
from services.ingest.publisher import BrokerUnavailable, KafkaEventPublisher, OutgoingRecord
from tests.helpers import read_topic

pytestmark = pytest.mark.integration

PARTITIONS = 3


async def publisher(bootstrap: str, topic: str) -> KafkaEventPublisher:
    await ensure_topics(bootstrap, [topic], partitions=PARTITIONS)
    pub = KafkaEventPublisher(
        bootstrap,
        idempotent=False,
        timeout_seconds=10.0,
        topics=[topic],
        partitions=PARTITIONS,
        replication=1,
    )
    await pub.start()
    return pub


@asynccontextmanager
async def publishing(bootstrap: str, topic: str) -> AsyncIterator[KafkaEventPublisher]:
    pub = await publisher(bootstrap, topic)
    try:
        yield pub
    finally:
        await pub.stop()


def record(topic: str, deal: int, n: int, size: int = 40) -> OutgoingRecord:
    return OutgoingRecord(topic, f"generic:D{deal}".encode(), f"{deal}:{n}:".encode().ljust(size, b"x"))


async def test_concurrent_requests_arrive_once_each_on_their_key_partition_in_request_order(
    broker_bootstrap: str,
) -> None:
    topic = f"pub{uuid.uuid4().hex[:8]}"
    async with publishing(broker_bootstrap, topic) as pub:
        # 40 requests at once, 1-9 records each, several deals a request and several records a deal
        requests = [
            [record(topic, (r * 7 + i) % 11, r * 100 + i) for i in range(1 + r % 9)] for r in range(40)
        ]
        await asyncio.gather(*(pub.publish(rs) for rs in requests))
        # then one after another: each acknowledged before the next starts
        for r in range(5):
            await pub.publish([record(topic, 3, 10_000 + r)])
    got = await read_topic(broker_bootstrap, topic)
    sent = [r for rs in requests for r in rs] + [record(topic, 3, 10_000 + r) for r in range(5)]
    assert sorted(r.value for r in got) == sorted(r.value for r in sent)
    for r in got:
        assert r.partition == kafka_partition(r.key, list(range(PARTITIONS)), [])
    by_deal: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    for r in sorted(got, key=lambda r: (r.partition, r.offset)):
        _, n, _ = r.value.split(b":", 2)
        by_deal[r.key].append((int(n) // 100, int(n)))
    for seen in by_deal.values():
        for req in {q for q, _ in seen}:
            ns = [n for q, n in seen if q == req]
            assert ns == sorted(ns), "a request's records of one deal arrived out of order"
    assert [n for _, n in by_deal[b"generic:D3"] if n >= 10_000] == [10_000 + r for r in range(5)]


async def test_records_beyond_a_full_batch_and_one_larger_than_a_batch_all_arrive_in_order(
    broker_bootstrap: str,
) -> None:
    topic = f"pub{uuid.uuid4().hex[:8]}"
    async with publishing(broker_bootstrap, topic) as pub:
        # one deal, so one partition: 700 records of 1 KiB overflow a 256 KiB batch twice; one of 600 KiB
        # is larger than a whole batch and goes alone, between the others
        big = OutgoingRecord(topic, b"generic:D1", b"1:350:".ljust(600 * 1024, b"y"))
        records = [record(topic, 1, n, size=1024) for n in range(350)]
        records += [big] + [record(topic, 1, n, size=1024) for n in range(351, 701)]
        await pub.publish(records)
    got = await read_topic(broker_bootstrap, topic)
    assert [int(r.value.split(b":")[1]) for r in sorted(got, key=lambda r: r.offset)] == list(range(701))
    assert max(len(r.value) for r in got) == 600 * 1024


async def test_a_stop_while_records_are_on_their_way_answers_the_waiting_requests(
    broker_bootstrap: str,
) -> None:
    topic = f"pub{uuid.uuid4().hex[:8]}"
    pub = await publisher(broker_bootstrap, topic)
    waiting = asyncio.create_task(pub.publish([record(topic, d, d) for d in range(20)]))
    await asyncio.sleep(0)  # the records are queued, their batches not yet answered
    await pub.stop()
    with contextlib.suppress(BrokerUnavailable):  # refused: the sender retries, as it would after a 503
        await asyncio.wait_for(waiting, timeout=10)
    with pytest.raises(BrokerUnavailable):
        await pub.publish([record(topic, 1, 1)])
