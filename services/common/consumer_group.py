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


async def broker_is_tansu(bootstrap: str) -> bool:
    """Whether the broker at ``bootstrap`` says it is Tansu (its cluster id, ``tansu_cluster`` by default, starts
    with "tansu"); False when it cannot be asked."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        described = await admin.describe_cluster()
    except KafkaError as exc:
        log.info("could not ask the broker its cluster id (%s)", exc)
        return False
    finally:
        await admin.close()
    return str(described.get("cluster_id") or "").startswith("tansu")


def stay_member_on_stop(stay: bool = True) -> None:
    """Make this process's group consumers stop without sending LeaveGroup (``stay=False`` undoes it); the group
    coordinator drops them when their session expires instead.

    For Tansu 0.6: when a member leaves while its group is forming, the coordinator removes it from the members
    but keeps it as the group's leader (only a leader whose heartbeats stop is cleared, and a leader is chosen
    only when there is none). The live members then wait for that leader's assignment for ever: their SyncGroup
    requests time out and they rejoin the same generation every few seconds. Seen with two detectors, one
    stopped by SIGTERM while the other rejoined. A member that just stops is cleared with its session, and its
    partitions move on after the session timeout. aiokafka internals: without them nothing is changed."""
    from aiokafka.consumer import group_coordinator

    coordinator: Any = getattr(group_coordinator, "GroupCoordinator", None)
    if coordinator is None:
        return
    leave = coordinator.__dict__.get("_dealwatch_leave", coordinator.__dict__.get("_maybe_leave_group"))
    if leave is None:
        return
    coordinator._dealwatch_leave = leave
    if not stay:
        coordinator._maybe_leave_group = leave
        return

    async def _maybe_leave_group(self: Any) -> None:
        log.info("stopping without leaving the consumer group (the embedded broker); its session expires")
        self.reset_generation()

    coordinator._maybe_leave_group = _maybe_leave_group
