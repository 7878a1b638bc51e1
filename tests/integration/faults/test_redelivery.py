"""T3: every event delivered three times through the signed generic webhook gives what one delivery gives.

The sender behaves like a CRM that retries: each deal's changes go out in order (the next one once the previous
was accepted), and every event is delivered twice more, at random later moments among all the other deliveries,
a quarter of them while the first delivery is still in flight, with the same ``webhook-id`` (a retry) and a fresh
timestamp; 32 deliveries at a time. The ingest service runs in process on the real broker; the detector and the
recovery worker run as child processes. After they drained, the interruptions on the topic, in the database and
the tasks must be exactly those of the pure detector over the events delivered once, in order: nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from schemas.topics import Topics
from services.ingest.web import IngestService
from tests.conftest import eventually
from tests.integration.faults.checks import assert_as_the_oracle, tasks_published
from tests.integration.faults.conftest import Sizes, drain, topic_records, topic_values
from tests.integration.faults.histories import as_change_event, generic_events
from tests.integration.faults.oracle import expected
from tests.integration.ingest.conftest import ingest_settings, post_generic, running

pytestmark = pytest.mark.integration

SEED = 3
CONCURRENCY = 32
IN_FLIGHT_SHARE = 0.25
"""Share of events whose first redelivery is sent while the first delivery is still in flight."""


async def deliver_three_times(
    client: httpx.AsyncClient, events: list[dict[str, Any]], rng: random.Random
) -> list[tuple[str, int]]:
    """Every event three times; (event id, status) of each delivery."""
    slots = asyncio.Semaphore(CONCURRENCY)
    answers: list[tuple[str, int]] = []
    pending: list[dict[str, Any]] = []  # redeliveries not sent yet, taken in random order
    more = asyncio.Event()
    senders_done = False

    async def post(event: dict[str, Any]) -> None:
        async with slots:
            response = await post_generic(client, event, msg_id=f"msg_{event['event_id']}")
        answers.append((event["event_id"], response.status_code))

    async def deal_in_order(history: list[dict[str, Any]]) -> None:
        for event in history:
            first = asyncio.create_task(post(event))
            copies = 2
            if rng.random() < IN_FLIGHT_SHARE:
                retries.append(asyncio.create_task(post(event)))  # same id, while the first is in flight
                copies = 1
            pending.extend([event] * copies)
            more.set()
            await first

    async def redeliver() -> None:
        while True:
            if pending:
                i = rng.randrange(len(pending))
                pending[i], pending[-1] = pending[-1], pending[i]
                await post(pending.pop())
            elif senders_done:
                return
            else:
                more.clear()
                await more.wait()

    by_deal: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_deal[event["deal"]["id"]].append(event)
    retries: list[asyncio.Task[None]] = []
    redelivering = [asyncio.create_task(redeliver()) for _ in range(CONCURRENCY // 2)]
    await asyncio.gather(*(deal_in_order(history) for history in by_deal.values()))
    senders_done = True
    more.set()
    await asyncio.gather(*redelivering, *retries)
    return answers


def first_occurrences(changes: list[tuple[int, bytes]]) -> dict[str, list[str]]:
    """Each deal's event ids in the order of their first record on the topic."""
    order: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for _, value in changes:
        event = json.loads(value)
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            order[event["deal_id"]].append(event["event_id"])
    return order


async def test_every_event_delivered_three_times_gives_what_one_delivery_gives(
    broker_bootstrap: str, created_topics: Topics, sizes: Sizes, sqlite_url: str, pipeline_factory: Any
) -> None:
    topics = created_topics
    now = datetime.now(UTC)
    events = generic_events(sizes.redelivered_events, seed=SEED, now=now)
    oracle = expected((0, as_change_event(e, now).model_dump_json().encode()) for e in events)
    pipeline = pipeline_factory(broker_bootstrap, topics, sqlite_url)
    pipeline.start()

    service = IngestService(ingest_settings(broker_bootstrap), topics)

    async def ready() -> bool:
        return service.ready()

    started = time.monotonic()
    async with running(service) as client:
        await eventually(ready, what="the ingest service ready")
        answers = await deliver_three_times(client, events, random.Random(SEED))
    delivered_s = time.monotonic() - started
    assert Counter(status for _, status in answers) == {202: 3 * len(events)}

    changes = await topic_records(broker_bootstrap, topics.deal_changes)
    assert len(changes) == 3 * len(events), "a delivery answered 202 is not on the topic (or is there twice)"
    in_order: dict[str, list[str]] = defaultdict(list)
    for event in events:
        in_order[event["deal"]["id"]].append(event["event_id"])
    assert first_occurrences(changes) == in_order, "the sender did not keep each deal's changes in order"

    drained_s = await drain(pipeline, broker_bootstrap, topics, timeout=300)
    said = await topic_values(broker_bootstrap, topics.interruptions)
    seen, db = await assert_as_the_oracle(broker_bootstrap, topics, oracle, said, sqlite_url)
    assert not seen.repeated(), f"messages said more than once: {list(seen.repeated().items())[:10]}"
    assert seen.messages == oracle.messages
    created = await tasks_published(broker_bootstrap, topics, oracle)
    assert max(created.values()) == 1, "a task was published as created more than once"
    print(
        f"\nredelivery: {len(events)} events x3 = {len(answers)} deliveries (all 202) in {delivered_s:.1f}s; "
        f"drained {drained_s:.1f}s later; {len(oracle.opened)} interruptions "
        f"({sum(oracle.messages.values())} messages), {db.tasks} tasks, 0 duplicates"
    )
