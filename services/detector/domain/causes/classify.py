"""Weigh text signals and structural facts into a primary cause, a confidence, alternatives and evidence."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from services.detector.domain.causes.lexicon import Lexicon
from services.detector.domain.causes.model import CAUSES, Classification, Facts, Signal
from services.detector.domain.causes.rules import DAY, Rules, default_rules, describe, render

Evidence = tuple[str | None, str, str]
_SCORABLE = frozenset(c for c in CAUSES if c != "unknown")
KEEP_HALF_LIFE_DAYS = 45.0
KEEP_PER_CAUSE = 3
_KEEP_HALF_LIFE = KEEP_HALF_LIFE_DAYS * DAY
K = TypeVar("K", bound=Sequence[Any])


@dataclass(frozen=True, slots=True)
class _Item:
    weight: float
    evidence: Evidence
    side: str | None


def classify(
    facts: Facts, signals: Sequence[Signal], rules: Rules | None = None, lexicon: Lexicon | None = None
) -> Classification:
    """The cause of an interruption from the deal's kept signals and its facts.

    With a ``lexicon``, a lost reason in the facts that no kept signal came from is read here as well.

    Each signal counts by its weight and by how close it came before the interruption (``[relevance]``);
    the rules add structural evidence. Confidence is the primary cause's share of all evidence, lowered when
    the evidence is thin; ``unknown`` (confidence at most 0.5) when there is too little evidence of anything.
    Evidence always holds at least the interruption's own trigger.
    """
    r = rules or default_rules()
    if (
        lexicon is not None
        and facts.lost_reason
        and not any(s.signal == "field:lost_reason" for s in signals)
    ):
        reason = lexicon.extract(
            facts.lost_reason,
            event_id=facts.event_id or "",
            at=facts.at,
            direction="internal",
            kind="lost_reason",
        )
        signals = [*signals, *reason]
    view = describe(facts)
    items: dict[str, list[_Item]] = {}
    relevance = r.relevance_of(facts.kind)
    for s in signals:
        if s.cause not in _SCORABLE or s.weight <= 0:
            continue
        weight = s.weight * relevance.factor(facts.at - s.at)
        if weight > 0:
            items.setdefault(s.cause, []).append(_Item(weight, (s.event_id, s.signal, s.excerpt), s.side))
    for rule in r.rules:
        weight = rule.score(facts.kind, view)
        if weight > 0:
            event_id = facts.event_id if rule.trigger else None
            evidence = (event_id, rule.signal, render(rule.excerpt, view))
            items.setdefault(rule.cause, []).append(_Item(weight, evidence, rule.side))

    scores = {cause: _combined((i.weight for i in found), r.repeat) for cause, found in items.items()}
    total = sum(scores.values())
    thin = total / (total + r.thin) if total > 0 else 0.0
    ranked = sorted(scores, key=lambda c: (-scores[c], r.priority.index(c)))
    trigger_signal, trigger_text = r.trigger(facts, view)
    trigger: Evidence = (facts.event_id, trigger_signal, trigger_text)

    def share(cause: str) -> float:
        return round(scores[cause] / total * thin, 3)

    if not ranked or total < r.unknown_below:
        hints = [i.evidence for c in ranked for i in items[c]]
        alternatives = tuple((c, share(c)) for c in ranked[: r.alternatives])
        return Classification(
            "unknown",
            None,
            round(0.5 * (1.0 - thin), 3),
            alternatives,
            _evidence([trigger, *hints], r.evidence),
        )
    best = ranked[0]
    side = _side(items[best], r.default_side.get(facts.kind, "customer")) if best == "staff_change" else None
    supporting = [i.evidence for i in sorted(items[best], key=lambda i: -i.weight)]
    return Classification(
        best,
        side,
        share(best),
        tuple((c, share(c)) for c in ranked[1 : 1 + r.alternatives]),
        _evidence([*supporting[: r.evidence - 1], trigger], r.evidence),
    )


def rank_for_keeping(signals: Iterable[K], limit: int) -> list[K]:
    """The signals a deal should keep, at most ``limit``: strongest and most recent first.

    One signal per event and cause (the strongest); at most three of one cause while others wait, so a chatty
    cause does not push every other cause out. Strength fades with a 45-day half-life behind the newest signal.

    Takes ``Signal`` tuples or the lists a deal's state keeps them as (the same first four fields: cause, weight,
    time, event id), so that the signals a deal already keeps are ranked without being made again.
    """
    if limit <= 0:
        return []
    best: dict[tuple[str, str], K] = {}
    for s in signals:
        key = (s[3], s[0])
        if key not in best or s[1] > best[key][1]:
            best[key] = s
    if not best:
        return []
    newest = max(s[2] for s in best.values())
    pow_ = math.pow

    # Each signal's key once (this runs for every event with text); keys are unique, so no signal is compared.
    ordered = sorted(
        ((-(s[1] * pow_(0.5, max(newest - s[2], 0.0) / _KEEP_HALF_LIFE)), -s[2], s[3], s[0]), s)
        for s in best.values()
    )
    counts: dict[str, int] = {}
    first: list[tuple[tuple[float, float, str, str], K]] = []
    later: list[tuple[tuple[float, float, str, str], K]] = []
    for keyed in ordered:
        cause = keyed[0][3]
        counts[cause] = counts.get(cause, 0) + 1
        (first if counts[cause] <= KEEP_PER_CAUSE else later).append(keyed)
    if later:  # some waited behind a chatty cause: the ones kept go back in rank order
        kept = (first + later)[:limit]
        kept.sort(key=lambda keyed: keyed[0])
        return [s for _, s in kept]
    return [s for _, s in first[:limit]]


def _combined(weights: Iterable[float], repeat: float) -> float:
    """The n-th strongest signal of a cause counts ``repeat ** (n - 1)``: agreement helps, repetition less."""
    return sum(w * repeat**n for n, w in enumerate(sorted(weights, reverse=True)))


def _side(found: Sequence[_Item], default: str) -> str:
    votes = {"ours": 0.0, "customer": 0.0}
    for item in found:
        if item.side in votes:
            votes[item.side] += item.weight
    if votes["ours"] == votes["customer"]:
        return default
    return "ours" if votes["ours"] > votes["customer"] else "customer"


def _evidence(candidates: Iterable[Evidence], limit: int) -> tuple[Evidence, ...]:
    out: list[Evidence] = []
    for e in candidates:
        if e not in out:
            out.append(e)
    return tuple(out[: max(limit, 1)])
