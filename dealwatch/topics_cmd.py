"""``dealwatch topics``: the topics, their partitions and end offsets, and each consumer group's lag, as a
terminal table (like ``kafka-consumer-groups --describe --all-groups``); ``--watch`` keeps it current.

The broker is ``--bootstrap``, else ``DEALWATCH_KAFKA_BOOTSTRAP``, else the embedded broker of a running
``dealwatch up`` (it leaves its address in ``<data_dir>/broker.bootstrap``). With none of these, it lists the
contract's topics and who writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dealwatch.cli import CONTEXT, cli, quiet_kafka_client, settings_or_exit
from schemas.topics import Topics

if TYPE_CHECKING:
    from services.common.lag import BrokerReader, BrokerView

BROKER_FILE = "broker.bootstrap"
"""Where ``dealwatch up`` leaves its embedded broker's address (in the data directory) while it runs."""


def writers(names: Topics) -> dict[str, tuple[str, str]]:
    """Topic -> (who writes it, what it holds), for the contract's topics."""
    return {
        names.deal_changes: ("ingest, import", "normalized CRM change events"),
        names.dead_letters: ("ingest, detector, recovery", "rejected input with dlq.* headers"),
        names.interruptions: ("detector", "DealInterrupted / DealResumed"),
        names.recovery_tasks: ("recovery", "RecoveryTaskCreated / RecoveryTaskUpdated"),
        names.deal_commands: ("api (outbox)", "DealSnoozed commands"),
        names.detector_ticks: ("detector", "internal clock ticks"),
    }


def contract_table(names: Topics) -> Table:
    table = Table(title="Topics of the contract", title_justify="left")
    table.add_column("TOPIC", no_wrap=True)
    table.add_column("WRITTEN BY")
    table.add_column("VALUE")
    for topic, (writer, value) in writers(names).items():
        table.add_row(topic, writer, value)
    return table


def view_tables(view: BrokerView, names: Topics) -> Group:
    known = writers(names)
    topics = Table(title="Topics", title_justify="left")
    topics.add_column("TOPIC", no_wrap=True)
    topics.add_column("PARTITIONS", justify="right")
    topics.add_column("END OFFSETS (per partition)")
    topics.add_column("RECORDS", justify="right")
    topics.add_column("WRITTEN BY")
    for summary in view.topics():
        per_partition = " ".join(
            f"{p}:{end}" for (t, p), end in sorted(view.ends.items()) if t == summary.topic
        )
        topics.add_row(
            summary.topic,
            str(summary.partitions),
            per_partition,
            f"{summary.end_offsets:,}",
            known.get(summary.topic, ("", ""))[0],
        )
    groups = Table(title="Consumer groups", title_justify="left")
    for name, justify in (
        ("GROUP", "left"),
        ("STATE", "left"),
        ("TOPIC", "left"),
        ("PARTITION", "right"),
        ("CURRENT-OFFSET", "right"),
        ("LOG-END-OFFSET", "right"),
        ("LAG", "right"),
    ):
        groups.add_column(name, justify=justify, no_wrap=name in ("GROUP", "TOPIC"))  # type: ignore[arg-type]
    for p in sorted(view.lags, key=lambda p: (p.group, p.topic, p.partition)):
        lag = Text(f"{p.lag:,}", style="bold red" if p.lag else "green")
        groups.add_row(
            p.group,
            view.groups.get(p.group, ""),
            p.topic,
            str(p.partition),
            f"{p.committed:,}",
            f"{p.end:,}",
            lag,
        )
    if not view.lags:
        groups.add_row("(no group has committed offsets on these topics)", "", "", "", "", "", "")
    totals = Text(
        "total lag by group: "
        + (", ".join(f"{g} {view.group_lag(g):,}" for g in sorted({p.group for p in view.lags})) or "-")
    )
    stamp = Text(f"read {view.taken_at.astimezone():%Y-%m-%d %H:%M:%S}", style="dim")
    return Group(topics, groups, totals, stamp)


def find_bootstrap(explicit: str | None, configured: str | None, data_dir: Path) -> str | None:
    if explicit:
        return explicit
    if configured:
        return configured
    with contextlib.suppress(OSError):
        written = (data_dir / BROKER_FILE).read_text().strip()
        if written:
            return written
    return None


async def show(
    reader: BrokerReader, names: Topics, console: Console, watch: bool, interval: float, count: int
) -> None:
    try:
        view = await reader.read()
        if not watch:
            console.print(view_tables(view, names))
            return
        shown = 1
        with Live(view_tables(view, names), console=console, auto_refresh=False) as live:
            while count == 0 or shown < count:
                await asyncio.sleep(interval)
                view = await reader.read()
                live.update(view_tables(view, names), refresh=True)
                shown += 1
    finally:
        await reader.stop()


@cli.command(context_settings=CONTEXT)
@click.option("--bootstrap", metavar="HOST:PORT", help="The broker (default: see above).")
@click.option("--all", "every", is_flag=True, help="Every topic on the broker, not only this deployment's.")
@click.option("--watch", is_flag=True, help="Refresh the tables until Ctrl-C.")
@click.option(
    "--interval",
    type=click.FloatRange(0.1),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option(
    "--count", type=click.IntRange(0), default=0, help="With --watch: stop after N readings (0: never)."
)
def topics(bootstrap: str | None, every: bool, watch: bool, interval: float, count: int) -> None:
    """Topics, partitions, end offsets and each consumer group's lag, read from the broker.

    The broker is --bootstrap, else DEALWATCH_KAFKA_BOOTSTRAP, else the embedded broker of a running
    `dealwatch up` on this machine. Without any, it lists the topics of the contract (with
    DEALWATCH_TOPIC_PREFIX) and who writes them.
    """
    settings = settings_or_exit()
    names = Topics(settings.topic_prefix)
    console = Console()
    found = find_bootstrap(bootstrap, settings.kafka_bootstrap, settings.data_dir)
    if found is None:
        console.print(contract_table(names))
        console.print(
            "No broker known: start `dealwatch up`, or give --bootstrap HOST:PORT or DEALWATCH_KAFKA_BOOTSTRAP "
            "for offsets and lag.",
            style="dim",
        )
        return
    from services.common.lag import BrokerReader, prefixed

    quiet_kafka_client()
    reader = BrokerReader(found, None if every else prefixed(settings.topic_prefix), timeout=5.0)
    try:
        asyncio.run(show(reader, names, console, watch, interval, count))
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        raise click.ClickException(
            f"cannot read the broker at {found}: {type(exc).__name__}: {exc}"
        ) from None
