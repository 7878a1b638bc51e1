"""``dealwatch import`` against a bare producer, on the same embedded broker in the same run.

    .venv/bin/python bench/import_bench.py [--events N] [--format jsonl|csv]

It writes N generated generic events to a file, imports the file through the real import code path (read,
strict parse, validate, normalize, serialize, publish acks=all with the importer's batching), then sends the
same N events, already serialized, with a bare aiokafka producer (acks=all, the same batching settings) to a
topic of its own. Lines ``name=value`` are the figures; lines starting with ``#`` are notes.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402

from schemas.topics import Topics  # noqa: E402
from services.common.broker import EmbeddedBroker, ensure_topics  # noqa: E402
from services.ingest.bulk.importer import (  # noqa: E402
    PRODUCER_SETTINGS,
    Format,
    KafkaImportSink,
    default_workers,
    import_file,
)
from services.ingest.bulk.rows import CSV_COLUMNS, read_csv, read_jsonl  # noqa: E402

PARTITIONS = 3  # Settings.topic_partitions
STAGES = ["lead", "qualification", "proposal", "negotiation", "contract"]
TEXTS = [
    "先方、競合A社の値引き提案を検討中とのこと",
    "Called the buyer; budget review moved to next quarter",
    "Sent the revised quote and the implementation plan",
    "担当者が異動のため、後任の方を紹介いただく予定",
]


def generated_events(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """A plausible CRM history: deals created, updated, with activities and contact changes."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    deals = max(1, n // 20)
    for i in range(n):
        deal = rng.randrange(deals)
        kind = rng.random()
        event: dict[str, Any] = {
            "event_id": f"bench-{i}",
            "occurred_at": (start + timedelta(minutes=i)).isoformat(),
            "type": "deal.updated",
            "deal": {
                "id": f"D-{deal}",
                "name": f"Deal {deal} {rng.randrange(10, 400)} seats",
                "stage": rng.choice(STAGES),
                "status": "open",
                "amount": rng.randrange(100, 50_000) * 1000,
                "currency": "JPY",
                "close_date": (start + timedelta(days=90 + deal % 60)).date().isoformat(),
                "owner_id": f"u-{deal % 40}",
                "account_id": f"A-{deal % 500}",
                "account_tier": rng.choice(["key", "standard", "small"]),
            },
        }
        if kind < 0.5:
            event["type"] = "activity.logged"
            event["activity"] = {
                "kind": rng.choice(["note", "call", "email", "meeting"]),
                "direction": rng.choice(["inbound", "outbound", "internal"]),
                "text": rng.choice(TEXTS),
            }
        elif kind < 0.6:
            event["type"] = "contact.changed"
            event["contact"] = {"id": f"C-{deal}", "name": "Sato", "title": "部長", "change": "left_company"}
        elif kind < 0.7:
            event["previous"] = {"owner_id": f"u-{(deal + 1) % 40}"}
        yield event


def write_jsonl(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for event in generated_events(n):
            out.write(json.dumps(event, ensure_ascii=False) + "\n")


def write_csv(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for event in generated_events(n):
            cells: dict[str, Any] = {k: event[k] for k in ("event_id", "occurred_at", "type")}
            deal = event["deal"]
            cells.update(
                {("deal_id" if k == "id" else "deal_name" if k == "name" else k): v for k, v in deal.items()}
            )
            for part in ("previous", "activity", "contact"):
                for k, v in event.get(part, {}).items():
                    cells[f"{part}_{k}"] = v
            writer.writerow([cells.get(c, "") for c in CSV_COLUMNS])


def serialized(path: Path, fmt: Format) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs the import publishes, computed before the bare producer's clock starts."""
    now = datetime.now(UTC)
    with path.open("rb") as stream:
        rows = (
            read_jsonl(stream, source="generic", received_at=now, max_depth=32)
            if fmt == "jsonl"
            else read_csv((line.decode("utf-8") for line in stream), source="generic", received_at=now)
        )
        return [(r.key.encode(), r.model_dump_json().encode()) for r in rows if not hasattr(r, "reason")]


async def run_import(bootstrap: str, path: Path, fmt: Format, topics: Topics) -> float:
    sink = KafkaImportSink(
        bootstrap, topics, partitions=PARTITIONS, replication=1, idempotent=False, timeout_seconds=30.0
    )
    await sink.start()
    try:
        started = time.perf_counter()
        report = await import_file(
            path,
            fmt,
            sink,
            topics,
            source="generic",
            received_at=datetime.now(UTC),
            max_depth=32,
            workers=default_workers(),
        )
        elapsed = time.perf_counter() - started
    finally:
        await sink.stop()
    assert report.published == report.read, (report.published, report.read)
    return elapsed


async def run_raw(bootstrap: str, records: list[tuple[bytes, bytes]], topic: str) -> float:
    await ensure_topics(bootstrap, [topic], partitions=PARTITIONS)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=30_000, **PRODUCER_SETTINGS)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="import and bare producer, alternately; the medians are reported",
    )
    args = parser.parse_args()
    fmt: Format = args.format
    import_times: list[float] = []
    raw_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="dealwatch-import-bench-") as tmp:
        path = Path(tmp) / f"history.{fmt}"
        (write_jsonl if fmt == "jsonl" else write_csv)(path, args.events)
        records = serialized(path, fmt)
        assert len(records) == args.events, (len(records), args.events)
        broker = EmbeddedBroker(log_path=Path(tmp) / "tansu.log").start()
        try:
            for round_ in range(args.rounds):
                topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.")
                first_import = round_ % 2 == 0
                if first_import:
                    import_times.append(asyncio.run(run_import(broker.bootstrap, path, fmt, topics)))
                raw_times.append(asyncio.run(run_raw(broker.bootstrap, records, f"{topics.prefix}raw")))
                if not first_import:
                    import_times.append(asyncio.run(run_import(broker.bootstrap, path, fmt, topics)))
                print(
                    f"# round {round_ + 1}: import {args.events / import_times[-1]:.0f}/s, "
                    f"bare producer {args.events / raw_times[-1]:.0f}/s; load {os.getloadavg()[0]:.2f}"
                )
        finally:
            broker.stop()
    import_rate = args.events / statistics.median(import_times)
    raw_rate = args.events / statistics.median(raw_times)
    print(f"# {args.events} events, {fmt}; {os.cpu_count()} cpus; medians of {args.rounds} rounds")
    print(f"# producer settings: {PRODUCER_SETTINGS}; import worker processes: {default_workers()}")
    print(f"events={args.events}")
    print(f"import_events_per_s={import_rate:.0f}")
    print(f"raw_producer_events_per_s={raw_rate:.0f}")
    print(f"import_over_raw_producer={import_rate / raw_rate:.3f}")


if __name__ == "__main__":
    main()
