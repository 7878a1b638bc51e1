"""Working days for the replay's engine (``_calendar.pyx``), built by ``make setup``; for the tests."""

from services.detector.domain.calendar import WorkingCalendar

WALKS_REMEMBERED: int

def working_days_added(reference: WorkingCalendar, start: float, days: float) -> float: ...
