# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Working days for the replay's engine, compiled: ``WorkingCalendar.add_working_days`` from a table of days read
once from the configured calendar and time zone; whatever the table cannot answer exactly, the reference does."""

DEF UNKNOWN = 0
DEF WORKING = 1
DEF RESTING = 2
DEF IRREGULAR = 3


cdef class Calendar:
    """``WorkingCalendar.add_working_days`` for whole-second starts on days whose UTC offset is the same all day
    (both readings of an ambiguous hour included): what every day of a zone without daylight saving is, and every
    day but the changeovers of one with it. Anything else, the reference answers. Each day is read from the
    reference's calendar and time zone the first time it is needed."""


    def __init__(self, reference):
        self.reference = reference
        self.holidays = reference.holidays
        self.weekend = reference.weekend
        self.tz = reference.tz
        for i in range(WALKS):
            self.walks[i].whole = -1

    cdef inline int day(self, long number) except -1:
        """WORKING, RESTING or IRREGULAR for a day number in range (``offset`` filled)."""
        cdef int k = self.kind[number - FIRST_DAY]
        return k if k != UNKNOWN else self.read_day(number)

    cdef int read_day(self, long number) except -1:
        """``day`` of a day not read yet: read from the reference's calendar and time zone, and kept."""
        cdef Py_ssize_t i = number - FIRST_DAY
        from datetime import date, datetime, time

        day = date.fromordinal(number + 719163)
        offsets = set()
        for clock in (time(0), time(12), time(23, 59, 59)):
            for fold in (0, 1):
                offsets.add(datetime.combine(day, clock.replace(fold=fold), self.tz).utcoffset())
        if len(offsets) != 1:
            self.kind[i] = IRREGULAR
            return IRREGULAR
        seconds = offsets.pop().total_seconds()
        if seconds != int(seconds):
            self.kind[i] = IRREGULAR
            return IRREGULAR
        self.offset[i] = int(seconds)
        working = day.weekday() not in self.weekend and day not in self.holidays
        self.kind[i] = WORKING if working else RESTING
        return self.kind[i]

    cdef object add_working_days(self, object start, double days):
        cdef long long s, local
        cdef long d, e, whole, remaining
        cdef int k
        cdef Walk *walk
        cdef bint moved = False
        if days <= 0:
            return start
        cdef double f
        if type(start) is int and -(1 << 50) < start < (1 << 50):
            s = start
        elif type(start) is float:
            f = start
            if not -1e15 < f < 1e15 or f != <double>(<long long>f):
                return self.reference.add_working_days(start, days)
            s = <long long>f
        else:
            return self.reference.add_working_days(start, days)
        if not (FIRST_DAY + 1) * 86400LL <= s < (LAST_DAY - 64) * 86400LL:
            return self.reference.add_working_days(start, days)
        # the local day: the UTC day's offset first, then the offset of the day that gives
        d = <long>(s // 86400)
        if self.day(d) == IRREGULAR:
            return self.reference.add_working_days(start, days)
        local = s + self.offset[d - FIRST_DAY]
        e = <long>(local // 86400)
        if e != d:
            if self.day(e) == IRREGULAR:
                return self.reference.add_working_days(start, days)
            local = s + self.offset[e - FIRST_DAY]
            if <long>(local // 86400) != e:
                return self.reference.add_working_days(start, days)
            d = e
        whole = <long>days
        # the walk from day d over ``whole`` working days, remembered (deals' anchors fall on the same days, and
        # their thresholds are few)
        walk = &self.walks[(<unsigned long>d * 2654435761u + <unsigned long>whole) % WALKS]
        if walk.whole == whole and walk.first == d:
            moved = walk.moved
            d = walk.last
        else:
            walk.whole = -1
            walk.first = d
            k = self.day(d)
            while k != WORKING:
                if k == IRREGULAR:
                    return self.reference.add_working_days(start, days)
                d += 1
                moved = True
                k = self.day(d)
            remaining = whole
            while remaining > 0:
                d += 1
                if d >= LAST_DAY - 1:
                    return self.reference.add_working_days(start, days)
                k = self.day(d)
                if k == IRREGULAR:
                    return self.reference.add_working_days(start, days)
                if k == WORKING:
                    remaining -= 1
            walk.last = d
            walk.moved = moved
            walk.whole = whole
        if moved:
            s = d * 86400LL - self.offset[d - FIRST_DAY]
        else:
            s = d * 86400LL + (local - (local // 86400) * 86400) - self.offset[d - FIRST_DAY]
        return <double>s + (days - whole) * 86400.0


cdef dict _calendars = {}


cdef Calendar calendar_of(object reference):
    """One table of days for each calendar, kept for the next replay with it (the tests make many)."""
    cdef Calendar found = _calendars.get(id(reference))
    if found is None or found.reference is not reference:
        if len(_calendars) > 64:
            _calendars.clear()
        found = _calendars[id(reference)] = Calendar(reference)
    return found


WALKS_REMEMBERED = WALKS
"""How many walks the calendar remembers (by a hash of their first day, which days this many apart share)."""


def working_days_added(reference, start, days):
    """``add_working_days`` of the compiled calendar of ``reference`` (a ``WorkingCalendar``); for the tests."""
    return calendar_of(reference).add_working_days(start, days)
