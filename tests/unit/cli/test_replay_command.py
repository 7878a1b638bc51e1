import gzip
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


def many_deals(tmp_path: Path) -> Path:
    path = tmp_path / "many.jsonl"
    lines = []
    for n in range(60):
        deal = f"D{n}"
        lines.append(line(deal, 40 + n % 7, "deal.created", deal={"owner_id": "u-1", "stage": "proposal"}))
        if n % 3 == 0:
            lines.append(
                line(deal, 20, "deal.updated", deal={"owner_id": "u-2"}, previous={"owner_id": "u-1"})
            )
        if n % 5 == 0:
            lines.append(line(deal, 2, "activity.logged", activity={"kind": "call", "direction": "inbound"}))
    path.write_text("\n".join([*lines, "{broken", *lines[:10]]) + "\n")
    return path


def test_replay_with_several_processes_prints_and_writes_what_one_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = many_deals(tmp_path)
    until = NOW.isoformat()
    outputs, summaries = [], []
    for jobs in ("1", "3"):
        out = tmp_path / f"fired-{jobs}.jsonl"
        args = ["replay", str(path), "--json", "--until", until, "--out", str(out), "--jobs", jobs]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout[result.stdout.index("{") :])
        assert summary.pop("processes") == int(jobs)
        del summary["seconds"], summary["events_per_second"]
        summaries.append(summary)
        outputs.append(out.read_text())
    assert summaries[0] == summaries[1] and summaries[0]["interruptions"] > 60
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) > 60


def test_replay_from_standard_input_with_several_processes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = many_deals(tmp_path)
    result = CliRunner().invoke(cli, ["replay", "-", "--json", "-j", "2"], input=path.read_bytes())
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["processes"] == 2 and summary["deals"] == 60 and summary["duplicates"] == 10


def test_replay_refuses_a_number_of_processes_it_cannot_use(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for bad in ("0", "many", "-2"):
        result = CliRunner().invoke(cli, ["replay", str(export(tmp_path)), "--jobs", bad])
        assert result.exit_code == 2 and "--jobs" in result.output, result.output


def test_replay_of_a_missing_export_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["replay", str(tmp_path / "nowhere.jsonl")])
    assert result.exit_code == 2 and "nowhere.jsonl" in result.output


def test_replay_reads_a_gzip_compressed_export_as_the_plain_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plain = many_deals(tmp_path)
    packed = tmp_path / "many.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    runs = [
        ["replay", str(plain), "-j", "1"],
        ["replay", str(packed), "-j", "1"],
        ["replay", str(packed), "-j", "2"],
        ["replay", "-", "-j", "1"],
        ["replay", "-", "-j", "2"],
    ]
    found = []
    for args in runs:
        result = CliRunner().invoke(
            cli, [*args, "--json", "--until", NOW.isoformat()], input=packed.read_bytes()
        )
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout[result.stdout.index("{") :])
        found.append(
            {k: v for k, v in summary.items() if k not in ("seconds", "events_per_second", "processes")}
        )
    assert all(f == found[0] for f in found) and found[0]["deals"] == 60


def test_replay_of_a_truncated_gzip_export_fails_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(many_deals(tmp_path).read_bytes() * 20)[:-40])
    for jobs in ("1", "2"):
        result = CliRunner().invoke(cli, ["replay", str(cut), "-j", jobs])
        assert result.exit_code == 1, result.output
        assert "cannot read the export" in result.output and "Traceback" not in result.output


def test_replay_compares_what_another_configuration_would_fire(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = many_deals(tmp_path)
    lenient = tmp_path / "lenient.toml"
    lenient.write_text("[quiet]\ndefault_days = 400\nby_stage = {}\nby_tier = {}\n")
    args = ["replay", str(path), "--until", NOW.isoformat(), "--compare", str(lenient)]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    compared = summary["compared"]
    assert compared["config"] == str(lenient)
    assert summary["by_kind"]["went_quiet"] > 0 and "went_quiet" not in compared["by_kind"]
    assert compared["by_kind"]["reassigned"] == summary["by_kind"]["reassigned"] == 20
    differ = compared["differences"]
    quiet_deals = differ["by_kind"]["went_quiet"]["more_here"]
    assert differ["deals"] == quiet_deals > 0 and list(differ["by_kind"]) == ["went_quiet"]
    assert differ["by_kind"]["went_quiet"]["more_compared"] == 0
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0, table.output
    quiet = summary["by_kind"]["went_quiet"]
    assert f"under {lenient}" in table.stdout
    rows = [r.split()[1:] for r in table.stdout.splitlines() if r.strip().startswith("went_quiet/")]
    assert sum(int(this) for this, _, _ in rows) == quiet
    assert all(compared == "0" and change == f"-{this}" for this, compared, change in rows)
    assert f"went_quiet: {quiet_deals} deals open more here (e.g. generic:D" in table.stdout


def test_replay_compare_refuses_to_write_one_configurations_messages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other.toml"
    other.write_text("")
    args = ["replay", str(export(tmp_path)), "--compare", str(other), "--out", str(tmp_path / "x.jsonl")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--out" in result.output


def test_replay_compare_with_an_invalid_configuration_says_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other.toml"
    other.write_text("quiet = 5\n")
    result = CliRunner().invoke(cli, ["replay", str(export(tmp_path)), "--compare", str(other)])
    assert result.exit_code == 1 and "invalid configuration: quiet" in result.output
