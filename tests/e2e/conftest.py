"""A running ``dealwatch up`` as a child process, on free ports, with its own database and data directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.common.broker import free_port
from tests.conftest import eventually_sync

READY_TIMEOUT = 120.0


@dataclass
class RunningUp:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    data_dir: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 90.0) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"`dealwatch up` exited with {self.process.returncode}:\n{self.output()[-6000:]}"
            )

    def wait_ready(self) -> None:
        def ready() -> bool:
            self.assert_alive()
            try:
                return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            eventually_sync(ready, timeout=READY_TIMEOUT, interval=0.5, what="/readyz of `dealwatch up`")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n--- output of `dealwatch up` ---\n{self.output()[-6000:]}"
            ) from None


StartUp = Callable[..., RunningUp]


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[StartUp]:
    """Starts ``dealwatch up`` with the given extra arguments and environment; stops it after the test."""
    started: list[RunningUp] = []

    def start(*args: str, env: dict[str, str] | None = None) -> RunningUp:
        port = free_port()
        data_dir = tmp_path / "var"
        base = {k: v for k, v in os.environ.items() if not k.startswith("DEALWATCH_")}
        base.update(
            {
                "DEALWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/dealwatch.db",
                "DEALWATCH_DATA_DIR": str(data_dir),
                "DEALWATCH_HTTP_HOST": "127.0.0.1",
            }
        )
        base.update(env or {})
        log_path = tmp_path / "up.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "dealwatch", "up", "--port", str(port), *args],
                cwd=tmp_path,
                env=base,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        running = RunningUp(process, f"http://127.0.0.1:{port}", log_path, data_dir)
        started.append(running)
        running.wait_ready()
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)
            try:
                running.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()
