"""The task policy from the settings: playbook texts, the working-day calendar, managers, language."""

from __future__ import annotations

import logging
from collections.abc import Container
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import holidays

from services.common.settings import CalendarSettings, Settings
from services.recovery.domain.playbooks import TaskPolicy, load_playbooks
from services.recovery.domain.workdays import WorkCalendar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holidays:
    """A country's public holidays (expanded year by year on demand) plus configured extra days."""

    country: Container[date]
    extra: frozenset[date]

    def __contains__(self, day: object) -> bool:
        return day in self.extra or day in self.country


def work_calendar(cal: CalendarSettings) -> WorkCalendar:
    country: Container[date] = frozenset()
    if cal.country and cal.country.lower() != "none":
        try:
            country = holidays.country_holidays(cal.country.upper())
        except NotImplementedError:
            log.warning("no public holidays known for country %r; counting weekends only", cal.country)
    extra = frozenset(date.fromisoformat(d) for d in cal.extra_holidays)
    return WorkCalendar(Holidays(country, extra), frozenset(cal.weekend), ZoneInfo(cal.timezone))


def task_policy(settings: Settings) -> TaskPolicy:
    language = None if settings.language == "auto" else settings.language
    return TaskPolicy(load_playbooks(), work_calendar(settings.calendar), dict(settings.managers), language)
