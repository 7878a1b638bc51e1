"""``dealwatch worker detector``: the Faust worker, in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from schemas.topics import Topics
from services.common.broker import ensure_topics
from services.common.consumer_group import broker_is_tansu, stay_member_on_stop
from services.common.settings import Settings


def run(settings: Settings, topics: Topics | None = None) -> int:
    import faust
    from prometheus_client import start_http_server

    from services.detector.app import create_app

    topics = topics or Topics(prefix=settings.topic_prefix)
    if not settings.kafka_bootstrap:
        raise SystemExit("the detector needs DEALWATCH_KAFKA_BOOTSTRAP")
    asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap, topics.all(), settings.topic_partitions, settings.topic_replication
        )
    )
    if asyncio.run(broker_is_tansu(settings.kafka_bootstrap)):
        stay_member_on_stop()
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port, addr=settings.web_host)
    app = create_app(settings, topics)
    # Faust narrates every start-up step at INFO; keep it to warnings unless debugging is asked for.
    level = "DEBUG" if settings.log_level.upper() == "DEBUG" else "WARNING"
    worker = faust.Worker(app, loglevel=level, quiet=True, redirect_stdouts=False)
    for name in ("faust", "mode", "aiokafka"):
        logging.getLogger(name).setLevel(level)
    worker.execute_from_commandline()
    return 0
