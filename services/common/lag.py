"""The broker as an operator sees it: topics, partitions, end offsets, and each consumer group's committed
offsets and lag (like ``kafka-consumer-groups --describe --all-groups``), read with aiokafka's admin client.

:class:`BrokerReader` reads once; :class:`LagMonitor` keeps a recent reading in the background for ``/metrics``
(:class:`LagCollector`) and the dashboard. Group offsets are fetched for explicit partitions: some
Kafka-protocol brokers (Tansu) do not answer an offset fetch for "all partitions".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client.core import GaugeMetricFamily, Metric

log = logging.getLogger(__name__)
TopicFilter = Callable[[str], bool]


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


@dataclass(frozen=True)
class TopicSummary:
    topic: str
    partitions: int
    end_offsets: int


@dataclass(frozen=True)
class BrokerView:
    taken_at: datetime
    ends: dict[tuple[str, int], int]
    """End offset (the next offset to be written) per (topic, partition)."""
    groups: dict[str, str]
    """Consumer group -> its state (``Stable``, ``Empty``, ...; ``""`` when the broker did not say)."""
    lags: list[PartitionLag] = field(default_factory=list)

    def topics(self) -> list[TopicSummary]:
        counts: dict[str, list[int]] = {}
        for (topic, _), end in sorted(self.ends.items()):
            counts.setdefault(topic, []).append(end)
        return [TopicSummary(t, len(ends), sum(ends)) for t, ends in counts.items()]

    def group_lag(self, group: str) -> int:
        return sum(p.lag for p in self.lags if p.group == group)


def prefixed(prefix: str) -> TopicFilter:
    """Topics of one deployment: those with its prefix (every topic when empty), never the broker's own."""
    return lambda topic: topic.startswith(prefix) and not topic.startswith("__")


class BrokerReader:
    """An admin client and a group-less consumer (for end offsets), kept open between readings."""

    def __init__(
        self,
        bootstrap: str,
        topic_filter: TopicFilter | None = None,
        timeout: float = 10.0,
        settle: float = 1.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic_filter = topic_filter or prefixed("")
        self.timeout = timeout
        self.settle = settle
        """How long to wait for the fetch responses that carry the high watermarks."""
        self._admin: Any = None
        self._consumer: Any = None

    async def start(self) -> None:
        ms = int(self.timeout * 1000)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=ms)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=ms,
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=16 * 1024,
        )
        try:
            await admin.start()
            await consumer.start()
        except BaseException:
            await _close(admin, consumer)
            raise
        self._admin, self._consumer = admin, consumer

    async def stop(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        await _close(admin, consumer)

    async def read(self, groups: list[str] | None = None) -> BrokerView:
        """Topics, end offsets and the lag of ``groups`` (every consumer group on the broker when None)."""
        if self._admin is None:
            await self.start()
        admin, consumer = self._admin, self._consumer
        names = sorted(t for t in await admin.list_topics() if self.topic_filter(t))
        partitions = [
            TopicPartition(d["topic"], p["partition"])
            for d in (await admin.describe_topics(names) if names else [])
            if not d.get("error_code")
            for p in d["partitions"]
        ]
        ends = await self._end_offsets(consumer, partitions)
        if groups is None:
            groups = sorted({g[0] for g in await admin.list_consumer_groups() if g[1] in ("consumer", "")})
        states = await _group_states(admin, groups)
        lags = []
        for group in groups:
            if not partitions:
                break
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            for tp, meta in sorted(committed.items()):
                if meta.offset >= 0 and (tp.topic, tp.partition) in ends:
                    lags.append(
                        PartitionLag(
                            group, tp.topic, tp.partition, meta.offset, ends[(tp.topic, tp.partition)]
                        )
                    )
        return BrokerView(datetime.now(UTC), ends, states, lags)

    async def _end_offsets(
        self, consumer: Any, partitions: list[TopicPartition]
    ) -> dict[tuple[str, int], int]:
        """End offsets as the broker lists them, raised to the high watermark of a fetch from there: a broker
        may list the offset after its last *batch* rather than its last record (Tansu does), and a fetch
        response tells the true high watermark."""
        if not partitions:
            return {}
        listed = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, listed[tp])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle
        while loop.time() < deadline:
            await consumer.getmany(timeout_ms=50, max_records=100)  # only for the high watermarks
            if all(consumer.highwater(tp) is not None for tp in partitions):
                break
        return {
            (tp.topic, tp.partition): max(int(listed[tp]), int(consumer.highwater(tp) or 0))
            for tp in partitions
        }


async def _group_states(admin: Any, groups: list[str]) -> dict[str, str]:
    """Each group's state, one DescribeGroups request per group.

    aiokafka (0.14) asks for DescribeGroups v3 but reads the answer with the v2 layout, which lacks v3's
    ``authorized_operations`` after each group: the first group reads right and the rest of the answer is
    misaligned, so describing several groups at once fails in the connection's reader ("Buffer underrun
    decoding string", logged as an unexpected exception, the connection dropped and every state lost). With
    one group per request, the field that layout does not know is the last one of the answer and is never read.
    """
    states = dict.fromkeys(groups, "")
    for group in groups:
        with contextlib.suppress(KafkaError, ValueError, AttributeError):
            for response in await admin.describe_consumer_groups([group]):
                for described in response.groups:
                    states[described[1]] = str(described[2])
    return states


async def _close(*clients: Any) -> None:
    for client in clients:
        if client is None:
            continue
        with contextlib.suppress(Exception):
            if isinstance(client, AIOKafkaAdminClient):
                await client.close()
            else:
                await client.stop()


class LagMonitor:
    """Reads the broker every ``interval`` seconds in the background; :attr:`view` is the latest reading."""

    def __init__(
        self, bootstrap: str, interval: float = 5.0, topic_filter: TopicFilter | None = None
    ) -> None:
        self.reader = BrokerReader(bootstrap, topic_filter, timeout=max(2.0, min(interval * 2, 10.0)))
        self.interval = interval
        self.view: BrokerView | None = None
        self.healthy = False
        self.checked_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_reading())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.reader.stop()

    async def refresh(self) -> BrokerView:
        try:
            view = await asyncio.wait_for(self.reader.read(), timeout=self.reader.timeout * 3)
        except BaseException:
            self.healthy = False
            self.checked_at = datetime.now(UTC)
            await self.reader.stop()  # connect afresh next time
            raise
        self.view, self.healthy, self.checked_at = view, True, view.taken_at
        return view

    async def _keep_reading(self) -> None:
        failures = 0
        while True:
            try:
                await self.refresh()
                failures = 0
            except (KafkaError, OSError, TimeoutError) as exc:
                failures += 1
                if failures == 1:
                    log.warning("cannot read consumer lag from the broker: %s", type(exc).__name__)
            await asyncio.sleep(self.interval if failures == 0 else min(self.interval * 2**failures, 60.0))


class LagCollector:
    """Prometheus gauges from the monitor's latest reading, computed at scrape time (no stale label sets)."""

    def __init__(self, monitor: LagMonitor) -> None:
        self.monitor = monitor

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("dealwatch_broker_up", "1 when the last reading of the broker succeeded")
        up.add_metric([], 1.0 if self.monitor.healthy else 0.0)
        yield up
        view = self.monitor.view
        lag = GaugeMetricFamily(
            "dealwatch_consumer_lag",
            "End offset minus the group's committed offset, per consumer group, topic and partition",
            labels=["group", "topic", "partition"],
        )
        committed = GaugeMetricFamily(
            "dealwatch_consumer_committed_offset",
            "The group's committed offset, per consumer group, topic and partition",
            labels=["group", "topic", "partition"],
        )
        ends = GaugeMetricFamily(
            "dealwatch_topic_end_offset",
            "The next offset to be written (records written so far), per topic and partition",
            labels=["topic", "partition"],
        )
        if view is not None:
            for p in view.lags:
                lag.add_metric([p.group, p.topic, str(p.partition)], float(p.lag))
                committed.add_metric([p.group, p.topic, str(p.partition)], float(p.committed))
            for (topic, partition), end in sorted(view.ends.items()):
                ends.add_metric([topic, str(partition)], float(end))
            checked = GaugeMetricFamily(
                "dealwatch_broker_checked_timestamp_seconds", "When the broker was last read (Unix time)"
            )
            checked.add_metric([], view.taken_at.timestamp())
            yield checked
        yield lag
        yield committed
        yield ends
