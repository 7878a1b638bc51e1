"""Stopping a group member without LeaveGroup on the embedded broker (Tansu 0.6 keeps a leader that leaves while
its group forms; ``services/common/consumer_group.py``)."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from services.common.broker import ensure_topics
from services.common.consumer_group import broker_is_tansu, stay_member_on_stop
from tests.conftest import eventually

pytestmark = pytest.mark.integration


async def test_the_embedded_broker_is_recognised(broker_bootstrap: str) -> None:
    assert await broker_is_tansu(broker_bootstrap)
    assert not await broker_is_tansu("127.0.0.1:1")  # nothing there: not Tansu, and no exception


async def members(bootstrap: str, group: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        return {member[0] for described in response.groups for member in described[5]}
    finally:
        await admin.close()


@pytest.mark.parametrize("stay", [True, False])
async def test_a_member_told_to_stay_is_still_in_its_group_after_it_stopped(
    broker_bootstrap: str, stay: bool
) -> None:
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker_bootstrap, [topic], partitions=2)

    def member() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker_bootstrap,
            group_id=group,
            session_timeout_ms=6_000,  # the stopped member expires after this; the test looks at once
            heartbeat_interval_ms=500,
            rebalance_timeout_ms=5_000,
            enable_auto_commit=False,
        )

    first, second = member(), member()
    await first.start()
    await second.start()
    try:
        # Tansu numbers a group's first generation 0, in which aiokafka never leaves; the second member's join
        # makes a later one
        async def both_assigned_after_a_rebalance() -> bool:
            for consumer in (first, second):
                await consumer.getmany(timeout_ms=100)
            generations = {c._coordinator.generation for c in (first, second)}  # aiokafka internals, as used
            return bool(first.assignment() and second.assignment()) and min(generations) > 0

        await eventually(
            both_assigned_after_a_rebalance, timeout=60, what="two members in a later generation"
        )
        leaving = second._coordinator.member_id
        stay_member_on_stop(stay)
        try:
            await second.stop()
        finally:
            stay_member_on_stop(False)
        assert (leaving in await members(broker_bootstrap, group)) is stay
    finally:
        await first.stop()
