"""Properties that hold for any text and any facts: generated cases, thousands a second."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.detector.domain.causes import CAUSES, Facts, Lexicon, Signal, classify, verdict
from tests.unit.causes.conftest import DAY, T0

LEXICON = Lexicon.load(competitors=("TrackStar",))
WORDS = [
    "予算",
    "競合",
    "退職",
    "返信なし",
    "budget",
    "no reply",
    "not",
    "ない",
    "、",
    "。",
    " ",
    "ＡＢＣ",
    "<p>",
    "-",
    "競合はいない",
]
texts = st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=12)), max_size=12).map("".join)
signals = st.builds(
    Signal,
    cause=st.sampled_from([c for c in CAUSES if c != "unknown"]),
    weight=st.floats(0.01, 4.0),
    at=st.floats(T0 - 300 * DAY, T0 + 30 * DAY),
    event_id=st.sampled_from(["e1", "e2", "e3"]),
    excerpt=st.text(max_size=80),
    side=st.sampled_from([None, "ours", "customer"]),
)
optional_time = st.one_of(st.none(), st.floats(T0 - 200 * DAY, T0))
facts = st.builds(
    Facts,
    kind=st.sampled_from(["went_quiet", "reassigned", "contact_left", "stalled", "closed_lost"]),
    at=st.just(T0),
    owner_changed_at=optional_time,
    contact_left_at=optional_time,
    contact_change=st.sampled_from([None, "left_company", "removed", "role_changed"]),
    amount_cut_share=st.one_of(st.none(), st.floats(0.0, 1.0)),
    close_date_pushes=st.integers(0, 6),
    close_date_slip_days=st.integers(0, 200),
    stage_moved_back=st.booleans(),
    lost_reason=st.one_of(st.none(), st.text(max_size=100)),
    outbound_since_inbound=st.integers(0, 12),
    last_outbound_at=optional_time,
    last_inbound_at=optional_time,
    last_activity_at=optional_time,
    activities=st.integers(0, 50),
)


@settings(max_examples=300, deadline=None)
@given(text=texts, direction=st.sampled_from(["inbound", "outbound", "internal"]))
def test_extract_on_any_text_gives_few_valid_signals(text: str, direction: str) -> None:
    found = LEXICON.extract(text, event_id="e", at=T0, direction=direction, kind="note")
    assert len(found) <= 3
    assert len({s.cause for s in found}) == len(found)
    for s in found:
        assert s.cause in CAUSES and s.cause != "unknown"
        assert s.weight > 0
        assert len(s.excerpt) <= 80
        assert s.side is None or s.cause == "staff_change"


@settings(max_examples=300, deadline=None)
@given(facts=facts, kept=st.lists(signals, max_size=6))
def test_classify_on_any_facts_gives_a_well_formed_answer(facts: Facts, kept: list[Signal]) -> None:
    result = classify(facts, kept)
    assert result.cause in CAUSES
    assert 0.0 <= result.confidence <= 1.0
    assert result.evidence
    assert (result.side is not None) == (result.cause == "staff_change")
    alternatives = [c for c, _ in result.alternatives]
    assert result.cause not in alternatives
    assert [p for _, p in result.alternatives] == sorted((p for _, p in result.alternatives), reverse=True)
    assert all(0.0 <= p <= 1.0 for _, p in result.alternatives)


@settings(max_examples=300, deadline=None)
@given(facts=facts, kept=st.lists(signals, max_size=6))
def test_the_verdict_alone_is_the_cause_and_side_classify_gives(facts: Facts, kept: list[Signal]) -> None:
    result = classify(facts, kept, lexicon=LEXICON)
    assert verdict(facts, kept, lexicon=LEXICON) == (result.cause, result.side)


@settings(max_examples=200, deadline=None)
@given(facts=facts, kept=st.lists(signals, max_size=6))
def test_signals_as_a_deal_state_keeps_them_classify_alike(facts: Facts, kept: list[Signal]) -> None:
    """The detector hands ``classify`` its stored lists, the signal's name left out when it is ``text:<cause>``."""
    stored = [[*s[:6], None if s.signal == f"text:{s.cause}" else s.signal] for s in kept]
    assert classify(facts, stored) == classify(facts, kept)
