"""`dealwatch init` against the real broker and both databases; one /metrics for every process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from dealwatch.web import create_web_app
from schemas.topics import Topics
from services.common.db import make_engine
from services.common.settings import load_settings

pytestmark = pytest.mark.integration


def dealwatch(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DEALWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "dealwatch", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_init_creates_every_topic_and_the_database_schema(
    broker_bootstrap: str, db_url: str, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    env = {
        "DEALWATCH_KAFKA_BOOTSTRAP": broker_bootstrap,
        "DEALWATCH_DATABASE_URL": db_url,
        "DEALWATCH_TOPIC_PREFIX": prefix,
    }

    result = dealwatch("init", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    admin = AIOKafkaAdminClient(bootstrap_servers=broker_bootstrap)
    await admin.start()
    try:
        assert set(Topics(prefix).all()) <= set(await admin.list_topics())
    finally:
        await admin.close()
    engine = make_engine(db_url)
    try:
        assert {"interruptions", "tasks", "outbox", "consumed_offsets", "stats"} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()


def test_init_run_twice_changes_nothing_and_succeeds(
    broker_bootstrap: str, sqlite_url: str, tmp_path: Path
) -> None:
    env = {
        "DEALWATCH_KAFKA_BOOTSTRAP": broker_bootstrap,
        "DEALWATCH_DATABASE_URL": sqlite_url,
        "DEALWATCH_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}.",
    }

    assert dealwatch("init", env=env, cwd=tmp_path).returncode == 0
    assert dealwatch("init", env=env, cwd=tmp_path).returncode == 0


def test_init_reports_an_unreachable_database_without_a_traceback(
    broker_bootstrap: str, tmp_path: Path
) -> None:
    env = {
        "DEALWATCH_KAFKA_BOOTSTRAP": broker_bootstrap,
        "DEALWATCH_DATABASE_URL": "postgresql://nobody:hunter2@127.0.0.1:1/none",
        "DEALWATCH_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}.",
    }

    result = dealwatch("init", env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert "database" in result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr


CHILD = """
from prometheus_client import Counter
Counter("dealwatch_standin_events", "events counted by a stand-in worker").inc(7)
"""


def test_metrics_of_every_process_show_in_the_one_metrics_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    subprocess.run([sys.executable, "-c", CHILD], env=env, check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))

    with TestClient(create_web_app(load_settings(), [])) as client:
        text = client.get("/metrics").text

    assert "dealwatch_standin_events_total 7.0" in text
