"""Lexicon.extract: Japanese and English wording of each cause, negation, hedges, normalisation, evidence."""

from __future__ import annotations

import pytest

from services.detector.domain.causes import Lexicon
from tests.unit.causes.conftest import extract, top_cause

CAUSE_TEXTS = [
    ("competitor", "ja", "先方より、競合他社の値引き提案を受けて比較検討中とのこと"),
    ("competitor", "en", "They went with another vendor that undercut our price"),
    ("budget", "ja", "今期の予算が凍結され、稟議が通らない"),
    ("budget", "en", "Budget freeze until next FY, no funds for new tools"),
    ("staff_change", "ja", "ご担当の山田様が来月で退職されるとのこと"),
    ("staff_change", "en", "Our main contact retired last week"),
    ("policy_change", "ja", "親会社の方針でグループ標準システムに統一することになった"),
    ("policy_change", "en", "The new CEO changed the company strategy and froze vendor onboarding"),
    ("needs_change", "ja", "プロジェクト自体が延期になり、要件も見直しとのこと"),
    ("needs_change", "en", "Project postponed, requirements changed after the merger of two teams"),
    ("external", "ja", "景気悪化と円安の影響で新規投資は様子見"),
    ("external", "en", "The recession and new tariffs hit their margins hard"),
    ("internal_resources", "ja", "弊社のエンジニアが不足しており、納期に間に合わない"),
    ("internal_resources", "en", "Our implementation team is overloaded, we can't staff the pilot"),
    ("no_response", "ja", "電話は不在、メールも返信なし"),
    ("no_response", "en", "Left a voicemail, still no reply to the last three emails"),
    ("follow_up_lapsed", "ja", "こちらのフォロー漏れで見積提出を忘れていた"),
    ("follow_up_lapsed", "en", "We dropped the ball and never followed up after the demo"),
]


@pytest.mark.parametrize(
    ("cause", "lang", "text"), CAUSE_TEXTS, ids=[f"{c}-{lang}" for c, lang, _ in CAUSE_TEXTS]
)
def test_each_cause_is_recognised_in_japanese_and_english(
    lexicon: Lexicon, cause: str, lang: str, text: str
) -> None:
    assert top_cause(lexicon, text) == cause


@pytest.mark.parametrize(
    "text",
    [
        "競合はいない",
        "競合ではない",
        "特に他社比較はしていないとのこと",
        "予算の問題ではなく、タイミングの問題",
        "No competitor involved",
        "This is not about budget",
        "Budget isn't an issue for them",
    ],
)
def test_negated_mentions_do_not_count_for_their_cause(lexicon: Lexicon, text: str) -> None:
    causes = {s.cause for s in extract(lexicon, text)}
    assert not causes & {"competitor", "budget"}


def test_a_resolved_budget_is_not_a_budget_problem(lexicon: Lexicon) -> None:
    assert top_cause(lexicon, "来期予算の確保ができたとのこと。正式発注の準備中") is None
    assert top_cause(lexicon, "Budget approved, PO expected next week") is None


def test_a_lack_of_something_is_the_cause_and_not_its_negation(lexicon: Lexicon) -> None:
    assert top_cause(lexicon, "予算なし") == "budget"
    assert top_cause(lexicon, "No budget") == "budget"
    assert top_cause(lexicon, "We can't get budget sign-off this year") == "budget"


def test_full_width_and_half_width_text_reads_like_normal_text(lexicon: Lexicon) -> None:
    assert top_cause(lexicon, "ＢＵＤＧＥＴ ＦＲＥＥＺＥ announced") == "budget"
    assert top_cause(lexicon, "ﾘｿｰｽ不足のため着手できない") == "internal_resources"
    assert top_cause(lexicon, "ＳＥが確保できず") == "internal_resources"


def test_html_from_a_crm_note_is_stripped_before_matching(lexicon: Lexicon) -> None:
    found = extract(lexicon, "<p>予算の見直しが入ったため一旦保留。<br>下期に再検討</p>")
    assert found[0].cause == "budget"
    assert "<" not in found[0].excerpt


def test_a_hedged_statement_counts_less_than_a_plain_one(lexicon: Lexicon) -> None:
    plain = extract(lexicon, "競合の値引き攻勢がある")[0]
    hedged = extract(lexicon, "競合の値引き攻勢があるかもしれない")[0]
    assert plain.cause == hedged.cause == "competitor"
    assert hedged.weight < plain.weight


def test_a_competitor_mentioned_in_passing_is_weak_or_dropped(lexicon: Lexicon) -> None:
    firm = extract(lexicon, "They are evaluating TrackStar and their discount")
    passing = extract(lexicon, "They switched from TrackStar to us two years ago and love the product")
    assert firm[0].cause == "competitor"
    assert all(s.weight < firm[0].weight / 2 for s in passing)


def test_competitor_names_come_from_configuration(lexicon: Lexicon) -> None:
    named = extract(lexicon, "Acme Cloud offered them 30% off")
    assert named[0].cause == "competitor"
    assert "Acme Cloud" in named[0].excerpt
    assert extract(Lexicon.load(), "Zephyrix quoted them lower") == extract(
        Lexicon.load(), "quoted them lower"
    )


def test_words_match_whole_and_not_inside_longer_words(lexicon: Lexicon) -> None:
    assert top_cause(lexicon, "Installed the software award module in the war room") is None
    assert top_cause(lexicon, "The war in the region froze their expansion") == "external"


def test_hits_of_one_cause_in_one_text_merge_into_one_stronger_signal(lexicon: Lexicon) -> None:
    one = extract(lexicon, "競合がいる")
    many = extract(lexicon, "競合がいる。相見積もりで他社比較中")
    assert [s.cause for s in many].count("competitor") == 1
    assert many[0].weight > one[0].weight


def test_a_lost_reason_counts_double_and_is_named_as_the_field(lexicon: Lexicon) -> None:
    note = extract(lexicon, "予算不足", kind="note")[0]
    field = extract(lexicon, "予算不足", kind="lost_reason")[0]
    assert field.signal == "field:lost_reason"
    assert note.signal == "text:budget"
    assert field.weight == pytest.approx(2 * note.weight)


def test_the_customers_own_words_count_more_than_ours(lexicon: Lexicon) -> None:
    inbound = extract(lexicon, "We decided to go with another vendor", direction="inbound")[0]
    outbound = extract(lexicon, "We decided to go with another vendor", direction="outbound")[0]
    assert inbound.weight > outbound.weight


def test_evidence_excerpt_holds_the_words_and_stays_short(lexicon: Lexicon) -> None:
    long_note = (
        "定例。"
        + "議事録の共有と次回日程の確認を行った。" * 6
        + "先方は競合A社の値引き提案を検討中。"
        + "以上" * 20
    )
    found = extract(lexicon, long_note)
    assert found[0].cause == "competitor"
    assert "競合" in found[0].excerpt
    assert len(found[0].excerpt) <= 80


def test_neutral_activity_text_gives_no_signal(lexicon: Lexicon) -> None:
    for text in (
        "見積書(初版)送付しました",
        "Discovery call, 12 agents",
        "デモの日程を調整中。先方も前向き",
        "",
    ):
        assert extract(lexicon, text) == []


def test_a_signal_carries_the_event_it_came_from(lexicon: Lexicon) -> None:
    found = lexicon.extract("No budget", event_id="evt-77", at=123.0, direction="internal", kind="note")
    assert (found[0].event_id, found[0].at) == ("evt-77", 123.0)
