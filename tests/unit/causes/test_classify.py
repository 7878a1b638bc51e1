"""classify: text signals and structural facts weighed into a cause with confidence, alternatives and evidence."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from services.detector.domain.causes import Facts, Lexicon, Signal, classify
from tests.unit.causes.conftest import DAY, T0, extract


def signal(cause: str, weight: float = 1.5, days_before: float = 5.0, side: str | None = None) -> Signal:
    return Signal(
        cause, weight, T0 - days_before * DAY, f"evt-{cause}", f"words about {cause}", side, f"text:{cause}"
    )


def quiet(**changes: Any) -> Facts:
    """A deal that went quiet at T0, its last activity 20 days before."""
    return replace(Facts(kind="went_quiet", at=T0, last_activity_at=T0 - 20 * DAY, activities=4), **changes)


def test_a_reassigned_deal_defaults_to_a_staff_change_on_our_side() -> None:
    result = classify(Facts(kind="reassigned", at=T0, owner_changed_at=T0, event_id="evt-9"), [])
    assert (result.cause, result.side) == ("staff_change", "ours")
    assert ("evt-9", "field:owner_id") in [(e[0], e[1]) for e in result.evidence]


def test_a_reassignment_for_lack_of_capacity_is_an_internal_resources_cause(lexicon: Lexicon) -> None:
    text = extract(lexicon, "Moving to Ben - Amy's book is overloaded this quarter", at=T0)
    result = classify(Facts(kind="reassigned", at=T0, owner_changed_at=T0), text)
    assert result.cause == "internal_resources"
    assert result.alternatives[0][0] == "staff_change"


def test_a_contact_who_left_defaults_to_a_staff_change_on_the_customer_side() -> None:
    facts = Facts(kind="contact_left", at=T0, contact_left_at=T0, contact_change="left_company")
    result = classify(facts, [])
    assert (result.cause, result.side) == ("staff_change", "customer")


def test_a_contact_removed_after_a_management_decision_is_a_policy_change(lexicon: Lexicon) -> None:
    text = extract(lexicon, "親会社の方針で購買は本社一括になり、担当の方は外れた", at=T0)
    facts = Facts(kind="contact_left", at=T0, contact_left_at=T0, contact_change="removed")
    assert classify(facts, text).cause == "policy_change"


def test_unanswered_outreach_is_no_response_and_no_outreach_is_a_lapsed_follow_up() -> None:
    chased = quiet(outbound_since_inbound=4, last_outbound_at=T0 - 20 * DAY, last_inbound_at=T0 - 60 * DAY)
    waiting = quiet(outbound_since_inbound=0, last_outbound_at=T0 - 40 * DAY, last_inbound_at=T0 - 20 * DAY)
    dropped = quiet(outbound_since_inbound=1, last_outbound_at=T0 - 20 * DAY, last_inbound_at=T0 - 30 * DAY)
    assert classify(chased, []).cause == "no_response"
    assert classify(waiting, []).cause == "follow_up_lapsed"
    assert classify(dropped, []).cause == "follow_up_lapsed"


def test_more_unanswered_attempts_make_no_response_more_certain() -> None:
    few = classify(quiet(outbound_since_inbound=3, last_outbound_at=T0 - 20 * DAY), [])
    many = classify(quiet(outbound_since_inbound=6, last_outbound_at=T0 - 20 * DAY), [])
    assert few.cause == many.cause == "no_response"
    assert many.confidence > few.confidence


def test_a_competitor_in_passing_on_a_healthy_deal_does_not_outweigh_a_silent_customer(
    lexicon: Lexicon,
) -> None:
    passing = extract(
        lexicon,
        "They looked at TrackStar last year but found it too complex. Trial starts Monday.",
        at=T0 - 50 * DAY,
    )
    facts = quiet(outbound_since_inbound=3, last_outbound_at=T0 - 20 * DAY, last_inbound_at=T0 - 50 * DAY)
    assert classify(facts, passing).cause == "no_response"


def test_a_stated_reason_outweighs_the_contact_rhythm(lexicon: Lexicon) -> None:
    text = extract(lexicon, "Sarah says budget is frozen until next fiscal year", at=T0 - 10 * DAY)
    facts = quiet(outbound_since_inbound=2, last_outbound_at=T0 - 20 * DAY)
    assert classify(facts, text).cause == "budget"


def test_a_lost_reason_decides_a_closed_lost_deal(lexicon: Lexicon) -> None:
    reason = extract(lexicon, "競合他社（価格）", kind="lost_reason", at=T0)
    result = classify(
        Facts(kind="closed_lost", at=T0, lost_reason="競合他社（価格）", event_id="evt-3"), reason
    )
    assert result.cause == "competitor"
    assert all(e[1] == "field:lost_reason" for e in result.evidence)


def test_without_any_evidence_the_cause_is_unknown_and_the_trigger_is_the_evidence() -> None:
    at = 1_782_864_000.0  # 2026-07-01 00:00 UTC
    result = classify(
        Facts(kind="stalled", at=at + 30 * DAY, close_date_pushes=2, close_date_slip_days=20), []
    )
    assert result.cause == "unknown"
    assert result.evidence[0][1] == "field:deal"
    assert "close date pushed 2 times" in result.evidence[0][2]
    quiet_result = classify(Facts(kind="went_quiet", at=at + 30 * DAY, last_activity_at=at, activities=1,
                                  outbound_since_inbound=3, last_outbound_at=at), [])  # fmt: skip
    assert ("activity:quiet", "no activity since 2026-07-01") in [(e[1], e[2]) for e in quiet_result.evidence]


def test_confidence_is_the_share_of_evidence_lowered_when_thin() -> None:
    clear = classify(quiet(), [signal("budget", 2.0), signal("budget", 2.0, days_before=8)])
    split = classify(quiet(), [signal("budget", 2.0), signal("competitor", 2.0, days_before=8)])
    thin = classify(quiet(), [signal("budget", 0.7)])
    assert 0.0 <= thin.confidence < clear.confidence <= 1.0
    assert split.confidence < clear.confidence


def test_alternatives_are_ranked_and_exclude_the_primary_cause() -> None:
    signals = [signal("budget", 2.5), signal("competitor", 1.5), signal("needs_change", 0.8)]
    result = classify(Facts(kind="stalled", at=T0), signals)
    assert result.cause == "budget"
    causes = [c for c, _ in result.alternatives]
    confidences = [p for _, p in result.alternatives]
    assert "budget" not in causes
    assert causes[:2] == ["competitor", "needs_change"]
    assert confidences == sorted(confidences, reverse=True)


def test_recent_signals_count_more_than_old_ones() -> None:
    result = classify(
        quiet(), [signal("budget", 1.5, days_before=200), signal("competitor", 1.2, days_before=2)]
    )
    assert result.cause == "competitor"


def test_signals_long_after_the_interruption_are_ignored() -> None:
    facts = Facts(kind="reassigned", at=T0, owner_changed_at=T0)
    result = classify(facts, [signal("competitor", 3.0, days_before=-40)])
    assert result.cause == "staff_change"


def test_the_side_follows_the_text_when_it_names_the_customers_person(lexicon: Lexicon) -> None:
    text = extract(lexicon, "先方の担当者が退職されるとのこと", at=T0)
    result = classify(Facts(kind="reassigned", at=T0, owner_changed_at=T0), text)
    assert (result.cause, result.side) == ("staff_change", "customer")


def test_evidence_is_never_empty_and_names_the_supporting_signals() -> None:
    result = classify(quiet(), [signal("external", 2.0)])
    assert result.cause == "external"
    assert result.evidence[0] == ("evt-external", "text:external", "words about external")
    assert len(result.evidence) >= 2


def test_a_lost_reason_the_detector_did_not_extract_is_read_when_a_lexicon_is_given(lexicon: Lexicon) -> None:
    facts = Facts(kind="closed_lost", at=T0, lost_reason="No budget", event_id="evt-4")
    assert classify(facts, []).cause == "unknown"
    assert classify(facts, [], lexicon=lexicon).cause == "budget"
