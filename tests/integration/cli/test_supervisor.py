"""The supervisor with real child processes (tiny python programs standing in for the services)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from dealwatch.supervisor import ChildSpec, RestartPolicy, Supervisor
from tests.conftest import eventually

pytestmark = pytest.mark.integration

QUICK = RestartPolicy(initial_delay=0.05, max_delay=0.2, fast_failure_seconds=60.0, max_fast_failures=3)


class Output:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, name: str, line: str) -> None:
        self.lines.append((name, line))

    def of(self, name: str) -> list[str]:
        return [line for who, line in self.lines if who == name]


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


WAIT_FOR_TERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: (print('bye', flush=True), sys.exit(0)))\n"
    "print('hello', flush=True)\n"
    "while True: time.sleep(1)\n"
)


async def test_each_line_of_a_childs_output_is_passed_on_under_its_name() -> None:
    out = Output()
    supervisor = Supervisor(
        [
            ChildSpec("alpha", python(WAIT_FOR_TERM)),
            ChildSpec("beta", python(WAIT_FOR_TERM.replace("hello", "hi"))),
        ],
        out,
        QUICK,
    )
    running = asyncio.create_task(supervisor.run())

    await eventually(lambda: _async("hello" in out.of("alpha") and "hi" in out.of("beta")), what="greetings")
    supervisor.stop()

    assert await running == 0
    assert out.of("alpha") == ["hello", "bye"]
    assert out.of("beta") == ["hi", "bye"]


async def test_a_child_that_dies_is_started_again(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    code = (
        f"import pathlib, sys, time\np = pathlib.Path({str(starts)!r})\n"
        "n = len(p.read_text().splitlines()) if p.exists() else 0\n"
        "p.write_text('start\\n' * (n + 1))\n"
        "if n == 0: sys.exit(7)\n"
        "print('second life', flush=True)\n"
        "while True: time.sleep(1)\n"
    )
    out = Output()
    supervisor = Supervisor([ChildSpec("worker", python(code))], out, QUICK)
    running = asyncio.create_task(supervisor.run())

    await eventually(lambda: _async("second life" in out.of("worker")), what="the restart")
    supervisor.stop()

    assert await running == 0
    assert starts.read_text().count("start") == 2
    assert any("exit code 7" in line and "restarting" in line for line in out.of("worker"))


async def test_the_supervisor_gives_up_on_a_child_that_keeps_failing_fast_and_stops_the_rest() -> None:
    out = Output()
    specs = [
        ChildSpec("broken", python("import sys; print('no config'); sys.exit(3)")),
        ChildSpec("healthy", python(WAIT_FOR_TERM)),
    ]
    supervisor = Supervisor(specs, out, QUICK)

    code = await asyncio.wait_for(supervisor.run(), timeout=60)

    assert code == 1
    assert supervisor.failure is not None
    assert (
        "broken" in supervisor.failure
        and "3 times" in supervisor.failure
        and "exit code 3" in supervisor.failure
    )
    assert out.of("broken").count("no config") == 3
    assert "bye" in out.of("healthy")


async def test_a_child_that_ignores_sigterm_is_killed_after_the_deadline() -> None:
    stubborn = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\nwhile True: time.sleep(1)\n"
    )
    out = Output()
    supervisor = Supervisor([ChildSpec("stubborn", python(stubborn))], out, QUICK, stop_timeout=0.5)
    running = asyncio.create_task(supervisor.run())
    await eventually(lambda: _async("ready" in out.of("stubborn")), what="the child to start")
    pid = supervisor.children[0].pids[-1]

    supervisor.stop()

    assert await running == 0
    assert not alive(pid)
    assert any("killing it" in line for line in out.of("stubborn"))


async def test_children_get_the_environment_they_are_given() -> None:
    out = Output()
    code = "import os, time; print(os.environ['DW_PROBE'], flush=True); time.sleep(600)"
    supervisor = Supervisor(
        [ChildSpec("probe", python(code), {**os.environ, "DW_PROBE": "from-parent"})], out, QUICK
    )
    running = asyncio.create_task(supervisor.run())

    await eventually(lambda: _async(out.of("probe")), what="the child's output")
    supervisor.stop()

    assert await running == 0
    assert out.of("probe")[0] == "from-parent"


async def test_a_missing_program_counts_as_a_failure_and_the_supervisor_gives_up() -> None:
    out = Output()
    supervisor = Supervisor([ChildSpec("ghost", ["/nonexistent/dealwatch-ghost"])], out, QUICK)

    assert await asyncio.wait_for(supervisor.run(), timeout=60) == 1
    assert any("cannot start" in line for line in out.of("ghost"))


async def _async(value: object) -> object:
    return value
