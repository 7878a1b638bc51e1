"""The compiled phrase scanner (``_scan.c``) finds exactly what the trie regex finds, for any phrases and text.

The regex (``text._trie_source``) is the reference: it is what the lexicon used before the scanner, and what it
falls back to where the scanner is not built. CI builds it (``make setup``), so a missing build fails here.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.detector.domain.causes import Lexicon, Signal
from services.detector.domain.causes import text as text_module
from services.detector.domain.causes.text import Breaks, LiteralSet, Phrase

from .test_scan import FRAMES, PHRASES

PREPARE_ALPHABET = "aZ1 \t\n\x1c\u3000\xa0-_/予ア。、「ＡÉ<&’ー\U00020bb7"
ALPHABET = "ab1 -予算。xZ\U00020bb7"
"""ASCII letters and a digit (word boundaries), a space and a hyphen, ideographs and a full stop, an upper-case
letter (not a word character for the boundary, as in the regex), a character outside the BMP (which the scanner's
filters of first characters and pairs do not cover)."""
phrase_text = st.text(ALPHABET, min_size=1, max_size=4)
phrase_sets = st.lists(st.tuples(phrase_text, st.booleans(), st.integers(0, 3)), min_size=1, max_size=12)
texts = st.text(ALPHABET, max_size=30)


def both(entries: list[tuple[str, bool, int]]) -> tuple[LiteralSet[int], LiteralSet[int]]:
    pairs = [(Phrase(t, wild), v) for t, wild, v in entries]
    return LiteralSet(pairs, native=True), LiteralSet(pairs, native=False)


def test_the_scanner_is_built() -> None:
    assert text_module.NATIVE, (
        "the compiled scanner is missing: run `make setup` (needs gcc and Python's headers)"
    )


@settings(max_examples=1500, deadline=None)
@given(phrase_sets, texts, st.integers(0, 31), st.integers(0, 31))
def test_the_scanner_finds_what_the_regex_finds(
    entries: list[tuple[str, bool, int]], text: str, a: int, b: int
) -> None:
    native, regex = both(entries)
    lo, hi = min(a, b, len(text)), min(max(a, b), len(text))
    assert native.find(text) == regex.find(text)
    assert native.find(text, lo, hi) == regex.find(text, lo, hi)
    assert native.search(text, lo, hi) == regex.search(text, lo, hi)
    assert native.search(text) == regex.search(text)
    assert native.found_in(text[lo:hi]) == regex.found_in(text[lo:hi])
    assert tuple(native.starts(text[lo:])) == tuple(regex.starts(text[lo:]))


@settings(max_examples=500, deadline=None)
@given(st.lists(phrase_text, min_size=1, max_size=6), texts)
def test_breaks_fall_where_the_regex_puts_them(marks: list[str], text: str) -> None:
    assert Breaks(marks, native=True).spans(text) == Breaks(marks, native=False).spans(text)


def test_a_word_boundary_sees_the_character_before_the_range_only_when_finding() -> None:
    native, regex = both([("ab", False, 0)])
    for impl in (native, regex):
        assert impl.find("xab", 1) == []  # as finditer(text, pos): the x before bounds nothing
        assert impl.search("xab", 1) is True  # as a search of the slice "ab"
        assert impl.find("ab1", 0, 2) == [(0, 2, 0)]  # the range's end is the text's end


def test_a_wild_phrase_takes_the_whole_word_and_an_exact_one_wins_when_it_ends_there() -> None:
    native, regex = both([("postpon", True, 1), ("postpone", False, 2), ("delay", False, 3)])
    for impl in (native, regex):
        assert impl.find("postponed; postpone; delays") == [(0, 9, 1), (11, 19, 2)]


def test_malformed_tries_are_refused() -> None:
    from services.detector.domain.causes._scan import Trie

    with pytest.raises(ValueError, match="malformed"):
        Trie([], [], [], [], 1, False)
    with pytest.raises(ValueError, match="malformed trie node"):
        Trie([0, 5, -1, -1, 0], [], [], [], 1, False)  # five edges that are not there
    with pytest.raises(ValueError, match="malformed trie edge"):
        Trie([0, 1, -1, -1, 0, 1, 0, 0, -1, 1], [97], [7], [()], 1, False)  # a child that is no node
    with pytest.raises(TypeError, match="tuples"):
        Trie([0, 0, -1, -1, 0], [], [], [[1]], 1, False)  # type: ignore[list-item]


@pytest.fixture(scope="module")
def slow() -> Lexicon:
    """The lexicon without the compiled scanner and hit loop: its regexes and Python's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(text_module, "NATIVE", False)
        return Lexicon.load(competitors=("TrackStar", "Acme Cloud"))


GLUE = [
    " ",
    "、",
    "。",
    ", ",
    " but ",
    " not ",
    "ない",
    "が",
    "ので",
    "\n",
    "-",
    "s",
    "ed ",
    "x",
    "1",
    "！",
    "ＡＢ",
]
PHRASE_LIST = sorted(PHRASES)
mixed_texts = st.lists(
    st.tuples(st.sampled_from(PHRASE_LIST), st.sampled_from(GLUE)), min_size=1, max_size=8
).map(lambda parts: "".join(p + g for p, g in parts))


@settings(max_examples=1500, deadline=None)
@given(mixed_texts, st.sampled_from([0.1, 0.5, 1.0, 1.5, 2.0, 7.0]))
def test_the_compiled_hit_loop_keeps_what_the_python_one_keeps(
    lexicon: Lexicon, slow: Lexicon, sample: str, factor: float
) -> None:
    """Listed phrases run together with negations, hedges, side cues and breaks between them, under any factor
    (which moves weights past the cap and the floor)."""
    folded = text_module.prepare(sample)[1]
    assert lexicon._native is not None
    assert lexicon._native.hits(folded, factor) == slow._kept_here(folded, factor)


long_texts = st.lists(
    st.tuples(st.sampled_from(PHRASE_LIST), st.sampled_from(GLUE)), min_size=4, max_size=24
).map(lambda parts: "".join(p + g for p, g in parts))


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(mixed_texts, long_texts, st.text(PREPARE_ALPHABET, max_size=30)),
    st.sampled_from(["inbound", "outbound", "internal", "elsewhere"]),
    st.sampled_from(["note", "call", "email", "meeting", "task", "lost_reason", "other"]),
)
def test_the_compiled_extraction_gives_the_python_signals(
    lexicon: Lexicon, slow: Lexicon, sample: str, direction: str, kind: str
) -> None:
    """Whole signals (excerpts cut around the words in long sentences, whose side, the lost reason's name),
    for texts the quick preparation takes and texts it leaves to Python (full-width, tags, entities)."""
    for variant in (sample, sample.upper(), f"<p>{sample}</p> &amp;"):
        got = lexicon.extract(variant, event_id="e", at=1.5, direction=direction, kind=kind)
        assert got == slow.extract(variant, event_id="e", at=1.5, direction=direction, kind=kind)
        assert all(type(s) is Signal for s in got)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(mixed_texts, long_texts, st.text(PREPARE_ALPHABET, max_size=30)),
    st.sampled_from(["inbound", "outbound", "internal"]),
    st.sampled_from(["note", "email", "lost_reason"]),
)
def test_the_bare_extraction_gives_each_signal_without_its_evidence(
    lexicon: Lexicon, sample: str, direction: str, kind: str
) -> None:
    """With no Signal type (the replay's engine), each signal is a list of the same fields, its excerpt and its
    name left out: cause, weight, time, event id, side are the Signal's own, in its order."""
    from services.detector.domain.causes.text import _prepare

    native = lexicon._native
    assert native is not None
    factors = (lexicon._kind_factor, lexicon._direction_factor)
    for variant in (sample, f"<p>{sample}</p> &amp;"):
        whole = native.extract(variant, "e-1", 2.5, direction, kind, _prepare, Signal, *factors)
        bare = native.extract(variant, "e-1", 2.5, direction, kind, _prepare, None, *factors)
        assert all(type(s) is list for s in bare)
        assert bare == [[s.cause, s.weight, s.at, s.event_id, None, s.side, None] for s in whole]


def test_the_lexicon_extracts_the_same_with_either(lexicon: Lexicon, slow: Lexicon) -> None:
    """Every listed phrase in its frames, and the phrases run together, give the same signals either way."""
    assert lexicon._native is not None and slow._native is None
    listed = sorted(PHRASES)
    samples = [frame.format(p) for p in listed for frame in FRAMES]
    samples += ["、".join(listed[i : i + 5]) + "。" for i in range(0, len(listed), 5)]
    samples += [" but not ".join(listed[i : i + 3]).upper() for i in range(0, len(listed), 3)]
    for kind in ("note", "lost_reason"):
        for sample in samples:
            assert lexicon.extract(
                sample, event_id="e", at=1.0, direction="inbound", kind=kind
            ) == slow.extract(sample, event_id="e", at=1.0, direction="inbound", kind=kind), sample


def test_the_quick_preparation_takes_exactly_the_stable_characters() -> None:
    """``prepare_stable`` declines a text with any character ``_UNSTABLE`` finds (or a tag's or entity's start),
    and takes every other; none of the characters it takes but ASCII ones has a case to fold."""
    from services.detector.domain.causes._scan import prepare_stable

    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        declined = prepare_stable(ch) is None
        assert declined == (text_module._UNSTABLE.match(ch) is not None or ch in "<&"), hex(code)
        if not declined and code >= 0x80:
            assert ch.casefold() == ch and ch.lower() == ch, hex(code)


@settings(max_examples=3000, deadline=None)
@given(st.text(PREPARE_ALPHABET, max_size=24))
def test_the_quick_preparation_gives_what_preparing_in_python_gives(sample: str) -> None:
    from services.detector.domain.causes._scan import prepare_stable

    quick = prepare_stable(sample)
    stable = text_module._UNSTABLE.search(sample) is None and "<" not in sample and "&" not in sample
    assert (quick is not None) == stable
    if quick is not None:
        assert quick == text_module._prepare(sample)
    assert text_module.prepare(sample) == text_module._prepare(sample)


kept_signal = st.builds(
    lambda cause, weight, at, event, as_list: (
        [cause, weight, int(at), event, "words", None, None]
        if as_list
        else Signal(cause, weight, at, event, "words")
    ),
    st.sampled_from(["budget", "competitor", "no_response", "staff_change"]),
    st.sampled_from([0.5, 0.8, 1.0, 1.6, 2.0, 2.4]),
    st.one_of(
        st.integers(1_780_000_000, 1_790_000_000),
        st.sampled_from([1_785_000_000.0, 1_785_000_000.5]),
        # a half-life (45 days) apart: 2.0 then and 1.0 now weigh the same, and time decides
        st.sampled_from([1_785_000_000 - 3_888_000 * k for k in range(3)]),
    ),
    st.sampled_from(["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8"]),
    st.booleans(),
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(kept_signal, max_size=12), st.integers(-1, 8))
def test_the_compiled_ranking_keeps_what_the_python_one_keeps(signals: list[Any], limit: int) -> None:
    """Stored lists and new signals together, repeated events and causes, equal weights and times, chatty
    causes: the same signals kept, the same objects, in the same order."""
    classify_module = importlib.import_module("services.detector.domain.causes.classify")

    got = classify_module.rank_for_keeping(signals, limit)
    want = classify_module._rank_here(signals, limit)
    assert [id(s) for s in got] == [id(s) for s in want]


def test_the_compiled_ranking_leaves_what_it_does_not_know_to_python() -> None:
    from services.detector.domain.causes._scan import rank

    assert rank([["budget", 1, 5, "e1"]], 3, 86_400.0, 3) is NotImplemented  # a weight that is an int
    assert rank([("budget", 1.0, None, "e1")], 3, 86_400.0, 3) is NotImplemented
    assert rank([["budget", float("nan"), 5, "e1"]], 3, 86_400.0, 3) is NotImplemented
    assert rank([["budget", 1.0, 5, "e1"]], 3, 86_400.0, 3) == [["budget", 1.0, 5, "e1"]]


def test_an_extractor_with_values_it_cannot_read_is_refused() -> None:
    """The hit loop reads cue factors and side cues without checking them, so they are checked when it is built."""
    from services.detector.domain.causes._scan import Extractor

    def trie(values: list[Any], plain: bool = False) -> Any:
        entries = [(Phrase(f"w{i}"), v) for i, v in enumerate(values)]
        return LiteralSet(entries, native=True).trie if not plain else Breaks(["。"], native=True).trie

    def build(sides: Any, pre: Any) -> Any:
        language = (
            "en",
            10,
            16,
            20,
            True,
            trie([], True),
            trie([], True),
            pre,
            trie([]),
            trie([]),
            sides,
            trie([]),
        )
        terms = LiteralSet([(Phrase("budget"), 0)], native=True).trie
        return Extractor(
            terms, [(0, 0, -1, -1, -1, 1.0, False, False, False)], [language], ["budget"], ("ours", "customer"),
            (0.3, 4.0, 3, 0.25, 0.5, 80),
        )  # fmt: skip

    assert build(trie([("ours", 1.0)]), trie([0.5])).hits("budget", 1.0) == [
        (1.0, "budget", [(1.0, 0, 6, "en", None)])
    ]
    with pytest.raises(TypeError, match="side cues"):
        build(trie([0.5]), trie([0.5]))
    with pytest.raises(TypeError, match="cue factors"):
        build(trie([("ours", 1.0)]), trie(["not a number"]))
    with pytest.raises(ValueError, match="term id"):
        Extractor(
            LiteralSet([(Phrase("budget"), 7)], native=True).trie, [], [], ["budget"], ("ours", "customer"),
            (0.3, 4.0, 3, 0.25, 0.5, 80),
        )  # fmt: skip
