"""The detector's table reads its changelog to the true end, past where the broker lists it (Tansu).

Tansu lists a partition's end offset as the base offset of its last record batch + 1; Faust recovers a table up to
that listed end, so after a restart the newest states of a batch written at once were missing from the table (the
crash test showed deals going on from older states). ``read_changelog_to_end`` applies them.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.broker import ensure_topics, make_producer
from services.detector.changelog import read_changelog_to_end

pytestmark = pytest.mark.integration


async def test_the_records_of_the_last_batch_past_the_listed_end_reach_the_store(
    broker_bootstrap: str,
) -> None:
    topic = f"t{uuid.uuid4().hex[:10]}.dealwatch-detector-deals-changelog"
    await ensure_topics(broker_bootstrap, [topic], partitions=1)
    producer = make_producer(broker_bootstrap, linger_ms=200)
    await producer.start()
    try:
        first = await producer.send(topic, b"old", key=b"deal-0", partition=0)
        await first
        acks = [
            await producer.send(topic, f"v{i}".encode(), key=f"deal-{i % 5}".encode(), partition=0)
            for i in range(20)
        ]
        await asyncio.gather(*acks)  # one batch: 20 records, deal-0 .. deal-4 four times each
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=broker_bootstrap, group_id=None)
    await consumer.start()
    try:
        listed = (await consumer.end_offsets([TopicPartition(topic, 0)]))[TopicPartition(topic, 0)]
    finally:
        await consumer.stop()

    store: dict[bytes, bytes] = {b"deal-0": b"old"}  # what a recovery up to the listed end may hold
    past = await read_changelog_to_end(broker_bootstrap, topic, [0], store)

    assert store == {f"deal-{k}".encode(): f"v{15 + k}".encode() for k in range(5)}
    assert past == 21 - listed  # records 1..20 are one batch; the broker listed the end as `listed`
