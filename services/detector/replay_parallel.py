"""Offline replay of an export file, on several cores: each process reads the whole export and replays its own
share of the deals (deals are independent in a replay: each one's time is its own; the compiled engine only checks
another share's line, without making its values), and the parent merges the reports and the messages into exactly
what one process would have produced, in the same order. An export may be gzip-compressed.

Processes are forked, so the detector built in the parent (configuration, lexicon) is shared, not rebuilt; where
the platform cannot fork, the replay runs in one process.
"""

from __future__ import annotations

import gzip
import heapq
import io
import multiprocessing
import os
import signal
import tempfile
import traceback
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import IO, Any, BinaryIO

from services.detector.domain.rules import Detector
from services.detector.replay import Emit, EmitInOrder, ReplayReport, Share, replay_share

Render = Callable[[dict[str, Any]], str]
"""One message as one line of text (without its newline)."""


class ReplayFailed(RuntimeError):
    """A replay process failed; the message holds its traceback."""


class ExportUnreadable(ReplayFailed):
    """The export's bytes could not be read (a truncated or corrupt gzip file, a read error)."""


GZIP_MAGIC = b"\x1f\x8b"


BLOCK = 1 << 20
"""Bytes the compiled engine is given at a time, at most (``ExportLines.blocks``), unless a line is longer."""


class ExportLines(Iterator[bytes]):
    """The lines of an export, read through gzip when it starts as a gzip file does; a failure to read raises
    ``ExportUnreadable`` with the reason (the replay counts bad lines, but cannot go on past bytes it cannot
    read). ``blocks`` gives the same bytes in large pieces, each ending where a line does, for a reader that
    splits them itself (the compiled engine), all read into one buffer (so a piece is good until the next is
    asked for): one or the other is read, not both."""

    def __init__(self, stream: BinaryIO) -> None:
        buffered: Any = stream if hasattr(stream, "peek") else io.BufferedReader(stream)  # type: ignore[type-var]
        self._source: Any = buffered
        if buffered.peek(2)[:2] == GZIP_MAGIC:
            self._source = gzip.GzipFile(fileobj=buffered, mode="rb")
        self._lines: Iterator[bytes] = iter(self._source)

    def __next__(self) -> bytes:
        try:
            return next(self._lines)
        except (OSError, EOFError, zlib.error) as exc:
            raise ExportUnreadable(f"cannot read the export: {exc}") from None

    def blocks(self) -> Iterator[memoryview]:
        # one buffer, filled again for each piece: a piece is good until the next one is asked for
        buffer = bytearray(BLOCK)
        held = 0  # bytes at the buffer's start: the start of a line that goes on in the next read
        while True:
            try:
                with memoryview(buffer) as space:
                    got = self._source.readinto(space[held:])
            except (OSError, EOFError, zlib.error) as exc:
                raise ExportUnreadable(f"cannot read the export: {exc}") from None
            if not got:
                if held:
                    with memoryview(buffer) as view:
                        yield view[:held]
                return
            filled = held + got
            end = buffer.rfind(b"\n", held, filled) + 1
            if not end:  # a line longer than the buffer: a larger one, the line so far kept
                held = filled
                if held == len(buffer):
                    buffer = buffer + bytes(len(buffer))
                continue
            with memoryview(buffer) as view:
                yield view[:end]
            held = filled - end
            buffer[:held] = buffer[end:filled]


def export_lines(stream: BinaryIO) -> ExportLines:
    """The lines of an export (``ExportLines``)."""
    return ExportLines(stream)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def replay_file(
    path: Path,
    detector: Detector,
    *,
    jobs: int,
    until: float | None = None,
    source: str = "generic",
    out: IO[str] | None = None,
    render: Render | None = None,
    progress: Callable[[int], None] | None = None,
    by_deal: bool = False,
) -> ReplayReport:
    """Replay the export at ``path`` with ``jobs`` processes, writing each message, rendered, to ``out``;
    ``by_deal`` keeps what opened for each deal in the report."""
    if out is not None and render is None:
        raise ValueError("render is needed to write messages out")
    if jobs <= 1 or not can_fork():
        write = None if out is None or render is None else writer(out, render)
        with path.open("rb") as stream:
            return replay_share(
                export_lines(stream),
                detector,
                until=until,
                source=source,
                emit=None if write is None else (lambda _line, _then, message: write(message)),
                progress=progress,
                by_deal=by_deal,
            )
    run = _Run(until, source, render if out is not None else None, by_deal)
    with tempfile.TemporaryDirectory(prefix="dealwatch-replay-") as scratch:
        spools = [Path(scratch) / f"share-{i}.tsv" for i in range(jobs)] if out is not None else None
        report = _run_shares(path, detector, jobs, run, spools, progress)
        if out is not None and spools is not None:
            for text in heapq.merge(*(_spooled(spool) for spool in spools), key=lambda m: m[:2]):
                out.write(text[2])
        return report


def writer(out: IO[str], render: Render) -> Emit:
    """An ``emit`` that writes each message to ``out`` as one line."""

    def write(message: dict[str, Any]) -> None:
        out.write(render(message) + "\n")

    return write


@dataclass(frozen=True)
class _Run:
    """What every share of one replay is asked to do."""

    until: float | None
    source: str
    render: Render | None
    by_deal: bool


def _run_shares(
    path: Path,
    detector: Detector,
    jobs: int,
    run: _Run,
    spools: list[Path] | None,
    progress: Callable[[int], None] | None,
) -> ReplayReport:
    context = multiprocessing.get_context("fork")
    lines_read: Synchronized[int] = context.Value("q", 0)  # type: ignore[assignment]
    workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    try:
        for index in range(jobs):
            receive, send = context.Pipe(duplex=False)
            worker: multiprocessing.process.BaseProcess = context.Process(
                target=_replay_one_share,
                args=(path, detector, Share(index, jobs), run, spools, lines_read, send),
                name=f"dealwatch-replay-{index}",
                daemon=True,
            )
            worker.start()
            send.close()
            workers.append((worker, receive))
        return _gather(workers, lines_read, progress)
    finally:
        for worker, receive in workers:
            if worker.is_alive():
                worker.terminate()
            worker.join()
            receive.close()


def _gather(
    workers: list[tuple[multiprocessing.process.BaseProcess, Connection]],
    lines_read: Synchronized[int],
    progress: Callable[[int], None] | None,
) -> ReplayReport:
    total = ReplayReport()
    waiting = {receive: worker for worker, receive in workers}
    shown = 0
    while waiting:
        for ready in wait(list(waiting), timeout=0.5):
            assert isinstance(ready, Connection)
            worker = waiting.pop(ready)
            try:
                outcome, value = ready.recv()
            except EOFError:
                worker.join()
                raise ReplayFailed(
                    f"{worker.name} ended without a report (exit code {worker.exitcode})"
                ) from None
            if outcome == "unreadable":
                raise ExportUnreadable(value)
            if outcome != "ok":
                raise ReplayFailed(f"{worker.name} failed:\n{value}")
            total.add(value)
        if progress is not None and lines_read.value > shown:
            shown = lines_read.value
            progress(shown)
    return total


def _replay_one_share(
    path: Path,
    detector: Detector,
    share: Share,
    run: _Run,
    spools: list[Path] | None,
    lines_read: Synchronized[int],
    send: Connection,
) -> None:
    # an interrupt is the parent's to handle: it stops every share
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:

        def count(n: int) -> None:
            lines_read.value = n

        with ExitStack() as files:
            lines = export_lines(files.enter_context(path.open("rb")))
            emit: EmitInOrder | None = None
            render = run.render
            if spools is not None and render is not None:
                spool = files.enter_context(spools[share.index].open("w", encoding="utf-8"))

                def emit(line: int, then: int, message: dict[str, Any]) -> None:
                    spool.write(f"{line}\t{then}\t{render(message)}\n")

            report = replay_share(
                lines,
                detector,
                until=run.until,
                source=run.source,
                share=share,
                emit=emit,
                by_deal=run.by_deal,
                progress=count if share.first else None,
                exiting=True,
            )
        send.send(("ok", report))
    except ExportUnreadable as exc:
        send.send(("unreadable", str(exc)))
    except BaseException:  # every other failure goes to the parent, which reports it with its traceback
        send.send(("error", traceback.format_exc()))
    finally:
        send.close()


def _spooled(spool: Path) -> Iterator[tuple[int, int, str]]:
    """A share's messages with where each falls in the whole output; each share's file is in that order."""
    with spool.open(encoding="utf-8") as lines:
        for text in lines:
            line, then, message = text.split("\t", 2)
            yield int(line), int(then), message
