"""Prometheus metrics of the ingest service (default registry). Labels are bounded sets: the source, the HTTP
status, the topic, the reason class. Never a body, a header value or a secret."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBHOOK_RESPONSES = Counter(
    "dealwatch_webhook_responses",
    "Webhook requests answered, by source and HTTP status.",
    ["source", "status"],
)
EVENTS_PUBLISHED = Counter(
    "dealwatch_ingest_events_published", "Records acknowledged by the broker, by topic.", ["topic"]
)
DEAD_LETTERS = Counter(
    "dealwatch_ingest_dead_letters",
    "Rejected bodies written to the dead-letter topic, by source and reason.",
    ["source", "reason"],
)
EVENTS_IGNORED = Counter(
    "dealwatch_ingest_events_ignored", "Authentic events that are not about a deal, by source.", ["source"]
)
REQUEST_SECONDS = Histogram(
    "dealwatch_webhook_request_seconds",
    "Time from a webhook request to its answer, by source.",
    ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_FLIGHT = Gauge("dealwatch_webhook_requests_in_flight", "Webhook requests being handled now.")
BROKER_READY = Gauge("dealwatch_ingest_broker_ready", "1 when the ingest producer can reach the broker.")
