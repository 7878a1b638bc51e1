"""``dealwatch replay FILE``: what the detector would have found in a history export, under this configuration."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click

from dealwatch.cli import CONTEXT, cli, settings_or_exit


def _render(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


PARALLEL_FROM_BYTES = 4 << 20
"""Exports smaller than this replay in one process by default: forking would cost more than it saves."""


def _jobs(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        jobs = int(value)
    except ValueError:
        raise click.BadParameter(
            "use 'auto' or a whole number of processes, e.g. 4", param_hint="'--jobs'"
        ) from None
    if not 1 <= jobs <= 256:
        raise click.BadParameter("use between 1 and 256 processes", param_hint="'--jobs'")
    return jobs


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
    help="Write every interruption (and revision and resumption) as JSON lines here. The messages are made by "
    "the detector's Python rules, about ten times slower than the summary alone, which compiled rules make.",
)
@click.option(
    "--jobs",
    "-j",
    default="auto",
    show_default=True,
    help="Processes to replay with, each taking a share of the deals; 'auto' uses every usable core for an "
    "export of 4 MiB or more. The output is the same whatever the number.",
)
@click.option(
    "--compare",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Replay again under the configuration in this TOML file and show both, with the difference "
    "(DEALWATCH_* variables apply to both).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of a table.")
def replay(
    export: Path,
    until: str,
    source: str,
    out: Path | None,
    jobs: str,
    compare: Path | None,
    as_json: bool,
) -> None:
    """Replay a history export (JSONL of generic events, gzip-compressed or not) through the detector, offline.

    Uses the same rules and configuration as the running detector (dealwatch.toml, DEALWATCH_*), with time
    simulated from each event's occurred_at, so a team can tune thresholds before going live; --compare shows
    what another configuration would change. Reads '-' as standard input (in one process unless --jobs or
    --compare asks for more, as it would otherwise be copied to a temporary file first). Nothing is sent anywhere.
    """
    from services.detector.replay import differences
    from services.detector.replay import replay as run_replay
    from services.detector.replay_parallel import ReplayFailed, export_lines, replay_file, writer
    from services.detector.wiring import build_detector

    asked = _jobs(jobs)
    horizon = _until(until)
    if compare is not None and out is not None:
        raise click.UsageError("--out writes the messages of one configuration: use it without --compare")
    from_stdin = str(export) == "-"
    if not from_stdin and not export.is_file():
        raise click.BadParameter(f"{export} is not a readable file", param_hint="EXPORT")
    settings = settings_or_exit()
    other = None if compare is None else settings_or_exit(config=compare)
    processes = _processes(asked, export, from_stdin)
    detector = build_detector(settings)
    sink: IO[str] | None = out.open("w", encoding="utf-8") if out else None
    started = time.monotonic()
    compared: dict[str, Any] | None = None
    try:
        if from_stdin and processes == 1 and other is None:
            report = run_replay(
                export_lines(sys.stdin.buffer),
                detector,
                until=horizon,
                source=source,
                emit=None if sink is None else writer(sink, _render),
                progress=_progress(started),
            )
        else:
            with _as_file(export) as path:
                report = replay_file(
                    path,
                    detector,
                    jobs=processes,
                    until=horizon,
                    source=source,
                    out=sink,
                    render=_render,
                    progress=_progress(started),
                    by_deal=other is not None,
                )
                if other is not None:
                    again = time.monotonic()
                    click.echo(f"  again under {compare}", err=True)
                    second = replay_file(
                        path,
                        build_detector(other),
                        jobs=processes,
                        until=horizon,
                        source=source,
                        progress=_progress(again),
                        by_deal=True,
                    )
                    compared = {**second.summary(), "differences": differences(report, second)}
    except ReplayFailed as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if sink is not None:
            sink.close()
    elapsed = time.monotonic() - started
    summary: dict[str, Any] = {
        **report.summary(),
        "seconds": round(elapsed, 3),
        "events_per_second": round(report.events * (1 if compared is None else 2) / elapsed)
        if elapsed
        else None,
        "processes": processes,
    }
    if compared is not None:
        summary["compared"] = {"config": str(compare), **compared}
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=1))
    else:
        _table(summary, report.first_rejections, compared, str(compare))
    if report.events == 0:
        raise click.ClickException("no valid event in the export")


def _processes(asked: int | None, export: Path, from_stdin: bool) -> int:
    from services.detector.replay_parallel import usable_cores

    if asked is not None:
        return asked
    if from_stdin or export.stat().st_size < PARALLEL_FROM_BYTES:
        return 1
    return usable_cores()


def _progress(started: float) -> Callable[[int], None]:
    """Prints the lines read and the rate, every 100,000 lines, on stderr."""
    shown = 0

    def progress(n: int) -> None:
        nonlocal shown
        if n // 100_000 > shown // 100_000:
            shown = n
            rate = n / max(time.monotonic() - started, 1e-9)
            click.echo(f"  {n:,} lines, {rate:,.0f}/s", err=True)

    return progress


def _comparison(base: dict[str, Any], other: dict[str, Any], name: str) -> None:
    """The two configurations' counts side by side, each kind and cause that either fired."""
    click.echo(
        f"{base['interruptions']:,} interruptions would have fired, {other['interruptions']:,} under {name} "
        f"({_change(base, other, 'interruptions')}):"
    )
    here, there = base["by_kind_and_cause"], other["by_kind_and_cause"]
    names = sorted(set(here) | set(there), key=lambda k: (-max(here.get(k, 0), there.get(k, 0)), k))
    click.echo(f"  {'':<40} {'this':>8} {'compared':>9} {'change':>8}")
    for key in names:
        a, b = here.get(key, 0), there.get(key, 0)
        click.echo(f"  {key:<40} {a:>8,} {b:>9,} {b - a:>+8,}")
    click.echo(
        f"revised {base['revised']:,} and {other['revised']:,} ({_change(base, other, 'revised')}), "
        f"resumed {base['resumed']:,} and {other['resumed']:,} ({_change(base, other, 'resumed')})"
    )
    found = other["differences"]
    click.echo(f"{found['deals']:,} deals open different interruptions:")
    for kind, d in found["by_kind"].items():
        if d["more_here"]:
            shown = ", ".join(d["examples_here"])
            click.echo(f"  {kind}: {d['more_here']:,} deals open more here (e.g. {shown})")
        if d["more_compared"]:
            shown = ", ".join(d["examples_compared"])
            click.echo(f"  {kind}: {d['more_compared']:,} deals open more under {name} (e.g. {shown})")


def _change(base: dict[str, Any], other: dict[str, Any], name: str) -> str:
    return f"{other[name] - base[name]:+,}"


@contextmanager
def _as_file(export: Path) -> Iterator[Path]:
    """The export as a file every process can read: standard input is copied to a temporary one first."""
    if str(export) != "-":
        yield export
        return
    with tempfile.NamedTemporaryFile(prefix="dealwatch-replay-", suffix=".jsonl") as copy:
        shutil.copyfileobj(sys.stdin.buffer, copy, 1 << 20)
        copy.flush()
        yield Path(copy.name)


def _table(
    summary: dict[str, Any], rejections: list[str], compared: dict[str, Any] | None = None, name: str = ""
) -> None:
    click.echo(
        f"{summary['events']:,} events of {summary['deals']:,} deals in {summary['seconds']}s "
        f"({summary['events_per_second'] or 0:,}/s, {summary['processes']} process"
        f"{'es' if summary['processes'] != 1 else ''}); {summary['duplicates']:,} duplicates"
    )
    if compared is not None:
        _comparison(summary, compared, name)
    else:
        click.echo(f"{summary['interruptions']:,} interruptions would have fired:")
        for kind_cause, n in summary["by_kind_and_cause"].items():
            click.echo(f"  {kind_cause:<40} {n:>8,}")
        click.echo(f"revised {summary['revised']:,}, resumed {summary['resumed']:,}")
    if summary["rejected"]:
        click.echo(f"rejected {summary['rejected']:,} lines:", err=True)
        for reason, n in summary["rejected_by_reason"].items():
            click.echo(f"  {reason:<40} {n:>8,}", err=True)
        for example in rejections:
            click.echo(f"  e.g. {example}", err=True)
