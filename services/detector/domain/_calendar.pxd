# cython: language_level=3
"""Declarations of ``_calendar.pyx`` for the replay's engine (``_replay.pyx``), which cimports them."""

cimport cython

cdef enum:
    FIRST_DAY = -25567   # 1900-01-01 as a day number (days since 1970-01-01)
    LAST_DAY = 84006     # 2200-01-01
    WALKS = 4096         # walks over working days remembered


cdef struct Walk:
    long first       # the day it starts from
    long whole       # working days walked (-1: no walk here)
    long last        # the day it ends on
    bint moved       # it started on a day off, so it ends at the start of its last day


@cython.final
cdef class Calendar:
    cdef object reference
    cdef object holidays
    cdef object weekend
    cdef object tz
    cdef signed char kind[LAST_DAY - FIRST_DAY]
    cdef int offset[LAST_DAY - FIRST_DAY]
    cdef Walk walks[WALKS]   # remembered, by a hash of their first day and their count of working days

    cdef inline int day(self, long number) except -1
    cdef int read_day(self, long number) except -1
    cdef object add_working_days(self, object start, double days)


cdef Calendar calendar_of(object reference)
