"""Rates and averages of the statistics answer: each a share of its own whole, None without one."""

from __future__ import annotations

import pytest

from services.api.domain.stats import group_counts


def test_rates_are_shares_of_their_own_whole_and_sums_become_averages() -> None:
    rows = [
        ({"kind": "reassigned"}, "interruptions", 4),
        ({"kind": "reassigned"}, "handovers", 4),
        ({"kind": "reassigned"}, "handovers_completed", 1),
        ({"kind": "reassigned"}, "tasks", 2),
        ({"kind": "reassigned"}, "task_overdue", 1),
        ({"kind": "reassigned"}, "responded", 2),
        ({"kind": "reassigned"}, "first_response_seconds", 600),
        ({"kind": "closed_lost"}, "interruptions", 3),
        ({"kind": "closed_lost"}, "lost_reason_known", 2),
        ({"kind": "closed_lost"}, "lost_reason_disagrees", 1),
    ]
    items, totals = group_counts(rows)
    handovers, lost = items

    assert handovers.rates["handover_completion"] == 0.25
    assert handovers.rates["overdue"] == 0.5
    assert handovers.averages == {"first_response_seconds": 300.0}
    assert "first_response_seconds" not in handovers.counts
    assert lost.rates["lost_reason_disagreement"] == 0.5
    assert lost.rates["handover_completion"] is None and lost.averages["first_response_seconds"] is None
    assert totals.counts["interruptions"] == 7
    assert totals.rates["recovered"] == pytest.approx(0.0)
