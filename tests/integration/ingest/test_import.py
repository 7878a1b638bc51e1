"""``dealwatch import`` on the real broker: valid rows on the deal changes topic, refused ones dead-lettered."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dealwatch.cli import cli
from schemas import DealChanged, Topics
from services.common.broker import free_port
from services.ingest.bulk.importer import KafkaImportSink, import_file
from tests.helpers import read_topic

pytestmark = pytest.mark.integration


def event(n: int, deal: str) -> dict[str, Any]:
    return {
        "event_id": f"imp-{n}",
        "occurred_at": f"2026-10-{1 + n % 28:02d}T09:00:00+09:00",
        "type": "activity.logged" if n % 2 else "deal.updated",
        "deal": {"id": deal, "stage": "proposal", "owner_id": "u-7"},
        "activity": {"kind": "call", "direction": "outbound"} if n % 2 else None,
    }


def mixed_history(path: Path) -> tuple[set[str], list[bytes]]:
    """40 valid events of 4 deals and 3 invalid lines; the valid event ids and the invalid lines."""
    valid = [json.dumps(event(n, f"D-{n % 4}")).encode() for n in range(40)]
    invalid = [b"{not json", json.dumps({**event(99, "D-9"), "type": "deal.exploded"}).encode(), b"[]"]
    lines = valid[:10] + invalid[:1] + valid[10:30] + invalid[1:] + valid[30:]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return {f"imp-{n}" for n in range(40)}, invalid


async def run_import(bootstrap: str, topics: Topics, path: Path, workers: int = 0) -> Any:
    sink = KafkaImportSink(
        bootstrap, topics, partitions=3, replication=1, idempotent=False, timeout_seconds=10.0
    )
    await sink.start()
    try:
        return await import_file(
            path,
            "jsonl",
            sink,
            topics,
            source="generic",
            received_at=datetime.now(UTC),
            max_depth=32,
            workers=workers,
            chunk_rows=7,  # several chunks, so that the workers' chunks must come back in file order
        )
    finally:
        await sink.stop()


@pytest.mark.parametrize("workers", [0, 2], ids=["inline", "two_worker_processes"])
async def test_an_import_publishes_exactly_the_valid_events_and_dead_letters_the_invalid_lines(
    broker_bootstrap: str, created_topics: Topics, tmp_path: Path, workers: int
) -> None:
    path = tmp_path / "history.jsonl"
    valid_ids, invalid = mixed_history(path)

    report = await run_import(broker_bootstrap, created_topics, path, workers)

    assert (report.read, report.published, report.dead_lettered) == (43, 40, 3)
    assert report.rejected == {"not_json": 1, "invalid_event": 1, "not_an_object": 1}
    changes = await read_topic(broker_bootstrap, created_topics.deal_changes)
    events = [DealChanged.model_validate_json(r.value) for r in changes]
    assert sorted(e.event_id for e in events) == sorted(valid_ids)
    assert all(r.key == e.key.encode() for r, e in zip(changes, events, strict=True))
    by_deal: dict[str, list[str]] = {}
    for e in events:
        by_deal.setdefault(e.key, []).append(e.event_id)
    assert by_deal["generic:D-1"] == [f"imp-{n}" for n in range(1, 40, 4)]  # file order within a deal
    dead = await read_topic(broker_bootstrap, created_topics.dead_letters)
    assert sorted(r.value for r in dead) == sorted(invalid)
    headers = [dict(r.headers) for r in dead]
    assert {h["dlq.stage"] for h in headers} == {b"import"}
    assert {h["dlq.source"] for h in headers} == {b"generic"}
    assert {h["dlq.reason"].split(b":")[0] for h in headers} == {
        b"not_json",
        b"invalid_event",
        b"not_an_object",
    }
    assert [r.key for r in dead if r.value == invalid[1]] == [b"generic:D-9"]


async def test_importing_the_same_file_twice_publishes_the_same_event_ids_under_the_same_keys(
    broker_bootstrap: str, created_topics: Topics, tmp_path: Path
) -> None:
    path = tmp_path / "history.jsonl"
    mixed_history(path)

    await run_import(broker_bootstrap, created_topics, path, workers=2)
    first = {
        (r.key, json.loads(r.value)["event_id"])
        for r in await read_topic(broker_bootstrap, created_topics.deal_changes)
    }
    await run_import(broker_bootstrap, created_topics, path)
    records = await read_topic(broker_bootstrap, created_topics.deal_changes)

    assert len(records) == 80
    pairs = [(r.key, json.loads(r.value)["event_id"]) for r in records]
    assert len(first) == 40
    assert set(pairs) == first
    assert all(pairs.count(p) == 2 for p in first)


def test_the_import_command_reads_csv_and_prints_a_summary_by_reason(
    broker_bootstrap: str, topics: Topics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEALWATCH_TOPIC_PREFIX", topics.prefix)
    monkeypatch.delenv("DEALWATCH_KAFKA_BOOTSTRAP", raising=False)
    path = tmp_path / "export.csv"
    path.write_text(
        "event_id,occurred_at,type,deal_id,stage,amount,activity_kind,activity_text\n"
        "c-1,2026-10-01T09:00:00Z,deal.created,42,proposal,1200000,,\n"
        'c-2,2026-10-02T09:00:00Z,activity.logged,42,,,note,"値引き, 競合A社"\n'
        "c-3,2026-10-03T09:00:00Z,deal.updated,42,,a lot,,\n",
        encoding="utf-8",
    )

    result = CliRunner().invoke(
        cli, ["import", str(path), "--bootstrap", broker_bootstrap, "--source", "legacy"]
    )

    assert result.exit_code == 0, result.output
    assert "3 rows read; 2 events published" in result.output
    assert "invalid_event" in result.output and "line 4" in result.output
    changes = asyncio.run(read_topic(broker_bootstrap, topics.deal_changes))
    assert sorted((r.key, json.loads(r.value)["event_id"]) for r in changes) == [
        (b"legacy:42", "c-1"),
        (b"legacy:42", "c-2"),
    ]
    [dead] = asyncio.run(read_topic(broker_bootstrap, topics.dead_letters))
    assert dead.value == b"c-3,2026-10-03T09:00:00Z,deal.updated,42,,a lot,,\n"


def test_a_dry_run_publishes_nothing_and_needs_no_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEALWATCH_KAFKA_BOOTSTRAP", raising=False)
    path = tmp_path / "history.jsonl"
    mixed_history(path)

    result = CliRunner().invoke(cli, ["import", str(path), "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "dry run: 43 rows read, 40 valid; nothing published" in result.output


def test_an_import_without_a_broker_says_how_to_get_one_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DEALWATCH_KAFKA_BOOTSTRAP", raising=False)
    path = tmp_path / "history.jsonl"
    mixed_history(path)

    unconfigured = CliRunner().invoke(cli, ["import", str(path)])
    unreachable = CliRunner().invoke(cli, ["import", str(path), "--bootstrap", f"127.0.0.1:{free_port()}"])

    assert unconfigured.exit_code == 1 and "dealwatch up" in unconfigured.output
    assert "--bootstrap HOST:PORT" in unconfigured.output
    assert unreachable.exit_code == 1 and "cannot reach the broker" in unreachable.output


def test_a_file_with_no_valid_event_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "junk.jsonl"
    path.write_bytes(b"nope\n[]\n")

    result = CliRunner().invoke(cli, ["import", str(path), "--dry-run"])

    assert result.exit_code == 1
    assert "no valid event in junk.jsonl" in result.output
