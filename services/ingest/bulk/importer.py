"""Publishing an import: every valid row's events to ``crm.deal-changes.v1`` and every refused row to the dead-letter
topic, in large pipelined batches (acks=all), streaming the file so that memory stays flat whatever its size."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import itertools
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.topics import Topics
from services.common.broker import dlq_headers, ensure_topics
from services.ingest.bulk.rows import (
    CSV_FORMATS,
    Expanded,
    Outcome,
    Record,
    Rejected,
    Rules,
    Skipped,
    csv_records,
    jsonl_records,
    normalize_records,
)
from services.ingest.bulk.snapshots import ExportOptions

Format = Literal["jsonl", "csv", "generic-csv", "hubspot-csv", "pipedrive-csv", "salesforce-csv"]
"""``csv``: the layout is told by the header; the others name it."""
FORMAT_NAMES: tuple[Format, ...] = (
    "jsonl",
    "csv",
    "generic-csv",
    "hubspot-csv",
    "pipedrive-csv",
    "salesforce-csv",
)
assert set(FORMAT_NAMES) == {"jsonl", "csv", *CSV_FORMATS}
FORMATS: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
STAGE = "import"
MAX_EXAMPLES = 5

PRODUCER_SETTINGS: dict[str, Any] = {
    "acks": "all",
    "linger_ms": 50,
    "max_batch_size": 1024 * 1024,
    "max_request_size": 4 * 1024 * 1024,
}
"""Batching of the import's producer (the benchmark's bare producer uses the same): large batches that fill up
while earlier ones are on the wire; acks=all as every producer of the project."""

CHUNK = 2000
"""Rows validated together (by a worker process, when there is one)."""
AHEAD = 3
"""Chunks handed to the workers beyond the one being sent: enough to keep them busy, little memory."""
IN_FLIGHT = 50_000
"""Sends awaiting their acknowledgement before the importer waits for the older half of them."""


OutgoingRecord = tuple[str, bytes, bytes, list[tuple[str, bytes]] | None]
"""Topic, key, value and headers (None for a change event, the ``dlq.*`` headers for a dead letter)."""


class BrokerUnreachable(Exception):
    """The broker could not be reached, or did not acknowledge what the import sent."""


def format_of(path: Path) -> Format | None:
    """The format named by a file's extension (``.jsonl``/``.ndjson``, ``.csv``: the header then tells the
    layout), else None (``.json`` may hold one array rather than a line per event, so it is not guessed)."""
    return FORMATS.get(path.suffix.lower())


def default_workers() -> int:
    """Worker processes that validate while this one sends: two when the machine has a second core (one
    validates about half as fast as this process sends; measured with ``bench/import_bench.py``), else none."""
    return 2 if (os.cpu_count() or 1) > 1 else 0


@dataclass
class ImportReport:
    read: int = 0
    published: int = 0
    dead_lettered: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    layout: str = "jsonl"
    """The format read (``generic-csv``, ``hubspot-csv``, ...; ``jsonl``)."""
    source: str = "generic"
    ignored_columns: tuple[str, ...] = ()
    """Columns of a CRM export that hold nothing dealwatch uses."""
    notes: Counter[str] = field(default_factory=Counter)
    """Rows imported with something left out, by why (``owner_name_not_an_id``)."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Lines that hold no deal by design (``report_footer``): neither read nor refused."""
    events: int = 0
    """Events a dry run would have published."""

    @property
    def valid(self) -> int:
        return self.read - sum(self.rejected.values())

    def refuse(self, row: Rejected) -> None:
        self.rejected[row.reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(row.example())


class KafkaImportSink:
    """A producer that keeps many sends in flight and fails the import on the first one the broker refuses."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        *,
        partitions: int,
        replication: int,
        idempotent: bool,
        timeout_seconds: float,
    ) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._partitions = partitions
        self._replication = replication
        self._timeout = timeout_seconds
        self._idempotent = idempotent
        self._producer: AIOKafkaProducer | None = None
        self._pending: deque[asyncio.Future[Any]] = deque()

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id="dealwatch-import",
            enable_idempotence=self._idempotent,
            request_timeout_ms=max(1000, int(self._timeout * 1000)),
            **PRODUCER_SETTINGS,
        )
        try:
            await ensure_topics(
                self._bootstrap,
                [self._topics.deal_changes, self._topics.dead_letters],
                partitions=self._partitions,
                replication=self._replication,
                timeout=self._timeout,
            )
            await asyncio.wait_for(self._producer.start(), timeout=self._timeout)
        except (TimeoutError, KafkaError, OSError) as exc:
            await self.stop()
            raise BrokerUnreachable(
                f"cannot reach the broker at {self._bootstrap} ({type(exc).__name__})"
            ) from None

    async def send(self, records: Iterable[OutgoingRecord]) -> None:
        """Hand the records to the producer (it batches them); wait only when too many are unacknowledged."""
        assert self._producer is not None, "start() first"
        send, pending = self._producer.send, self._pending
        try:
            for topic, key, value, headers in records:
                pending.append(await send(topic, value, key=key, headers=headers))
        except KafkaError as exc:
            raise BrokerUnreachable(f"the broker refused a record ({type(exc).__name__})") from None
        if len(pending) >= IN_FLIGHT:
            await self._settle(len(pending) - IN_FLIGHT // 2)

    async def flush(self) -> None:
        await self._settle(len(self._pending))

    async def stop(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _settle(self, count: int) -> None:
        done = [self._pending.popleft() for _ in range(count)]
        try:
            await asyncio.gather(*done)
        except KafkaError as exc:
            raise BrokerUnreachable(
                f"the broker did not acknowledge the import ({type(exc).__name__})"
            ) from None


async def import_file(
    path: Path,
    fmt: Format,
    sink: KafkaImportSink | None,
    topics: Topics,
    *,
    source: str | None = None,
    received_at: datetime,
    max_depth: int,
    dead_letters: bool = True,
    workers: int = 0,
    chunk_rows: int = CHUNK,
    progress: Callable[[int, ImportReport], None] | None = None,
    options: ExportOptions | None = None,
) -> ImportReport:
    """Import one file: valid events to ``sink`` (all acknowledged on return), refused rows counted and, with
    ``dead_letters``, dead-lettered; with no sink (a dry run) only validate and count.

    ``source`` defaults to the CRM of an export's layout (its deals then have the keys its webhooks give them),
    else ``generic``; ``options`` say how an export's cells are read (time zone, day order, owner names).
    With ``workers`` > 0, worker processes validate and serialize chunks of rows while this process sends the
    previous ones (order is kept); ``progress`` gets the bytes read so far and the report as it grows."""
    report = ImportReport()
    with path.open("rb") as stream:
        if fmt == "jsonl":
            report.source = source or "generic"
            rules, records = Rules(report.source, received_at, max_depth), jsonl_records(stream)
        else:
            # Named, so that the wrapper (which closes the file when collected) lives as long as the import.
            text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
            header, records = csv_records(text, fmt)
            report.layout, report.ignored_columns = header.format, header.ignored
            report.source = source or (header.layout.source if header.layout else "generic")
            rules = Rules(
                report.source,
                received_at,
                max_depth,
                header.names,
                layout=header.layout.name if header.layout else None,
                columns=header.columns,
                options=options or ExportOptions(),
            )
        chunks = _chunks(records, chunk_rows)
        with _pool(workers) as pool:
            async for outcomes in _normalized(chunks, rules, pool):
                await _publish(outcomes, sink, topics, report, dead_letters=dead_letters)
                if progress is not None:
                    progress(stream.tell(), report)
    if sink is not None:
        await sink.flush()
    return report


async def _publish(
    outcomes: list[Outcome],
    sink: KafkaImportSink | None,
    topics: Topics,
    report: ImportReport,
    *,
    dead_letters: bool,
) -> None:
    records: list[OutgoingRecord] = []
    changes, source = topics.deal_changes, report.source
    report.read += len(outcomes)
    for outcome in outcomes:
        if type(outcome) is tuple:
            records.append((changes, outcome[0], outcome[1], None))
        elif isinstance(outcome, Expanded):
            report.notes.update(outcome.notes)
            records.extend((changes, key, value, None) for key, value in outcome.events)
        elif isinstance(outcome, Skipped):
            report.read -= 1
            report.skipped[outcome.reason] += 1
        elif isinstance(outcome, Rejected):
            report.refuse(outcome)
            if dead_letters:
                key = outcome.deal_key or f"{source}:import-line-{outcome.line}"
                reason = f"{outcome.reason}: line {outcome.line}: {outcome.detail}"
                headers = dlq_headers(reason, source, STAGE)
                records.append((topics.dead_letters, key.encode(), outcome.raw, headers))
    if sink is not None:
        await sink.send(records)
        report.dead_lettered += sum(1 for r in records if r[3] is not None)
        report.published += sum(1 for r in records if r[3] is None)
    else:
        report.events += sum(1 for r in records if r[3] is None)


def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while chunk := list(itertools.islice(records, size)):
        yield chunk


@contextlib.contextmanager
def _pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    if workers <= 0:
        yield None
        return
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _start_worker() -> None:
    """A forked worker freezes what it inherited, so that its collector never walks (and copies) the parent's
    heap, and collects rarely: what it allocates is acyclic and freed as each row is done."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


async def _normalized(
    chunks: Iterator[list[Record]], rules: Rules, pool: ProcessPoolExecutor | None
) -> AsyncIterator[list[Outcome]]:
    """The chunks normalized in file order: inline, or by the pool with a few chunks ahead (bounded memory)."""
    if pool is None:
        for chunk in chunks:
            yield normalize_records(chunk, rules)
        return
    loop = asyncio.get_running_loop()
    ahead: deque[asyncio.Future[list[Outcome]]] = deque()
    try:
        for chunk in chunks:
            ahead.append(loop.run_in_executor(pool, normalize_records, chunk, rules))
            if len(ahead) > AHEAD:
                yield await ahead.popleft()
        while ahead:
            yield await ahead.popleft()
    finally:
        for future in ahead:
            future.cancel()
