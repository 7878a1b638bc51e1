"""What the detector should say about a stream of change events, and what it did say.

The oracle is the pure detector (``services.detector.wiring.build_detector``) run over the change events in the
order the detector consumes them, each event id taken once per deal: what the same events give delivered once.
Its verdicts are compared with the messages on ``deals.interruptions.v1`` and the rows of the recovery database.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from services.common.settings import Settings
from services.detector.domain.outcomes import Opened
from services.detector.domain.state import DealState
from services.detector.wiring import build_detector


@dataclass(frozen=True)
class Verdict:
    """An interruption as its latest revision has it."""

    deal_key: str
    kind: str
    cause: str
    side: str | None
    revision: int


@dataclass
class Verdicts:
    opened: dict[str, Verdict] = field(default_factory=dict)
    """Interruption id -> its verdict (the highest revision)."""
    resumed: set[str] = field(default_factory=set)
    """Interruptions whose episode a later event closed."""
    messages: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    """(message, interruption id, revision) -> how many times it was said."""
    states: dict[str, DealState] = field(default_factory=dict)
    """Deal key -> the deal's state after its last event (the oracle's only)."""

    def episodes(self) -> set[tuple[str, str, str]]:
        return {(v.deal_key, v.kind, i) for i, v in self.opened.items()}

    def repeated(self) -> dict[tuple[str, str, int], int]:
        return {m: n for m, n in self.messages.items() if n > 1}

    def note(self, message: str, ident: str, verdict: Verdict | None) -> None:
        self.messages[(message, ident, verdict.revision if verdict else 0)] += 1
        if verdict is None:
            self.resumed.add(ident)
            return
        known = self.opened.get(ident)
        if known is None or verdict.revision > known.revision:
            self.opened[ident] = verdict


def expected(
    changes: Iterable[tuple[int, bytes]], settings: Settings | None = None, now: float | None = None
) -> Verdicts:
    """The pure detector over ``(partition, value)`` change records in consumption order, each deal's event
    ids once."""
    detector = build_detector(settings or Settings())
    now = time.time() if now is None else now
    seen: set[tuple[str, str]] = set()
    verdicts = Verdicts()
    for partition, value in changes:
        event: dict[str, Any] = json.loads(value)
        deal_key = f"{event['source']}:{event['deal_id']}"
        if (deal_key, event["event_id"]) in seen:
            continue
        seen.add((deal_key, event["event_id"]))
        applied = detector.apply(
            verdicts.states.get(deal_key), event, deal_key=deal_key, partition=partition, now=now
        )
        verdicts.states[deal_key] = applied.state
        for outcome in applied.outcomes:
            if isinstance(outcome, Opened):
                verdict = Verdict(deal_key, outcome.kind, outcome.cause, outcome.side, outcome.revision)
                verdicts.note("DealInterrupted", outcome.id, verdict)
            else:
                verdicts.note("DealResumed", outcome.id, None)
    return verdicts


def observed(values: Iterable[bytes]) -> Verdicts:
    """The verdicts in the messages of ``deals.interruptions.v1``."""
    verdicts = Verdicts()
    for value in values:
        m = json.loads(value)
        if m["event"] == "DealInterrupted":
            verdict = Verdict(m["deal_key"], m["kind"], m["cause"], m.get("side"), m.get("revision", 0))
            verdicts.note("DealInterrupted", m["id"], verdict)
        else:
            verdicts.note("DealResumed", m["interruption_id"], None)
    return verdicts


def final_states(changelog: Iterable[tuple[bytes, bytes]]) -> dict[str, DealState]:
    """The detector's last stored state of each deal, from ``(key, value)`` records of its table's changelog."""
    return {key.decode(): DealState.decode(value) for key, value in changelog}


def comparable(state: DealState) -> dict[str, Any]:
    """A state's fields but the wall-clock time of its last event and its partition."""
    values = {
        f.name: getattr(state, f.name) for f in fields(DealState) if f.name not in ("recv", "partition")
    }
    values["episodes"] = [e.to_list() for e in state.episodes]
    return values
