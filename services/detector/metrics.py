"""The detector's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("dealwatch_detector_events", "Change events consumed by the detector")
DUPLICATES = Counter("dealwatch_detector_duplicates", "Redelivered change events recognised and dropped")
OUTCOMES = Counter(
    "dealwatch_detector_outcomes", "Interruptions opened, revised or resumed", ["kind", "what"]
)
DEAD_LETTERS = Counter(
    "dealwatch_detector_dead_letters", "Records the detector sent to the dead-letter topic", ["reason"]
)
PENDING = Gauge(
    "dealwatch_quiet_deadlines_pending", "Quiet deadlines waiting on this worker", multiprocess_mode="livesum"
)
QUIET_CHECK_SECONDS = Histogram(
    "dealwatch_quiet_check_seconds",
    "Time of one quiet check of one partition",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
)
