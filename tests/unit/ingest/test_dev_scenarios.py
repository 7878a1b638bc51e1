"""Every step of every development scenario (../shared/eval) normalizes, with what the detector needs.

The placeholders are filled by the evaluators' own harness (``run_eval.py``, standard library only), imported
by path. The labelled directions of the generic scenarios are an independent check of the direction rules.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import random
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from schemas import DealChanged
from services.ingest.domain.direction import infer_direction
from services.ingest.domain.hubspot import normalize_hubspot
from services.ingest.domain.jsonbody import parse_json
from services.ingest.domain.normalize import normalize_generic
from services.ingest.domain.outcome import Batch
from services.ingest.domain.pipedrive import normalize_pipedrive

EVAL = Path(__file__).resolve().parents[4] / "shared" / "eval"
NOW = dt.datetime(2026, 11, 2, 3, 0, tzinfo=dt.UTC)
NORMALIZERS: dict[str, Callable[..., Batch]] = {
    "generic": normalize_generic,
    "hubspot": normalize_hubspot,
    "pipedrive": normalize_pipedrive,
}


def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_eval", EVAL / "run_eval.py")
    assert spec is not None and spec.loader is not None, f"the evaluation harness is missing under {EVAL}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HARNESS = harness()
SCENARIOS: list[dict[str, Any]] = HARNESS.load_scenarios(str(EVAL / "dev-scenarios.jsonl"))


def replay(scenario: dict[str, Any], redeliver: bool = False) -> list[list[DealChanged]]:
    """Each step filled as the harness sends it, encoded, parsed and normalized."""
    maker = HARNESS.IdMaker(random.Random(scenario["id"]))
    steps = []
    for step in scenario["steps"]:
        when = NOW - dt.timedelta(days=float(step["days_ago"]))
        body = HARNESS.fill(step["body"], when, HARNESS.StepIds(maker))
        if redeliver:
            body = HARNESS.bump_attempt(scenario["source"], body)
        payload = parse_json(HARNESS.encode(body), max_depth=32)
        batch = NORMALIZERS[scenario["source"]](payload, received_at=NOW, max_events=1000)
        steps.append(list(batch.events))
    return steps


def all_events(scenario: dict[str, Any]) -> list[DealChanged]:
    return [e for step in replay(scenario) for e in step]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["id"] for s in SCENARIOS])
def test_every_step_of_the_scenario_normalizes_to_events_of_its_deal(scenario: dict[str, Any]) -> None:
    steps = replay(scenario)
    assert all(steps), "a step gave no event"
    keys = {e.key for step in steps for e in step}
    assert keys == {f"{scenario['source']}:{scenario['deal_id']}"}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["id"] for s in SCENARIOS])
def test_a_redelivered_scenario_has_the_same_event_ids(scenario: dict[str, Any]) -> None:
    first = [e.event_id for step in replay(scenario) for e in step]
    again = [e.event_id for step in replay(scenario, redeliver=True) for e in step]
    assert first == again
    assert len(set(first)) == len(first)


def test_every_scenario_deal_gets_an_owner_and_a_stage() -> None:
    for scenario in SCENARIOS:
        events = all_events(scenario)
        assert any(e.deal.owner_id for e in events), scenario["id"]
        assert any(e.deal.stage for e in events), scenario["id"]


def test_reassigned_deals_show_the_owner_change() -> None:
    for scenario in (s for s in SCENARIOS if s["expect"]["kind"] == "reassigned"):
        owners = [e.deal.owner_id for e in all_events(scenario) if e.deal.owner_id]
        changed = any(e.previous and e.previous.owner_id for e in all_events(scenario))
        assert len(set(owners)) > 1 or changed, scenario["id"]


def test_closed_lost_deals_show_the_loss_and_its_reason() -> None:
    for scenario in (s for s in SCENARIOS if s["expect"]["kind"] == "closed_lost"):
        events = all_events(scenario)
        assert any(e.deal.status == "lost" for e in events), scenario["id"]
        reasons = [e.deal.lost_reason for e in events if e.deal.lost_reason]
        notes = [e.activity.text for e in events if e.activity and e.activity.text]
        assert reasons or notes, scenario["id"]


def test_contact_left_deals_show_a_contact_leaving_or_removed() -> None:
    for scenario in (s for s in SCENARIOS if s["expect"]["kind"] == "contact_left"):
        changes = [e.contact.change for e in all_events(scenario) if e.contact]
        assert {"removed", "left_company", "role_changed"} & set(changes), scenario["id"]


def test_stalled_deals_show_a_pushed_date_a_cut_amount_or_a_step_back() -> None:
    for scenario in (s for s in SCENARIOS if s["expect"]["kind"] == "stalled"):
        events = all_events(scenario)
        dates = {e.deal.close_date for e in events if e.deal.close_date}
        amounts = {e.deal.amount for e in events if e.deal.amount is not None}
        stages = [e.deal.stage for e in events if e.deal.stage]
        assert len(dates) > 1 or len(amounts) > 1 or len(set(stages)) > 1, scenario["id"]


def test_activities_carry_kind_direction_and_words() -> None:
    activities = [e.activity for s in SCENARIOS for e in all_events(s) if e.type == "activity.logged"]
    assert activities and all(a is not None for a in activities)
    assert all(a.text for a in activities if a is not None)
    assert {a.direction for a in activities if a is not None} == {"inbound", "outbound", "internal"}


def test_the_direction_rules_agree_with_every_labelled_generic_activity() -> None:
    labelled = [
        (e.activity.kind, e.activity.text, e.activity.direction)
        for s in SCENARIOS
        if s["source"] == "generic"
        for e in all_events(s)
        if e.activity
    ]
    assert len(labelled) > 50
    wrong = [(k, t, d) for k, t, d in labelled if infer_direction(k, t) != d]
    assert wrong == []
