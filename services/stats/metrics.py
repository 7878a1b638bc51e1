"""Prometheus metrics of the stats worker: what it read, the pipeline's latencies it measures from the messages'
own times, and the dead-letter records of every writer, by stage and reason class."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_COUNTED = Counter("dealwatch_stats_events", "Messages the stats worker read", ["topic", "outcome"])
EVENT_TO_INTERRUPTION = Histogram(
    "dealwatch_event_to_interruption_seconds",
    "From an interruption's event time (its trigger, or the quiet deadline that passed) to its detection",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400),
)
INTERRUPTION_TO_TASK = Histogram(
    "dealwatch_interruption_to_task_seconds",
    "From an interruption's detection to the creation of its recovery task",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
INTERRUPTIONS = Counter(
    "dealwatch_interruptions_counted",
    "Interruptions the stats worker counted for the first time, by kind and cause (as first detected)",
    ["kind", "cause"],
)
LATENCIES = {"event_to_interruption": EVENT_TO_INTERRUPTION, "interruption_to_task": INTERRUPTION_TO_TASK}
DEAD_LETTER_RECORDS = Counter(
    "dealwatch_dead_letter_records",
    "Records on the dead-letter topic, by the stage that refused them, their source and reason class",
    ["stage", "source", "reason"],
)
STATS_REWINDS = Counter(
    "dealwatch_stats_rewinds",
    "Times the stats worker found its stored offsets changed under it (statistics reset) and read again",
)
