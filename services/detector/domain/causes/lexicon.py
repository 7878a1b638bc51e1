"""Text to cause signals: the per-language lexicons in ``data/causes_lexicon.*.toml``, compiled once.

All languages' phrases go into one literal set (one trie), so a text is scanned once whatever its language and
a mixed Japanese-English note needs nothing special; each hit then uses its own language's rules for negation,
hedges, passing mentions, boosters and whose side a staff change is on.

Where ``_scan`` is built, ``extract`` runs in C (``_scan.Extractor``) over the same data, with the same arithmetic
in the same order; the Python methods below are its reference (the tests hold the two equal) and its stand-in.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

from services.detector.domain.causes.model import CAUSES, EXCERPT_LIMIT, SIDES, Signal
from services.detector.domain.causes.text import (
    Breaks,
    LiteralSet,
    Phrase,
    Segmented,
    _prepare,
    excerpt,
    fold,
    is_alnum,
    phrases,
    prepare,
)

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
LEXICON_GLOB = "causes_lexicon.*.toml"
RULES_FILE = "causes_rules.toml"
MODIFIERS = ("negation", "hedge", "passing")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Term:
    cause: str
    weight: float
    lang: str
    boost: bool = False
    side: str | None = None
    when_ours: str | None = None
    when_customer: str | None = None
    stop: bool = False
    """A stop phrase: it only keeps shorter phrases inside it from matching ("no budget concerns")."""

    @property
    def sided(self) -> bool:
        return self.cause == "staff_change" or self.when_ours is not None or self.when_customer is not None


@dataclass(frozen=True, slots=True)
class Scope:
    pre_chars: int
    post_chars: int
    booster_reach: int
    clauses: Breaks
    sentences: Breaks
    plain_breaks: bool
    """Every clause break begins and ends with a character other than an ASCII letter or digit."""


@dataclass(frozen=True, slots=True)
class Language:
    """One language's rules around a hit: its scope and its modifier and side cues."""

    name: str
    scope: Scope
    pre: LiteralSet[float]
    """Modifier cues before a hit, each with its modifier's factor (so is ``post`` and ``post_start``)."""
    post: LiteralSet[float]
    post_start: LiteralSet[float]
    sides: LiteralSet[tuple[str, float]]
    after_cue: LiteralSet[float]
    """The cues of ``post`` and ``post_start`` in one set: a hit with no cue before it and none of these after
    it (nearly every hit) is left as it is after two searches."""

    def alone(self, folded: str, start: int, end: int) -> bool:
        """No modifier cue within reach of the hit, whatever its clause: the clause can only narrow the windows
        that ``modifier`` searches, and when every clause break begins and ends with a character that is not a
        letter or a digit, narrowing them cannot make a cue appear (its word boundaries stay what they were)."""
        s = self.scope
        return (
            s.plain_breaks
            and not self.pre.search(folded, max(0, start - s.pre_chars), start)
            and not self.after_cue.search(folded, end, end + s.post_chars)
        )

    def modifier(self, folded: str, start: int, end: int, lo: int, hi: int) -> float:
        """The smallest factor among the modifiers whose cues surround the hit in its clause (1.0: none)."""
        s = self.scope
        before = folded[max(lo, start - s.pre_chars) : start]
        after = folded[end : min(hi, end + s.post_chars)]
        if not self.pre.search(before) and not self.after_cue.search(after):
            return 1.0
        found = self.pre.found_in(before) + self.post.found_in(after)
        found.extend(self.post_start.starts(after.lstrip()))
        return min(found, default=1.0)

    def side(self, text: Segmented, start: int, end: int) -> str | None:
        """Whose person the hit is about, from side cues in its sentence, nearer cues counting more."""
        lo, hi = text.bounds(start, end, self.scope.sentences)
        ours = customer = 0.0
        for s, e, (side, weight) in self.sides.find(text.text, lo, hi):
            if s < end and e > start:
                continue
            near = 1.0 + max(start - e if e <= start else s - end, 0) / 15.0
            if side == "ours":
                ours += weight / near
            else:
                customer += weight / near
        if ours == customer:
            return None
        return "ours" if ours > customer else "customer"


@dataclass(frozen=True, slots=True)
class ExtractSettings:
    merge_repeat: float = 0.3
    cap: float = 4.0
    max_per_text: int = 3
    min_share: float = 0.25
    min_weight: float = 0.5
    competitor_name_weight: float = 0.8
    kind_factor: Mapping[str, float] | None = None
    direction_factor: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        numbers = {
            "merge_repeat": self.merge_repeat,
            "cap": self.cap,
            "min_share": self.min_share,
            "min_weight": self.min_weight,
            "competitor_name_weight": self.competitor_name_weight,
            **{f"kind_factor.{k}": v for k, v in (self.kind_factor or {}).items()},
            **{f"direction_factor.{k}": v for k, v in (self.direction_factor or {}).items()},
        }
        for name, value in numbers.items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"[extract] {name} must be a finite number of 0 or more, not {value!r}")
        if self.max_per_text < 1:
            raise ValueError(f"[extract] max_per_text must be 1 or more, not {self.max_per_text!r}")

    @classmethod
    def from_toml(cls, raw: Mapping[str, Any]) -> ExtractSettings:
        return cls(
            merge_repeat=float(raw.get("merge_repeat", 0.3)),
            cap=float(raw.get("cap", 4.0)),
            max_per_text=int(raw.get("max_per_text", 3)),
            min_share=float(raw.get("min_share", 0.25)),
            min_weight=float(raw.get("min_weight", 0.5)),
            competitor_name_weight=float(raw.get("competitor_name_weight", 0.8)),
            kind_factor={k: float(v) for k, v in raw.get("kind_factor", {}).items()},
            direction_factor={k: float(v) for k, v in raw.get("direction_factor", {}).items()},
        )


_Hit = tuple[float, int, int, str, str | None]
"""One hit of a cause in a text: (weight, start, end, language, side). A plain tuple: a text makes a few, and a
tuple costs a twentieth of a class instance to make."""


class Lexicon:
    """Finds cause signals in activity text, Japanese or English or both. Build once with ``load``."""

    def __init__(
        self, terms: LiteralSet[Term], languages: Mapping[str, Language], settings: ExtractSettings
    ) -> None:
        self._terms = terms
        self._languages = dict(languages)
        self._settings = settings
        self._native = _extractor(terms, self._languages, settings) if terms.native else None
        """The compiled ``extract`` (``_scan.Extractor``) where it is built; the Python below is its reference."""
        self._kind_factor = dict(settings.kind_factor or {})
        self._direction_factor = dict(settings.direction_factor or {})

    @classmethod
    def load(cls, data_dir: Path | None = None, competitors: Sequence[str] = ()) -> Lexicon:
        """Read every ``causes_lexicon.<lang>.toml`` in ``data_dir`` (default: the package's data) and the
        ``[extract]`` settings of ``causes_rules.toml``; ``competitors`` are names from configuration."""
        folder = data_dir or DATA_DIR
        files = sorted(folder.glob(LEXICON_GLOB))
        if not files:
            raise FileNotFoundError(f"no {LEXICON_GLOB} in {folder}")
        rules_path = folder / RULES_FILE
        rules = tomllib.loads(rules_path.read_text("utf-8")) if rules_path.exists() else {}
        settings = ExtractSettings.from_toml(rules.get("extract", {}))
        entries: list[tuple[Phrase, Term]] = []
        languages: dict[str, Language] = {}
        for path in files:
            raw = tomllib.loads(path.read_text("utf-8"))
            lang = _language(raw, path)
            languages[lang.name] = lang
            entries.extend(_terms(raw, lang.name, path))
        names_lang = "en" if "en" in languages else next(iter(languages))
        name_term = Term("competitor", settings.competitor_name_weight, names_lang)
        entries.extend((Phrase(fold(name)), name_term) for name in competitors if fold(name))
        return cls(LiteralSet(_strongest(entries)), languages, settings)

    @property
    def size(self) -> int:
        """How many phrases the lexicon knows (patterns expanded)."""
        return len(self._terms)

    def extract(self, text: str, *, event_id: str, at: float, direction: str, kind: str) -> list[Signal]:
        """The causes one event's text speaks for: at most a few signals, one per cause, strongest first.

        ``direction``: inbound, outbound or internal; ``kind``: note, call, email, meeting, task or
        lost_reason (the CRM's lost-reason field, which counts double and is named ``field:lost_reason``).
        """
        if not text:
            return []
        if self._native is not None:
            return self._native.extract(  # type: ignore[no-any-return]
                text,
                event_id,
                at,
                direction,
                kind,
                _prepare,
                Signal,
                self._kind_factor,
                self._direction_factor,
            )
        shown, folded = prepare(text)
        factor = self._kind_factor.get(kind, 1.0) * self._direction_factor.get(direction, 1.0)
        kept = self._kept_here(folded, factor)
        if not kept:
            return []
        segmented = Segmented(folded)
        # Only the causes kept are worth an excerpt and a Signal.
        name = "field:lost_reason" if kind == "lost_reason" else None
        return [
            self._signal(cause, weight, cause_hits, shown, segmented, event_id, at, name)
            for weight, cause, cause_hits in kept
        ]

    def _kept_here(self, folded: str, factor: float) -> list[tuple[float, str, list[_Hit]]]:
        """The causes a folded text speaks for that ``extract`` keeps, strongest first, as (weight, cause, hits),
        each cause's hits strongest first. ``_scan.Extractor.hits`` computes the same in C, and is used where it
        is built."""
        found = self._terms.find(folded)
        if not found:
            return []
        hits = self._hits(Segmented(folded), found)
        if not hits:
            return []
        s = self._settings
        weighed = [
            (self._weight(cause_hits, factor), cause, cause_hits) for cause, cause_hits in hits.items()
        ]
        if len(weighed) > 1:
            weighed.sort(key=lambda w: -w[0])
        floor = max(weighed[0][0] * s.min_share, s.min_weight)
        return [w for w in weighed[: s.max_per_text] if w[0] >= floor]

    def _hits(self, text: Segmented, found: list[tuple[int, int, Term]]) -> dict[str, list[_Hit]]:
        boosters = [(s, e, t) for s, e, t in found if t.boost]
        boosted = {t.cause for _, _, t in boosters}
        hits: dict[str, list[_Hit]] = {}
        for start, end, term in found:
            if term.boost or term.stop or (term.weight <= 0.0 and term.cause not in boosted):
                continue
            lang = self._languages[term.lang]
            weight = term.weight
            # Without a booster of its cause in the text, the clause matters only if a modifier cue is near the hit.
            boost = term.cause in boosted
            if boost or not lang.alone(text.text, start, end):
                lo, hi = text.bounds(start, end, lang.scope.clauses)
                if boost:
                    weight += self._bonus(boosters, term, start, end, lo, hi)
                if weight <= 0.0:
                    continue
                weight *= lang.modifier(text.text, start, end, lo, hi)
                if weight <= 0.0:
                    continue
            cause, side = term.cause, term.side
            if term.sided:
                side = lang.side(text, start, end) or side
                if side == "ours" and term.when_ours:
                    cause = term.when_ours
                elif side == "customer" and term.when_customer:
                    cause = term.when_customer
            hits.setdefault(cause, []).append((weight, start, end, term.lang, side))
        return hits

    def _bonus(
        self, boosters: list[tuple[int, int, Term]], term: Term, start: int, end: int, lo: int, hi: int
    ) -> float:
        """The strongest booster of the hit's cause in its clause and within reach, not overlapping it."""
        reach = self._languages[term.lang].scope.booster_reach
        bonus = 0.0
        for s, e, b in boosters:
            inside = lo <= s and e <= hi and (e <= start or s >= end)
            if (
                b.cause == term.cause
                and inside
                and start - e <= reach
                and s - end <= reach
                and b.weight > bonus
            ):
                bonus = b.weight
        return bonus

    def _weight(self, hits: list[_Hit], factor: float) -> float:
        """One cause's strength in a text: its strongest hit, the others merged in at a discount. Sorts ``hits``,
        strongest first."""
        s = self._settings
        if len(hits) == 1:
            return round(min(s.cap, hits[0][0] * factor), 4)
        hits.sort(key=itemgetter(0), reverse=True)  # stable, as a sort on the negated weight
        weight = min(s.cap, (hits[0][0] + s.merge_repeat * sum(h[0] for h in hits[1:])) * factor)
        return round(weight, 4)

    def _signal(
        self,
        cause: str,
        weight: float,
        hits: list[_Hit],
        shown: str,
        text: Segmented,
        event_id: str,
        at: float,
        name: str | None,
    ) -> Signal:
        """The signal of one cause from its weight and its hits, sorted strongest first by ``_weight``."""
        _, start, end, lang, _ = hits[0]
        side = None
        if cause == "staff_change":  # whose side: the hits' weights vote
            ours = sum(h[0] for h in hits if h[4] == "ours")
            customer = sum(h[0] for h in hits if h[4] == "customer")
            if ours != customer:
                side = "ours" if ours > customer else "customer"
        lo, hi = text.bounds(start, end, self._languages[lang].scope.sentences)
        words = excerpt(shown, start, end, lo, hi, EXCERPT_LIMIT)
        return Signal(cause, weight, at, event_id, words, side, name or f"text:{cause}")


def _extractor(terms: LiteralSet[Term], languages: Mapping[str, Language], settings: ExtractSettings) -> Any:
    """The compiled hit loop (``_scan.Extractor``) over the same terms and languages, which it takes as numbers:
    terms by their index in a table, causes, languages and sides by their index."""
    from services.detector.domain.causes import _scan

    causes = [*CAUSES, ""]  # "" is a stop phrase's cause
    names = list(languages)
    table: list[Term] = []
    index: dict[Term, int] = {}
    numbered: list[tuple[Phrase, int]] = []
    for phrase, term in terms.entries():
        if term not in index:
            index[term] = len(table)
            table.append(term)
        numbered.append((phrase, index[term]))

    def cause(name: str | None) -> int:
        return -1 if name is None else causes.index(name)

    rows = [
        (
            cause(t.cause),
            names.index(t.lang),
            -1 if t.side is None else SIDES.index(t.side),
            cause(t.when_ours),
            cause(t.when_customer),
            t.weight,
            t.boost,
            t.stop,
            t.sided,
        )
        for t in table
    ]
    langs = [
        (
            name,
            lang.scope.pre_chars,
            lang.scope.post_chars,
            lang.scope.booster_reach,
            lang.scope.plain_breaks,
            lang.scope.clauses.trie,
            lang.scope.sentences.trie,
            lang.pre.trie,
            lang.post.trie,
            lang.post_start.trie,
            lang.sides.trie,
            lang.after_cue.trie,
        )
        for name, lang in languages.items()
    ]
    s = settings
    return _scan.Extractor(
        LiteralSet(numbered, native=True).trie,
        rows,
        langs,
        causes,
        SIDES,
        (s.merge_repeat, s.cap, s.max_per_text, s.min_share, s.min_weight, EXCERPT_LIMIT),
    )


def _language(raw: Mapping[str, Any], path: Path) -> Language:
    name = raw.get("language")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{path.name}: 'language' is missing")
    sc = raw.get("scope", {})
    clause_breaks = list(sc.get("clause_breaks", ["\n"]))
    scope = Scope(
        pre_chars=int(sc.get("pre_chars", 10)),
        post_chars=int(sc.get("post_chars", 16)),
        booster_reach=int(sc.get("booster_reach", 20)),
        clauses=Breaks(clause_breaks),
        sentences=Breaks(sc.get("sentence_breaks", ["\n"])),
        plain_breaks=all(not is_alnum(m[0]) and not is_alnum(m[-1]) for m in clause_breaks if m),
    )
    mods = raw.get("modifiers", {})
    unknown = set(mods) - set(MODIFIERS)
    if unknown:
        raise ValueError(f"{path.name}: unknown modifiers {sorted(unknown)}")
    factors = {m: float(mods.get(m, {}).get("factor", 1.0)) for m in MODIFIERS}

    def entries(where: str) -> list[tuple[Phrase, float]]:
        return _entries((factors[m], mods.get(m, {}).get(where, [])) for m in MODIFIERS)

    side_entries: list[tuple[Phrase, tuple[str, float]]] = []
    for group in raw.get("sides", []):
        side = group.get("side")
        if side not in SIDES:
            raise ValueError(f"{path.name}: side must be one of {SIDES}, not {side!r}")
        value = (str(side), float(group.get("weight", 1.0)))
        side_entries.extend((p, value) for pattern in group.get("cues", []) for p in phrases(pattern))
    pre, post, post_start = entries("pre"), entries("post"), entries("post_start")
    return Language(
        name,
        scope,
        LiteralSet(pre),
        LiteralSet(post),
        LiteralSet(post_start),
        LiteralSet(side_entries),
        LiteralSet([*post, *post_start]),
    )


def _strongest(entries: Iterable[tuple[Phrase, Term]]) -> list[tuple[Phrase, Term]]:
    """One term per phrase and role: a phrase listed twice for a cause counts once, at its larger weight,
    keeping a default side or side-dependent cause given by either listing."""
    best: dict[tuple[Phrase, str, bool, bool], Term] = {}
    for phrase, term in entries:
        key = (phrase, term.cause, term.boost, term.stop)
        old = best.get(key)
        if old is None:
            best[key] = term
            continue
        strong, weak = (term, old) if term.weight > old.weight else (old, term)
        best[key] = replace(
            strong,
            side=strong.side or weak.side,
            when_ours=strong.when_ours or weak.when_ours,
            when_customer=strong.when_customer or weak.when_customer,
        )
    return [(phrase, term) for (phrase, *_), term in best.items()]


def _entries(groups: Iterable[tuple[V, Sequence[str]]]) -> list[tuple[Phrase, V]]:
    return [(p, value) for value, patterns in groups for pattern in patterns for p in phrases(pattern)]


def _terms(raw: Mapping[str, Any], lang: str, path: Path) -> list[tuple[Phrase, Term]]:
    stop = Term("", 0.0, lang, stop=True)
    out = [
        (p, stop)
        for group in raw.get("stops", [])
        for pattern in group.get("patterns", [])
        for p in phrases(pattern)
    ]
    for table, boost in (("terms", False), ("boosters", True)):
        for group in raw.get(table, []):
            cause = group.get("cause")
            if cause not in CAUSES or cause == "unknown":
                raise ValueError(f"{path.name}: {table} cause {cause!r} is not a contract cause")
            for key in ("when_ours", "when_customer"):
                other = group.get(key)
                if other is not None and (other not in CAUSES or other == "unknown"):
                    raise ValueError(f"{path.name}: {key} {other!r} is not a contract cause")
            side = group.get("side")
            if side is not None and side not in SIDES:
                raise ValueError(f"{path.name}: side must be one of {SIDES}, not {side!r}")
            weight = float(group.get("weight", 1.0))
            if weight < 0:
                raise ValueError(f"{path.name}: weight of {cause} must not be negative")
            term = Term(cause, weight, lang, boost, side, group.get("when_ours"), group.get("when_customer"))
            out.extend((p, term) for pattern in group.get("patterns", []) for p in phrases(pattern))
    return out
