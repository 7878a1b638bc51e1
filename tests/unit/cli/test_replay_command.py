import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from dealwatch.cli import cli

NOW = datetime.now(UTC)


def line(deal_id: str, days: float, type: str, **body: object) -> str:
    at = NOW - timedelta(days=days)
    return json.dumps(
        {
            "event_id": f"{deal_id}-{days}",
            "occurred_at": at.isoformat(),
            "type": type,
            "deal": {"id": deal_id, **body.pop("deal", {})},
            **body,
        }
    )  # type: ignore[dict-item]


def export(tmp_path: Path) -> Path:
    path = tmp_path / "history.jsonl"
    path.write_text(
        "\n".join(
            [
                line("A", 8, "deal.created", deal={"owner_id": "u-1", "stage": "proposal", "status": "open"}),
                line("A", 1, "deal.updated", deal={"owner_id": "u-2"}, previous={"owner_id": "u-1"}),
                "{broken",
            ]
        )
        + "\n"
    )
    return path


def test_replay_prints_what_would_have_fired_and_writes_it_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "fired.jsonl"
    result = CliRunner().invoke(cli, ["replay", str(export(tmp_path)), "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["by_kind"] == {"reassigned": 1} and summary["rejected"] == 1
    assert [json.loads(x)["kind"] for x in out.read_text().splitlines()] == ["reassigned"]


def test_replay_refuses_a_time_without_a_zone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["replay", str(export(tmp_path)), "--until", "2026-11-01T00:00:00"])
    assert result.exit_code == 2 and "zone" in result.output


def test_replay_of_an_export_without_valid_events_fails(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("nonsense\n")
    result = CliRunner().invoke(cli, ["replay", str(bad)])
    assert result.exit_code == 1 and "no valid event" in result.output
