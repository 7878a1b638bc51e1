"""Leaving the consumer group on the way out, also in a group's first generation.

aiokafka's ``stop()`` sends LeaveGroup only when the member's generation is above 0: Kafka numbers a group's
first generation 1, so 0 means "never joined". Tansu, the embedded broker, numbers it 0. The members of that
first generation would then stop without leaving, and the coordinator would wait for their sessions to expire
before it hands their partitions to anyone: a restarted worker stalls for the session timeout and more, and a
group that several such members left behind can fail to settle at all. This sends the LeaveGroup that
``stop()`` skips; for any other generation ``stop()`` leaves by itself and this does nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest

log = logging.getLogger(__name__)
FIRST_GENERATION_OF_TANSU = 0


async def leave_group(consumer: AIOKafkaConsumer) -> None:
    """Before ``consumer.stop()``: leave the group if the member is in generation 0. The coordinator, its
    generation and member id are aiokafka internals; without them (another aiokafka) nothing is sent."""
    coordinator: Any = getattr(consumer, "_coordinator", None)
    generation = getattr(coordinator, "generation", None)
    member_id = getattr(coordinator, "member_id", "")
    send = getattr(coordinator, "_send_req", None)
    if generation != FIRST_GENERATION_OF_TANSU or not member_id or send is None:
        return
    try:
        await send(LeaveGroupRequest(coordinator.group_id, member_id))
    except KafkaError as exc:
        log.info("could not leave the consumer group (%s); its session will expire", exc)
