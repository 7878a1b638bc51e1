"""Build the pure detector from settings: calendar with holidays, thresholds, lexicon."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import holidays as holiday_data

from services.common.settings import Settings
from services.detector.domain.calendar import WorkingCalendar
from services.detector.domain.config import DEFAULT_STAGE_ORDER, DetectorConfig

if TYPE_CHECKING:
    from services.detector.domain.rules import Detector


def build_calendar(settings: Settings, years: range | None = None) -> WorkingCalendar:
    cal = settings.calendar
    days: set[date] = set()
    country = (cal.country or "").strip()
    if country and country.lower() != "none":
        span = years or range(2000, 2046)
        days.update(holiday_data.country_holidays(country.upper(), years=list(span)).keys())
    days.update(date.fromisoformat(d) for d in cal.extra_holidays)
    return WorkingCalendar(days, weekend=cal.weekend, tz=ZoneInfo(cal.timezone))


def build_config(settings: Settings) -> DetectorConfig:
    q = settings.quiet
    st = settings.stalled
    return DetectorConfig(
        calendar=build_calendar(settings),
        quiet_default_days=q.default_days,
        quiet_by_stage={k.lower(): v for k, v in q.by_stage.items()},
        quiet_tier_factor={k.lower(): v for k, v in q.by_tier.items()},
        quiet_by_stage_tier={k.lower(): v for k, v in q.by_stage_tier.items()},
        qualifying_kinds=frozenset(q.qualifying_kinds),
        qualifying_directions=frozenset(q.qualifying_directions),
        grace_seconds=q.grace_seconds,
        stage_order=tuple(s.lower() for s in settings.stage_order) or DEFAULT_STAGE_ORDER,
        close_date_pushes=st.close_date_pushes,
        close_date_slip_days=st.close_date_slip_days,
        amount_cut_share=st.amount_cut_share,
    )


def build_detector(settings: Settings) -> Detector:
    from services.detector.domain.causes import Lexicon
    from services.detector.domain.rules import Detector

    return Detector(build_config(settings), Lexicon.load(competitors=settings.competitors))
