"""Recovery worker, stats worker and API on one database and the real broker: an interruption becomes a task
that a person moves through the API; the change reaches the tasks topic and the statistics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from schemas import Topics
from services.api.app import create_app
from services.common.settings import Settings
from services.recovery.worker import run as run_recovery
from services.stats.worker import run as run_stats
from tests.conftest import eventually
from tests.helpers import read_topic
from tests.unit.recovery.factories import interruption

pytestmark = pytest.mark.integration
TOKEN = "workers-test-token"


@pytest.fixture
def settings(broker_bootstrap: str, db_url: str) -> Settings:
    return Settings(
        kafka_bootstrap=broker_bootstrap, database_url=db_url, topic_partitions=3, api_token=TOKEN
    )


@pytest.fixture
async def workers(settings: Settings, created_topics: Topics) -> AsyncIterator[list[asyncio.Task[None]]]:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_recovery(settings, created_topics, stop)),
        asyncio.create_task(run_stats(settings, created_topics, stop)),
    ]
    yield tasks
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


@pytest.fixture
async def api(settings: Settings, created_topics: Topics) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, created_topics)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as client:
            yield client


async def test_a_task_moved_through_the_api_reaches_the_tasks_topic_and_the_statistics(
    broker_bootstrap: str,
    created_topics: Topics,
    workers: list[asyncio.Task[None]],
    api: httpx.AsyncClient,
) -> None:
    # Detected now, so that its task is not overdue: no escalation adds a message to the ones expected below.
    i = interruption("went_quiet", "no_response", deal_id="D-77", detected_at=datetime.now(UTC))
    producer = AIOKafkaProducer(bootstrap_servers=broker_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            created_topics.interruptions, i.model_dump_json().encode(), key=i.deal_key.encode()
        )
    finally:
        await producer.stop()

    async def task() -> dict[str, Any] | None:
        items = (await api.get("/api/tasks", params={"source": "generic", "deal_id": "D-77"})).json()["items"]
        return items[0] if items else None

    found = await eventually(task, what="the task in the API")
    assert found["interruption_id"] == i.id
    moved = await api.patch(f"/api/tasks/{found['id']}", json={"status": "in_progress"})
    assert moved.status_code == 200, moved.text

    async def update_published() -> list[dict[str, Any]] | None:
        records = await read_topic(broker_bootstrap, created_topics.recovery_tasks)
        messages = [json.loads(r.value) for r in records]
        return messages if len(messages) == 2 else None

    messages = await eventually(update_published, what="the API's change on the tasks topic")
    assert [(m["event"], m["task"]["status"], m["task"]["version"]) for m in messages] == [
        ("RecoveryTaskCreated", "open", 1),
        ("RecoveryTaskUpdated", "in_progress", 2),
    ]

    async def counted() -> dict[str, int] | None:
        answer = (await api.get("/api/stats", params={"group_by": "kind", "period": "day"})).json()
        counts: dict[str, int] = answer["totals"]["counts"]
        return counts if counts.get("task_in_progress") == 1 else None

    counts = await eventually(counted, what="the statistics following the task")
    # Moving the task is the person's first response: it counts as responded.
    assert {k: v for k, v in counts.items() if v} == {
        "interruptions": 1,
        "tasks": 1,
        "task_in_progress": 1,
        "responded": 1,
    }
    assert not any(w.done() for w in workers)
