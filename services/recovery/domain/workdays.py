"""Working days for due times: weekends and the holidays of a calendar given by the caller are skipped."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo


@dataclass(frozen=True)
class WorkCalendar:
    """``holidays`` is anything that answers ``day in holidays`` (a set of dates, a ``holidays`` calendar)."""

    holidays: Container[date] = field(default_factory=frozenset)
    weekend: frozenset[int] = frozenset({5, 6})
    tz: tzinfo = UTC

    def is_working_day(self, day: date) -> bool:
        return day.weekday() not in self.weekend and day not in self.holidays


MAX_DAYS_SCANNED = 3660


def add_working_days(start: datetime, days: int, calendar: WorkCalendar) -> datetime:
    """The moment ``days`` working days after ``start``, at the same local time of day.

    A start on a non-working day counts from the next working day. A calendar with no working day at all gives
    up after ten years of days rather than looping forever.
    """
    local = start.astimezone(calendar.tz)
    day = local.date()
    remaining = max(days, 0)
    for _ in range(MAX_DAYS_SCANNED):
        if calendar.is_working_day(day):
            if remaining == 0:
                break
            remaining -= 1
        day += timedelta(days=1)
    return datetime.combine(day, local.timetz()).astimezone(start.tzinfo or UTC)
