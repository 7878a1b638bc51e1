"""Events a fetch returns while Faust's flow is stopped are put back, not lost (``keep_events_drained_while_held``).

The consumer is a real aiokafka consumer on the embedded broker; the Faust consumer around it is a stand-in with
the three things the wrapper uses (``flow_active``, ``_wait_next_records``, ``_thread``), so that a fetch that
returns while the flow is stopped can be made to happen on purpose rather than by a race.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.common.broker import ensure_topics
from services.detector.app import _seek_back, keep_events_drained_while_held
from tests.conftest import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def consumer(broker_bootstrap: str) -> AsyncIterator[tuple[AIOKafkaConsumer, TopicPartition]]:
    """A consumer assigned to a fresh one-partition topic holding three events."""
    topic = f"held-{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker_bootstrap, [topic], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker_bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, f"e{i}".encode(), partition=0)
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    c = AIOKafkaConsumer(
        bootstrap_servers=broker_bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await c.start()
    c.assign([tp])
    try:
        yield c, tp
    finally:
        await c.stop()


async def drain(c: AIOKafkaConsumer, tp: TopicPartition, n: int) -> list[Any]:
    got: list[Any] = []

    async def more() -> bool:
        got.extend((await c.getmany(tp, timeout_ms=200)).get(tp, []))
        return len(got) >= n

    await eventually(more, what=f"{n} events fetched")
    return got


class Thread:
    def __init__(self, c: AIOKafkaConsumer):
        self._c = c

    def _ensure_consumer(self) -> AIOKafkaConsumer:
        return self._c

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        return await fun(*args)


class HeldConsumer:
    """Faust's consumer as the wrapper sees it: its next fetch comes back after the flow was stopped."""

    def __init__(self, c: AIOKafkaConsumer, tp: TopicPartition):
        self._thread = Thread(c)
        self.flow_active = True
        self._c, self._tp = c, tp

    async def _wait_next_records(self, timeout: float) -> tuple[dict[Any, list[Any]], set[Any]]:
        got = await drain(self._c, self._tp, 3)
        self.flow_active = False  # stopped while the fetch was in flight
        return {self._tp: got}, {self._tp}


async def test_a_partition_drained_while_held_is_sought_back_to_its_first_event(
    consumer: tuple[AIOKafkaConsumer, TopicPartition],
) -> None:
    c, tp = consumer
    held = HeldConsumer(c, tp)
    keep_events_drained_while_held(held, {tp.topic})
    records, _ = await held._wait_next_records(1.0)
    assert [r.offset for r in records[tp]] == [0, 1, 2]
    assert await c.position(tp) == 0
    assert [r.value for r in await drain(c, tp, 3)] == [b"e0", b"e1", b"e2"]


async def test_other_topics_and_an_open_flow_are_left_alone(
    consumer: tuple[AIOKafkaConsumer, TopicPartition],
) -> None:
    c, tp = consumer
    held = HeldConsumer(c, tp)
    keep_events_drained_while_held(held, {"some-other-topic"})
    await held._wait_next_records(1.0)
    assert await c.position(tp) == 3


async def test_a_seek_made_after_the_drain_stands(consumer: tuple[AIOKafkaConsumer, TopicPartition]) -> None:
    c, tp = consumer
    await drain(c, tp, 3)
    c.seek(tp, 1)  # e.g. Faust's seek to the committed offset, between the drain and the put-back
    await _seek_back(c, {tp: (0, 3)})
    assert await c.position(tp) == 1
    await _seek_back(c, {tp: (0, 1)})
    assert await c.position(tp) == 0
