"""The last records of the table's changelog, which Faust's recovery can leave out on some brokers.

Faust recovers a table up to the end offset the broker lists for each changelog partition, less one. Tansu (the
embedded broker) lists the base offset of a partition's last record batch + 1, not the offset after its last
record, so a restarted detector could stop short of the newest states the previous one wrote: deals whose last
state was in that batch would go on from an older one, their later events already committed. Here those records
are read again, up to the end a fetch reports (the true one), and applied over the recovered store in changelog
order. On a broker that lists true end offsets this reads one record, already applied, and applies it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, MutableMapping

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)


async def read_changelog_to_end(
    bootstrap: str,
    topic: str,
    partitions: Iterable[int],
    store: MutableMapping[bytes, bytes],
    timeout: float = 30.0,
) -> int:
    """Apply to ``store`` every record of ``topic``'s ``partitions`` from the last listed batch to the true end;
    the number of them past the listed end (which Faust's recovery may have left out)."""
    tps = [TopicPartition(topic, p) for p in sorted(set(partitions))]
    if not tps:
        return 0
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    past_listed = 0
    try:
        consumer.assign(tps)
        listed = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(0, listed[tp] - 1))
        pending = set(tps)
        async with asyncio.timeout(timeout):
            while pending:
                fetched = await consumer.getmany(*pending, timeout_ms=200)
                for tp, records in fetched.items():
                    for record in records:
                        if record.key is None:
                            continue
                        if record.value is None:
                            store.pop(record.key, None)
                        else:
                            store[record.key] = record.value
                        past_listed += record.offset >= listed[tp]
                for tp in list(pending):
                    end = consumer.highwater(tp)
                    if end is not None and await consumer.position(tp) >= end:
                        pending.discard(tp)
    finally:
        await consumer.stop()
    if past_listed:
        log.info("detector: %d records of %s past its listed end applied to the table", past_listed, topic)
    return past_listed
