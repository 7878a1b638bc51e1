"""``dealwatch up`` around stand-in services: broker, topics, schema, secrets, readiness and a clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from schemas.topics import Topics
from services.common.broker import free_port, port_open
from tests.conftest import eventually_sync

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).with_name("standin_up.py")


@pytest.fixture
def up_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALWATCH_")}
    env.update(
        {
            "DEALWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/dealwatch.db",
            "DEALWATCH_DATA_DIR": str(tmp_path / "var"),
            "DW_ENV_DUMP": str(tmp_path / "child-env.json"),
        }
    )
    port = free_port()
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    yield process, tmp_path, port
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()


def output(tmp_path: Path) -> str:
    return (tmp_path / "up.log").read_text()


def child_env(tmp_path: Path) -> dict[str, str]:
    env: dict[str, str] = json.loads((tmp_path / "child-env.json").read_text())
    return env


async def list_topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def test_up_prepares_broker_topics_and_database_then_runs_its_children_until_sigint(
    up_process: tuple[subprocess.Popen[bytes], Path, int],
) -> None:
    process, tmp_path, port = up_process

    eventually_sync(lambda: "dealwatch is ready" in output(tmp_path), timeout=90, what="`up` to be ready")
    env = child_env(tmp_path)
    bootstrap = env["DEALWATCH_KAFKA_BOOTSTRAP"]

    assert set(Topics().all()) <= asyncio.run(list_topics(bootstrap))
    with sqlite3.connect(tmp_path / "dealwatch.db") as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
    assert {"interruptions", "tasks", "outbox", "consumed_offsets"} <= tables
    assert env["DEALWATCH_HTTP_PORT"] == str(port)
    assert env["DEALWATCH_GENERIC_SECRET"].startswith("whsec_")
    assert env["DEALWATCH_API_TOKEN"] in output(tmp_path)
    assert os.path.isdir(env["PROMETHEUS_MULTIPROC_DIR"])
    secrets_file = tmp_path / "var" / "dev-secrets.env"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert f"DEALWATCH_API_TOKEN={env['DEALWATCH_API_TOKEN']}" in secrets_file.read_text()
    assert "stand-in worker running" in output(tmp_path)
    host, _, broker_port = bootstrap.rpartition(":")

    process.send_signal(signal.SIGINT)

    assert process.wait(timeout=60) == 0
    assert "all services stopped" in output(tmp_path)
    assert "embedded broker stopped" in output(tmp_path)
    assert not port_open(host, int(broker_port))
    assert not port_open("127.0.0.1", port)
    assert not os.path.exists(env["PROMETHEUS_MULTIPROC_DIR"])


def test_up_stops_cleanly_on_sigterm_too(up_process: tuple[subprocess.Popen[bytes], Path, int]) -> None:
    process, tmp_path, port = up_process
    eventually_sync(lambda: "dealwatch is ready" in output(tmp_path), timeout=90, what="`up` to be ready")

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=60) == 0
    assert not port_open("127.0.0.1", port)
