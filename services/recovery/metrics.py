"""Prometheus metrics of the recovery worker, in the default registry (which ``/metrics`` exposes)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

INTERRUPTIONS_CONSUMED = Counter(
    "dealwatch_interruptions_consumed",
    "Messages the recovery worker read from the interruptions topic",
    ["event", "outcome"],
)
TASKS_CREATED = Counter("dealwatch_tasks_created", "Recovery tasks created", ["kind"])
TASKS_UPDATED = Counter(
    "dealwatch_task_updates", "Recovery task changes made by the recovery worker", ["change"]
)
OUTBOX_PUBLISHED = Counter("dealwatch_outbox_published", "Outbox messages published to the broker")
OUTBOX_PENDING = Gauge(
    "dealwatch_outbox_pending",
    "Outbox messages found waiting at the relay's last look",
    multiprocess_mode="livemax",
)
OUTBOX_LAG = Gauge(
    "dealwatch_outbox_lag_seconds",
    "Age of the oldest outbox message waiting to be published",
    multiprocess_mode="livemax",
)
ESCALATION_PASSES = Counter(
    "dealwatch_escalation_passes", "Checks for overdue tasks the recovery worker made"
)
WEBHOOK_DELIVERIES = Counter(
    "dealwatch_webhook_deliveries", "Task message deliveries to subscribers, by outcome", ["outcome"]
)
