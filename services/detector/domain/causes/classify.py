"""Weigh text signals and structural facts into a primary cause, a confidence, alternatives and evidence."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

from services.detector.domain.causes.lexicon import Lexicon
from services.detector.domain.causes.model import CAUSES, Classification, Facts, Signal
from services.detector.domain.causes.rules import DAY, Rules, Shown, Value, default_rules, describe, render
from services.detector.domain.causes.text import NATIVE

Evidence = tuple[str | None, str, str]
_SCORABLE = frozenset(c for c in CAUSES if c != "unknown")
KEEP_HALF_LIFE_DAYS = 45.0
KEEP_PER_CAUSE = 3
_KEEP_HALF_LIFE = KEEP_HALF_LIFE_DAYS * DAY
K = TypeVar("K", bound=Sequence[Any])

_rank: Callable[[list[Any], int, float, int], Any] | None = None
"""``_scan.rank`` where the scanner is built: ``rank_for_keeping`` in C."""
if NATIVE:
    from services.detector.domain.causes import _scan

    _rank = _scan.rank


class _Item(NamedTuple):
    weight: float
    event_id: str | None
    signal: str
    excerpt: str
    """The words themselves, or for a rule the template its excerpt is rendered from (``template``)."""
    side: str | None
    template: bool = False

    def evidence(self, view: Mapping[str, Value]) -> Evidence:
        excerpt = render(self.excerpt, view) if self.template else self.excerpt
        return self.event_id, self.signal, excerpt


class _Scores(NamedTuple):
    """Every cause's evidence and score for one interruption: what ``classify`` and ``verdict`` decide from."""

    facts: Facts
    rules: Rules
    view: dict[str, Value]
    items: dict[str, list[_Item]]
    scores: dict[str, float]
    ranked: list[str]
    total: float
    thin: float

    @property
    def unknown(self) -> bool:
        return not self.ranked or self.total < self.rules.unknown_below

    def side(self) -> str | None:
        best = self.ranked[0]
        if best != "staff_change":
            return None
        return _side(self.items[best], self.rules.default_side.get(self.facts.kind, "customer"))


def classify(
    facts: Facts,
    signals: Sequence[Signal | Sequence[Any]],
    rules: Rules | None = None,
    lexicon: Lexicon | None = None,
) -> Classification:
    """The cause of an interruption from the deal's kept signals and its facts.

    ``signals``: ``Signal`` tuples, or the lists a deal's state keeps them as (the same fields in the same order,
    the signal's name ``None`` for ``text:<cause>``). With a ``lexicon``, a lost reason in the facts that no kept
    signal came from is read here as well.

    Each signal counts by its weight and by how close it came before the interruption (``[relevance]``);
    the rules add structural evidence. Confidence is the primary cause's share of all evidence, lowered when
    the evidence is thin; ``unknown`` (confidence at most 0.5) when there is too little evidence of anything.
    Evidence always holds at least the interruption's own trigger.
    """
    sc = _score(facts, signals, rules or default_rules(), lexicon)
    r, items, ranked, view = sc.rules, sc.items, sc.ranked, Shown(sc.view)
    trigger_signal, trigger_text = r.trigger(facts, view)
    trigger: Evidence = (facts.event_id, trigger_signal, trigger_text)

    def share(cause: str) -> float:
        return round(sc.scores[cause] / sc.total * sc.thin, 3)

    if sc.unknown:
        hints = [i.evidence(view) for c in ranked for i in items[c]]
        alternatives = tuple((c, share(c)) for c in ranked[: r.alternatives])
        return Classification(
            "unknown",
            None,
            round(0.5 * (1.0 - sc.thin), 3),
            alternatives,
            _evidence([trigger, *hints], r.evidence),
        )
    best = ranked[0]
    supporting = [i.evidence(view) for i in sorted(items[best], key=lambda i: -i.weight)[: r.evidence - 1]]
    return Classification(
        best,
        sc.side(),
        share(best),
        tuple((c, share(c)) for c in ranked[1 : 1 + r.alternatives]),
        _evidence([*supporting, trigger], r.evidence),
    )


def verdict(
    facts: Facts,
    signals: Sequence[Signal | Sequence[Any]],
    rules: Rules | None = None,
    lexicon: Lexicon | None = None,
) -> tuple[str, str | None]:
    """The primary cause and side ``classify`` gives, without writing its evidence: enough to tell whether new
    signals change an interruption's cause."""
    sc = _score(facts, signals, rules or default_rules(), lexicon)
    if sc.unknown:
        return "unknown", None
    return sc.ranked[0], sc.side()


def _score(
    facts: Facts, signals: Sequence[Signal | Sequence[Any]], r: Rules, lexicon: Lexicon | None
) -> _Scores:
    if lexicon is not None and facts.lost_reason and not any(s[6] == "field:lost_reason" for s in signals):
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
        cause = s[0]
        if cause not in _SCORABLE or s[1] <= 0:
            continue
        weight = s[1] * relevance.factor(facts.at - s[2])
        if weight > 0:
            items.setdefault(cause, []).append(_Item(weight, s[3], s[6] or f"text:{cause}", s[4], s[5]))
    for rule in r.of_kind(facts.kind):
        weight = rule.score(facts.kind, view)
        if weight > 0:
            event_id = facts.event_id if rule.trigger else None
            item = _Item(weight, event_id, rule.signal, rule.excerpt, rule.side, template=True)
            items.setdefault(rule.cause, []).append(item)
    scores = {cause: _combined((i.weight for i in found), r.repeat) for cause, found in items.items()}
    total = sum(scores.values())
    thin = total / (total + r.thin) if total > 0 else 0.0
    ranked = sorted(scores, key=lambda c: (-scores[c], r.priority.index(c)))
    return _Scores(facts, r, view, items, scores, ranked, total, thin)


def rank_for_keeping(signals: Iterable[K], limit: int) -> list[K]:
    """The signals a deal should keep, at most ``limit``: strongest and most recent first.

    One signal per event and cause (the strongest); at most three of one cause while others wait, so a chatty
    cause does not push every other cause out. Strength fades with a 45-day half-life behind the newest signal.

    Takes ``Signal`` tuples or the lists a deal's state keeps them as (the same first four fields: cause, weight,
    time, event id), so that the signals a deal already keeps are ranked without being made again.
    """
    if _rank is not None and type(signals) is list:
        ranked = _rank(signals, limit, _KEEP_HALF_LIFE, KEEP_PER_CAUSE)
        if ranked is not NotImplemented:
            return ranked  # type: ignore[no-any-return]
    return _rank_here(signals, limit)


def _rank_here(signals: Iterable[K], limit: int) -> list[K]:
    """``rank_for_keeping`` in Python: its reference, and the ranking of anything ``_scan.rank`` declines."""
    if limit <= 0:
        return []
    best: dict[tuple[str, str], K] = {}
    for s in signals:
        key = (s[3], s[0])
        old = best.get(key)
        if old is None or s[1] > old[1]:
            best[key] = s
    if not best:
        return []
    newest = max([s[2] for s in best.values()])
    pow_ = math.pow
    # Each signal's key once (this runs for every event with text); keys are unique, so no signal is compared.
    # The newest signal is the latest, so no age is negative.
    ordered = sorted(
        [
            ((-(s[1] * pow_(0.5, (newest - s[2]) / _KEEP_HALF_LIFE)), -s[2], s[3], s[0]), s)
            for s in best.values()
        ]
    )
    if len(ordered) > KEEP_PER_CAUSE:
        counts: dict[str, int] = {}
        first: list[tuple[tuple[float, float, str, str], K]] = []
        later: list[tuple[tuple[float, float, str, str], K]] = []
        for keyed in ordered:
            cause = keyed[0][3]
            n = counts[cause] = counts.get(cause, 0) + 1
            (first if n <= KEEP_PER_CAUSE else later).append(keyed)
        if later:  # some waited behind a chatty cause: the ones kept go back in rank order
            kept = (first + later)[:limit]
            kept.sort(key=itemgetter(0))
            return [s for _, s in kept]
    return [s for _, s in ordered[:limit]]


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
