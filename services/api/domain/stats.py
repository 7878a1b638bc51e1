"""Rates and averages from the stored counters: how many interruptions came back, were recovered, had their
task answered, done or overdue, how many handovers were completed, and how often a lost deal's CRM reason
disagrees with the detected cause."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

METRICS = (
    "interruptions",
    "resumed",
    "recovered",
    "tasks",
    "task_open",
    "task_in_progress",
    "task_snoozed",
    "task_done",
    "task_dismissed",
    "task_overdue",
    "responded",
    "handovers",
    "handovers_completed",
    "lost_reason_known",
    "lost_reason_disagrees",
)
"""Every answer carries these counters, zero when nothing was counted."""
SUMS = {"first_response_seconds": "responded"}
"""Stored sums -> the counter they are averaged over (reported under ``averages``, not ``counts``)."""
RATES = {
    "resumed": ("resumed", "interruptions"),
    "recovered": ("recovered", "interruptions"),
    "tasks_done": ("task_done", "interruptions"),
    "responded": ("responded", "tasks"),
    "overdue": ("task_overdue", "tasks"),
    "handover_completion": ("handovers_completed", "handovers"),
    "lost_reason_disagreement": ("lost_reason_disagrees", "lost_reason_known"),
}
"""Rate name -> (counter, the counter it is a share of)."""


@dataclass
class StatsGroup:
    group: dict[str, str]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METRICS, 0))
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUMS, 0))

    @property
    def rates(self) -> dict[str, float | None]:
        return {name: _share(self.counts, part, whole) for name, (part, whole) in RATES.items()}

    @property
    def averages(self) -> dict[str, float | None]:
        return {name: _ratio(self.sums.get(name, 0), self.counts.get(over, 0)) for name, over in SUMS.items()}

    def add(self, metric: str, count: int) -> None:
        target = self.sums if metric in SUMS else self.counts
        target[metric] = target.get(metric, 0) + count


def _share(counts: Mapping[str, int], part: str, whole: str) -> float | None:
    return _ratio(counts.get(part, 0), counts.get(whole, 0))


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def group_counts(rows: Iterable[tuple[Mapping[str, str], str, int]]) -> tuple[list[StatsGroup], StatsGroup]:
    """Rows of (group, metric, count) -> one entry per group, in the order first seen, and the totals."""
    groups: dict[tuple[tuple[str, str], ...], StatsGroup] = {}
    totals = StatsGroup({})
    for group, metric, count in rows:
        key = tuple(sorted(group.items()))
        groups.setdefault(key, StatsGroup(dict(group))).add(metric, count)
        totals.add(metric, count)
    return list(groups.values()), totals
