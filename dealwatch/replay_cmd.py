"""``dealwatch replay FILE``: what the detector would have found in a history export, under this configuration."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

import click

from dealwatch.cli import CONTEXT, cli, settings_or_exit


def _write_line(sink: IO[str], message: dict[str, Any]) -> None:
    sink.write(json.dumps(message, ensure_ascii=False) + "\n")


def _until(value: str) -> float:
    if value == "now":
        return time.time()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            "use 'now' or an ISO-8601 time with a zone, e.g. 2026-11-01T00:00:00+09:00"
        ) from None
    if moment.tzinfo is None:
        raise click.BadParameter("the time needs a zone (Z or +09:00)")
    return moment.timestamp()


@cli.command(context_settings=CONTEXT)
@click.argument("export", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--until",
    "until",
    default="now",
    show_default=True,
    help="Fire the quiet deadlines still pending up to this time ('now' or ISO-8601).",
)
@click.option(
    "--source",
    default="generic",
    show_default=True,
    help="Source of events whose line names none (the deal key is source:deal id).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write every interruption (and revision and resumption) as JSON lines here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of a table.")
def replay(export: Path, until: str, source: str, out: Path | None, as_json: bool) -> None:
    """Replay a history export (JSONL of generic events) through the detector, offline.

    Uses the same rules and configuration as the running detector (dealwatch.toml, DEALWATCH_*), with time
    simulated from each event's occurred_at, so a team can tune thresholds before going live. Reads '-' as
    standard input. Nothing is sent anywhere.
    """
    from services.detector.replay import replay as run_replay
    from services.detector.wiring import build_detector

    settings = settings_or_exit()
    detector = build_detector(settings)
    horizon = _until(until)
    sink: IO[str] | None = out.open("w", encoding="utf-8") if out else None
    emit = None if sink is None else partial(_write_line, sink)
    started = time.monotonic()
    stream = sys.stdin.buffer if str(export) == "-" else export.open("rb")

    def progress(n: int) -> None:
        if n % 100_000 == 0:
            rate = n / max(time.monotonic() - started, 1e-9)
            click.echo(f"  {n:,} lines, {rate:,.0f}/s", err=True)

    try:
        report = run_replay(stream, detector, until=horizon, source=source, emit=emit, progress=progress)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
        if sink is not None:
            sink.close()
    elapsed = time.monotonic() - started
    summary: dict[str, Any] = {
        **report.summary(),
        "seconds": round(elapsed, 3),
        "events_per_second": round(report.events / elapsed) if elapsed else None,
    }
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=1))
    else:
        _table(summary, report.first_rejections)
    if report.events == 0:
        raise click.ClickException("no valid event in the export")


def _table(summary: dict[str, Any], rejections: list[str]) -> None:
    click.echo(
        f"{summary['events']:,} events of {summary['deals']:,} deals in {summary['seconds']}s "
        f"({summary['events_per_second'] or 0:,}/s); {summary['duplicates']:,} duplicates"
    )
    click.echo(f"{summary['interruptions']:,} interruptions would have fired:")
    for name, n in summary["by_kind_and_cause"].items():
        click.echo(f"  {name:<40} {n:>8,}")
    click.echo(f"revised {summary['revised']:,}, resumed {summary['resumed']:,}")
    if summary["rejected"]:
        click.echo(f"rejected {summary['rejected']:,} lines:", err=True)
        for reason, n in summary["rejected_by_reason"].items():
            click.echo(f"  {reason:<40} {n:>8,}", err=True)
        for example in rejections:
            click.echo(f"  e.g. {example}", err=True)
