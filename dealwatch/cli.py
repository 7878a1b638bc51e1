"""The ``dealwatch`` command: ``up`` runs everything on one machine, ``worker`` runs one service."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import click
from pydantic import ValidationError

from dealwatch.workers import ROLES

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def settings_or_exit(**overrides: Any) -> Any:
    """Settings from ``dealwatch.toml`` and ``DEALWATCH_*``, or a readable error and exit status 2."""
    from services.common.settings import load_settings

    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise click.ClickException(f"invalid configuration: {problems}") from None
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read the configuration: {exc}") from None


def quiet_kafka_client() -> None:
    """The Kafka client logs every failed connection; ``up`` and ``init`` report the outcome instead."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@click.group(context_settings=CONTEXT)
def cli() -> None:
    """dealwatch: finds sales deals that stopped moving (営業中途), says why, and opens recovery tasks.

    Configuration comes from dealwatch.toml (or the file named by DEALWATCH_CONFIG) and DEALWATCH_*
    environment variables; see dealwatch.example.toml.
    """


@cli.command(context_settings=CONTEXT)
@click.option(
    "--demo", is_flag=True, help="After start-up, feed a small realistic CRM stream through the webhooks."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port for webhooks, API and /metrics (default: DEALWATCH_HTTP_PORT or 8080; 0 = any free port).",
)
def up(demo: bool, port: int | None) -> None:
    """Run the whole pipeline on this machine until Ctrl-C.

    Starts an embedded broker unless DEALWATCH_KAFKA_BOOTSTRAP is set, creates the topics and the database
    schema, then runs the detector, recovery, stats and web (webhooks + API) services as child processes,
    restarting any that dies. Without configured secrets it generates them for this run and prints the API
    token; with a configured broker it refuses to start without them.
    """
    from dealwatch.runplan import ConfigError, plan_run
    from dealwatch.up import Up
    from services.common.broker import free_port, port_open

    settings = settings_or_exit()
    quiet_kafka_client()
    chosen = settings.http_port if port is None else port
    if chosen == 0:
        chosen = free_port()
    elif port_open("127.0.0.1", chosen):
        raise click.ClickException(
            f"port {chosen} is already in use (another `dealwatch up`?); choose another with --port N "
            "or DEALWATCH_HTTP_PORT"
        )
    try:
        plan = plan_run(settings, chosen)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(asyncio.run(Up(plan, demo).run()))


@cli.command(context_settings=CONTEXT)
@click.argument("role", type=click.Choice(ROLES))
def worker(role: str) -> None:
    """Run one service in the foreground until SIGINT/SIGTERM (what docker-compose runs).

    \b
    ingest    webhooks in (HTTP on DEALWATCH_HTTP_HOST:DEALWATCH_HTTP_PORT)
    api       the read/act API (HTTP)
    web       ingest and api together on one port (what `up` runs)
    detector  the Faust stream processor that finds interruptions
    recovery  interruptions -> recovery tasks
    stats     aggregate statistics
    """
    from dealwatch.workers import ServiceUnavailable, run_worker

    settings = settings_or_exit()
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if logging.getLogger().getEffectiveLevel() >= logging.INFO:
        logging.getLogger("aiokafka").setLevel(logging.WARNING)  # its INFO is every group (re)join
    try:
        code = run_worker(role, settings)
    except ServiceUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@cli.command(context_settings=CONTEXT)
def init() -> None:
    """Create every topic on the configured broker and the database schema, then exit.

    For deployments with their own Kafka (docker-compose runs it once before the services).
    """
    from dealwatch.up import create_topics, prepare_database, scrub

    settings = settings_or_exit()
    quiet_kafka_client()
    if settings.kafka_bootstrap is None:
        raise click.ClickException(
            "set DEALWATCH_KAFKA_BOOTSTRAP: `init` prepares an existing broker "
            "(`dealwatch up` creates its own)"
        )
    try:
        asyncio.run(create_topics(settings, settings.kafka_bootstrap))
    except Exception as exc:
        raise click.ClickException(f"cannot create the topics on {settings.kafka_bootstrap}: {exc}") from None
    try:
        prepare_database(settings, embedded_broker=False)
    except Exception as exc:
        raise click.ClickException(
            f"cannot create the database schema: {scrub(f'{type(exc).__name__}: {exc}', settings)}"
        ) from None
    click.echo(f"topics ready on {settings.kafka_bootstrap}; database schema ready")


def main() -> None:
    cli(prog_name="dealwatch")


# Registers ``dealwatch replay``, ``dealwatch rebuild-stats`` and ``dealwatch topics``.
from dealwatch import replay_cmd, stats_cmd, topics_cmd  # noqa: E402

__all__ = ["cli", "main", "replay_cmd", "stats_cmd", "topics_cmd"]
from dealwatch import import_cmd  # noqa: E402, F401  (registers ``dealwatch import``)
