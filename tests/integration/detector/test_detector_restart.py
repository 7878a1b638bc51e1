"""T13: the detector killed (SIGKILL) inside deals' quiet windows and while it fires them.

Every deal goes quiet a few seconds after the test starts (a threshold of a fraction of a day, on a calendar
with no weekends or holidays); a third of them are also reassigned. The worker is killed once after it has
taken in the events but before any deadline, and once more while the quiet verdicts are coming out. After the
last restart every episode must have come out (nothing lost: the deadlines were rebuilt from the table), under
one interruption id per episode (nothing doubled: a verdict sent again after a crash carries the same id), and
the recovery worker must make exactly one task of each.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas import DealChanged
from schemas.topics import Topics
from services.common.broker import make_producer
from services.common.db import make_engine
from services.common.repositories import SqlAlchemyStore, TaskFilter
from services.common.settings import Settings
from tests.conftest import eventually
from tests.helpers import read_topic

pytestmark = pytest.mark.integration

DEALS = 24
QUIET_DAYS = 0.0005  # 43.2 s of working time: long enough to kill the worker before any deadline


class Detector:
    """The detector worker as a child process, started again after each kill, on the same topics."""

    def __init__(self, bootstrap: str, topics: Topics, workdir: Path):
        self.env = {
            **os.environ,
            "DEALWATCH_KAFKA_BOOTSTRAP": bootstrap,
            "DEALWATCH_TOPIC_PREFIX": topics.prefix,
            "DEALWATCH_QUIET_SCAN_INTERVAL": "1",
            "DEALWATCH_QUIET__GRACE_SECONDS": "1",
            "DEALWATCH_QUIET__DEFAULT_DAYS": str(QUIET_DAYS),
            "DEALWATCH_QUIET__BY_STAGE": "{}",
            "DEALWATCH_QUIET__BY_TIER": "{}",
            "DEALWATCH_CALENDAR__COUNTRY": "none",
            "DEALWATCH_CALENDAR__WEEKEND": "[]",
            "DEALWATCH_LOG_LEVEL": "WARNING",
        }
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.workdir / f"detector-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.detector"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the detector had already exited"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def detector(broker_bootstrap: str, created_topics: Topics, tmp_path: Path) -> Iterator[Detector]:
    d = Detector(broker_bootstrap, created_topics, tmp_path)
    yield d
    d.stop()


def history(now: datetime) -> list[DealChanged]:
    events: list[DealChanged] = []
    for i in range(DEALS):
        deal = f"Q-{i:03d}"
        base = {"source": "generic", "deal_id": deal, "received_at": now}
        events.append(
            DealChanged.model_validate(
                {
                    **base,
                    "event_id": f"c-{deal}",
                    "occurred_at": now - timedelta(seconds=5),
                    "type": "deal.created",
                    "deal": {"id": deal, "owner_id": "u-1", "stage": "proposal", "status": "open"},
                }
            )
        )
        if i % 3 == 0:
            events.append(
                DealChanged.model_validate(
                    {
                        **base,
                        "event_id": f"r-{deal}",
                        "occurred_at": now - timedelta(seconds=4),
                        "type": "deal.updated",
                        "deal": {"id": deal, "owner_id": "u-2"},
                        "previous": {"owner_id": "u-1"},
                    }
                )
            )
    return events


async def opened(bootstrap: str, topics: Topics) -> list[dict[str, Any]]:
    records = await read_topic(bootstrap, topics.interruptions)
    messages = [json.loads(r.value) for r in records]
    return [m for m in messages if m.get("event") == "DealInterrupted" and m.get("revision", 0) == 0]


async def test_killed_inside_the_quiet_window_and_while_firing_each_episode_gives_one_interruption_and_task(
    broker_bootstrap: str, created_topics: Topics, detector: Detector, tmp_path: Path
) -> None:
    topics = created_topics
    events = history(datetime.now(UTC))
    expected = {(f"Q-{i:03d}", "went_quiet") for i in range(DEALS)}
    expected |= {(f"Q-{i:03d}", "reassigned") for i in range(0, DEALS, 3)}
    producer = make_producer(broker_bootstrap)
    await producer.start()
    try:
        for ev in events:
            await producer.send_and_wait(
                topics.deal_changes, ev.model_dump_json().encode(), key=ev.key.encode()
            )
    finally:
        await producer.stop()

    # 1. taken in (the reassignments are out), then killed before any deal's deadline
    detector.start()

    async def reassignments_out() -> bool:
        assert detector.alive(), "the detector exited"
        found = await opened(broker_bootstrap, topics)
        return sum(1 for m in found if m["kind"] == "reassigned") == DEALS // 3

    await eventually(reassignments_out, timeout=90, interval=0.3, what="the reassignments")
    assert not [m for m in await opened(broker_bootstrap, topics) if m["kind"] == "went_quiet"], (
        "a deal went quiet before its deadline"
    )
    detector.kill()

    # 2. restarted; killed again as soon as the first quiet verdicts are out
    detector.start()

    async def some_quiet() -> bool:
        assert detector.alive(), "the detector exited"
        found = await opened(broker_bootstrap, topics)
        return any(m["kind"] == "went_quiet" for m in found)

    await eventually(some_quiet, timeout=120, interval=0.2, what="the first quiet verdicts")
    detector.kill()

    # 3. restarted for good: every episode comes out
    detector.start()

    async def all_out() -> list[dict[str, Any]] | None:
        assert detector.alive(), "the detector exited"
        found = await opened(broker_bootstrap, topics)
        return found if {(m["deal_id"], m["kind"]) for m in found} >= expected else None

    found = await eventually(all_out, timeout=120, interval=0.5, what="every episode")
    ids_per_episode: dict[tuple[str, str], set[str]] = {}
    for m in found:
        ids_per_episode.setdefault((m["deal_id"], m["kind"]), set()).add(m["id"])
    assert set(ids_per_episode) == expected, "an interruption the history does not contain"
    doubled = {episode: ids for episode, ids in ids_per_episode.items() if len(ids) != 1}
    assert not doubled, f"episodes with more than one interruption id: {doubled}"

    # the recovery worker makes exactly one task of each episode, whatever was sent twice
    from services.recovery.worker import run

    settings = Settings(
        kafka_bootstrap=broker_bootstrap, database_url=f"sqlite:///{tmp_path / 't13.db'}", topic_partitions=3
    )
    store = SqlAlchemyStore(make_engine(settings.database_url))
    store.create_schema()
    stop = asyncio.Event()
    worker = asyncio.create_task(run(settings, topics, stop))
    try:

        async def every_task() -> list[Any] | None:
            assert not worker.done(), "the recovery worker stopped"
            tasks = (await asyncio.to_thread(store.list_tasks, TaskFilter(), limit=500)).items
            return tasks if len({t.interruption_id for t in tasks}) >= len(expected) else None

        tasks = await eventually(every_task, timeout=60, interval=0.3, what="a task per episode")
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)
        store.engine.dispose()
    per_episode = Counter((t.deal_id, t.kind) for t in tasks)
    assert set(per_episode) == expected
    assert all(count == 1 for count in per_episode.values()), per_episode
    assert len({t.interruption_id for t in tasks}) == len(tasks)
