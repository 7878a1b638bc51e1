"""``dealwatch import`` of CRM deal exports on the real broker: the deals land under the keys that the same
CRM's webhooks give them, refused rows are dead-lettered with their reason, and a second import repeats ids."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from dealwatch.cli import cli
from schemas import DealChanged, Topics
from services.ingest.web import IngestService
from tests.helpers import compact, read_topic
from tests.integration.ingest.conftest import BASE_URL, hubspot_headers, running

pytestmark = pytest.mark.integration
EXPORTS = Path(__file__).resolve().parents[2] / "unit" / "ingest" / "exports"


def import_export(name: str, bootstrap: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    path = tmp_path / name
    shutil.copy(EXPORTS / name, path)
    result = CliRunner().invoke(
        cli,
        ["import", str(path), "--bootstrap", bootstrap, "--timezone", "Asia/Tokyo", "--workers", "0", *args],
    )
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, topics: Topics) -> Topics:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEALWATCH_TOPIC_PREFIX", topics.prefix)
    monkeypatch.delenv("DEALWATCH_KAFKA_BOOTSTRAP", raising=False)
    return topics


def test_a_hubspot_export_is_published_under_hubspot_keys_and_its_bad_rows_dead_lettered(
    broker_bootstrap: str, cli_env: Topics, tmp_path: Path
) -> None:
    code, out, err = import_export("hubspot-deals.csv", broker_bootstrap, tmp_path)

    assert code == 0, out + err
    assert "read as hubspot-csv (source hubspot)" in out
    assert "6 rows read; 12 events published" in out
    assert "bad_date" in err and "missing_id" in err and "no_date" in err
    changes = asyncio.run(read_topic(broker_bootstrap, cli_env.deal_changes))
    events = [DealChanged.model_validate_json(r.value) for r in changes]
    assert {r.key for r in changes} == {
        b"hubspot:18273645001",
        b"hubspot:18273645002",
        b"hubspot:18273645003",
    }
    assert all(r.key == e.key.encode() for r, e in zip(changes, events, strict=True))
    northwind = [e.type for e in events if e.deal_id == "18273645001"]
    assert northwind == ["deal.created", *["activity.logged"] * 3, "deal.updated"]  # in time order
    dead = asyncio.run(read_topic(broker_bootstrap, cli_env.dead_letters))
    reasons = sorted(dict(r.headers)["dlq.reason"].split(b":")[0] for r in dead)
    assert reasons == [b"bad_date", b"missing_id", b"no_date"]
    assert {dict(r.headers)["dlq.source"] for r in dead} == {b"hubspot"}
    assert b"hubspot:18273645004" in {r.key for r in dead}


def test_importing_an_export_again_publishes_the_same_event_ids(
    broker_bootstrap: str, cli_env: Topics, tmp_path: Path
) -> None:
    for _ in range(2):
        code, out, err = import_export("pipedrive-deals.csv", broker_bootstrap, tmp_path, "--no-dead-letters")
        assert code == 0, out + err
        assert "3 rows name their owner, not the owner's id" in err

    records = asyncio.run(read_topic(broker_bootstrap, cli_env.deal_changes))
    ids = [json.loads(r.value)["event_id"] for r in records]
    assert len(ids) == 18 and all(ids.count(i) == 2 for i in ids)
    assert not asyncio.run(read_topic(broker_bootstrap, cli_env.dead_letters))


def test_a_salesforce_report_skips_its_footer_and_uses_18_character_ids(
    broker_bootstrap: str, cli_env: Topics, tmp_path: Path
) -> None:
    code, out, err = import_export("salesforce-opportunities-report.csv", broker_bootstrap, tmp_path)

    assert code == 0, out + err
    assert "skipped 5 lines (report_footer)" in out
    keys = {r.key for r in asyncio.run(read_topic(broker_bootstrap, cli_env.deal_changes))}
    assert keys == {
        b"salesforce:0065g00000AbCdEAAV",
        b"salesforce:0065g00000fGHIjAAO",
        b"salesforce:0065g00000KlmnOAAR",
    }


async def test_a_hubspot_webhook_continues_a_deal_imported_from_the_export(
    broker_bootstrap: str, cli_env: Topics, make_service: Callable[..., IngestService], tmp_path: Path
) -> None:
    code, out, err = await asyncio.to_thread(
        import_export, "hubspot-deals.csv", broker_bootstrap, tmp_path, "--no-dead-letters"
    )
    assert code == 0, out + err
    webhook = [
        {
            "eventId": 501,
            "subscriptionId": 9,
            "portalId": 62515,
            "occurredAt": 1793500000000,
            "subscriptionType": "deal.propertyChange",
            "objectId": 18273645001,
            "propertyName": "dealstage",
            "propertyValue": "contractsent",
        }
    ]
    body = compact(webhook)
    async with running(make_service()) as client:
        answer = await client.post(
            "/webhooks/hubspot", content=body, headers=hubspot_headers(body, f"{BASE_URL}/webhooks/hubspot")
        )
    assert answer.status_code == 202, answer.text

    records = await read_topic(broker_bootstrap, cli_env.deal_changes)
    northwind = [r for r in records if r.key == b"hubspot:18273645001"]
    assert len(northwind) == 6
    assert json.loads(northwind[-1].value)["deal"]["stage"] == "contractsent"
