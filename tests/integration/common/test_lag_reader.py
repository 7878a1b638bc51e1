"""The lag reader against the real broker: every group's state and lag in one reading, with several groups,
and without aiokafka's connection reader failing on the DescribeGroups answer."""

from __future__ import annotations

import logging
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.common.broker import ensure_topics
from services.common.lag import BrokerReader, prefixed

pytestmark = pytest.mark.integration


async def consume_and_commit(bootstrap: str, topic: str, group: str, count: int) -> AIOKafkaConsumer:
    """A started member of ``group`` that consumed and committed the first ``count`` records of ``topic``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1,
    )
    await consumer.start()
    got = 0
    while got < count:
        got += sum(
            len(r) for r in (await consumer.getmany(timeout_ms=1000, max_records=count - got)).values()
        )
    await consumer.commit()
    return consumer


async def test_several_groups_are_read_with_their_state_and_lag(
    broker_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"lag{uuid.uuid4().hex[:8]}."
    topic, run = f"{prefix}probe", uuid.uuid4().hex[:6]
    groups = [f"lag-reader-a-{run}", f"lag-reader-b-{run}", f"lag-reader-c-{run}"]
    await ensure_topics(broker_bootstrap, [topic], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker_bootstrap, acks="all")
    await producer.start()
    consumers = []
    try:
        for _ in range(6):
            await producer.send_and_wait(topic, b"{}", key=b"k")
        for consumed, group in enumerate(groups, start=1):
            consumers.append(await consume_and_commit(broker_bootstrap, topic, group, consumed))
        reader = BrokerReader(broker_bootstrap, prefixed(prefix))
        try:
            with caplog.at_level(logging.ERROR, logger="aiokafka"):
                view = await reader.read(groups)
        finally:
            await reader.stop()
    finally:
        for consumer in consumers:
            await consumer.stop()
        await producer.stop()

    assert view.ends == {(topic, 0): 6}
    assert {g: view.group_lag(g) for g in groups} == {groups[0]: 5, groups[1]: 4, groups[2]: 3}
    assert {g: view.groups[g] for g in groups} == dict.fromkeys(groups, "Stable")
    assert not [r for r in caplog.records if r.name.startswith("aiokafka")], caplog.text
