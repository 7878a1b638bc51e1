"""Statistics as differences of facts: duplicates change nothing, revisions and task moves shift counts."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from schemas import RecoveryTaskCreated, RecoveryTaskUpdated
from services.recovery.domain.playbooks import TaskPolicy, build_task, load_playbooks
from services.stats.domain.aggregate import PERIODS, Cell, Fact, apply_events, bucket, latencies
from services.stats.domain.lost_reasons import stated_cause
from tests.unit.recovery.factories import NOW, interruption, resumed
from tests.unit.stats.fixed_events import EXPECTED_BY_MONTH_AND_CAUSE, EXPECTED_TOTALS, fixed_events

POLICY = TaskPolicy(load_playbooks())


def totals(deltas: dict[Cell, int], period: str = "month") -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for cell, n in deltas.items():
        if cell.period == period:
            out[(cell.metric, cell.cause)] += n
    return out


def run(
    events: list[object], facts: dict[str, Fact] | None = None
) -> tuple[dict[str, Fact], dict[Cell, int]]:
    return apply_events(facts or {}, events)  # type: ignore[arg-type]


def test_an_interruption_counts_once_in_every_period_however_often_it_comes() -> None:
    i = interruption()
    facts, deltas = run([i, i, i])
    assert {(c.period, c.bucket) for c in deltas} == {
        ("day", "2026-11-02"),
        ("week", "2026-W45"),
        ("month", "2026-11"),
    }
    assert set(deltas.values()) == {1}
    again, more = run([i], facts)
    assert again == {} and more == {}


def test_a_revised_cause_moves_the_count_to_the_new_cause() -> None:
    facts, _ = run([interruption(cause="unknown")])
    changed, deltas = run([interruption(cause="budget", revision=1)], facts)
    assert totals(deltas) == Counter({("interruptions", "budget"): 1, ("interruptions", "unknown"): -1})
    assert changed[interruption().id].cause == "budget"


def test_a_task_status_move_leaves_one_status_and_enters_the_other() -> None:
    i = interruption()
    task = build_task(i, NOW, POLICY)
    facts, first = run([i, RecoveryTaskCreated(task=task)])
    assert totals(first)[("task_open", "competitor")] == 1
    done = task.model_copy(update={"status": "done", "version": 2})
    _, moved = run([RecoveryTaskUpdated(change="status", task=done), RecoveryTaskCreated(task=task)], facts)
    assert totals(moved) == Counter({("task_done", "competitor"): 1, ("task_open", "competitor"): -1})


def test_a_task_or_resume_seen_before_its_interruption_counts_when_the_interruption_comes() -> None:
    i = interruption()
    task = build_task(i, NOW, POLICY).model_copy(update={"recovered": True, "version": 2})
    facts, early = run([RecoveryTaskUpdated(change="recovered", task=task), resumed(i)])
    assert early == {}
    _, deltas = run([i], facts)
    assert totals(deltas) == Counter(
        {
            ("interruptions", "competitor"): 1,
            ("resumed", "competitor"): 1,
            ("recovered", "competitor"): 1,
            ("tasks", "competitor"): 1,
            ("task_open", "competitor"): 1,
        }
    )


def test_buckets_follow_the_time_zone() -> None:
    late_utc = datetime(2026, 12, 31, 20, 0, tzinfo=UTC)
    assert bucket(late_utc, "day") == "2026-12-31"
    assert bucket(late_utc, "day", ZoneInfo("Asia/Tokyo")) == "2027-01-01"
    assert bucket(late_utc, "month", ZoneInfo("Asia/Tokyo")) == "2027-01"
    assert bucket(datetime(2027, 1, 1, tzinfo=UTC), "week") == "2026-W53"


def test_a_fact_survives_its_json_form() -> None:
    facts, _ = run([interruption(), resumed(interruption())])
    fact = next(iter(facts.values()))
    assert Fact.from_json(fact.to_json()) == fact


def by_metric(deltas: dict[Cell, int], period: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for cell, n in deltas.items():
        if cell.period == period:
            out[cell.metric] += n
    return out


def test_the_fixed_event_set_adds_up_to_the_hand_computed_totals_in_every_period() -> None:
    _, deltas = run(fixed_events())
    for period in PERIODS:
        assert by_metric(deltas, period) == Counter(EXPECTED_TOTALS), period


def test_the_fixed_event_set_by_month_and_cause_matches_the_hand_computed_table() -> None:
    _, deltas = run(fixed_events())
    table: dict[tuple[str, str], Counter[str]] = {}
    for cell, n in deltas.items():
        if cell.period == "month":
            table.setdefault((cell.bucket, cell.cause), Counter())[cell.metric] += n
    assert table == {k: Counter(v) for k, v in EXPECTED_BY_MONTH_AND_CAUSE.items()}


def test_the_fixed_event_set_one_message_at_a_time_gives_the_same_counters() -> None:
    facts: dict[str, Fact] = {}
    total: Counter[Cell] = Counter()
    for event in fixed_events():
        changed, deltas = run([event], facts)
        facts.update(changed)
        total.update(deltas)
    _, at_once = run(fixed_events())
    assert +total == Counter(at_once)


def test_latencies_are_reported_once_when_first_known() -> None:
    i = interruption(detected_at=NOW)
    task = build_task(i, NOW, POLICY)
    facts, _ = run([i])
    fact = next(iter(facts.values()))
    assert latencies(None, fact) == [("event_to_interruption", 0.0)]
    with_task, _ = run([RecoveryTaskCreated(task=task)], facts)
    assert [name for name, _ in latencies(fact, with_task[i.id])] == ["interruption_to_task"]
    assert latencies(with_task[i.id], with_task[i.id]) == []


def test_a_lost_reason_names_the_cause_it_states_in_either_language() -> None:
    assert stated_cause("Went with Competitor X (price)") == "competitor"
    assert stated_cause("競合他社（価格）") == "competitor"
    assert stated_cause("予算不足") == "budget"
    assert stated_cause("No budget") == "budget"
    assert stated_cause("親会社方針によりグループ標準システムを採用") == "policy_change"
    assert stated_cause("案件自体が中止") == "needs_change"
    assert stated_cause("先方と連絡がつかない") == "no_response"
    assert stated_cause("Could not meet timeline") == "internal_resources"
    assert stated_cause("Other") is None
    assert stated_cause(None) is None
