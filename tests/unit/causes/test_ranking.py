"""rank_for_keeping: the few signals a deal keeps in its state."""

from __future__ import annotations

from services.detector.domain.causes import Signal, rank_for_keeping
from tests.unit.causes.conftest import DAY, T0


def sig(cause: str, weight: float, day: float, event: str) -> Signal:
    return Signal(cause, weight, T0 + day * DAY, event, cause)


def test_no_more_than_the_limit_are_kept() -> None:
    signals = [sig("budget", 1.0 + i / 10, i, f"e{i}") for i in range(10)]
    assert len(rank_for_keeping(signals, 6)) == 6
    assert rank_for_keeping(signals, 0) == []


def test_stronger_and_more_recent_signals_come_first() -> None:
    old_strong = sig("budget", 2.0, 0, "e1")
    new_strong = sig("competitor", 2.0, 30, "e2")
    new_weak = sig("needs_change", 0.6, 30, "e3")
    assert rank_for_keeping([new_weak, old_strong, new_strong], 3) == [new_strong, old_strong, new_weak]


def test_one_chatty_cause_does_not_push_every_other_cause_out() -> None:
    chatty = [sig("no_response", 2.0, i, f"n{i}") for i in range(8)]
    quiet_but_telling = sig("budget", 1.0, 0, "b1")
    kept = rank_for_keeping([*chatty, quiet_but_telling], 6)
    assert quiet_but_telling in kept


def test_the_same_event_and_cause_is_kept_once_at_its_strongest() -> None:
    kept = rank_for_keeping([sig("budget", 1.0, 0, "e1"), sig("budget", 1.8, 0, "e1")], 6)
    assert [s.weight for s in kept] == [1.8]
