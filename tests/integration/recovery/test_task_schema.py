"""Every message the recovery worker puts on the tasks topic validates against the checked-in JSON Schema."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiokafka import AIOKafkaProducer

from schemas import Topics
from services.common.db import make_engine
from services.common.repositories import SqlAlchemyStore
from services.common.settings import Settings
from services.recovery.domain.playbooks import TaskPolicy, build_task, load_playbooks
from services.recovery.worker import run
from tests.conftest import eventually
from tests.helpers import read_topic
from tests.unit.recovery.factories import NOW, activity_logged, interruption, resumed

pytestmark = pytest.mark.integration
SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "json" / "tasks.recovery-tasks.v1.json"


async def test_every_kind_of_task_message_from_a_run_validates_against_the_topic_schema(
    broker_bootstrap: str, created_topics: Topics, db_url: str
) -> None:
    store = SqlAlchemyStore(make_engine(db_url))
    store.create_schema()
    overdue = build_task(interruption(deal_id="D-old"), NOW, TaskPolicy(load_playbooks()))
    with store.transaction() as tx:
        tx.create_task(overdue)
    settings = Settings(
        kafka_bootstrap=broker_bootstrap,
        database_url=db_url,
        managers={"default": "m-9"},
        escalation_interval_seconds=0.1,
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker_bootstrap, acks="all")
    await producer.start()
    stop = asyncio.Event()
    worker = asyncio.create_task(run(settings, created_topics, stop))
    key = b"generic:D-1001"
    try:
        unknown, revised = interruption(cause="unknown"), interruption(cause="budget", revision=1)
        for message in (unknown, revised, resumed(revised)):
            await producer.send_and_wait(
                created_topics.interruptions, message.model_dump_json().encode(), key=key
            )
        at = datetime.now(UTC) + timedelta(minutes=1)
        reply = activity_logged("D-1001", at)

        async def changes() -> set[str]:
            records = await read_topic(broker_bootstrap, created_topics.recovery_tasks)
            return {json.loads(r.value).get("change", "created") for r in records}

        async def created() -> bool:
            return "created" in await changes()

        await eventually(created, what="the task created")
        await producer.send_and_wait(created_topics.deal_changes, reply.model_dump_json().encode(), key=key)
        wanted = {"created", "cause", "recovered", "first_response", "escalated"}

        async def all_kinds() -> bool:
            return wanted <= await changes()

        try:
            await eventually(all_kinds, what=f"messages of every kind {sorted(wanted)}")
        except AssertionError as exc:  # which kind is missing, for whoever chases it
            raise AssertionError(f"{exc}; only {sorted(await changes())} arrived") from None
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)
        await producer.stop()
        store.engine.dispose()

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    records = await read_topic(broker_bootstrap, created_topics.recovery_tasks)
    problems: list[tuple[Any, str]] = [
        (r.offset, e.message) for r in records for e in validator.iter_errors(json.loads(r.value))
    ]
    assert len(records) >= len(wanted) and problems == []
    assert not validator.is_valid({"event": "RecoveryTaskCreated", "schema_version": 1, "task": {"id": "x"}})
