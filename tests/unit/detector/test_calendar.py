from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.settings import Settings
from services.detector.domain._calendar import WALKS_REMEMBERED, working_days_added
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


# the replay's compiled calendar (``_calendar.pyx``) answers as the reference does, whatever it remembers

_CALENDARS = {
    "japan": lambda: build_calendar(Settings()),
    "new_york": lambda: build_calendar(Settings(calendar={"country": "US", "timezone": "America/New_York"})),
    "none": lambda: build_calendar(Settings(calendar={"country": "none"})),
    "no_weekend": lambda: WorkingCalendar(weekend=(), tz=ZoneInfo("Europe/London")),
}
_STARTS = st.one_of(
    st.integers(1_700_000_000, 1_830_000_000),  # 2023-2027, a daylight saving change or two included
    st.floats(1_700_000_000, 1_830_000_000).map(lambda f: round(f, 3)),
    st.integers(1_700_000_000, 1_830_000_000).map(float),
    st.sampled_from([-2_208_988_800, -2_208_988_801, 7_258_118_400, 7_258_118_399, 0, 1_711_846_800]),
)
_DAYS = st.one_of(st.integers(0, 45), st.sampled_from([0.5, 1.25, 2.0, 9.75, -1, 0.0]))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(_CALENDARS)),
    st.lists(st.tuples(_STARTS, _DAYS), min_size=1, max_size=12),
    st.data(),
)
def test_the_compiled_calendar_adds_working_days_as_the_reference_does(name, asks, data):
    reference = _CALENDARS[name]()
    asks = asks + data.draw(st.lists(st.sampled_from(asks), max_size=6))  # some asked again
    for start, days in asks:
        mine = working_days_added(reference, start, days)
        theirs = reference.add_working_days(start, days)
        assert (type(mine), mine) == (type(theirs), theirs), (name, start, days)


def test_walks_that_share_a_place_in_the_compiled_calendar_are_told_apart():
    """Walks from days ``WALKS_REMEMBERED`` apart over as many working days take the same place in what the
    compiled calendar remembers; each must still be answered for its own day."""
    reference = build_calendar(Settings())
    first = int(ts(1905, 1, 2))  # a Monday
    for k in range(5):
        for shift in range(8):
            start = first + (k * WALKS_REMEMBERED + shift) * 86_400
            for days in (1, 5, 10):
                assert working_days_added(reference, start, days) == reference.add_working_days(start, days)
