"""Prometheus metrics every service shares, so that one query covers them all: records in and out per topic.

Labels are bounded sets (a service name, a topic of the deployment, a short reason class made of safe
characters), never a message's content, a header value or a secret. :func:`label` enforces the last part.
"""

from __future__ import annotations

import re

from prometheus_client import Counter

EVENTS_IN = Counter(
    "dealwatch_events_in", "Records a service consumed, by service and topic", ["service", "topic"]
)
EVENTS_OUT = Counter(
    "dealwatch_events_out",
    "Records a service wrote that the broker acknowledged, by service and topic",
    ["service", "topic"],
)
_SAFE = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,47}")


def label(value: str | bytes | None, fallback: str = "other") -> str:
    """A label value from outside data: a short lower-case identifier as it is, anything else ``fallback``."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not value:
        return fallback
    value = value.strip().lower()
    return value if _SAFE.fullmatch(value) else fallback


def reason_class(reason: str | bytes | None) -> str:
    """``"invalid_event: deal.id is required"`` -> ``invalid_event``: the class before the colon."""
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return label((reason or "").split(":", 1)[0])
