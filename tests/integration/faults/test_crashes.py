"""T5: the detector and the recovery worker killed with SIGKILL again and again while they work.

Each deal's history is cut in two. The first halves are on the topic before the workers start (as after an
import, or a backlog); once both workers have committed all of it, the idle detector is killed and started again
(a restart between bursts, as a deployment does), and the second halves follow. While they are processed, each
worker is killed at spread-out points of its own progress (the detector by the interruption messages it
produced, the recovery worker by the tasks it stored) and started again at once. Both run as child processes;
the broker is never restarted (Tansu keeps nothing across its own restart). After both drained, the
interruptions and tasks must be exactly the pure detector's over the same events: none lost, none doubled (a
message sent again after a crash carries the same id and revision; the database keeps one row and one task of
each), and no deal's state forgotten across a restart (the second halves meet the state the first left).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from schemas import DealChanged
from schemas.topics import Topics
from services.common.db import TaskRow, make_engine
from tests.conftest import eventually
from tests.integration.faults.checks import assert_as_the_oracle, tasks_published
from tests.integration.faults.conftest import (
    Child,
    EndOffsets,
    Sizes,
    detector_group,
    drain,
    marks,
    produce,
    topic_records,
    topic_values,
)
from tests.integration.faults.histories import as_change_event, generic_events
from tests.integration.faults.oracle import expected

pytestmark = pytest.mark.integration

SEED = 5


def order_per_deal(values: list[tuple[Any, bytes]]) -> dict[str, list[str]]:
    """Each deal's event ids in order."""
    order: dict[str, list[str]] = defaultdict(list)
    for _, value in values:
        event = json.loads(value)
        order[event["deal_id"]].append(event["event_id"])
    return order


def halves(events: list[DealChanged]) -> tuple[list[DealChanged], list[DealChanged]]:
    """Each deal's first half of events, then each deal's second half; every deal's order kept."""
    per_deal: dict[str, list[DealChanged]] = defaultdict(list)
    for e in events:
        per_deal[e.key].append(e)
    first = [e for history in per_deal.values() for e in history[: (len(history) + 1) // 2]]
    second = [e for history in per_deal.values() for e in history[(len(history) + 1) // 2 :]]
    return first, second


async def test_workers_killed_again_and_again_lose_nothing_and_double_nothing(
    broker_bootstrap: str, created_topics: Topics, sizes: Sizes, pg_url: str, pipeline_factory: Any
) -> None:
    topics = created_topics
    now = datetime.now(UTC)
    events = [as_change_event(e, now) for e in generic_events(sizes.crash_events, seed=SEED, now=now)]
    oracle = expected((0, e.model_dump_json().encode()) for e in events)
    first, second = halves(events)

    def records(part: list[DealChanged]) -> list[tuple[bytes, bytes]]:
        return [(e.key.encode(), e.model_dump_json().encode()) for e in part]

    await produce(broker_bootstrap, topics.deal_changes, records(first))
    messages = sum(oracle.messages.values())
    pipeline = pipeline_factory(broker_bootstrap, topics, pg_url)
    engine = make_engine(pg_url)
    started = time.monotonic()
    kills: list[tuple[str, float, float, list[tuple[int, int]]]] = []
    """(worker, progress, seconds since the start, the detector's committed offsets then)"""

    def tasks_stored() -> int:
        with engine.connect() as conn:
            try:
                return int(conn.execute(select(func.count()).select_from(TaskRow)).scalar_one())
            except Exception:  # the schema is not there yet
                return 0

    try:
        async with EndOffsets(broker_bootstrap) as ends:

            async def kill_and_restart(child: Child, progress: float) -> None:
                child.kill()
                at = round(time.monotonic() - started, 1)
                if child is pipeline.detector:  # where it had got to, for a failure message
                    done = await ends.committed(detector_group(topics), topics.deal_changes)
                    offsets = sorted((tp.partition, o) for tp, o in done.items())
                    kills.append((child.name, round(progress, 3), at, offsets))
                else:
                    kills.append((child.name, round(progress, 3), at, []))
                child.start()

            # 1. the first halves, all committed; the idle detector restarted; then the second halves
            pipeline.start()
            await drain(pipeline, broker_bootstrap, topics, timeout=300)
            produced_before = await ends.total(topics.interruptions)
            tasks_before = await asyncio.to_thread(tasks_stored)
            changelog = f"{topics.prefix}dealwatch-detector-deals-changelog"
            short = await ends.total(changelog) - await ends.listed_total(changelog)
            await kill_and_restart(pipeline.detector, produced_before / messages)
            await produce(broker_bootstrap, topics.deal_changes, records(second))

            # 2. killed at spread-out points of the second halves' progress
            detector_marks, recovery_marks = marks(sizes.crash_kills), marks(sizes.crash_kills)

            async def every_kill_done() -> bool:
                pipeline.assert_alive()
                total = await ends.total(topics.interruptions)
                produced = (total - produced_before) / max(1, messages - produced_before)
                if detector_marks and produced >= detector_marks[0]:
                    detector_marks.popleft()
                    await kill_and_restart(pipeline.detector, total / messages)
                tasks = await asyncio.to_thread(tasks_stored)
                progress = (tasks - tasks_before) / max(1, len(oracle.opened) - tasks_before)
                if recovery_marks and progress >= recovery_marks[0]:
                    recovery_marks.popleft()
                    await kill_and_restart(pipeline.recovery, tasks / len(oracle.opened))
                return not detector_marks and not recovery_marks

            await eventually(every_kill_done, timeout=600, interval=0.05, what="every kill")
    finally:
        engine.dispose()
    changes = await topic_records(broker_bootstrap, topics.deal_changes)
    assert order_per_deal(changes) == order_per_deal(records(events)), "the topic holds other events"
    drained_s = await drain(pipeline, broker_bootstrap, topics, timeout=300)
    total_s = time.monotonic() - started

    said = await topic_values(broker_bootstrap, topics.interruptions)
    _, db = await assert_as_the_oracle(broker_bootstrap, topics, oracle, said, pg_url, f"kills: {kills}")
    created = await tasks_published(broker_bootstrap, topics, oracle)
    print(
        f"\ncrashes: {len(events)} events, {len(oracle.opened)} interruptions ({messages} messages), "
        f"{db.tasks} tasks; kills (worker, progress, s): {kills}; all done in {total_s:.1f}s "
        f"(drain {drained_s:.1f}s); sent again after a crash: {len(said) - messages} interruption messages, "
        f"{sum(created.values()) - len(created)} task-created messages; 0 lost, 0 duplicate rows or tasks; "
        f"at the idle restart the broker listed the changelog {short} records short of its end"
    )
