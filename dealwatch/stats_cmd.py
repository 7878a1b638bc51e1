"""``dealwatch rebuild-stats``: forget the statistics so that the stats worker counts them again from the topics."""

from __future__ import annotations

import click

from dealwatch.cli import CONTEXT, cli, settings_or_exit


@cli.command("rebuild-stats", context_settings=CONTEXT)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def rebuild_stats(yes: bool) -> None:
    """Delete the statistics (counters, facts and the stats worker's offsets) from the database.

    The stats worker then reads the interruptions and tasks topics again from offset 0: at its next start, or,
    if it is running, as soon as its next message arrives. The topics must still hold their history.
    """
    from dealwatch.up import redact_url, scrub
    from services.common.db import make_engine
    from services.common.stats_repository import SqlAlchemyStatsStore
    from services.stats.worker import GROUP_ID

    settings = settings_or_exit()
    where = redact_url(settings.database_url)
    if not yes:
        click.confirm(f"Delete the statistics in {where} and count them again from the topics?", abort=True)
    engine = make_engine(settings.database_url)
    try:
        store = SqlAlchemyStatsStore(engine)
        store.create_schema()
        store.reset(GROUP_ID)
    except Exception as exc:
        raise click.ClickException(
            scrub(f"cannot reset the statistics: {type(exc).__name__}: {exc}", settings)
        ) from None
    finally:
        engine.dispose()
    click.echo(f"statistics deleted in {where}; the stats worker rebuilds them from offset 0")
