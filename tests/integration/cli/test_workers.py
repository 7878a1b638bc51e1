"""`dealwatch worker recovery|stats` against the real broker and database: metrics port and a clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from services.common.broker import free_port
from tests.conftest import eventually_sync
from tests.helpers import child_process

pytestmark = pytest.mark.integration


def metrics_answer(url: str) -> str | None:
    try:
        answer = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return answer.text if answer.status_code == 200 else None


@pytest.mark.parametrize("role", ["recovery", "stats"])
def test_a_stream_worker_serves_metrics_on_its_port_and_stops_cleanly_on_sigterm(
    role: str, broker_bootstrap: str, sqlite_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEALWATCH_", "PROMETHEUS_"))}
    env.update(
        {
            "DEALWATCH_KAFKA_BOOTSTRAP": broker_bootstrap,
            "DEALWATCH_DATABASE_URL": sqlite_url,
            "DEALWATCH_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}.",
            "DEALWATCH_METRICS_PORT": str(port),
        }
    )
    with child_process(["-m", "dealwatch", "worker", role], env, tmp_path, "worker.log") as process:
        text = eventually_sync(
            lambda: process.poll() is None and metrics_answer(f"http://127.0.0.1:{port}/metrics"),
            timeout=60,
            interval=0.2,
            what=f"metrics of the {role} worker",
        )
        assert "python_info" in text

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()


@pytest.mark.parametrize("role", ["ingest", "api", "web"])
def test_an_http_worker_becomes_ready_on_its_port_and_stops_cleanly_on_sigterm(
    role: str, broker_bootstrap: str, sqlite_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEALWATCH_", "PROMETHEUS_"))}
    env.update(
        {
            "DEALWATCH_KAFKA_BOOTSTRAP": broker_bootstrap,
            "DEALWATCH_DATABASE_URL": sqlite_url,
            "DEALWATCH_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}.",
            "DEALWATCH_HTTP_PORT": str(port),
            "DEALWATCH_MAX_BODY_BYTES": "1000",
        }
    )
    url = f"http://127.0.0.1:{port}"
    with child_process(["-m", "dealwatch", "worker", role], env, tmp_path, "worker.log") as process:
        eventually_sync(
            lambda: process.poll() is None and metrics_answer(url + "/readyz"),
            timeout=60,
            interval=0.2,
            what=f"readiness of the {role} worker",
        )
        assert httpx.get(url + "/healthz").status_code == 200
        assert "python_info" in httpx.get(url + "/metrics").text
        too_large = httpx.post(
            url + "/webhooks/generic", content=b"x" * 2000, headers={"content-type": "application/json"}
        )
        assert too_large.status_code == 413  # refused on Content-Length, before any route

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()


PARENT = """
import os, subprocess, sys, time
env = dict(os.environ, DEALWATCH_SUPERVISOR_PID=str(os.getpid()))
child = subprocess.Popen([sys.executable, "-m", "dealwatch", "worker", "stats"], env=env)
print(child.pid, flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # exited, waiting to be reaped by whoever adopted it


def test_a_worker_started_by_up_stops_when_up_itself_is_killed(
    broker_bootstrap: str, sqlite_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEALWATCH_", "PROMETHEUS_"))}
    env.update(
        {
            "DEALWATCH_KAFKA_BOOTSTRAP": broker_bootstrap,
            "DEALWATCH_DATABASE_URL": sqlite_url,
            "DEALWATCH_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}.",
            "DEALWATCH_METRICS_PORT": str(port),
        }
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert parent.stdout is not None
    worker_pid = int(parent.stdout.readline())
    try:
        eventually_sync(
            lambda: metrics_answer(f"http://127.0.0.1:{port}/metrics"),
            timeout=60,
            interval=0.2,
            what="the worker to run",
        )

        parent.kill()
        parent.wait()

        eventually_sync(
            lambda: gone(worker_pid), timeout=60, interval=0.2, what="the orphaned worker to stop"
        )
    finally:
        if not gone(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)
