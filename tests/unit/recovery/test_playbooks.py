"""Playbooks: every kind gets its task; the handover task has the whole checklist and both owners."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from schemas.interruptions import CAUSES, KINDS
from services.recovery.domain.playbooks import (
    PlaybookError,
    TaskPolicy,
    build_task,
    language_of,
    load_playbook,
    load_playbooks,
    task_id,
)
from services.recovery.domain.workdays import WorkCalendar
from tests.unit.recovery.factories import NOW, interruption

PLAYBOOKS = load_playbooks()
POLICY = TaskPolicy(PLAYBOOKS, managers={"u-7": "m-1", "default": "m-0"})
HANDOVER_TOPICS_EN = [
    "contacts",
    "preferred channel",
    "organisation and business",
    "past purchases",
    "date and reason",
    "open deals",
    "recent exchanges",
    "requests",
    "in person",
    "information only",
    "handover plan",
    "report the completed handover to the manager",
]
HANDOVER_TOPICS_JA = [
    "連絡先",
    "連絡手段",
    "組織と事業",
    "購入履歴",
    "時期と購入理由",
    "進行中の商談",
    "やり取り",
    "要望",
    "対面",
    "情報のみ",
    "計画",
    "上長に報告",
]


def reassignment(**kw: object) -> object:
    return interruption(
        "reassigned",
        "staff_change",
        side="ours",
        owner_id="u-9",
        previous_owner_id="u-7",
        excerpt="u-7 → u-9",
        signal="field:owner_id",
        **kw,
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", ["ja", "en"])
def test_every_kind_gets_a_task_with_a_title_a_checklist_and_a_due_time(kind: str, language: str) -> None:
    excerpt = "先方、競合A社の値引き提案を検討中" if language == "ja" else "They are looking at a rival offer"
    i = interruption(kind, "competitor", excerpt=excerpt)
    task = build_task(i, NOW, POLICY)
    assert task.language == language
    assert task.kind == kind and task.interruption_id == i.id and task.deal_id == i.deal_id
    assert PLAYBOOKS[language].kinds[kind].action in task.title
    assert "Northwind 40 seats" in task.title
    assert task.checklist and all(not item.done for item in task.checklist)
    assert task.due_at > i.detected_at
    assert task.status == "open" and task.version == 1


@pytest.mark.parametrize("cause", CAUSES)
def test_every_cause_is_named_in_the_title_in_both_languages(cause: str) -> None:
    for excerpt, lang in (("予算が凍結された", "ja"), ("budget was frozen", "en")):
        task = build_task(interruption(cause=cause, excerpt=excerpt), NOW, POLICY)
        assert PLAYBOOKS[lang].causes[cause].label in task.title


def test_owner_change_opens_a_handover_task_with_the_whole_checklist_in_english() -> None:
    task = build_task(reassignment(name="Northwind 40 seats"), NOW, POLICY)
    text = " | ".join(item.item for item in task.checklist).lower()
    for topic in HANDOVER_TOPICS_EN:
        assert topic in text, topic
    assert task.assignee == "u-9"
    assert task.participants == ["u-7"]


def test_owner_change_opens_a_handover_task_with_the_whole_checklist_in_japanese() -> None:
    task = build_task(reassignment(name="北辰精工 生産管理システム更新"), NOW, POLICY)
    assert task.language == "ja"
    text = " | ".join(item.item for item in task.checklist)
    for topic in HANDOVER_TOPICS_JA:
        assert topic in text, topic


def test_the_handover_items_go_to_the_previous_owner_the_new_owner_and_the_manager() -> None:
    task = build_task(reassignment(), NOW, TaskPolicy(PLAYBOOKS, managers={"u-9": "m-2"}))
    by_person = {item.assignee for item in task.checklist}
    assert by_person == {"u-7", "u-9", "m-2"}
    assert task.checklist[0].assignee == "u-7"
    assert task.checklist[-1].assignee == "u-9"
    assert task.manager == "m-2"


def test_a_task_for_another_kind_goes_to_the_deal_owner_alone() -> None:
    task = build_task(interruption("went_quiet", "no_response"), NOW, POLICY)
    assert task.assignee == "u-7" and task.participants == [] and task.manager == "m-1"


def test_a_deal_without_an_owner_goes_to_the_default_manager() -> None:
    task = build_task(interruption(owner_id=None), NOW, POLICY)
    assert task.assignee == "m-0"


def test_cause_steps_follow_the_kind_steps_and_the_side_adds_its_own() -> None:
    task = build_task(interruption("contact_left", "staff_change", side="customer"), NOW, POLICY)
    items = [c.item for c in task.checklist]
    assert items[: len(PLAYBOOKS["en"].kinds["contact_left"].checklist)] == [
        s.item for s in PLAYBOOKS["en"].kinds["contact_left"].checklist
    ]
    assert "Identify the successor at the customer and get introduced" in items
    assert "staff change at the customer" in task.title


def test_a_flag_adds_its_step() -> None:
    task = build_task(interruption("contact_left", "staff_change", flags=("no_decision_maker",)), NOW, POLICY)
    assert any("decision maker" in c.item and "No decision maker" in c.item for c in task.checklist)


def test_language_comes_from_the_evidence_and_else_from_the_deal_name() -> None:
    assert language_of(interruption(excerpt="検討中とのこと")) == "ja"
    assert language_of(interruption(excerpt="still comparing", name="北辰精工")) == "en"
    field_change = interruption(excerpt="u-1 → u-2").model_copy(update={"evidence": []})
    assert (
        language_of(
            field_change.model_copy(
                update={"deal": field_change.deal.model_copy(update={"name": "北辰精工"})}
            )
        )
        == "ja"
    )
    assert language_of(field_change) == "en"


def test_a_configured_language_wins_over_the_text() -> None:
    task = build_task(interruption(excerpt="still comparing"), NOW, TaskPolicy(PLAYBOOKS, language="ja"))
    assert task.language == "ja"


def test_the_task_id_is_the_same_for_the_same_interruption_and_differs_for_another() -> None:
    a = interruption(iid="int-a")
    assert (
        build_task(a, NOW, POLICY).id
        == build_task(a, NOW + timedelta(hours=1), POLICY).id
        == task_id("int-a")
    )
    assert task_id("int-a") != task_id("int-b")


def test_the_due_time_skips_weekends_and_the_holidays_of_the_calendar() -> None:
    friday = datetime(2026, 10, 30, 9, 0, tzinfo=UTC)
    plain = build_task(interruption("went_quiet", detected_at=friday), NOW, POLICY)
    assert plain.due_at == datetime(2026, 11, 3, 9, 0, tzinfo=UTC)  # Mon, Tue
    holidays = WorkCalendar(holidays={date(2026, 11, 3)})
    with_holiday = build_task(
        interruption("went_quiet", detected_at=friday), NOW, TaskPolicy(PLAYBOOKS, calendar=holidays)
    )
    assert with_holiday.due_at == datetime(2026, 11, 4, 9, 0, tzinfo=UTC)


def test_a_large_late_stage_key_account_deal_is_urgent_and_due_sooner() -> None:
    big = interruption(
        "reassigned",
        "staff_change",
        amount=50_000_000,
        currency="JPY",
        stage="negotiation",
        account_tier="key",
    )
    small = interruption("closed_lost", "budget", amount=10_000, currency="JPY", stage="lead")
    assert build_task(big, NOW, POLICY).priority == "urgent"
    assert build_task(big, NOW, POLICY).due_at == datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    assert build_task(small, NOW, POLICY).priority == "low"


def test_a_risky_relationship_raises_the_priority() -> None:
    calm = build_task(interruption(relationship_risk=0.2), NOW, POLICY)
    risky = build_task(interruption(relationship_risk=0.9), NOW, POLICY)
    assert (calm.priority, risky.priority) == ("normal", "high")


def test_a_playbook_file_without_every_kind_is_refused(tmp_path: Path) -> None:
    source = (Path(load_playbooks.__defaults__[0]) / "playbooks.en.toml").read_text()  # type: ignore[index]
    broken = tmp_path / "playbooks.en.toml"
    broken.write_text(source.replace("[kinds.stalled]", "[kinds.stalled_typo]"))
    with pytest.raises(PlaybookError, match="stalled"):
        load_playbook(broken)


def test_a_deal_name_with_braces_is_kept_as_text() -> None:
    task = build_task(interruption(name="ACME {deal} {0}"), NOW, POLICY)
    assert "ACME {deal} {0}" in task.title


def test_a_deal_without_a_name_is_named_by_its_id() -> None:
    task = build_task(interruption(name=None, excerpt="検討中"), NOW, POLICY)
    assert task.title.endswith("商談 D-1001")
    assert task.created_at == task.updated_at == NOW and task.due_at.tzinfo == UTC
