"""Runs child processes: prefixes their output, restarts the ones that die, stops them all in order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

Emit = Callable[[str, str], None]
"""Where output goes: ``emit(child name, line)``."""

LINE_LIMIT = 1 << 20


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None


@dataclass(frozen=True)
class RestartPolicy:
    """Restart with exponential backoff; give up after ``max_fast_failures`` runs in a row that each died
    within ``fast_failure_seconds`` of starting."""

    initial_delay: float = 0.5
    max_delay: float = 15.0
    fast_failure_seconds: float = 15.0
    max_fast_failures: int = 5

    def after_exit(self, ran_for: float, fast_failures: int) -> tuple[int, float | None]:
        """The new count of fast failures in a row, and the delay before the restart (``None``: give up)."""
        if ran_for >= self.fast_failure_seconds:
            return 0, self.initial_delay
        fast_failures += 1
        if fast_failures >= self.max_fast_failures:
            return fast_failures, None
        return fast_failures, min(self.max_delay, self.initial_delay * 2 ** (fast_failures - 1))


@dataclass
class _Child:
    spec: ChildSpec
    process: asyncio.subprocess.Process | None = None
    pump: asyncio.Task[None] | None = None
    pids: list[int] = field(default_factory=list)


class Supervisor:
    """Keeps every child running until :meth:`stop` is called or one of them keeps failing.

    Children run in their own session, so a Ctrl-C in the terminal reaches only the supervisor, which then
    stops them in order: SIGTERM, ``stop_timeout`` seconds, SIGKILL.
    """

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        emit: Emit,
        policy: RestartPolicy | None = None,
        stop_timeout: float = 20.0,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self.children = [_Child(spec) for spec in specs]
        self.emit = emit
        self.policy = policy or RestartPolicy()
        self.stop_timeout = stop_timeout
        self.on_exit = on_exit
        self.failure: str | None = None
        self._stopping = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Ask every child to stop (safe to call from a signal handler on the loop, and more than once)."""
        self._stopping.set()

    async def wait_stopping(self) -> None:
        await self._stopping.wait()

    async def run(self) -> int:
        """Run until stopped; 0 after :meth:`stop`, 1 when a child kept failing (see :attr:`failure`)."""
        keepers = [asyncio.create_task(self._keep_running(child)) for child in self.children]
        try:
            await self._stopping.wait()
            await self._terminate_all()
            await self._kill_all()
            await asyncio.gather(*keepers, return_exceptions=True)
        finally:
            for task in keepers:
                task.cancel()
            await self._kill_all()
        return 1 if self.failure else 0

    async def _keep_running(self, child: _Child) -> None:
        fast_failures = 0
        while not self.stopping:
            started = time.monotonic()
            try:
                await self._spawn(child)
            except OSError as exc:
                self.emit(child.spec.name, f"cannot start {child.spec.argv[0]}: {exc}")
                code: int | None = None
            else:
                assert child.process is not None
                if self.stopping:
                    _signal(child, signal.SIGTERM)
                code = await child.process.wait()
                await self._drain(child)
                if self.on_exit is not None:
                    self.on_exit(child.process.pid)
            if self.stopping:
                return
            fast_failures, delay = self.policy.after_exit(time.monotonic() - started, fast_failures)
            if delay is None:
                self.failure = (
                    f"{child.spec.name} failed {fast_failures} times in a row, each within "
                    f"{self.policy.fast_failure_seconds:g}s of starting (last exit status {describe(code)}); "
                    "giving up. Its output above says why."
                )
                self.stop()
                return
            self.emit(child.spec.name, f"exited ({describe(code)}); restarting in {delay:g}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def _spawn(self, child: _Child) -> None:
        env = None if child.spec.env is None else dict(child.spec.env)
        process = await asyncio.create_subprocess_exec(
            *child.spec.argv,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            limit=LINE_LIMIT,
        )
        child.process = process
        child.pids.append(process.pid)
        assert process.stdout is not None
        child.pump = asyncio.create_task(self._pump(child.spec.name, process.stdout))

    async def _drain(self, child: _Child) -> None:
        """Wait for the rest of a dead child's output (not for ever: a grandchild may hold the pipe)."""
        if child.pump is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(child.pump, timeout=5.0)

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:
                self.emit(name, "[a line longer than 1 MiB was cut]")
                continue
            if not raw:
                return
            self.emit(name, raw.decode("utf-8", "replace").rstrip("\r\n"))

    def _running(self) -> list[_Child]:
        return [c for c in self.children if c.process is not None and c.process.returncode is None]

    async def _terminate_all(self) -> None:
        running = self._running()
        for child in running:
            _signal(child, signal.SIGTERM)
        waits = [c.process.wait() for c in running if c.process is not None]
        if waits:
            _, pending = await asyncio.wait(
                [asyncio.ensure_future(w) for w in waits], timeout=self.stop_timeout
            )
            for future in pending:
                future.cancel()
        for child in self._running():
            self.emit(child.spec.name, f"did not stop within {self.stop_timeout:g}s; killing it")

    async def _kill_all(self) -> None:
        for child in self._running():
            _signal(child, signal.SIGKILL)
            assert child.process is not None
            with contextlib.suppress(Exception):
                await child.process.wait()


def _signal(child: _Child, sig: signal.Signals) -> None:
    assert child.process is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(child.process.pid, sig)


def describe(code: int | None) -> str:
    if code is None:
        return "did not start"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
