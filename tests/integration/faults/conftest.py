"""The fault tests' rig: sizes, the workers as child processes, and readings of topics and the database.

``DEALWATCH_FAULT_SCALE=full`` (``make faults``) runs the plan's sizes; the default is the CI size, a few
minutes for all of them on a loaded 2-core machine. ``DEALWATCH_FAULT_LOG_LEVEL=DEBUG`` makes the workers (and
Faust) log everything into their log files under the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import func, select

from schemas.topics import Topics
from services.common.broker import make_producer
from services.common.db import InterruptionRow, TaskRow, make_engine
from services.recovery.worker import group_id as recovery_group
from tests.conftest import eventually
from tests.helpers import read_topic


@dataclass(frozen=True)
class Sizes:
    redelivered_events: int
    """Distinct events of the redelivery test, each delivered three times."""
    crash_events: int
    """Events of the crash test."""
    crash_kills: int
    """How many times each of the detector and the recovery worker is killed."""
    outage_seconds: float
    """How long the broker stays frozen."""
    outage_rate: float
    """Webhooks a second sent during the outage test."""
    db_events: int
    """Events of the database outage test."""
    db_outage_seconds: float
    """How long the database stays down."""


SIZES = {
    "ci": Sizes(
        redelivered_events=1_000,
        crash_events=4_000,
        crash_kills=2,
        outage_seconds=6.0,
        outage_rate=50.0,
        db_events=4_000,
        db_outage_seconds=6.0,
    ),
    "full": Sizes(
        redelivered_events=5_000,
        crash_events=20_000,
        crash_kills=5,
        outage_seconds=30.0,
        outage_rate=100.0,
        db_events=20_000,
        db_outage_seconds=20.0,
    ),
}


@pytest.fixture(scope="session")
def sizes() -> Sizes:
    scale = os.environ.get("DEALWATCH_FAULT_SCALE", "ci")
    if scale not in SIZES:
        pytest.fail(f"DEALWATCH_FAULT_SCALE must be one of {sorted(SIZES)}, not {scale!r}")
    return SIZES[scale]


class Child:
    """A dealwatch worker as a child process of the test, started again after each kill."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name, self.argv, self.env, self.workdir = name, argv, env, workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> None:
        self.starts += 1
        with (self.workdir / f"{self.name}-{self.starts}.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *self.argv],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )

    def kill(self) -> None:
        """SIGKILL to this child's own pid, and wait until it is gone."""
        self.assert_alive()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.kills += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self) -> None:
        if not self.alive():
            raise AssertionError(f"the {self.name} exited:\n{self.output()[-4000:]}")

    def output(self) -> str:
        return "".join(
            f"--- {log.name} ---\n{log.read_text(errors='replace')}"
            for log in sorted(self.workdir.glob(f"{self.name}-*.log"))
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def worker_env(bootstrap: str, topics: Topics, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker: this test's broker, topics and database, nothing from the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALWATCH_")}
    env.update(
        {
            "DEALWATCH_KAFKA_BOOTSTRAP": bootstrap,
            "DEALWATCH_TOPIC_PREFIX": topics.prefix,
            "DEALWATCH_DATABASE_URL": database_url,
            "DEALWATCH_LOG_LEVEL": os.environ.get("DEALWATCH_FAULT_LOG_LEVEL", "WARNING"),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


@dataclass
class Pipeline:
    """The detector (one or more, in one group) and the recovery worker as children, on one broker, topics
    and database."""

    detectors: list[Child]
    recovery: Child

    @property
    def detector(self) -> Child:
        return self.detectors[0]

    def start(self) -> None:
        for detector in self.detectors:
            detector.start()
        self.recovery.start()

    def assert_alive(self) -> None:
        for detector in self.detectors:
            detector.assert_alive()
        self.recovery.assert_alive()

    def stop(self) -> None:
        for detector in self.detectors:
            detector.stop()
        self.recovery.stop()


def make_pipeline(
    bootstrap: str, topics: Topics, database_url: str, workdir: Path, detectors: int = 1, **extra: str
) -> Pipeline:
    """``detectors`` workers in the detector's group; ``extra`` settings (``DEALWATCH_*``) for all of them."""
    env = worker_env(bootstrap, topics, database_url, **extra)
    names = ["detector"] if detectors == 1 else [f"detector-{n + 1}" for n in range(detectors)]
    return Pipeline(
        detectors=[Child(name, ["-m", "services.detector"], env, workdir) for name in names],
        recovery=Child("recovery", ["-m", "dealwatch", "worker", "recovery"], env, workdir),
    )


@pytest.fixture
def pipeline_factory(tmp_path: Path) -> Iterator[Any]:
    """Makes pipelines that are stopped after the test, whatever happened."""
    made: list[Pipeline] = []

    def make(bootstrap: str, topics: Topics, database_url: str, detectors: int = 1, **extra: str) -> Pipeline:
        pipeline = make_pipeline(bootstrap, topics, database_url, tmp_path, detectors, **extra)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.stop()


async def topic_values(bootstrap: str, topic: str, timeout: float = 60.0) -> list[bytes]:
    return [r.value for r in await read_topic(bootstrap, topic, timeout=timeout) if r.value is not None]


async def topic_records(bootstrap: str, topic: str, timeout: float = 60.0) -> list[tuple[int, bytes]]:
    """``(partition, value)`` of every record, each partition in offset order."""
    records = await read_topic(bootstrap, topic, timeout=timeout)
    records.sort(key=lambda r: (r.partition, r.offset))
    return [(r.partition, r.value) for r in records if r.value is not None]


class EndOffsets:
    """End offsets of topics and committed offsets of groups, read cheaply and often (clients kept open)."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=20
        )
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.partitions: dict[str, list[TopicPartition]] = {}

    async def __aenter__(self) -> EndOffsets:
        await self.consumer.start()
        await self.admin.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def _partitions(self, topic: str) -> list[TopicPartition]:
        if topic not in self.partitions:
            (described,) = await self.admin.describe_topics([topic])
            parts = sorted(p["partition"] for p in described["partitions"])
            assert parts, f"{topic} has no partitions ({described})"
            self.partitions[topic] = [TopicPartition(topic, p) for p in parts]
        return self.partitions[topic]

    async def committed(self, group: str, topic: str) -> dict[TopicPartition, int]:
        """The group's committed offsets on ``topic`` (0 for a partition without a commit)."""
        partitions = await self._partitions(topic)
        found = await self.admin.list_consumer_group_offsets(group, partitions=partitions)
        return {tp: max(0, found[tp].offset) if tp in found else 0 for tp in partitions}

    async def total(self, topic: str) -> int:
        """The number of records on ``topic`` (the sum of its true ends). Not the listed ends: those stop at
        the start of each partition's last batch on Tansu, and a test that waits for progress past that point
        (the last interruptions of a partition often come in one batch) waits for ever."""
        return sum((await self.true_ends(topic)).values())

    async def listed_total(self, topic: str) -> int:
        """The sum of the end offsets the broker lists (Tansu: the start of each partition's last batch)."""
        ends = await self.consumer.end_offsets(await self._partitions(topic))
        return int(sum(ends.values()))

    async def true_ends(self, topic: str) -> dict[TopicPartition, int]:
        """End offsets raised to the high watermark a fetch reports: Tansu lists the base offset of a
        partition's last record batch + 1, not the offset after its last record."""
        partitions = await self._partitions(topic)
        listed = await self.consumer.end_offsets(partitions)
        self.consumer.assign(partitions)
        for tp in partitions:
            self.consumer.seek(tp, listed[tp])
        while any(self.consumer.highwater(tp) is None for tp in partitions):
            await self.consumer.getmany(timeout_ms=50, max_records=1)
        return {tp: max(int(listed[tp]), int(self.consumer.highwater(tp) or 0)) for tp in partitions}


@dataclass(frozen=True)
class Stored:
    """What the recovery worker stored."""

    interruptions: dict[str, tuple[str, str, str | None, int, str]]
    """id -> (kind, cause, side, revision, status)."""
    tasks: int
    distinct_task_interruptions: int
    task_interruptions: set[str]


def stored(database_url: str) -> Stored:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    InterruptionRow.id,
                    InterruptionRow.kind,
                    InterruptionRow.cause,
                    InterruptionRow.side,
                    InterruptionRow.revision,
                    InterruptionRow.status,
                )
            ).all()
            count, distinct = conn.execute(
                select(func.count(), func.count(TaskRow.interruption_id.distinct()))
            ).one()
            ids = set(conn.execute(select(TaskRow.interruption_id)).scalars())
    finally:
        engine.dispose()
    return Stored(
        interruptions={r.id: (r.kind, r.cause, r.side, r.revision, r.status) for r in rows},
        tasks=int(count),
        distinct_task_interruptions=int(distinct),
        task_interruptions=ids,
    )


async def produce(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(bootstrap, linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(values), 1000):
            acks = [await producer.send(topic, v, key=k) for k, v in values[start : start + 1000]]
            await asyncio.gather(*acks)
    finally:
        await producer.stop()


def marks(kills: int) -> deque[float]:
    """Progress shares at which to kill: spread out, none at the very start or end (10/30/50/70/90 % for 5)."""
    return deque((k + 0.5) / kills for k in range(kills))


def detector_group(topics: Topics) -> str:
    return f"{topics.prefix}dealwatch-detector"  # the Faust app's id (services/detector/app.py)


async def unfinished(ends: EndOffsets, topics: Topics) -> dict[str, int]:
    """Records not yet committed by the detector (change events) and the recovery worker (interruptions),
    against the topics' true ends; a partition with records and no commit counts whole."""
    left: dict[str, int] = {}
    for group, topic in (
        (detector_group(topics), topics.deal_changes),
        (recovery_group(topics), topics.interruptions),
    ):
        true_ends = await ends.true_ends(topic)
        committed = await ends.committed(group, topic)
        left[group] = sum(max(0, end - committed[tp]) for tp, end in true_ends.items())
    return left


async def drain(pipeline: Pipeline, bootstrap: str, topics: Topics, timeout: float) -> float:
    """Wait until both workers have committed everything there is to read; the seconds it took."""
    started = time.monotonic()
    left: dict[str, int] = {}
    try:
        async with EndOffsets(bootstrap) as ends:

            async def done() -> bool:
                pipeline.assert_alive()
                left.update(await unfinished(ends, topics))
                return not any(left.values())

            await eventually(done, timeout=timeout, interval=0.5, what="the workers to drain")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; records left per group: {left}") from None
    return time.monotonic() - started
