"""The fixed event set through the real broker, the stats worker and ``GET /api/stats``: the answer matches the
hand-computed expectation, survives a restart, and is rebuilt from offset 0 when the statistics are lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from schemas import Topics
from services.api.app import create_app
from services.common.db import make_engine
from services.common.settings import Settings
from services.common.stats_repository import SqlAlchemyStatsStore
from services.stats.worker import GROUP_ID, run
from tests.conftest import eventually
from tests.unit.stats.fixed_events import (
    EXPECTED_AVERAGES,
    EXPECTED_BY_MONTH_AND_CAUSE,
    EXPECTED_RATES,
    EXPECTED_TOTALS,
    fixed_events,
)

pytestmark = pytest.mark.integration
TOKEN = "stats-test-token"


@pytest.fixture
def settings(broker_bootstrap: str, db_url: str) -> Settings:
    return Settings(
        kafka_bootstrap=broker_bootstrap, database_url=db_url, topic_partitions=3, api_token=TOKEN
    )


@pytest.fixture
def stats(settings: Settings) -> Iterator[SqlAlchemyStatsStore]:
    store = SqlAlchemyStatsStore(make_engine(settings.database_url))
    store.create_schema()
    yield store
    store.engine.dispose()


async def publish(bootstrap: str, topics: Topics, messages: list[Any]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for m in messages:
            topic = topics.recovery_tasks if hasattr(m, "task") else topics.interruptions
            key = (m.task.deal_key if hasattr(m, "task") else m.deal_key).encode()
            await producer.send_and_wait(topic, m.model_dump_json().encode(), key=key)
    finally:
        await producer.stop()
    return len(messages)


@asynccontextmanager
async def stats_worker(settings: Settings, topics: Topics) -> AsyncIterator[None]:
    stop = asyncio.Event()
    worker = asyncio.create_task(run(settings, topics, stop))
    try:
        yield
        assert not worker.done(), worker.exception() if worker.done() else None
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)


@asynccontextmanager
async def api(settings: Settings, topics: Topics) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"kafka_bootstrap": None}), topics)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            yield client


async def caught_up(stats: SqlAlchemyStatsStore, topics: Topics, published: int) -> None:
    async def done() -> bool:
        offsets = await asyncio.to_thread(
            stats.load_offsets, GROUP_ID, [topics.interruptions, topics.recovery_tasks]
        )
        return sum(offsets.values()) == published

    await eventually(done, what=f"the stats worker storing offsets of all {published} messages")


async def answer_matches_the_hand_computed_expectation(client: httpx.AsyncClient) -> None:
    for period in ("day", "week", "month"):
        response = await client.get("/api/stats", params={"period": period})
        assert response.status_code == 200, response.text
        totals = response.json()["totals"]
        assert {k: v for k, v in totals["counts"].items() if v} == {
            k: v for k, v in EXPECTED_TOTALS.items() if k != "first_response_seconds"
        }, period
        assert {k: totals["rates"][k] for k in EXPECTED_RATES} == pytest.approx(EXPECTED_RATES)
        assert totals["averages"] == pytest.approx(EXPECTED_AVERAGES)
    by_cause = (await client.get("/api/stats", params={"group_by": "period,cause"})).json()
    table = {
        (i["group"]["period"], i["group"]["cause"]): {k: v for k, v in i["counts"].items() if v}
        for i in by_cause["items"]
    }
    assert table == {
        key: {k: v for k, v in counts.items() if k != "first_response_seconds"}
        for key, counts in EXPECTED_BY_MONTH_AND_CAUSE.items()
    }


async def test_statistics_of_the_fixed_event_set_match_survive_a_restart_and_are_rebuilt_when_lost(
    settings: Settings, created_topics: Topics, stats: SqlAlchemyStatsStore, broker_bootstrap: str
) -> None:
    published = await publish(broker_bootstrap, created_topics, fixed_events())
    async with stats_worker(settings, created_topics):
        await caught_up(stats, created_topics, published)
    async with api(settings, created_topics) as client:
        await answer_matches_the_hand_computed_expectation(client)

    # A restarted worker continues where the database says: redeliveries of everything change nothing.
    published += await publish(broker_bootstrap, created_topics, fixed_events())
    async with stats_worker(settings, created_topics):
        await caught_up(stats, created_topics, published)
        async with api(settings, created_topics) as client:
            await answer_matches_the_hand_computed_expectation(client)

            # Lost while running: the worker notices at its next batch and reads the topics from offset 0.
            await asyncio.to_thread(stats.reset, GROUP_ID)
            empty = (await client.get("/api/stats")).json()["totals"]["counts"]
            assert set(empty.values()) == {0}
            published += await publish(broker_bootstrap, created_topics, fixed_events()[:1])
            await caught_up(stats, created_topics, published)
            await answer_matches_the_hand_computed_expectation(client)

    # Lost while stopped (an empty database): rebuilt from offset 0 at start.
    await asyncio.to_thread(stats.reset, GROUP_ID)
    async with stats_worker(settings, created_topics):
        await caught_up(stats, created_topics, published)
    async with api(settings, created_topics) as client:
        await answer_matches_the_hand_computed_expectation(client)
        recent = await client.get("/api/stats", params={"period": "day", "since": "2026-11-02"})
        assert recent.json()["since"] == "2026-11-02"
        assert recent.json()["totals"]["counts"]["interruptions"] == 3  # B, C (11-02) and G (11-03)
