"""T11: the broker frozen (SIGSTOP) under a steady stream of webhooks, then thawed (SIGCONT).

Signed webhooks go out at a fixed rate (open loop: each at its intended time, whatever the answers) to the
ingest service in process, with the detector and the recovery worker running as child processes, all on a
broker of this test's own. While the broker is frozen every webhook must get 503 with Retry-After within the
service's bounded wait (none 202, none hanging); once it is back the service must accept again within 10 s.
The sender then retries what was refused, as a CRM does. Every event answered 202 must be on
``crm.deal-changes.v1``, and the interruptions and tasks must be those of the pure detector over the events as
they reached the topic.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from schemas.topics import Topics
from services.common.broker import EmbeddedBroker, ensure_topics
from services.ingest.web import IngestService
from tests.conftest import eventually
from tests.integration.faults.checks import state_differences, stored_differences, verdict_differences
from tests.integration.faults.conftest import Sizes, drain, stored, topic_records, topic_values
from tests.integration.faults.histories import generic_events
from tests.integration.faults.oracle import expected, observed
from tests.integration.ingest.conftest import ingest_settings, post_generic, running

pytestmark = pytest.mark.integration

SEED = 11
BOUNDED_WAIT = 2.0
"""The service's wait for the broker's acknowledgement (``broker_timeout_seconds``)."""
SLACK = 1.0
"""Allowed on top of the bounded wait for the answer to come back on a loaded machine: none past 3 s."""
HEALTHY_AGAIN = 10.0
RETRY_CONCURRENCY = 32
BEFORE, AFTER = 3.0, 3.0
"""Seconds of traffic before the freeze and after the thaw."""


@dataclass(frozen=True)
class Answer:
    event_id: str
    status: int
    retry_after: str | None
    started: float
    finished: float


async def post(client: httpx.AsyncClient, event: dict[str, Any], answers: list[Answer]) -> Answer:
    started = time.monotonic()
    response = await post_generic(client, event, msg_id=f"msg_{event['event_id']}")
    answer = Answer(
        event["event_id"],
        response.status_code,
        response.headers.get("retry-after"),
        started,
        time.monotonic(),
    )
    answers.append(answer)
    return answer


async def send_at_rate(
    client: httpx.AsyncClient,
    events: list[dict[str, Any]],
    rate: float,
    answers: list[Answer],
    sent: list[int],
) -> None:
    """Open loop: event i goes out at i / rate seconds, without waiting for earlier answers."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    in_flight = []
    for i, event in enumerate(events):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing of the load, not synchronisation
        in_flight.append(asyncio.create_task(post(client, event, answers)))
        sent[0] = i + 1
    await asyncio.gather(*in_flight)


async def test_a_frozen_broker_gets_prompt_503s_and_every_accepted_event_goes_through(
    own_broker: EmbeddedBroker, topics: Topics, sizes: Sizes, sqlite_url: str, pipeline_factory: Any
) -> None:
    bootstrap = own_broker.bootstrap
    await ensure_topics(bootstrap, topics.all(), partitions=3)
    pipeline = pipeline_factory(bootstrap, topics, sqlite_url)
    pipeline.start()
    rate = sizes.outage_rate
    events = generic_events(
        int(rate * (BEFORE + sizes.outage_seconds + AFTER)), seed=SEED, now=datetime.now(UTC)
    )
    by_id = {e["event_id"]: e for e in events}
    answers: list[Answer] = []
    sent = [0]
    service = IngestService(ingest_settings(bootstrap, broker_timeout_seconds=BOUNDED_WAIT), topics)

    async def ready() -> bool:
        return service.ready()

    async with running(service) as client:
        await eventually(ready, what="the ingest service ready")
        sending = asyncio.create_task(send_at_rate(client, events, rate, answers, sent))

        async def traffic_before_the_freeze() -> bool:
            return sent[0] >= rate * BEFORE

        async def accepting_again() -> Answer | None:
            answer = await post(client, events[0], [])
            return answer if answer.status == 202 else None

        try:
            await eventually(traffic_before_the_freeze, timeout=60, what="traffic before the freeze")
            await asyncio.to_thread(own_broker.freeze)
            frozen_at = time.monotonic()
            await asyncio.sleep(sizes.outage_seconds)  # the outage itself
        finally:
            own_broker.thaw()
        thawed_at = time.monotonic()
        back = await eventually(accepting_again, timeout=60, interval=0.2, what="a 202 after the thaw")
        healthy_s = back.finished - thawed_at
        await sending

        first_answers = len(answers)
        slots = asyncio.Semaphore(RETRY_CONCURRENCY)

        async def retry(event: dict[str, Any]) -> Answer:
            async with slots:
                return await post(client, event, answers)

        async def everything_accepted() -> bool:
            accepted = {a.event_id for a in answers if a.status == 202}
            retried = [retry(e) for i, e in by_id.items() if i not in accepted]  # the CRM's retries
            return all(a.status == 202 for a in await asyncio.gather(*retried))

        await eventually(everything_accepted, timeout=120, interval=1.0, what="every event accepted on retry")

    while_frozen = [a for a in answers if frozen_at <= a.started and a.finished <= thawed_at]
    assert len(while_frozen) >= rate * sizes.outage_seconds / 2, (
        "too few webhooks while the broker was frozen"
    )
    assert {a.status for a in while_frozen} == {503}, "a webhook was not refused while the broker was frozen"
    assert all(a.retry_after is not None and int(a.retry_after) >= 1 for a in while_frozen)
    slowest = max(a.finished - a.started for a in answers)
    assert slowest <= BOUNDED_WAIT + SLACK, f"a webhook waited {slowest:.2f}s for its answer"
    assert healthy_s <= HEALTHY_AGAIN, f"accepting again only {healthy_s:.1f}s after the thaw"

    changes = await topic_records(bootstrap, topics.deal_changes)
    on_topic = [json.loads(value)["event_id"] for _, value in changes]
    accepted = {a.event_id for a in answers if a.status == 202}
    assert accepted == set(by_id)
    assert accepted <= set(on_topic), (
        f"accepted but not on the topic: {sorted(accepted - set(on_topic))[:10]}"
    )

    drained_s = await drain(pipeline, bootstrap, topics, timeout=300)
    oracle = expected(changes)
    seen = observed(await topic_values(bootstrap, topics.interruptions))
    problems = verdict_differences(oracle, seen)
    assert not problems, "\n".join(problems)
    assert not seen.repeated(), f"messages said more than once: {list(seen.repeated().items())[:10]}"
    problems, _ = await state_differences(bootstrap, topics, oracle)
    assert not problems, "\n".join(problems)
    db = await asyncio.to_thread(stored, sqlite_url)
    problems = stored_differences(oracle, db)
    assert not problems, "\n".join(problems)
    refused = Counter(a.status for a in answers[:first_answers] if a.status != 202)
    retries = Counter(a.status for a in answers[first_answers:])
    print(
        f"\noutage: {len(events)} events at {rate:g}/s, broker frozen {sizes.outage_seconds:g}s; "
        f"{len(while_frozen)} webhooks while frozen, all 503 + Retry-After; slowest answer {slowest:.2f}s; "
        f"202 again {healthy_s:.1f}s after the thaw; refused {dict(refused)}, retried {dict(retries)}; "
        f"{len(changes)} records on the topic for {len(by_id)} events "
        f"({len(changes) - len(by_id)} refused but kept by the broker, dropped downstream as redeliveries); "
        f"drained {drained_s:.1f}s; {len(oracle.opened)} interruptions, {db.tasks} tasks"
    )
