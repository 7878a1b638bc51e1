"""Offline replay: run the detector's own rules over a history export (JSONL of generic events) and report what
would have fired, so that a team can tune thresholds before going live.

Time is simulated per deal: each event happens at its ``occurred_at``; a deal's quiet deadline that falls between
two of its events fires at that deadline, and deadlines still pending at the end fire up to ``until``. Exports are
usually grouped by deal, so no global order is needed: a deal's own lines in time order give exact results. No
broker, no database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from services.detector.domain.event import BadEvent, loads, parse_time
from services.detector.domain.messages import to_message
from services.detector.domain.outcomes import Opened, Outcome
from services.detector.domain.rules import Detector
from services.detector.domain.state import DealState


@dataclass
class ReplayReport:
    events: int = 0
    duplicates: int = 0
    deals: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    opened: Counter[tuple[str, str]] = field(default_factory=Counter)
    revised: int = 0
    resumed: int = 0
    first_rejections: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        kinds: Counter[str] = Counter()
        for (kind, _), n in self.opened.items():
            kinds[kind] += n
        return {
            "events": self.events,
            "duplicates": self.duplicates,
            "deals": self.deals,
            "interruptions": sum(kinds.values()),
            "by_kind": dict(kinds.most_common()),
            "by_kind_and_cause": {f"{k}/{c}": n for (k, c), n in self.opened.most_common()},
            "revised": self.revised,
            "resumed": self.resumed,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(self.rejected.most_common()),
        }


Emit = Callable[[dict[str, Any]], None]


def as_change(raw: Any, source: str) -> dict[str, Any]:
    """A generic event (one line of the export) as the change event the detector reads."""
    if not isinstance(raw, dict):
        raise BadEvent("a line must hold one JSON object")
    deal = raw.get("deal")
    if not isinstance(deal, dict) or deal.get("id") in (None, ""):
        raise BadEvent("deal.id is missing")
    deal_id = str(deal["id"])
    raw["source"] = raw.get("source") or source
    raw["deal_id"] = deal_id
    return raw


def replay(
    lines: Iterable[bytes | str],
    detector: Detector,
    *,
    until: float | None = None,
    source: str = "generic",
    emit: Emit | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    report = ReplayReport()
    states: dict[str, DealState] = {}
    due: dict[str, float] = {}

    def record(key: str, state: DealState, outcomes: list[Outcome], now: float) -> None:
        for o in outcomes:
            if isinstance(o, Opened):
                if o.revision:
                    report.revised += 1
                else:
                    report.opened[(o.kind, o.cause)] += 1
            else:
                report.resumed += 1
            if emit is not None:
                emit(to_message(o, state, key, now).model_dump(mode="json"))

    def expire(key: str, upto: float) -> None:
        when = due.get(key)
        while when is not None and when <= upto:
            state = states[key]
            opened, again = detector.check_quiet(state, deal_key=key, now=when)
            record(key, state, opened, when)
            when = again if again is not None and again > when else None
        if when is None:
            due.pop(key, None)
        else:
            due[key] = when

    for number, line in enumerate(lines, 1):
        if progress is not None and number % 10_000 == 0:
            progress(number)
        if not line or (isinstance(line, bytes | str) and not line.strip()):
            continue
        try:
            event = as_change(loads(line), source)
            t = float(parse_time(event.get("occurred_at")))
        except (BadEvent, ValueError, RecursionError) as exc:
            _reject(report, number, exc)
            continue
        key = f"{event['source']}:{event['deal_id']}"
        if key in due:
            expire(key, t)
        state = states.get(key)
        try:
            applied = detector.apply(state, event, deal_key=key, partition=0, now=t)
        except BadEvent as exc:
            _reject(report, number, exc)
            continue
        report.events += 1
        if applied.duplicate:
            report.duplicates += 1
            continue
        states[key] = applied.state
        record(key, applied.state, applied.outcomes, t)
        check = detector.next_check(applied.state)
        if check is None:
            due.pop(key, None)
        else:
            due[key] = check
    if until is not None:
        for key in list(due):
            expire(key, until)
    report.deals = len(states)
    return report


def _reject(report: ReplayReport, number: int, exc: Exception) -> None:
    reason = str(exc).split(":")[0][:80] or type(exc).__name__
    report.rejected[reason] += 1
    if len(report.first_rejections) < 10:
        report.first_rejections.append(f"line {number}: {str(exc)[:160]}")
