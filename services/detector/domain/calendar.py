"""Working days: weekends and public holidays are not counted when a threshold is measured."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache


class WorkingCalendar:
    """Counts working days in one time zone. Holidays are given as dates (the caller loads them)."""

    def __init__(self, holidays: Iterable[date] = (), weekend: Iterable[int] = (5, 6), tz: tzinfo = UTC):
        self.holidays = frozenset(holidays)
        self.weekend = frozenset(weekend)
        self.tz = tz
        self._add = lru_cache(maxsize=65_536)(self._add_days)
        # A deal's quiet deadline is asked for again at each of its events, mostly from the same anchor (its last
        # qualifying activity): the answer is kept, as it would otherwise go through time zone arithmetic again.
        # (typed: an int start is answered as an int when no days are added, a float one as a float)
        self._deadlines = lru_cache(maxsize=16_384, typed=True)(self._add_working_days)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() not in self.weekend and day not in self.holidays

    def add_working_days(self, start: float, days: float) -> float:
        """The moment ``days`` working days after ``start`` (epoch seconds), at the same time of day.

        Whole days step over non-working days; a fractional remainder is added as plain time. A start on a
        non-working day counts from the next working day's beginning.
        """
        return self._deadlines(start, days)

    def _add_working_days(self, start: float, days: float) -> float:
        if days <= 0:
            return start
        whole = int(days)
        frac = days - whole
        local = datetime.fromtimestamp(start, self.tz)
        end_day, moved = self._add(local.date(), whole)
        if moved:
            clock = datetime.combine(end_day, datetime.min.time(), self.tz)
        else:
            clock = datetime.combine(end_day, local.timetz())
        return clock.timestamp() + frac * 86_400.0

    def _add_days(self, day: date, whole: int) -> tuple[date, bool]:
        moved = False
        while not self.is_working_day(day):
            day += timedelta(days=1)
            moved = True
        remaining = whole
        while remaining > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return day, moved

    def working_days_between(self, start: float, end: float) -> int:
        """Whole working days strictly after ``start``'s day up to and including ``end``'s day."""
        if end <= start:
            return 0
        a = datetime.fromtimestamp(start, self.tz).date()
        b = datetime.fromtimestamp(end, self.tz).date()
        count = 0
        day = a
        while day < b:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count
