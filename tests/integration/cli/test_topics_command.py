"""``dealwatch topics`` against the real broker: topics, end offsets and a group's lag in a table."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from click.testing import CliRunner

from dealwatch.cli import cli
from schemas.topics import Topics
from services.common.broker import ensure_topics

pytestmark = pytest.mark.integration


async def group_behind(bootstrap: str, topics: Topics, group: str) -> None:
    """The group consumed and committed 2 records of the interruptions topic; 3 more came after."""
    await ensure_topics(bootstrap, topics.all(), partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    consumer = AIOKafkaConsumer(
        topics.interruptions,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        for n in range(2):
            await producer.send_and_wait(topics.interruptions, b"{}", key=f"k{n}".encode())
        await consumer.start()
        got = 0
        while got < 2:
            got += sum(len(r) for r in (await consumer.getmany(timeout_ms=1000)).values())
        await consumer.commit()
        for n in range(3):
            await producer.send_and_wait(topics.interruptions, b"{}", key=f"k{n}".encode())
    finally:
        await consumer.stop()
        await producer.stop()


def test_topics_shows_end_offsets_and_each_groups_lag(broker_bootstrap: str, tmp_path: Path) -> None:
    topics, group = Topics(prefix=f"t{uuid.uuid4().hex[:10]}."), f"topics-cli-{uuid.uuid4().hex[:6]}"
    asyncio.run(group_behind(broker_bootstrap, topics, group))
    env = {"DEALWATCH_TOPIC_PREFIX": topics.prefix, "COLUMNS": "220", "DEALWATCH_DATA_DIR": str(tmp_path)}

    result = CliRunner().invoke(cli, ["topics", "--bootstrap", broker_bootstrap], env=env)

    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if group in line and "│" in line]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].split("│")[1:-1]]  # GROUP STATE TOPIC PARTITION CURRENT END LAG
    assert cells[0] == group
    assert cells[2:] == [topics.interruptions, "0", "2", "5", "3"]
    assert any(topics.recovery_tasks in line for line in result.output.splitlines())
    assert f"{group} 3" in result.output


def test_topics_watch_refreshes_and_finds_the_broker_of_a_running_up(
    broker_bootstrap: str, tmp_path: Path
) -> None:
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:10]}.")
    asyncio.run(ensure_topics(broker_bootstrap, topics.all(), partitions=2))
    (tmp_path / "broker.bootstrap").write_text(broker_bootstrap + "\n")
    env = {"DEALWATCH_TOPIC_PREFIX": topics.prefix, "COLUMNS": "220", "DEALWATCH_DATA_DIR": str(tmp_path)}

    result = CliRunner().invoke(cli, ["topics", "--watch", "--interval", "0.1", "--count", "3"], env=env)

    assert result.exit_code == 0, result.output
    assert topics.deal_changes in result.output


def test_topics_reports_an_unreachable_broker(tmp_path: Path) -> None:
    from services.common.broker import free_port

    env = {"DEALWATCH_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(cli, ["topics", "--bootstrap", f"127.0.0.1:{free_port()}"], env=env)

    assert result.exit_code == 1
    assert "cannot read the broker" in result.output
