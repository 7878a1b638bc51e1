"""The term scan is a shortcut (a compiled trie, or where it is not built one regex with its first characters in
lookahead groups and an ASCII-only regex for ASCII text); it must never miss a phrase the data files list,
whatever the script, width or case it is written in.
"""

from __future__ import annotations

import tomllib
from collections import defaultdict

import pytest

from services.detector.domain.causes import Lexicon
from services.detector.domain.causes.lexicon import DATA_DIR, LEXICON_GLOB
from services.detector.domain.causes.text import expand

from .conftest import extract

COMPETITORS = ("TrackStar", "Acme Cloud")
FRAMES = ("fyi: {}.", "メモ:{}。")
"""A phrase alone in its clause, in ASCII text (the ASCII regex when the phrase is ASCII) and in Japanese text
(the full regex, whatever the phrase)."""
FULL_WIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})


def listed_phrases() -> dict[str, set[str]]:
    """Every phrase of every term that can make a signal alone, as written in the data (patterns expanded, a
    trailing * dropped), with the causes it can speak for."""
    out: dict[str, set[str]] = defaultdict(set)
    for path in sorted(DATA_DIR.glob(LEXICON_GLOB)):
        raw = tomllib.loads(path.read_text("utf-8"))
        for group in raw.get("terms", []):
            if float(group.get("weight", 1.0)) < 0.25:  # anchors and hints too faint even as a lost reason
                continue
            causes = {group["cause"], group.get("when_ours"), group.get("when_customer")} - {None}
            for pattern in group.get("patterns", []):
                for phrase in expand(pattern):
                    out[phrase.rstrip("*")] |= causes
    for name in COMPETITORS:
        out[name].add("competitor")
    return out


PHRASES = listed_phrases()


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon.load(competitors=COMPETITORS)


def test_the_frames_alone_say_nothing(lexicon: Lexicon) -> None:
    for frame in FRAMES:
        assert extract(lexicon, frame.format("x"), kind="lost_reason") == []


def test_every_listed_phrase_is_found_as_written_full_width_and_upper_case(lexicon: Lexicon) -> None:
    assert len(PHRASES) > 2000
    missed = []
    for phrase, causes in PHRASES.items():
        for frame in FRAMES:
            for variant in {phrase, phrase.translate(FULL_WIDTH), phrase.upper()}:
                text = frame.format(variant)
                found = {s.cause for s in extract(lexicon, text, kind="lost_reason")}
                if not found & causes:
                    missed.append((text, sorted(causes), sorted(found)))
    assert missed == []
