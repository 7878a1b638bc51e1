"""Text plumbing for the lexicon: normalisation, pattern expansion, and literal sets compiled into one trie.

A literal set is many phrases compiled as one character trie, so a search costs about as much for five hundred
phrases as for five. The trie is matched in C (``_scan.c``, built by ``make setup``); where no C compiler was
found at install, the same trie written as one regular expression (``_trie_source``) finds the same, slower.
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import product
from typing import Any, Generic, TypeVar

try:
    from services.detector.domain.causes import _scan

    NATIVE = True
    """Whether the compiled phrase scanner is built; the tests require it."""
    _prepare_stable: Callable[[str], tuple[str, str] | None] = _scan.prepare_stable
except ImportError:  # not built (no C compiler where it was installed): the regexes find the same, slower
    NATIVE = False

    def _prepare_stable(text: str) -> tuple[str, str] | None:
        return None


V = TypeVar("V")
_Node = dict[str, "_Node"]

_PUNCT = str.maketrans(
    {
        "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2010": "-", "\u2011": "-",
        "_": " ", "/": " ", "\u30fb": " ",
    }
)  # fmt: skip
"""Quotes and hyphens unified; underscores, slashes and the Japanese middle dot become spaces."""
_PUNCT_ASCII = re.compile("[" + re.escape("".join(chr(c) for c in _PUNCT if c < 128)) + "]")
"""The ASCII characters ``_PUNCT`` changes: an ASCII text without them is left as it is, without a copy."""
_STABLE = "\x00-\x7f\u3001-\u3003\u300c-\u3011\u301c\u3041-\u3096\u30a1-\u30fa\u30fc\u4e00-\u9fff"
"""ASCII, kana, the common CJK ideographs and Japanese punctuation: characters NFKC leaves as they are and never
combines with a neighbour, and that ``_PUNCT`` leaves but for ASCII ones (checked one by one in the tests)."""
_UNSTABLE = re.compile(f"[^{_STABLE}]")
"""A character that NFKC or ``_PUNCT`` might change: a text with none needs neither (most Japanese notes), and one
scan over it costs less than normalising it."""
_WORD_HYPHEN = re.compile(r"(?<=\w)-(?=\w)")
"""A hyphen inside a word reads as a space ("follow-up" = "follow up"); a spaced one stays a clause break."""
_TAG = re.compile(r"<[^<>]{0,300}>")
ALNUM = "a-z0-9"
_MAX_EXPANSIONS = 1024
_GROUP = 64
"""First characters per lookahead group in a big trie regex (see ``_trie_source``)."""


def prepare(text: str) -> tuple[str, str]:
    """The text to show (NFKC, tags stripped, spaces collapsed) and the text to match (that, case-folded).

    The two have the same length whenever case folding keeps lengths (nearly always), so a match position in the
    folded text points at the same words in the shown text; otherwise the folded text is shown. Most texts are
    prepared by ``_scan.prepare_stable`` where it is built, the rest here.
    """
    return _prepare_stable(text) or _prepare(text)


def _prepare(text: str) -> tuple[str, str]:
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii() and _UNSTABLE.search(text) is not None:
        text = unicodedata.normalize("NFKC", text).translate(_PUNCT)
    elif _PUNCT_ASCII.search(text) is not None:
        text = text.translate(_PUNCT)
    if "-" in text:
        text = _WORD_HYPHEN.sub(" ", text)
    shown = " ".join(text.split())  # str.split and the regex \s agree on what is a space; this is faster
    folded = shown.casefold()
    return (shown if len(shown) == len(folded) else folded), folded


def fold(phrase: str) -> str:
    """A pattern or cue as it will be compared: normalised and case-folded like the text."""
    return prepare(phrase)[1]


def expand(pattern: str) -> list[str]:
    """Brace alternatives: ``予算{が,は,}不足`` gives 予算が不足, 予算は不足, 予算不足. No nesting."""
    parts = re.split(r"(\{[^{}]*\})", pattern)
    options = [p[1:-1].split(",") if p.startswith("{") else [p] for p in parts]
    count = 1
    for o in options:
        count *= len(o)
    if count > _MAX_EXPANSIONS:
        raise ValueError(f"pattern {pattern!r} expands to {count} phrases (at most {_MAX_EXPANSIONS})")
    return ["".join(choice) for choice in product(*options)]


@dataclass(frozen=True, slots=True)
class Phrase:
    """One literal to find. ``wild``: the last word may go on (``postpon*`` finds postponed, postponing)."""

    text: str
    wild: bool = False


def phrases(pattern: str) -> list[Phrase]:
    """The literals a data pattern stands for, folded; a trailing ``*`` makes the last word open-ended."""
    out = []
    for raw in expand(pattern):
        wild = raw.endswith("*")
        text = fold(raw.rstrip("*"))
        if text:
            out.append(Phrase(text, wild))
    return out


def is_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _trie_source(items: Iterable[Phrase]) -> str:
    """One regex for all phrases: a trie, longest phrase first at every branch, ASCII words bounded. The
    reference for the compiled scanner (``_scan.c``), and its stand-in where that is not built.

    Every top-level branch starts with its literal first character (an ASCII word's left boundary is checked
    just after it), so the regex engine can skip positions whose character starts no phrase. The engine tries a
    position's branches one after another, though, so with hundreds of first characters (Japanese) that is most
    of the cost: then the branches go in groups of ``_GROUP`` first characters, each behind a lookahead for its
    characters, and a position tries a few groups. Only one branch can match at a position either way.
    """
    root: _Node = {}
    for p in items:
        node = root
        for ch in p.text:
            node = node.setdefault(ch, {})
        if is_alnum(p.text[-1]):
            node["\0wild" if p.wild else "\0bound"] = {}
        else:
            node["\0end"] = {}

    def emit(node: _Node) -> str:
        alts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if not ch.startswith("\0")]
        if "\0wild" in node:
            alts.append(f"[{ALNUM}]*")
        elif "\0bound" in node:
            alts.append(f"(?![{ALNUM}])")
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 and "\0end" not in node else "(?:" + "|".join(alts) + ")"
        return body + ("?" if "\0end" in node else "")

    firsts = sorted(root)
    branches = []
    for ch in firsts:
        bound = f"(?<![{ALNUM}].)" if is_alnum(ch) else ""
        branches.append(re.escape(ch) + bound + emit(root[ch]))
    if len(branches) <= _GROUP:
        return "|".join(branches) if branches else "(?!)"
    groups = []
    for i in range(0, len(branches), _GROUP):
        chars = "".join(re.escape(ch) for ch in firsts[i : i + _GROUP])
        groups.append(f"(?=[{chars}])(?:" + "|".join(branches[i : i + _GROUP]) + ")")
    return "|".join(groups)


_END, _BOUND, _WILD = 1, 2, 3
"""How a phrase ends in the compiled trie (see ``_scan.c``): anywhere, before no ASCII letter or digit, or
going on over them (a trailing ``*``)."""


def _compiled(phrases: Mapping[tuple[str, bool], int], values: list[tuple[Any, ...]], plain: bool) -> Any:
    """The compiled trie of ``phrases`` ((text, wild) -> value id), its nodes and edges flattened breadth first.
    A ``plain`` trie ends every phrase anywhere and bounds no word (clause breaks)."""
    children: list[dict[str, int]] = [{}]
    ends: list[list[int]] = [[-1, -1]]
    last = [""]
    for (text, wild), vid in phrases.items():
        node = 0
        for ch in text:
            nxt = children[node].get(ch)
            if nxt is None:
                nxt = children[node][ch] = len(children)
                children.append({})
                ends.append([-1, -1])
                last.append(ch)
            node = nxt
        ends[node][1 if wild else 0] = vid
    nodes: list[int] = []
    chars: list[int] = []
    kids: list[int] = []
    for node, edges in enumerate(children):
        exact_id, wild_id = ends[node]
        if exact_id < 0 and wild_id < 0:
            term = 0
        elif plain or not is_alnum(last[node]):
            term = _END
        else:
            term = _WILD if wild_id >= 0 else _BOUND
        nodes += [len(chars), len(edges), exact_id, wild_id, term]
        for ch in sorted(edges):
            chars.append(ord(ch))
            kids.append(edges[ch])
    depth = max((len(text) for text, _ in phrases), default=1)
    return _scan.Trie(nodes, chars, kids, values, depth, plain)


class LiteralSet(Generic[V]):
    """Phrases mapped to values, found in one pass: by the compiled trie of ``_scan`` where it is built (``make
    setup`` builds it), else by one regex (``_trie_source``) that finds the same."""

    find: Callable[..., list[tuple[int, int, V]]]
    """``find(text, lo=0, hi=len)``: every hit in ``text[lo:hi]`` as (start, end, value), in order; a character
    before ``lo`` still bounds a word (a regex's ``finditer(text, lo, hi)``)."""
    search: Callable[..., bool]
    """``search(text, lo=0, hi=len)``: whether the slice ``text[lo:hi]`` holds a phrase."""
    found_in: Callable[[str], list[V]]
    """The values of every phrase in a short text (a window around a hit)."""
    starts: Callable[[str], Sequence[V]]
    """The values of the phrase the text begins with, if any."""

    def __init__(self, entries: Iterable[tuple[Phrase, V]], *, native: bool | None = None):
        self._exact: dict[str, list[V]] = {}
        self._wild: dict[str, list[V]] = {}
        seen: dict[Phrase, None] = {}
        for phrase, value in entries:
            table = self._wild if phrase.wild else self._exact
            table.setdefault(phrase.text, []).append(value)
            seen[phrase] = None
        self._phrases = list(seen)
        self.native = NATIVE if native is None else native
        self.trie: Any = None
        """The compiled trie (``_scan.Trie``) when ``native``."""
        if self.native:
            ids: dict[tuple[str, bool], int] = {}
            values: list[tuple[Any, ...]] = []
            for wild, table in ((False, self._exact), (True, self._wild)):
                for text, vs in table.items():
                    ids[text, wild] = len(values)
                    values.append(tuple(vs))
            trie = self.trie = _compiled(ids, values, plain=False)
            self.find, self.search, self.found_in, self.starts = (
                trie.find,
                trie.search,
                trie.found_in,
                trie.starts,
            )
        else:
            self.find, self.search = self._regex_find, self._regex_search
            self.found_in, self.starts = self._regex_found_in, self._regex_starts

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(_trie_source(self._phrases))

    @cached_property
    def _ascii(self) -> re.Pattern[str]:
        return re.compile(_trie_source(p for p in self._phrases if p.text.isascii()))

    def __len__(self) -> int:
        return sum(len(v) for v in self._exact.values()) + sum(len(v) for v in self._wild.values())

    def entries(self) -> Iterator[tuple[Phrase, V]]:
        """Every phrase with each of its values, in the order given."""
        for wild, table in ((False, self._exact), (True, self._wild)):
            for text, values in table.items():
                for v in values:
                    yield Phrase(text, wild), v

    def values_of(self, matched: str) -> Sequence[V]:
        exact = self._exact.get(matched)
        if exact is not None:
            return exact
        for stop in range(len(matched), 0, -1):
            wild = self._wild.get(matched[:stop])
            if wild is not None:
                return wild
        return ()

    def _regex_find(self, text: str, lo: int = 0, hi: int | None = None) -> list[tuple[int, int, V]]:
        exact = self._exact
        out = []
        regex = self._ascii if text.isascii() else self.regex
        for m in regex.finditer(text, lo, len(text) if hi is None else hi):
            matched = m.group()
            values: Sequence[V] | None = exact.get(matched)
            if values is None:
                values = self.values_of(matched)
            start, end = m.span()
            for v in values:
                out.append((start, end, v))
        return out

    def _regex_search(self, text: str, lo: int = 0, hi: int | None = None) -> bool:
        return self.regex.search(text[lo:hi]) is not None

    def _regex_found_in(self, text: str) -> list[V]:
        if not text or self.regex.search(text) is None:
            return []
        return [v for m in self.regex.finditer(text) for v in self.values_of(m.group())]

    def _regex_starts(self, text: str) -> Sequence[V]:
        m = self.regex.match(text)
        return self.values_of(m.group()) if m else ()


class Breaks:
    """Marks that end a clause or a sentence; ``spans(text)`` gives where they fall, (starts, ends), the longest
    mark where two start at the same place."""

    spans: Callable[[str], tuple[list[int], list[int]]]

    def __init__(self, marks: Iterable[str], *, native: bool | None = None):
        self.marks = sorted({m for m in marks if m}, key=len, reverse=True)
        self.trie: Any = None
        """The compiled trie (``_scan.Trie``) when native."""
        if NATIVE if native is None else native:
            self.trie = _compiled({(m, False): 0 for m in self.marks}, [()], plain=True)
            self.spans = self.trie.spans
        else:
            self.spans = self._regex_spans

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile("|".join(re.escape(m) for m in self.marks) or "(?!)")

    def _regex_spans(self, text: str) -> tuple[list[int], list[int]]:
        starts, ends = [], []
        for m in self.regex.finditer(text):
            s, e = m.span()
            starts.append(s)
            ends.append(e)
        return starts, ends


class Segmented:
    """One text and, computed on first use, where each kind of break falls in it."""

    def __init__(self, text: str):
        self.text = text
        self._spans: dict[Breaks, tuple[list[int], list[int]]] = {}

    def bounds(self, start: int, end: int, breaks: Breaks) -> tuple[int, int]:
        """The clause or sentence around ``text[start:end]``: after the last break before it, up to the next."""
        spans = self._spans.get(breaks)
        if spans is None:
            spans = self._spans[breaks] = breaks.spans(self.text)
        starts, ends = spans
        i = bisect_right(ends, start)
        j = bisect_left(starts, end)
        return (ends[i - 1] if i else 0), (starts[j] if j < len(starts) else len(self.text))


def excerpt(shown: str, start: int, end: int, lo: int, hi: int, limit: int) -> str:
    """The matched words inside their clause, cut to ``limit`` characters around the match."""
    lo, hi = max(lo, 0), min(hi, len(shown))
    if hi - lo <= limit:
        return shown[lo:hi].strip()
    room = max(limit - (end - start) - 2, 0)
    left = max(lo, start - room // 2)
    right = min(hi, left + limit - 2)
    left = max(lo, right - (limit - 2))
    text = shown[left:right].strip()
    return ("…" if left > lo else "") + text + ("…" if right < hi else "")


def mapping_of_floats(raw: Mapping[str, object], what: str) -> dict[str, float]:
    out = {}
    for key, value in raw.items():
        if not isinstance(value, int | float):
            raise ValueError(f"{what}.{key} must be a number")
        out[key] = float(value)
    return out
