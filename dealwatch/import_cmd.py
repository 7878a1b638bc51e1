"""``dealwatch import FILE``: a history file (JSONL or CSV of generic events) or a CRM's deals export (HubSpot,
Pipedrive, Salesforce CSV) onto the deal changes topic."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import click

from dealwatch.cli import CONTEXT, cli, quiet_kafka_client, settings_or_exit

SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def _source(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not SOURCE_NAME.match(value):
        raise click.BadParameter("lower-case letters, digits, '-' and '_', starting with a letter (≤ 32)")
    return value


def _timezone(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except (ValueError, KeyError, OSError):
        raise click.BadParameter("an IANA time zone name, such as Asia/Tokyo or UTC") from None
    return value


def _bootstrap(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not re.match(r"^[^\s:,]+:\d{1,5}(,[^\s:,]+:\d{1,5})*$", value):
        raise click.BadParameter("use HOST:PORT (several separated by commas)")
    return value


@cli.command("import", context_settings=CONTEXT)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(
        ["auto", "jsonl", "csv", "generic-csv", "hubspot-csv", "pipedrive-csv", "salesforce-csv"]
    ),
    default="auto",
    show_default=True,
    help="File format; auto reads the extension (.jsonl, .ndjson = JSONL; .csv = CSV), and a CSV's header "
    "tells generic events from a HubSpot, Pipedrive or Salesforce deals export.",
)
@click.option(
    "--source",
    default=None,
    callback=_source,
    help="Source of the events (the deal key is source:deal id); default: the CRM of an export, else generic.",
)
@click.option(
    "--timezone",
    "zone",
    metavar="ZONE",
    default=None,
    callback=_timezone,
    help="Zone of an export's times written without one (default: the calendar's, e.g. Asia/Tokyo).",
)
@click.option("--day-first", is_flag=True, help="An export's 01/02/2026 is 1 February (default: 2 January).")
@click.option(
    "--owner-names",
    is_flag=True,
    help="Use an export's owner names as owner ids when it has no owner id column (the CRM's webhooks name "
    "owners by id, so later events would look like reassignments).",
)
@click.option(
    "--bootstrap",
    metavar="HOST:PORT",
    callback=_bootstrap,
    help="Broker to publish to (default: DEALWATCH_KAFKA_BOOTSTRAP).",
)
@click.option("--dry-run", is_flag=True, help="Validate every row and print the summary; publish nothing.")
@click.option("--no-dead-letters", is_flag=True, help="Do not write refused rows to the dead-letter topic.")
@click.option(
    "--workers",
    type=click.IntRange(0, 32),
    default=None,
    help="Processes that validate rows while this one sends (default: 2 with more than one core; 0 = none).",
)
def import_(
    file: Path,
    fmt: str,
    source: str | None,
    zone: str | None,
    day_first: bool,
    owner_names: bool,
    bootstrap: str | None,
    dry_run: bool,
    no_dead_letters: bool,
    workers: int | None,
) -> None:
    """Load existing deals and their history from a CRM export before going live.

    JSONL and generic CSV: one event per row, validated and normalized exactly as POST /webhooks/generic
    does (CSV: a header row of the documented columns, README "Importing history"; an empty cell means
    absent). A HubSpot, Pipedrive or Salesforce deals export (told by its header): each row is a deal as
    exported, published as its creation, last activity and current state at the export's dates, under the
    CRM's source so that its webhooks continue the same deals.

    Events go to crm.deal-changes.v1 keyed by the deal (acks=all). Event ids are stable, so importing the
    same file again adds no duplicate downstream. Refused rows are counted by reason and written to the
    dead-letter topic.
    """
    from schemas.topics import Topics
    from services.ingest.bulk.importer import (
        BrokerUnreachable,
        Format,
        KafkaImportSink,
        default_workers,
        format_of,
        import_file,
    )
    from services.ingest.bulk.rows import BadHeader
    from services.ingest.bulk.snapshots import ExportOptions

    settings = settings_or_exit()
    chosen: Format | None = format_of(file) if fmt == "auto" else cast("Format", fmt)
    if chosen is None:
        raise click.UsageError(f"cannot tell the format of {file.name} from its extension; give --format")
    target = bootstrap or settings.kafka_bootstrap
    if target is None and not dry_run:
        raise click.ClickException(
            "no broker configured: run `dealwatch up` with a configured broker (DEALWATCH_KAFKA_BOOTSTRAP) "
            "and set it here too, or give --bootstrap HOST:PORT"
        )
    quiet_kafka_client()
    topics = Topics(settings.topic_prefix)
    options = ExportOptions(
        timezone=zone or settings.calendar.timezone, day_first=day_first, owner_names=owner_names
    )
    sink = None
    if not dry_run:
        assert target is not None
        sink = KafkaImportSink(
            target,
            topics,
            partitions=settings.topic_partitions,
            replication=settings.topic_replication,
            idempotent=settings.idempotent_producer,
            timeout_seconds=max(settings.broker_timeout_seconds, 10.0),
        )

    async def run() -> Any:
        if sink is not None:
            await sink.start()
        try:
            with ProgressBar(file.stat().st_size) as progress:
                return await import_file(
                    file,
                    chosen,
                    sink,
                    topics,
                    source=source,
                    received_at=datetime.now(UTC),
                    max_depth=settings.max_json_depth,
                    dead_letters=not no_dead_letters,
                    workers=default_workers() if workers is None else workers,
                    progress=progress,
                    options=options,
                )
        finally:
            if sink is not None:
                await sink.stop()

    started = time.monotonic()
    try:
        report = asyncio.run(run())
    except BrokerUnreachable as exc:
        raise click.ClickException(f"{exc}; is the broker running (`dealwatch up`)?") from None
    except BadHeader as exc:
        raise click.ClickException(f"{file.name}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{file.name} is not UTF-8 (byte {exc.start} of a block)") from None
    _summary(report, time.monotonic() - started, dry_run, target, topics)
    if report.valid == 0:
        raise click.ClickException(f"no valid event in {file.name}")


class ProgressBar:
    """A rich progress bar on stderr: bytes read of the file, events and events per second."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("importing"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[events]:,} events, {task.fields[rate]:,.0f}/s"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("import", total=total, events=0, rate=0.0)
        self._started = time.monotonic()

    def __enter__(self) -> Any:
        self._progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._progress.stop()

    def __call__(self, position: int, report: Any) -> None:
        rate = report.read / max(time.monotonic() - self._started, 1e-9)
        self._progress.update(self._task, completed=position, events=report.read, rate=rate)


def _summary(report: Any, seconds: float, dry_run: bool, target: str | None, topics: Any) -> None:
    from services.ingest.bulk.snapshots import OWNER_NAME_SKIPPED

    rate = report.read / seconds if seconds else 0.0
    if report.layout not in ("jsonl", "generic-csv"):
        used = f"; {len(report.ignored_columns)} columns ignored" if report.ignored_columns else ""
        click.echo(f"read as {report.layout} (source {report.source}){used}")
    if dry_run:
        events = f", {report.events:,} events" if report.events != report.valid else ""
        click.echo(f"dry run: {report.read:,} rows read, {report.valid:,} valid{events}; nothing published")
    else:
        click.echo(
            f"{report.read:,} rows read; {report.published:,} events published to {topics.deal_changes} "
            f"on {target}"
        )
    click.echo(f"{seconds:.2f} seconds, {rate:,.0f} rows/s")
    for reason, n in report.skipped.items():
        click.echo(f"skipped {n:,} lines ({reason})")
    if report.notes.get(OWNER_NAME_SKIPPED):
        click.echo(
            f"{report.notes[OWNER_NAME_SKIPPED]:,} rows name their owner, not the owner's id: imported without "
            "an owner (export owner ids, or give --owner-names to use the names)",
            err=True,
        )
    rejected = sum(report.rejected.values())
    if rejected:
        where = f"; {report.dead_lettered:,} written to {topics.dead_letters}" if report.dead_lettered else ""
        click.echo(f"rejected {rejected:,} rows{where}:", err=True)
        for reason, n in report.rejected.most_common():
            click.echo(f"  {reason:<24} {n:>10,}", err=True)
        for example in report.examples:
            click.echo(f"  e.g. {example}", err=True)
