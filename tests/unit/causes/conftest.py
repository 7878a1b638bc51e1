"""Shared values for the cause classifier tests: the package's lexicon, loaded once."""

from __future__ import annotations

import pytest

from services.detector.domain.causes import Lexicon, Signal

DAY = 86_400.0
T0 = 1_790_000_000.0
"""An event time (2026-09-21); tests count days from it."""


@pytest.fixture(scope="session")
def lexicon() -> Lexicon:
    return Lexicon.load(competitors=("TrackStar", "Acme Cloud"))


def extract(
    lexicon: Lexicon, text: str, *, direction: str = "internal", kind: str = "note", at: float = T0
) -> list[Signal]:
    return lexicon.extract(text, event_id="evt-1", at=at, direction=direction, kind=kind)


def top_cause(lexicon: Lexicon, text: str) -> str | None:
    found = extract(lexicon, text)
    return found[0].cause if found else None
