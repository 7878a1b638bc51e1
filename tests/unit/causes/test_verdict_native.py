"""The compiled verdict (``_verdict.pyx``) gives exactly the cause and side the Python ``verdict`` gives.

The Python (``classify.verdict``) is the reference: the same facts and the same window of kept signals must give
the same (cause, side), down to float ties and ``round(x, 1)`` on a rule's boundary. CI builds the module
(``make setup``), so a missing build fails here.
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.detector.domain.causes import CAUSES, Facts, Signal, default_rules, verdict
from services.detector.domain.causes import _verdict as native
from services.detector.domain.causes.rules import VALUES, Rule, Rules, View, _day
from tests.unit.causes.conftest import DAY, T0
from tests.unit.causes.test_properties import facts as facts_at_t0
from tests.unit.causes.test_properties import signals as signal_tuples

KINDS = ["went_quiet", "reassigned", "contact_left", "stalled", "closed_lost"]
SCORABLE = [c for c in CAUSES if c != "unknown"]
TIE_WEIGHTS = [0.3, 0.5, 0.6, 0.7, 0.9, 1.0, 1.2, 1.4, 2.0]
DEFAULT = native.Verdicts(default_rules())

# Times on and beside the rules' boundaries: whole tenths and twentieths of a day (round(x, 1) ties), the
# seconds a deal's state keeps (ints), a hair either side, and anything.
days_before = st.one_of(
    st.integers(0, 200 * 20).map(lambda k: k / 20),
    st.sampled_from([2.0, 30.0, 44.95, 45.0, 45.05, 59.95, 60.0, 60.05, 60.15, 0.0, -0.04, -7.0, -7.05]),
    st.floats(-30.0, 400.0),
)
nudge = st.sampled_from([0.0, 0.0, 0.0, 1e-6, -1e-6, 0.5, -0.5, 4320.0])
times = st.one_of(
    st.builds(lambda d, e: T0 - d * DAY + e, days_before, nudge),
    st.builds(lambda d: int(T0 - d * DAY), days_before),
    st.floats(T0 - 200 * DAY, T0),
)
optional_time = st.one_of(st.none(), times)
REASONS = ["", "price", "went with TrackStar", "予算が足りない", "x" * 70]
facts = st.builds(
    Facts,
    kind=st.sampled_from([*KINDS, "some_other_kind"]),
    at=st.one_of(st.just(T0), st.builds(lambda d: T0 + d * DAY, st.sampled_from([0.05, 0.5, 1.0])), times),
    owner_changed_at=optional_time,
    contact_left_at=optional_time,
    contact_change=st.sampled_from([None, "left_company", "removed", "role_changed"]),
    amount_cut_share=st.one_of(
        st.none(),
        st.floats(0.0, 1.0),
        st.integers(0, 200).map(lambda k: k / 200),  # half percents: round() ties
        st.sampled_from([0.295, 0.3, 0.305, 0.29999999999999999, 0.0]),
    ),
    close_date_pushes=st.integers(0, 6),
    close_date_slip_days=st.integers(0, 200),
    stage_moved_back=st.booleans(),
    lost_reason=st.one_of(st.none(), st.sampled_from(REASONS), st.text(max_size=80)),
    outbound_since_inbound=st.integers(0, 12),
    last_outbound_at=optional_time,
    last_inbound_at=optional_time,
    last_activity_at=optional_time,
    activities=st.integers(0, 50),
)
weights = st.one_of(
    st.sampled_from(TIE_WEIGHTS),
    st.floats(-1.0, 4.0),
    st.sampled_from([0.0, -0.0, -0.5, 0, 1, 2, math.inf, math.nan, 1e-300]),
)
signal_lists = st.lists(
    st.builds(
        lambda cause, weight, at, n, side, name: [cause, weight, at, f"e{n}", "words", side, name],
        cause=st.sampled_from([*SCORABLE, *SCORABLE, "unknown", "no_such_cause"]),
        weight=weights,
        at=st.one_of(times, st.sampled_from([T0, T0 - DAY, T0 + DAY, int(T0) - 86400, T0 + 8 * DAY])),
        n=st.integers(0, 3),
        side=st.sampled_from([None, "ours", "customer", "ours", "customer", "theirs"]),
        name=st.sampled_from([None, "field:lost_reason", "text:budget"]),
    ),
    max_size=12,
)
windows = st.tuples(
    st.sampled_from([-math.inf, 0.0, T0 - 365 * DAY, T0 - 60 * DAY, T0 - DAY]),
    st.sampled_from([math.inf, T0, T0 + 7 * DAY, T0 + 365 * DAY, T0 - 30 * DAY]),
)


def compiled(v: Any, f: Facts, signals: list[Any], lo: float, hi: float) -> tuple[str, str | None]:
    result: tuple[str, str | None] = v.verdict(
        f.kind,
        f.at,
        f.owner_changed_at,
        f.contact_left_at,
        f.contact_change,
        f.amount_cut_share,
        f.close_date_pushes,
        f.close_date_slip_days,
        f.stage_moved_back,
        f.lost_reason,
        f.outbound_since_inbound,
        f.last_outbound_at,
        f.last_inbound_at,
        f.last_activity_at,
        f.activities,
        signals,
        lo,
        hi,
    )
    return result


def outcome(call: Any) -> Any:
    """What a call gives, or the type of what it raises (a custom rule may divide by zero as the Python does)."""
    try:
        return call()
    except (ArithmeticError, IndexError, ValueError) as e:
        return type(e)


def same_as_python(
    v: Any, f: Facts, signals: list[Any], lo: float, hi: float, rules: Rules | None = None
) -> None:
    window = [s for s in signals if lo <= s[2] <= hi]
    expected = outcome(lambda: verdict(f, window, rules))
    assert outcome(lambda: compiled(v, f, signals, lo, hi)) == expected
    if isinstance(expected, tuple):
        assert type(compiled(v, f, signals, lo, hi)[0]) is str


def test_the_compiled_verdict_adds_as_this_pythons_sum_adds() -> None:
    """Checked when the module loads: one after the other before 3.12 (in C); after, compensated (in C) unless
    that is not quite what ``sum`` does (then by ``sum`` itself: exact, slower)."""
    assert (
        native.SUMMATION == "naive"
        if sys.version_info < (3, 12)
        else native.SUMMATION in ("neumaier", "python")
    )


@settings(max_examples=2000, deadline=None)
@given(facts=facts, signals=signal_lists, window=windows)
def test_the_compiled_verdict_is_the_python_one(
    facts: Facts, signals: list[list[Any]], window: tuple[float, float]
) -> None:
    same_as_python(DEFAULT, facts, signals, *window)


@settings(max_examples=500, deadline=None)
@given(facts=facts_at_t0, kept=st.lists(signal_tuples, max_size=6))
def test_the_classifier_properties_strategies_agree_too(facts: Facts, kept: list[Signal]) -> None:
    """The strategies of the classifier's properties: signals as lists (how a deal keeps them) and as tuples."""
    lists = [[*s[:6], None if s.signal == f"text:{s.cause}" else s.signal] for s in kept]
    for signals in (lists, list(kept), [*lists[:2], *kept[2:]]):
        same_as_python(DEFAULT, facts, signals, -math.inf, math.inf)
        same_as_python(DEFAULT, facts, signals, T0 - 100 * DAY, T0 + 10 * DAY)


@settings(max_examples=1000, deadline=None)
@given(
    facts=facts,
    weight=st.sampled_from(TIE_WEIGHTS),
    causes=st.lists(st.sampled_from(SCORABLE), min_size=1, max_size=8),
    sides=st.lists(st.sampled_from([None, "ours", "customer"]), min_size=8, max_size=8),
    ages=st.lists(st.sampled_from([0.0, 1.0, 4.0, 8.0]), min_size=8, max_size=8),
)
def test_ties_in_weight_and_time_break_as_in_python(
    facts: Facts, weight: float, causes: list[str], sides: list[str | None], ages: list[float]
) -> None:
    """Equal weights at equal times: equal scores ranked by priority, equal votes giving the kind's side."""
    facts = replace(facts, at=T0)
    signals = [
        [c, weight, T0 - age * DAY, f"e{i}", "", side, None]
        for i, (c, side, age) in enumerate(zip(causes, sides, ages, strict=False))
    ]
    same_as_python(DEFAULT, facts, signals, -math.inf, math.inf)


@pytest.mark.parametrize("kind", [*KINDS, "some_other_kind"])
def test_no_signals_and_default_facts_of_each_kind(kind: str) -> None:
    f = Facts(kind=kind, at=T0)
    for signals in (
        [],
        [["budget", 0.0, T0, "e", "", None, None]],
        [["budget", 2.0, T0 - DAY, "e", "", None, None]],
    ):
        same_as_python(DEFAULT, f, signals, -math.inf, math.inf)
        same_as_python(DEFAULT, f, signals, T0, T0)  # only what happened at the interruption
        same_as_python(DEFAULT, f, signals, T0 + 1, T0 + 2)  # nothing in the window


# ------------------------------------------------------------------------------------------------ custom rules

KEYS = [*VALUES, "not_a_value"]
DATES = [_day(T0 - k * DAY) for k in range(4)]
TEXTS = [
    "yes", "no", "left_company", "removed", "role_changed", "the start", "no reason given", "no progress",
    "stage moved backwards", "price", "30", "30.0", "2", *DATES,
]  # fmt: skip
bounds = st.one_of(st.sampled_from([0.0, 1.0, 2.0, 3.0, 30.0, 45.0, 60.0, 60.1, 20.0]), st.floats(-10, 100))
rules_raw = st.fixed_dictionaries(
    {"cause": st.sampled_from(SCORABLE), "weight": st.one_of(st.sampled_from(TIE_WEIGHTS), st.floats(-1, 3))},
    optional={
        "kinds": st.lists(st.sampled_from([*KINDS, "some_other_kind"]), max_size=3),
        "side": st.sampled_from(["ours", "customer"]),
        "min": st.dictionaries(st.sampled_from(KEYS), bounds, max_size=2),
        "max": st.dictionaries(st.sampled_from(KEYS), bounds, max_size=2),
        "equals": st.dictionaries(st.sampled_from(KEYS), st.sampled_from(TEXTS), max_size=2),
        "step": st.dictionaries(
            st.sampled_from(KEYS), st.sampled_from([0.1, -0.15, 0.2, 1.0, 0.0]), max_size=2
        ),
        "cap": st.sampled_from([0.5, 1.0, 2.2, 0.0, -1.0]),
        "trigger": st.booleans(),
    },
)
relevance = st.fixed_dictionaries(
    {},
    optional={
        "half_life_days": st.one_of(st.sampled_from([4.0, 30.0, 60.0, 0.0, -3.0]), st.floats(0.1, 100)),
        "floor": st.sampled_from([0.0, 0.15, 0.3, 1.0]),
        "after_days": st.sampled_from([0.0, 7.0, 365.0]),
    },
)
tomls = st.fixed_dictionaries(
    {
        "rule": st.lists(rules_raw, max_size=10),
        "relevance": st.dictionaries(st.sampled_from([*KINDS, "nowhere"]), relevance, max_size=5),
        "classify": st.fixed_dictionaries(
            {},
            optional={
                "repeat": st.sampled_from([0.5, 0.0, 1.0, 0.7, 2.0, -0.5]),
                "unknown_below": st.sampled_from([0.6, 0.0, 1.0, -1.0, 2.5]),
                "priority": st.permutations(SCORABLE).flatmap(
                    lambda p: st.integers(0, len(p)).map(lambda n: p[:n])
                ),
                "default_side": st.dictionaries(
                    st.sampled_from(KINDS), st.sampled_from(["ours", "customer", "either"]), max_size=5
                ),
            },
        ),
    }
)


@settings(max_examples=800, deadline=None)
@given(raw=tomls, facts=facts, signals=signal_lists, window=windows)
def test_custom_rules_give_the_python_verdict(
    raw: dict[str, Any], facts: Facts, signals: list[list[Any]], window: tuple[float, float]
) -> None:
    rules = Rules.from_toml(raw)
    same_as_python(native.Verdicts(rules), facts, signals, *window, rules)


def every_value_rules() -> Rules:
    """A rule for each value and each test of it: min, max, equals, step (from its min, and from 0 with a cap)."""
    rules: list[dict[str, Any]] = []
    for i, key in enumerate(KEYS):
        cause = SCORABLE[i % len(SCORABLE)]
        side = ["ours", "customer"][i % 2]
        rules += [
            {"cause": cause, "side": side, "min": {key: 1.0}, "weight": 0.4},
            {"cause": cause, "side": side, "max": {key: 45.0}, "weight": 0.3},
            {
                "cause": SCORABLE[(i + 1) % len(SCORABLE)],
                "equals": {key: TEXTS[i % len(TEXTS)]},
                "weight": 0.5,
            },
            {"cause": cause, "equals": {key: "yes"}, "weight": 0.6, "kinds": ["stalled"]},
            {"cause": cause, "min": {key: 2.0}, "step": {key: 0.05}, "weight": 0.2, "cap": 1.3},
            {"cause": "staff_change", "side": side, "step": {key: -0.01}, "weight": 0.5, "cap": 0.45},
        ]
    return Rules.from_toml({"rule": rules, "classify": {"repeat": 0.6, "unknown_below": 0.5}})


def test_every_value_is_tested_by_the_custom_rules() -> None:
    named = {
        k for r in every_value_rules().rules for m in (r.minimum, r.maximum, r.equals, r.step) for k in m
    }
    assert named == set(KEYS)


EVERY_VALUE = every_value_rules()
EVERY_VALUE_NATIVE = native.Verdicts(EVERY_VALUE)


@settings(max_examples=800, deadline=None)
@given(facts=facts, signals=signal_lists, window=windows)
def test_every_value_min_max_equals_step_and_cap_in_c(
    facts: Facts, signals: list[list[Any]], window: tuple[float, float]
) -> None:
    same_as_python(EVERY_VALUE_NATIVE, facts, signals, *window, EVERY_VALUE)


@pytest.mark.parametrize(
    "weights", [(0.03, 0.29, 0.04, 0.24), (0.03, 0.3, 0.09, 0.18), (0.24, 0.04, 0.29, 0.03), (0.1, 0.2, 0.3)]
)
def test_the_scores_add_up_as_pythons_sum_adds_them(weights: tuple[float, ...]) -> None:
    """Totals a hair either side of unknown_below (0.6) one after the other and compensated (3.12's ``sum``)."""
    signals = [[c, w, T0, "e", "", None, None] for c, w in zip(SCORABLE, weights, strict=False)]
    same_as_python(DEFAULT, Facts(kind="some_other_kind", at=T0), signals, -math.inf, math.inf)
    same_as_python(DEFAULT, Facts(kind="some_other_kind", at=T0), signals * 2, -math.inf, math.inf)


@settings(max_examples=400, deadline=None)
@given(facts=facts)
def test_every_value_is_made_as_the_python_makes_it(facts: Facts) -> None:
    """Each value exactly: a rule that holds only on the value the Python makes (min = max = it, or equals it)."""
    view = View(facts)
    for key in VALUES:
        value = view[key]
        if value is None:
            test: dict[str, Any] = {"min": {key: -math.inf}}
        elif isinstance(value, str):
            test = {"equals": {key: value}}
        else:
            test = {"min": {key: value}, "max": {key: value}}
        rules = Rules.from_toml({"rule": [{"cause": "budget", **test}]})
        expected = verdict(facts, [], rules)
        assert expected == (("unknown", None) if value is None else ("budget", None))
        assert compiled(native.Verdicts(rules), facts, [], 0.0, 0.0) == expected, key


@pytest.mark.parametrize("share", [math.nan, math.inf])
def test_an_amount_cut_no_int_holds_raises_alike(share: float) -> None:
    rules = Rules.from_toml({"rule": [{"cause": "budget", "min": {"amount_cut_percent": 30}}]})
    facts = Facts(kind="stalled", at=T0, amount_cut_share=share)
    with pytest.raises(ValueError if share != share else OverflowError) as python:
        verdict(facts, [], rules)
    with pytest.raises(python.type, match=str(python.value)):
        compiled(native.Verdicts(rules), facts, [], 0.0, 0.0)


def tied(facts: Facts, raw: dict[str, Any], signals: list[list[Any]], cause: str, other: str) -> None:
    """``signals`` set ``other`` against ``cause`` at exactly the score the Python gives ``cause``: a tie, so either
    way round of priority the winner tells whether the compiled score is a hair above or below the Python's."""
    for priority in ([cause, other], [other, cause]):
        r = Rules.from_toml({**raw, "classify": {"priority": priority, "unknown_below": 0.0}})
        same_as_python(native.Verdicts(r), facts, signals, -math.inf, math.inf, r)


@settings(max_examples=1000, deadline=None)
@given(raw=rules_raw, facts=facts)
def test_a_rules_weight_is_the_python_weight(raw: dict[str, Any], facts: Facts) -> None:
    rule = Rules.from_toml({"rule": [raw]}).rules[0]
    weight = rule.score(facts.kind, View(facts))
    other = next(c for c in SCORABLE if c != rule.cause)
    signals = [[other, weight, facts.at, "e", "", None, None]] if weight > 0 else []
    tied(facts, {"rule": [raw]}, signals, rule.cause, other)


@settings(max_examples=1000, deadline=None)
@given(
    facts=facts,
    rel=relevance,
    weight=weights,
    at=st.one_of(times, st.builds(lambda d: T0 + d * DAY, st.sampled_from([1.0, 6.9, 7.0, 7.1]))),
)
def test_a_signals_weight_by_its_age_is_the_python_weight(
    facts: Facts, rel: dict[str, float], weight: float, at: float
) -> None:
    """A signal of some age against one at the interruption with the weight the Python gives the first."""
    facts = replace(facts, at=T0)
    raw = {"relevance": {facts.kind: rel}}
    factor = outcome(lambda: Rules.from_toml(raw).relevance_of(facts.kind).factor(facts.at - at))
    if isinstance(factor, float) and weight > 0:
        signals = [
            ["budget", weight, at, "e", "", None, None],
            ["competitor", weight * factor, T0, "e2", "", None, None],
        ]
        tied(facts, raw, signals, "budget", "competitor")


# ------------------------------------------------------------------------------------------------ handed to Python


@settings(max_examples=300, deadline=None)
@given(facts=facts, signals=signal_lists, window=windows)
def test_what_c_does_not_follow_is_left_to_python(
    facts: Facts, signals: list[list[Any]], window: tuple[float, float]
) -> None:
    """A rule with an int bound or a non-str equals is scored by ``Rule.score``; a subclass of Rules, every call;
    facts of other types than their own (an int contact change, an int amount cut), the whole call."""
    base = default_rules()
    odd = Rule(
        cause="budget",
        signal="x",
        excerpt="x",
        weight=1,
        minimum={"activities": 3},
        equals={"has_outbound": "yes"},
    )
    counts = Rule(cause="external", signal="x", excerpt="x", weight=0.7, minimum={"contact_change": 1.0})
    rules = replace(base, rules=(*base.rules, odd, counts))

    class Mine(Rules):
        pass

    mine = Mine(
        **{k: getattr(base, k) for k in ("rules", "relevance", "triggers", "default_side", "priority")}
    )
    # a rule for a cause no text signal may name (signals naming it do not count), ranked or not
    other = Rule(cause="no_such_cause", signal="x", excerpt="x", weight=0.9)
    ranked = replace(base, rules=(*base.rules, other), priority=("no_such_cause", *base.priority))
    unranked = replace(
        base, rules=(*base.rules, other)
    )  # the Python's ranking fails: so does the compiled one
    for r in (rules, mine, ranked, unranked):
        same_as_python(native.Verdicts(r), facts, signals, *window, r)
    odd_facts = replace(facts, contact_change=2, amount_cut_share=1)  # type: ignore[arg-type]
    same_as_python(native.Verdicts(rules), odd_facts, signals, *window, rules)
    same_as_python(DEFAULT, odd_facts, signals, *window)
    same_as_python(
        DEFAULT, facts, [s[:3] for s in signals], *window
    )  # too short to be a signal: the same error


@pytest.mark.parametrize("weight", [0.0, 0, -1.0, 0.5])
def test_a_signal_without_weight_is_not_weighed(weight: float) -> None:
    """A signal of no weight is passed over before its age is: with a half-life of 0 only a weighed one divides by
    zero (in both)."""
    rules = Rules.from_toml({"relevance": {"stalled": {"half_life_days": 0.0}}})
    signals = [["budget", weight, T0 - DAY, "e", "", None, None]]
    same_as_python(native.Verdicts(rules), Facts(kind="stalled", at=T0), signals, -math.inf, math.inf, rules)


def test_a_signal_of_a_cause_only_a_rule_names_does_not_count() -> None:
    base = default_rules()
    other = Rule(cause="no_such_cause", signal="x", excerpt="x", weight=0.9)
    rules = replace(base, rules=(*base.rules, other), priority=(*base.priority, "no_such_cause"))
    signals = [["no_such_cause", 4.0, T0, "e1", "", None, None], ["budget", 1.0, T0, "e2", "", None, None]]
    for kind in ("stalled", None):  # None: not a kind, the rules of every kind and the default relevance
        facts = Facts(kind=kind, at=T0)  # type: ignore[arg-type]
        assert compiled(native.Verdicts(rules), facts, signals, -math.inf, math.inf) == ("budget", None)
        same_as_python(native.Verdicts(rules), facts, signals, -math.inf, math.inf, rules)
        same_as_python(DEFAULT, facts, signals, -math.inf, math.inf)
