"""Rates from the stored counters: how many interruptions came back, were recovered, had their task done."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

METRICS = (
    "interruptions",
    "resumed",
    "recovered",
    "task_open",
    "task_in_progress",
    "task_snoozed",
    "task_done",
    "task_dismissed",
)
"""Every answer carries these counters, zero when nothing was counted."""
RATES = {"resumed": "resumed", "recovered": "recovered", "tasks_done": "task_done"}
"""Rate name -> the counter divided by the number of interruptions."""


@dataclass
class StatsGroup:
    group: dict[str, str]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METRICS, 0))

    @property
    def rates(self) -> dict[str, float | None]:
        total = self.counts.get("interruptions", 0)
        return {
            name: (self.counts.get(metric, 0) / total if total > 0 else None)
            for name, metric in RATES.items()
        }


def group_counts(rows: Iterable[tuple[Mapping[str, str], str, int]]) -> tuple[list[StatsGroup], StatsGroup]:
    """Rows of (group, metric, count) -> one entry per group, in the order first seen, and the totals."""
    groups: dict[tuple[tuple[str, str], ...], StatsGroup] = {}
    totals = StatsGroup({})
    for group, metric, count in rows:
        key = tuple(sorted(group.items()))
        entry = groups.setdefault(key, StatsGroup(dict(group)))
        entry.counts[metric] = entry.counts.get(metric, 0) + count
        totals.counts[metric] = totals.counts.get(metric, 0) + count
    return list(groups.values()), totals
