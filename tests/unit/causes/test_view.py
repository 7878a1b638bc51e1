"""The facts as the values rules test and excerpts show, each made when first asked for."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.detector.domain.causes import Facts, default_rules
from services.detector.domain.causes.rules import VALUES, View, _day, describe
from tests.unit.causes.test_properties import facts as facts_at_one_time

DAY = 86_400.0
moments = st.one_of(
    st.integers(-2_000_000_000, 5_000_000_000), st.floats(min_value=-2_000_000_000, max_value=5_000_000_000)
)
facts = st.builds(replace, facts_at_one_time, at=moments)


@given(moments)
def test_a_moments_day_is_its_utc_date(at: float) -> None:
    assert _day(at) == datetime.fromtimestamp(at, UTC).date().isoformat()


@given(facts)
def test_a_view_holds_what_each_value_makes_from_the_facts(f: Facts) -> None:
    view = describe(f)
    asked = {name: view.get(name) for name in VALUES}
    assert asked == {name: make(f) for name, make in VALUES.items()}
    assert dict(view) == asked  # each made once, then kept


def test_the_view_names_what_the_rules_and_excerpts_use() -> None:
    f = Facts(
        kind="went_quiet",
        at=30 * DAY,
        last_outbound_at=20 * DAY,
        last_inbound_at=10 * DAY,
        outbound_since_inbound=3,
    )
    view = View(f)
    assert view.get("days_since_outbound") == 10.0 and view["days_since_inbound"] == 20.0
    assert view.get("customer_spoke_last") == "no" and view.get("has_outbound") == "yes"
    assert view.get("last_inbound_on") == "1970-01-11" and view.get("last_activity_on") == "the start"
    assert view.get("no such value") is None and view.get("no such value", "?") == "?"
    with pytest.raises(KeyError):
        view["no such value"]


@given(facts)
def test_a_rule_left_out_for_a_kind_would_not_have_counted(f: Facts) -> None:
    rules = default_rules()
    kept = rules.of_kind(f.kind)
    assert [r for r in rules.rules if r in kept] == list(kept)
    for rule in rules.rules:
        if rule not in kept:
            assert rule.score(f.kind, describe(f)) == 0.0
