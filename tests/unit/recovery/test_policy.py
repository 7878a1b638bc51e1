"""The task policy from the settings: the country's holidays, extra days off, managers, language."""

from __future__ import annotations

from datetime import date

from services.common.settings import CalendarSettings, Settings
from services.recovery.policy import task_policy, work_calendar


def test_japanese_public_holidays_are_not_working_days_by_default() -> None:
    calendar = work_calendar(CalendarSettings())
    assert not calendar.is_working_day(date(2026, 1, 1))  # New Year's Day, a Thursday
    assert not calendar.is_working_day(date(2026, 11, 3))  # Culture Day, a Tuesday
    assert calendar.is_working_day(date(2026, 11, 4))
    assert not calendar.is_working_day(date(2026, 11, 7))  # Saturday


def test_without_a_country_only_weekends_and_extra_days_are_off() -> None:
    calendar = work_calendar(CalendarSettings(country="none", extra_holidays=["2026-11-04"]))
    assert calendar.is_working_day(date(2026, 11, 3))
    assert not calendar.is_working_day(date(2026, 11, 4))


def test_an_unknown_country_falls_back_to_weekends() -> None:
    calendar = work_calendar(CalendarSettings(country="XX"))
    assert calendar.is_working_day(date(2026, 1, 1)) and not calendar.is_working_day(date(2026, 1, 3))


def test_the_policy_carries_the_managers_and_a_forced_language() -> None:
    policy = task_policy(Settings(managers={"u-1": "m-1"}, language="ja"))
    assert policy.managers == {"u-1": "m-1"} and policy.language == "ja"
    assert set(policy.playbooks) == {"ja", "en"}
    assert task_policy(Settings()).language is None
