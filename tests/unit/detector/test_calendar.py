from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from services.common.settings import Settings
from services.detector.domain.calendar import WorkingCalendar
from services.detector.wiring import build_calendar

JST = ZoneInfo("Asia/Tokyo")


def ts(y: int, m: int, d: int, h: int = 10) -> float:
    return datetime(y, m, d, h, tzinfo=JST).timestamp()


def test_weekends_are_not_counted():
    cal = WorkingCalendar(tz=JST)
    # Friday 2026-11-06 + 1 working day = Monday 2026-11-09, same time of day.
    assert cal.add_working_days(ts(2026, 11, 6), 1) == ts(2026, 11, 9)


def test_japanese_public_holidays_are_not_counted_by_default():
    cal = build_calendar(Settings())
    # 2026-11-23 (Mon) is Labour Thanksgiving Day: Friday 11-20 + 1 working day is Tuesday 11-24.
    assert cal.add_working_days(ts(2026, 11, 20), 1) == ts(2026, 11, 24)
    assert not cal.is_working_day(date(2026, 1, 1))


def test_golden_week_is_skipped():
    cal = build_calendar(Settings())
    # 2026-04-30 (Thu) + 2 working days: 5/1 Fri, then 5/4-5/6 are holidays, the weekend too -> 5/7 Thu.
    assert cal.add_working_days(ts(2026, 4, 30), 2) == ts(2026, 5, 7)


def test_a_calendar_without_a_country_counts_public_holidays_as_working_days():
    cal = build_calendar(Settings(calendar={"country": "none"}))
    assert cal.add_working_days(ts(2026, 11, 20), 1) == ts(2026, 11, 23)


def test_another_country_uses_its_own_holidays():
    cal = build_calendar(Settings(calendar={"country": "US", "timezone": "America/New_York"}))
    assert not cal.is_working_day(date(2026, 7, 3))  # Independence Day observed (a Friday)
    assert cal.is_working_day(date(2026, 11, 23))


def test_a_start_on_a_weekend_counts_from_the_next_working_day():
    cal = WorkingCalendar(tz=JST)
    start = ts(2026, 11, 7, 15)  # Saturday afternoon
    end = cal.add_working_days(start, 1)
    assert datetime.fromtimestamp(end, JST) == datetime(2026, 11, 10, 0, 0, tzinfo=JST)


def test_fractional_days_add_plain_time():
    cal = WorkingCalendar(tz=UTC)
    start = datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp()  # Monday
    assert cal.add_working_days(start, 1.5) == start + 86_400 * 1.5


def test_working_days_between_counts_only_working_days():
    cal = WorkingCalendar(tz=JST)
    assert cal.working_days_between(ts(2026, 11, 6), ts(2026, 11, 13)) == 5
    assert cal.working_days_between(ts(2026, 11, 13), ts(2026, 11, 6)) == 0


def test_a_deadline_asked_again_is_the_same_and_of_the_same_type():
    cal = WorkingCalendar(tz=JST)
    assert (
        cal.add_working_days(ts(2026, 11, 6), 1)
        == cal.add_working_days(ts(2026, 11, 6), 1)
        == ts(2026, 11, 9)
    )
    start = int(ts(2026, 11, 6))
    assert type(cal.add_working_days(start, 0)) is int
    assert type(cal.add_working_days(float(start), 0)) is float  # not the int answer kept for the same value
