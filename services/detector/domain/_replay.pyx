# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The replay's engine compiled: ``Detector.apply``, ``check_quiet`` and ``next_check`` (rules.py, fold.py) over
C fields, for the replay's summary (what opened, of which cause; what resumed and was revised; no messages).

Every decision is the Python reference's, made in the same order with the same arithmetic, so a replay's report
is the same with either (the tests hold the two equal on generated and shuffled histories, bad lines and
redeliveries). What only a message shows (ids, excerpts, evidence, batches, flags) is not made here: a replay
that writes messages runs the Python reference. Rare paths (an unusual time or date format, a lost reason's
clipping, the calendar, thresholds) call the reference's own functions, so they cannot differ.
"""

cimport cython
from libc.math cimport ceil
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memmove
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject

import gc
import zlib

import orjson

from services.detector.domain.causes._verdict cimport Verdicts
from services.detector.domain.causes import rank_for_keeping, default_rules
from services.detector.domain.causes.classify import _KEEP_HALF_LIFE, KEEP_PER_CAUSE, _rank as _native_rank
from services.detector.domain.causes.model import CAUSES
from services.detector.domain.event import BadEvent, check as _check, loads as _loads, parse_date as _parse_date
from services.detector.domain.event import parse_time as _parse_time
from services.detector.domain.fold import LEFT_CHANGES, _clip
from services.detector.domain.rules import EXCERPT_KEPT, _round2
from services.detector.domain.state import MAX_CLOSES, MAX_CONTACTS, MAX_FIRED, MAX_OUTBOUND, MAX_SEEN

DEF SEEN_CAP = 17
DEF CLOSES_CAP = 9
DEF OUTS_CAP = 9

cdef object _crc32 = zlib.crc32
cdef object _orjson_loads = orjson.loads
cdef object _JSONDecodeError = orjson.JSONDecodeError
cdef dict _TEXT_NAMES = {cause: f"text:{cause}" for cause in CAUSES}
cdef frozenset _LEFT = frozenset(LEFT_CHANGES)
cdef tuple _DEAL_FIELDS = (
    "name", "account_tier", "account_id", "currency", "status", "owner_id", "stage", "lost_reason", "amount",
    "close_date",
)
cdef double NEG_INF = float("-inf")
cdef double POS_INF = float("inf")

# interruption kinds and what resumes them (rules.py RESUMERS, INTERRUPTION_KINDS, SINGLE_EPISODE_KINDS)
DEF WENT_QUIET = 0
DEF REASSIGNED = 1
DEF CONTACT_LEFT = 2
DEF STALLED = 3
DEF CLOSED_LOST = 4
DEF CUSTOMER_ACTIVITY = 5
DEF PROGRESS = 6
DEF WON = 7
DEF REOPENED = 8
cdef tuple KIND_NAMES = ("went_quiet", "reassigned", "contact_left", "stalled", "closed_lost")


cdef uint32_t CRC[256]


cdef void _crc_table() noexcept:
    cdef uint32_t c
    cdef int n, k
    for n in range(256):
        c = n
        for k in range(8):
            c = (0xEDB88320u ^ (c >> 1)) if c & 1 else c >> 1
        CRC[n] = c


_crc_table()


cdef inline uint32_t crc32_of(const unsigned char *data, Py_ssize_t size) noexcept:
    """``zlib.crc32`` of the bytes."""
    cdef uint32_t c = 0xFFFFFFFFu
    cdef Py_ssize_t i
    for i in range(size):
        c = CRC[(c ^ data[i]) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFFu


cdef inline uint32_t fingerprint(str text) except? 0:
    """``state.short_hash``: the CRC-32 of the text's UTF-8 bytes (lone surrogates passed through)."""
    cdef bytes raw
    if PyUnicode_IS_ASCII(text):
        return crc32_of(<const unsigned char *>PyUnicode_DATA(text), len(text))
    raw = text.encode("utf-8", "surrogatepass")
    return crc32_of(<const unsigned char *><const char *>raw, len(raw))


cdef inline object text_of(object value):
    """``event.text``: a non-empty string, or None."""
    if type(value) is str and len(<str>value) > 0:
        return value
    if isinstance(value, str) and value:
        return value
    return None


cdef inline dict section_of(dict ev, str name):
    cdef object value = ev.get(name)
    return value if isinstance(value, dict) else {}


cdef object number_of(object value):
    """``event.number``: a finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    cdef double v = float(value)
    if v != v or v == POS_INF or v == NEG_INF:
        return None
    return v


# ---------------------------------------------------------------------------------------------- times and dates

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)
    const char *PyUnicode_DATA(object)


cdef inline bint _digits(const char *s, Py_ssize_t n, long *out):
    cdef long v = 0
    cdef Py_ssize_t i
    cdef char c
    for i in range(n):
        c = s[i]
        if c < 48 or c > 57:
            return False
        v = v * 10 + (c - 48)
    out[0] = v
    return True


cdef inline long days_from_civil(long y, long m, long d):
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y -= m <= 2
    cdef long era = (y if y >= 0 else y - 399) // 400
    cdef long yoe = y - era * 400
    cdef long doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    cdef long doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef inline int month_days(long y, long m):
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m == 4 or m == 6 or m == 9 or m == 11 else 31


cdef bint _date_part(const char *s, Py_ssize_t n, long *days):
    """A valid YYYY-MM-DD at the start of ``s``: its day number."""
    cdef long y, m, d
    if n < 10 or s[4] != 45 or s[7] != 45:  # -
        return False
    if not (_digits(s, 4, &y) and _digits(s + 5, 2, &m) and _digits(s + 8, 2, &d)):
        return False
    if y < 1 or m < 1 or m > 12 or d < 1 or d > month_days(y, m):
        return False
    days[0] = days_from_civil(y, m, d)
    return True


cdef object parse_time(object value):
    """``event.parse_time``: epoch seconds, whole. The common form (``YYYY-MM-DDTHH:MM:SS[.fff[fff]]`` with ``Z`` or
    an offset) is read here; anything else by the reference, which reads or refuses it."""
    cdef const char *s
    cdef long day, hh, mi, ss, oh = 0, om = 0, frac = 0, scale = 1
    cdef Py_ssize_t n, i
    cdef char c
    cdef long long micros
    cdef int sign = 1
    if type(value) is not str or not PyUnicode_IS_ASCII(value):
        return _parse_time(value)
    s = PyUnicode_DATA(value)
    n = len(<str>value)
    if n < 20 or s[10] != 84 or s[13] != 58 or s[16] != 58 or not _date_part(s, n, &day):  # T : :
        return _parse_time(value)
    if not (_digits(s + 11, 2, &hh) and _digits(s + 14, 2, &mi) and _digits(s + 17, 2, &ss)):
        return _parse_time(value)
    if hh > 23 or mi > 59 or ss > 59:
        return _parse_time(value)
    i = 19
    if s[i] == 46:  # .
        i += 1
        while i < n and 48 <= s[i] <= 57 and i < 26:
            frac = frac * 10 + (s[i] - 48)
            scale *= 10
            i += 1
        if scale != 1000 and scale != 1000000:  # 3 or 6 digits: what fromisoformat takes without question
            return _parse_time(value)
    c = s[i] if i < n else 0
    if c == 90 and i + 1 == n:  # Z
        pass
    elif (c == 43 or c == 45) and i + 6 == n and s[i + 3] == 58:  # + or -, then HH:MM
        if not (_digits(s + i + 1, 2, &oh) and _digits(s + i + 4, 2, &om)) or oh > 23 or om > 59:
            return _parse_time(value)
        sign = 1 if c == 43 else -1
    else:
        return _parse_time(value)
    micros = (<long long>day * 86400 + hh * 3600 + mi * 60 + ss - sign * (oh * 3600 + om * 60)) * 1000000
    micros += frac * (1000000 // scale)
    if micros % 1000000 == 0:
        return micros // 1000000
    return int(<double>micros / 1e6)


cdef object parse_date(object value):
    """``event.parse_date``: a day ordinal, or None."""
    cdef long day
    if value is None:
        return None
    if type(value) is str and len(<str>value) == 10 and PyUnicode_IS_ASCII(value):
        if _date_part(PyUnicode_DATA(value), 10, &day):
            return day + 719163
    return _parse_date(value)


# ---------------------------------------------------------------------------------------------- the event

@cython.no_gc
cdef class Ev:
    """The fields of a change event the rules read (None: absent or null), from a line read here or from the
    decoded JSON of one that is not (``from_dict``)."""

    cdef object event_id, source, deal_id, etype, occurred_at
    cdef object tier, status, owner, stage, lost_reason, amount, close_date
    cdef object prev_owner, prev_stage, prev_amount, prev_close_date
    cdef bint has_activity
    cdef object kind, direction, text, scheduled_at, done
    cdef bint has_contact
    cdef object contact_id, change, decision_maker, title

    cdef inline void clear(self):
        self.event_id = self.source = self.deal_id = self.etype = self.occurred_at = None
        self.tier = self.status = self.owner = self.stage = self.lost_reason = self.amount = None
        self.close_date = self.prev_owner = self.prev_stage = self.prev_amount = self.prev_close_date = None
        self.kind = self.direction = self.text = self.scheduled_at = self.done = None
        self.contact_id = self.change = self.decision_maker = self.title = None
        self.has_activity = self.has_contact = False


cdef Ev from_dict(dict ev):
    """An event the reference's ``as_change`` and ``check`` accepted, as the rules read it."""
    cdef Ev e = Ev.__new__(Ev)
    cdef dict deal = ev["deal"]
    e.event_id = ev["event_id"]
    e.source = ev["source"]
    e.deal_id = ev["deal_id"]
    e.etype = ev["type"]
    e.occurred_at = ev["occurred_at"]
    e.tier = deal.get("account_tier")
    e.status = deal.get("status")
    e.owner = deal.get("owner_id")
    e.stage = deal.get("stage")
    e.lost_reason = deal.get("lost_reason")
    e.amount = deal.get("amount")
    e.close_date = deal.get("close_date")
    prev = ev.get("previous")
    if isinstance(prev, dict):
        e.prev_owner = prev.get("owner_id")
        e.prev_stage = prev.get("stage")
        e.prev_amount = prev.get("amount")
        e.prev_close_date = prev.get("close_date")
    act = ev.get("activity")
    if isinstance(act, dict):
        e.has_activity = True
        e.kind = act.get("kind")
        e.direction = act.get("direction")
        e.text = act.get("text")
        e.scheduled_at = act.get("scheduled_at")
        e.done = act.get("done")
    contact = ev.get("contact")
    if isinstance(contact, dict):
        e.has_contact = True
        e.contact_id = contact.get("id")
        e.change = contact.get("change")
        e.decision_maker = contact.get("decision_maker")
        e.title = contact.get("title")
    return e


# A line is read here when it is a JSON object that orjson reads alike and that ``as_change`` and ``check``
# accept, with plain values (a string, a number, true, false or null) where the rules read one; anything else
# (invalid or unusual JSON, a value of another type, a key given twice) is left to orjson and the reference's
# checks, so that it is read, or refused, exactly as the reference does.

cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    object PyLong_FromLongLong(long long v)
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL

from libc.stdlib cimport strtod
from libc.string cimport memchr, memcmp, memcpy

DEF MAX_DEPTH = 32
DEF BUF = 512
DEF SHORT = 24     # strings of at most this many bytes are remembered by the reader
DEF SLOTS = 1024

cdef class Reader:
    """Reads one line (bytes) at a time into an ``Ev``; ``read`` is False for a line it leaves to orjson."""

    cdef const unsigned char *p
    cdef Py_ssize_t i, n
    cdef char buf[BUF]
    cdef int depth
    cdef object value
    cdef Ev event
    """The event of the last line read, filled again for the next (nothing keeps it)."""
    cdef char short_bytes[SLOTS][SHORT]
    cdef Py_ssize_t short_size[SLOTS]
    cdef list short_value
    cdef bint repeats
    """Whether the value being read is of a field with few values (see ``text``)."""

    def __cinit__(self):
        self.short_value = [None] * SLOTS
        for j in range(SLOTS):
            self.short_size[j] = -1

    cdef inline void ws(self):
        cdef unsigned char c
        while self.i < self.n:
            c = self.p[self.i]
            if c == 32 or c == 10 or c == 13 or c == 9:
                self.i += 1
            else:
                return

    cdef bint utf8(self, Py_ssize_t at, Py_ssize_t end):
        """Bytes at..end are well-formed UTF-8 (no overlong form, no surrogate, nothing past U+10FFFF)."""
        cdef const unsigned char *p = self.p
        cdef unsigned char c, c1
        cdef Py_ssize_t k = at
        while k < end:
            c = p[k]
            if c < 0x80:
                k += 1
            elif 0xC2 <= c <= 0xDF:
                if k + 1 >= end or (p[k + 1] & 0xC0) != 0x80:
                    return False
                k += 2
            elif 0xE0 <= c <= 0xEF:
                if k + 2 >= end or (p[k + 1] & 0xC0) != 0x80 or (p[k + 2] & 0xC0) != 0x80:
                    return False
                c1 = p[k + 1]
                if (c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 >= 0xA0):
                    return False
                k += 3
            elif 0xF0 <= c <= 0xF4:
                if k + 3 >= end or (p[k + 1] & 0xC0) != 0x80 or (p[k + 2] & 0xC0) != 0x80 or (p[k + 3] & 0xC0) != 0x80:
                    return False
                c1 = p[k + 1]
                if (c == 0xF0 and c1 < 0x90) or (c == 0xF4 and c1 >= 0x90):
                    return False
                k += 4
            else:
                return False
        return True

    cdef int string(self, bint keep) except -1:
        """A string at ``i`` (its opening quote): 1 and its value in ``out`` when kept; 0 to leave the line."""
        cdef Py_ssize_t start = self.i + 1, k = start, w = 0
        cdef const unsigned char *p = self.p
        cdef unsigned char c
        cdef bint escaped = False
        cdef unsigned int u
        cdef int j, h
        cdef Py_ssize_t n = self.n
        cdef unsigned char high = 0
        cdef uint64_t word, x, found, highs = 0
        # eight bytes at a time while none is a quote, a backslash or a control character (a word that may hold
        # one goes to the byte loop below, which decides)
        while k + 8 <= n:
            memcpy(&word, p + k, 8)
            found = (word - 0x2020202020202020ULL) & ~word
            x = word ^ 0x2222222222222222ULL
            found |= (x - 0x0101010101010101ULL) & ~x
            x = word ^ 0x5C5C5C5C5C5C5C5CULL
            found |= (x - 0x0101010101010101ULL) & ~x
            if found & 0x8080808080808080ULL:
                break
            highs |= word
            k += 8
        if highs & 0x8080808080808080ULL:
            high = 0x80
        while k < n:
            c = p[k]
            if c == 34:  # "
                break
            if c < 0x20:
                return 0
            high |= c
            if c == 92:  # backslash
                escaped = True
                k += 2
            else:
                k += 1
        else:
            return 0
        if high >= 0x80 and not self.utf8(start, k):
            return 0
        if not escaped:
            if keep:
                self.value = self.text(<const char *>p + start, k - start)
            self.i = k + 1
            return 1
        # with escapes: decoded into the buffer (a long escaped string is left to orjson)
        k = start
        while True:
            c = p[k]
            if c == 34:
                break
            if c != 92:
                if w >= BUF - 4:
                    return 0
                self.buf[w] = <char>c
                w += 1
                k += 1
                continue
            c = p[k + 1]
            k += 2
            if w >= BUF - 4:
                return 0
            if c == 34 or c == 92 or c == 47:
                self.buf[w] = <char>c
            elif c == 98:
                self.buf[w] = 8
            elif c == 102:
                self.buf[w] = 12
            elif c == 110:
                self.buf[w] = 10
            elif c == 114:
                self.buf[w] = 13
            elif c == 116:
                self.buf[w] = 9
            elif c == 117:  # \uXXXX, not a surrogate
                if k + 4 > self.n:
                    return 0
                u = 0
                for j in range(4):
                    h = p[k + j]
                    if 48 <= h <= 57:
                        u = u * 16 + (h - 48)
                    elif 97 <= h <= 102:
                        u = u * 16 + (h - 87)
                    elif 65 <= h <= 70:
                        u = u * 16 + (h - 55)
                    else:
                        return 0
                k += 4
                if 0xD800 <= u <= 0xDFFF:
                    return 0
                if u < 0x80:
                    self.buf[w] = <char>u
                elif u < 0x800:
                    self.buf[w] = <char>(0xC0 | (u >> 6))
                    w += 1
                    self.buf[w] = <char>(0x80 | (u & 0x3F))
                else:
                    self.buf[w] = <char>(0xE0 | (u >> 12))
                    w += 1
                    self.buf[w] = <char>(0x80 | ((u >> 6) & 0x3F))
                    w += 1
                    self.buf[w] = <char>(0x80 | (u & 0x3F))
            else:
                return 0
            w += 1
        if keep:
            self.value = PyUnicode_DecodeUTF8(self.buf, w, NULL)
        self.i = k + 1
        return 1

    cdef object text(self, const char *data, Py_ssize_t size):
        """The string of well-formed UTF-8 bytes; a short one is kept and given again when the same bytes come
        back (a type, a stage, an owner, a direction: few values, on every line)."""
        cdef uint32_t h = 2166136261u
        cdef Py_ssize_t j
        cdef int slot
        if size > SHORT or not self.repeats:
            return PyUnicode_DecodeUTF8(data, size, NULL)
        for j in range(size):
            h = (h ^ <unsigned char>data[j]) * 16777619u
        slot = h & (SLOTS - 1)
        if self.short_size[slot] == size and memcmp(self.short_bytes[slot], data, size) == 0:
            return self.short_value[slot]
        value = PyUnicode_DecodeUTF8(data, size, NULL)
        memcpy(self.short_bytes[slot], data, size)
        self.short_size[slot] = size
        self.short_value[slot] = value
        return value

    cdef int number(self, bint keep) except -1:
        cdef Py_ssize_t start = self.i, k = self.i, digits = 0, exp_digits = 0
        cdef const unsigned char *p = self.p
        cdef bint is_float = False
        cdef long long v = 0
        cdef char *end
        cdef char tmp[64]
        cdef Py_ssize_t j
        if k < self.n and p[k] == 45:
            k += 1
        if k >= self.n or not 48 <= p[k] <= 57:
            return 0
        if p[k] == 48:
            k += 1
            digits = 1
        else:
            while k < self.n and 48 <= p[k] <= 57:
                k += 1
                digits += 1
        if k < self.n and p[k] == 46:
            is_float = True
            k += 1
            if k >= self.n or not 48 <= p[k] <= 57:
                return 0
            while k < self.n and 48 <= p[k] <= 57:
                k += 1
                digits += 1
        if k < self.n and (p[k] == 101 or p[k] == 69):
            is_float = True
            k += 1
            if k < self.n and (p[k] == 43 or p[k] == 45):
                k += 1
            if k >= self.n or not 48 <= p[k] <= 57:
                return 0
            while k < self.n and 48 <= p[k] <= 57:
                k += 1
                exp_digits += 1
        if digits > 17 or exp_digits > 2 or k - start >= 60:
            return 0  # big or long: orjson's own reading
        if keep:
            memcpy(tmp, p + start, k - start)
            tmp[k - start] = 0
            if is_float:
                self.value = strtod(tmp, &end)
            else:
                for j in range(start + (1 if p[start] == 45 else 0), k):
                    v = v * 10 + (p[j] - 48)
                self.value = PyLong_FromLongLong(-v if p[start] == 45 else v)
        self.i = k
        return 1

    cdef int literal(self, bint keep) except -1:
        cdef const unsigned char *p = self.p + self.i
        cdef Py_ssize_t left = self.n - self.i
        if left >= 4 and memcmp(p, b"null", 4) == 0:
            if keep:
                self.value = None
            self.i += 4
        elif left >= 4 and memcmp(p, b"true", 4) == 0:
            if keep:
                self.value = True
            self.i += 4
        elif left >= 5 and memcmp(p, b"false", 5) == 0:
            if keep:
                self.value = False
            self.i += 5
        else:
            return 0
        return 1

    cdef int scalar(self) except -1:
        """A string, number, true, false or null, kept; 0 for anything else."""
        cdef unsigned char c
        if self.i >= self.n:
            return 0
        c = self.p[self.i]
        if c == 34:
            return self.string(True)
        if c == 45 or 48 <= c <= 57:
            return self.number(True)
        return self.literal(True)

    cdef int skip(self) except -1:
        """Any JSON value, checked and passed over."""
        cdef unsigned char c
        cdef bint first
        if self.i >= self.n:
            return 0
        c = self.p[self.i]
        if c == 34:
            return self.string(False)
        if c == 45 or 48 <= c <= 57:
            return self.number(False)
        if c == 123 or c == 91:  # { [
            self.depth += 1
            if self.depth > MAX_DEPTH:
                return 0
            self.i += 1
            self.ws()
            first = True
            while True:
                if self.i >= self.n:
                    return 0
                if self.p[self.i] == (125 if c == 123 else 93):
                    self.i += 1
                    self.depth -= 1
                    return 1
                if not first:
                    if self.p[self.i] != 44:
                        return 0
                    self.i += 1
                    self.ws()
                first = False
                if c == 123:
                    if self.i >= self.n or self.p[self.i] != 34 or not self.string(False):
                        return 0
                    self.ws()
                    if self.i >= self.n or self.p[self.i] != 58:
                        return 0
                    self.i += 1
                    self.ws()
                if not self.skip():
                    return 0
                self.ws()
        return self.literal(False)

    cdef int obj(self, int which, Ev e) except -1:
        """An object at ``i``: the event (0), its deal (1), previous (2), activity (3) or contact (4)."""
        cdef Py_ssize_t key, size
        cdef const char *name
        cdef object value
        cdef bint first = True
        cdef int slot
        cdef unsigned int seen = 0
        if self.i >= self.n or self.p[self.i] != 123:
            return 0
        self.i += 1
        self.ws()
        while True:
            if self.i >= self.n:
                return 0
            if self.p[self.i] == 125:
                self.i += 1
                return 1
            if not first:
                if self.p[self.i] != 44:
                    return 0
                self.i += 1
                self.ws()
            first = False
            if self.i >= self.n or self.p[self.i] != 34:
                return 0
            key = self.i + 1
            if not self.string(False):
                return 0
            size = self.i - 1 - key
            name = <const char *>self.p + key
            if memchr(name, 92, size) != NULL:
                return 0  # an escaped key: orjson reads what it names
            self.ws()
            if self.i >= self.n or self.p[self.i] != 58:
                return 0
            self.i += 1
            self.ws()
            slot = slot_of(which, name, size)
            if slot < 0:
                if not self.skip():
                    return 0
            else:
                if seen & (1u << slot):
                    return 0  # a key given twice: the last wins in the reference; left to it
                seen |= 1u << slot
                if not self.field(which, slot, e):
                    return 0
            self.ws()

    cdef int field(self, int which, int slot, Ev e) except -1:
        cdef object v = None
        cdef unsigned char c = self.p[self.i] if self.i < self.n else 0
        if which == 0 and slot >= 5:  # deal, previous, activity, contact: an object or null
            if c != 123:
                if not self.literal(True) or self.value is not None:
                    return 0
                if slot == 5:
                    return 0  # no deal
                return 1
            if slot == 7:
                e.has_activity = True
            elif slot == 8:
                e.has_contact = True
            self.depth += 1
            if self.depth > MAX_DEPTH:
                return 0
            ok = self.obj(slot - 4, e)
            self.depth -= 1
            return ok
        # a value of few kinds is remembered; an event's id, time or text, different on each line, is not
        self.repeats = not (
            (which == 0 and (slot == 0 or slot == 3)) or (which == 1 and slot == 5) or (which == 3 and slot >= 2)
            or (which == 4 and slot == 3)
        )
        if not self.scalar():
            return 0
        v = self.value
        if which == 0:
            if slot == 0:
                e.event_id = v
            elif slot == 1:
                e.source = v
            elif slot == 2:
                e.etype = v
            else:
                e.occurred_at = v
        elif which == 1:
            if slot == 0:
                e.deal_id = v
            elif slot == 1:
                e.tier = v
            elif slot == 2:
                e.status = v
            elif slot == 3:
                e.owner = v
            elif slot == 4:
                e.stage = v
            elif slot == 5:
                e.lost_reason = v
            elif slot == 6:
                e.amount = v
            else:
                e.close_date = v
        elif which == 2:
            if slot == 0:
                e.prev_owner = v
            elif slot == 1:
                e.prev_stage = v
            elif slot == 2:
                e.prev_amount = v
            else:
                e.prev_close_date = v
        elif which == 3:
            if slot == 0:
                e.kind = v
            elif slot == 1:
                e.direction = v
            elif slot == 2:
                e.text = v
            elif slot == 3:
                e.scheduled_at = v
            else:
                e.done = v
        else:
            if slot == 0:
                e.contact_id = v
            elif slot == 1:
                e.change = v
            elif slot == 2:
                e.decision_maker = v
            else:
                e.title = v
        return 1

    cdef Ev read(self, object line, str source):
        """The event on ``line`` when it is read here (see above), else None."""
        cdef Ev e = self.event
        if type(line) is bytes:
            self.p = <const unsigned char *><const char *>(<bytes>line)
            self.n = len(<bytes>line)
        else:
            return None
        self.i = 0
        self.depth = 0
        if e is None:
            e = self.event = Ev.__new__(Ev)
        else:
            e.clear()
        e.deal_id = _MISSING
        self.ws()
        if not self.obj(0, e):
            return None
        self.ws()
        if self.i != self.n:
            return None
        # what as_change and check would refuse, or change, is left to them
        if e.deal_id is _MISSING or e.deal_id is None or e.deal_id == "":
            return None
        if type(e.deal_id) is not str:
            e.deal_id = str(e.deal_id)
        if not e.source:
            e.source = source
        if not (_plain_text(e.event_id) and _plain_text(e.source) and _plain_text(e.etype)
                and _plain_text(e.occurred_at)):
            return None
        if e.kind is not None and type(e.kind) is not str or e.direction is not None and type(e.direction) is not str:
            return None
        return e


cdef object _MISSING = object()


cdef inline bint _plain_text(object value):
    return type(value) is str and len(<str>value) > 0


cdef int slot_of(int which, const char *name, Py_ssize_t size):
    """The place of a key the rules read in its object, or -1."""
    if which == 0:
        if size == 8 and memcmp(name, b"event_id", 8) == 0:
            return 0
        if size == 6 and memcmp(name, b"source", 6) == 0:
            return 1
        if size == 4 and memcmp(name, b"type", 4) == 0:
            return 2
        if size == 11 and memcmp(name, b"occurred_at", 11) == 0:
            return 3
        if size == 4 and memcmp(name, b"deal", 4) == 0:
            return 5
        if size == 8 and memcmp(name, b"previous", 8) == 0:
            return 6
        if size == 8 and memcmp(name, b"activity", 8) == 0:
            return 7
        if size == 7 and memcmp(name, b"contact", 7) == 0:
            return 8
        return -1  # deal_id too: as_change writes it
    if which == 1:
        if size == 2 and memcmp(name, b"id", 2) == 0:
            return 0
        if size == 12 and memcmp(name, b"account_tier", 12) == 0:
            return 1
        if size == 6 and memcmp(name, b"status", 6) == 0:
            return 2
        if size == 8 and memcmp(name, b"owner_id", 8) == 0:
            return 3
        if size == 5 and memcmp(name, b"stage", 5) == 0:
            return 4
        if size == 11 and memcmp(name, b"lost_reason", 11) == 0:
            return 5
        if size == 6 and memcmp(name, b"amount", 6) == 0:
            return 6
        if size == 10 and memcmp(name, b"close_date", 10) == 0:
            return 7
        return -1
    if which == 2:
        if size == 8 and memcmp(name, b"owner_id", 8) == 0:
            return 0
        if size == 5 and memcmp(name, b"stage", 5) == 0:
            return 1
        if size == 6 and memcmp(name, b"amount", 6) == 0:
            return 2
        if size == 10 and memcmp(name, b"close_date", 10) == 0:
            return 3
        return -1
    if which == 3:
        if size == 4 and memcmp(name, b"kind", 4) == 0:
            return 0
        if size == 9 and memcmp(name, b"direction", 9) == 0:
            return 1
        if size == 4 and memcmp(name, b"text", 4) == 0:
            return 2
        if size == 12 and memcmp(name, b"scheduled_at", 12) == 0:
            return 3
        if size == 4 and memcmp(name, b"done", 4) == 0:
            return 4
        return -1
    if size == 2 and memcmp(name, b"id", 2) == 0:
        return 0
    if size == 6 and memcmp(name, b"change", 6) == 0:
        return 1
    if size == 14 and memcmp(name, b"decision_maker", 14) == 0:
        return 2
    if size == 5 and memcmp(name, b"title", 5) == 0:
        return 3
    return -1


# ---------------------------------------------------------------------------------------------- the calendar

DEF FIRST_DAY = -25567   # 1900-01-01 as a day number (days since 1970-01-01)
DEF LAST_DAY = 84006     # 2200-01-01
DEF UNKNOWN = 0
DEF WORKING = 1
DEF RESTING = 2
DEF IRREGULAR = 3


cdef class Calendar:
    """``WorkingCalendar.add_working_days`` for whole-second starts on days whose UTC offset is the same all day
    (both readings of an ambiguous hour included): what every day of a zone without daylight saving is, and every
    day but the changeovers of one with it. Anything else, the reference answers. Each day is read from the
    reference's calendar and time zone the first time it is needed."""

    cdef object reference
    cdef object holidays
    cdef object weekend
    cdef object tz
    cdef signed char[LAST_DAY - FIRST_DAY] kind
    cdef int[LAST_DAY - FIRST_DAY] offset

    def __init__(self, reference):
        self.reference = reference
        self.holidays = reference.holidays
        self.weekend = reference.weekend
        self.tz = reference.tz

    cdef int day(self, long number) except -1:
        """WORKING, RESTING or IRREGULAR for a day number in range (``offset`` filled)."""
        cdef Py_ssize_t i = number - FIRST_DAY
        if self.kind[i] != UNKNOWN:
            return self.kind[i]
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
        if moved:
            s = d * 86400LL - self.offset[d - FIRST_DAY]
        else:
            s = d * 86400LL + (local - (local // 86400) * 86400) - self.offset[d - FIRST_DAY]
        return <double>s + (days - whole) * 86400.0


# ---------------------------------------------------------------------------------------------- a deal's state

@cython.no_gc
@cython.freelist(64)
cdef class Episode:
    cdef int kind
    cdef double at
    cdef object cause
    cdef object side
    cdef str identity


@cython.no_gc
cdef class Deal:
    """``DealState``'s fields that decide what opens (what only a message shows is left out)."""

    cdef object owner
    cdef double owner_at
    cdef object owner_changed_at
    cdef object stage
    cdef double stage_at
    cdef bint stage_back
    cdef object status
    cdef double status_at
    cdef long reopens
    cdef object amount
    cdef double amount_at
    cdef object amount_cut
    cdef long long close_t[CLOSES_CAP]
    cdef long long close_d[CLOSES_CAP]
    cdef int n_closes
    cdef object tier
    cdef double info_at
    cdef object lost_reason
    cdef object created
    cdef object last_act
    cdef object last_in
    cdef long long outs[OUTS_CAP]
    cdef int n_outs
    cdef long acts
    cdef object sched
    cdef list contacts
    cdef object left_id
    cdef object left_change
    cdef object left_at
    cdef list episodes
    cdef unsigned int fired[SEEN_CAP]
    cdef int n_fired
    cdef unsigned int seen[SEEN_CAP]
    cdef int n_seen
    cdef double recv
    cdef list signals
    cdef long stalls
    cdef object due
    """When the replay looks at the deal's quiet deadline next (None: not before its next event)."""
    cdef unsigned char open_kinds[5]
    """How many episodes of each interruption kind are open."""
    # the threshold of the last (stage, tier), and the last deadline asked of the calendar: (anchor, days) -> deadline
    cdef object th_stage
    cdef object th_tier
    cdef double th_days
    cdef object memo_anchor
    cdef double memo_days
    cdef double memo_deadline

    def __cinit__(self):
        self.th_days = -1.0
        self.contacts = []
        self.episodes = []
        self.signals = []

    cdef inline bint has_open(self, int kind):
        return self.open_kinds[kind] > 0

    cdef void close_pushes(self, long *pushes, long *slip):
        cdef int i
        pushes[0] = slip[0] = 0
        for i in range(1, self.n_closes):
            if self.close_d[i] > self.close_d[i - 1]:
                pushes[0] += 1
                slip[0] += self.close_d[i] - self.close_d[i - 1]

    cdef void insert_close(self, long long t, long long ordinal):
        cdef int i, at
        for i in range(self.n_closes):
            if self.close_t[i] == t:
                self.close_d[i] = ordinal
                return
        at = self.n_closes  # after every entry that sorts before or with [t, ordinal] (bisect.insort)
        while at > 0 and (self.close_t[at - 1] > t or (self.close_t[at - 1] == t and self.close_d[at - 1] > ordinal)):
            at -= 1
        memmove(&self.close_t[at + 1], &self.close_t[at], (self.n_closes - at) * sizeof(long long))
        memmove(&self.close_d[at + 1], &self.close_d[at], (self.n_closes - at) * sizeof(long long))
        self.close_t[at] = t
        self.close_d[at] = ordinal
        self.n_closes += 1
        if self.n_closes > MAX_CLOSES:
            memmove(&self.close_t[0], &self.close_t[1], (self.n_closes - 1) * sizeof(long long))
            memmove(&self.close_d[0], &self.close_d[1], (self.n_closes - 1) * sizeof(long long))
            self.n_closes -= 1

    cdef void insert_out(self, long long t):
        cdef int at = self.n_outs
        while at > 0 and self.outs[at - 1] > t:
            at -= 1
        memmove(&self.outs[at + 1], &self.outs[at], (self.n_outs - at) * sizeof(long long))
        self.outs[at] = t
        self.n_outs += 1
        if self.n_outs > MAX_OUTBOUND:
            memmove(&self.outs[0], &self.outs[1], (self.n_outs - 1) * sizeof(long long))
            self.n_outs -= 1

    cdef long outbound_since_inbound(self):
        cdef double floor = NEG_INF if self.last_in is None else float(self.last_in)
        cdef long n = 0
        cdef int i
        for i in range(self.n_outs):
            if self.outs[i] > floor:
                n += 1
        return n


cdef bint remember(unsigned int *ring, int *count, int cap, unsigned int value):
    """Add ``value`` to a bounded list of fingerprints (oldest dropped); False when it was there already."""
    cdef int i
    for i in range(count[0]):
        if ring[i] == value:
            return False
    ring[count[0]] = value
    count[0] += 1
    if count[0] > cap:
        memmove(&ring[0], &ring[1], (count[0] - 1) * sizeof(unsigned int))
        count[0] -= 1
    return True


cdef inline object later_of(object current, object t):
    """``max(current or t, t)``."""
    if not current:
        return t
    return current if current >= t else t


# ---------------------------------------------------------------------------------------------- the engine

@cython.no_gc
@cython.freelist(64)
cdef class Trigger:
    cdef int kind
    cdef str identity
    cdef object at


cdef inline Trigger trigger(int kind, str identity, object at):
    cdef Trigger tr = Trigger.__new__(Trigger)
    tr.kind = kind
    tr.identity = identity
    tr.at = at
    return tr


cdef class Engine:
    """One ``Detector``'s rules, compiled; ``replay`` runs them over an export's lines."""

    cdef object cfg
    cdef object lexicon
    cdef object extract
    cdef object kind_factor
    cdef object direction_factor
    cdef object prepare
    cdef object signal_type
    cdef Verdicts verdicts
    cdef Calendar calendar
    cdef dict thresholds
    cdef dict ranks
    cdef dict deciders
    cdef object qualifying_kinds
    cdef object qualifying_directions
    cdef bint progress_is_activity
    cdef double amount_cut_share
    cdef long close_date_pushes
    cdef long close_date_slip_days
    cdef double grace
    cdef double revise_window
    cdef double signal_window
    cdef long signals_kept
    # what one replay counts
    cdef public dict opened
    cdef public long revised
    cdef public long resumed
    cdef dict fired_by_deal
    cdef bint by_deal

    def __init__(self, detector):
        from services.detector.domain.causes.classify import NATIVE
        from services.detector.domain.causes.model import Signal
        from services.detector.domain.causes.text import _prepare

        cfg = self.cfg = detector.cfg
        self.lexicon = detector.lexicon
        native = getattr(self.lexicon, "_native", None)
        self.extract = native.extract if native is not None else None
        self.kind_factor = getattr(self.lexicon, "_kind_factor", None)
        self.direction_factor = getattr(self.lexicon, "_direction_factor", None)
        self.prepare = _prepare
        self.signal_type = Signal
        self.verdicts = Verdicts(default_rules())
        self.calendar = calendar_of(cfg.calendar)
        self.thresholds = {}
        self.ranks = {}
        self.deciders = {}
        self.qualifying_kinds = cfg.qualifying_kinds
        self.qualifying_directions = cfg.qualifying_directions
        self.progress_is_activity = bool(cfg.stage_progress_counts_as_activity)
        self.amount_cut_share = cfg.amount_cut_share
        self.close_date_pushes = cfg.close_date_pushes
        self.close_date_slip_days = cfg.close_date_slip_days
        self.grace = cfg.grace_seconds
        self.revise_window = cfg.revise_window_seconds
        self.signal_window = cfg.signal_window_seconds
        self.signals_kept = cfg.signals_kept
        self.opened = {}
        self.revised = 0
        self.resumed = 0

    # ------------------------------------------------------------------ configuration, remembered

    cdef object stage_rank(self, object stage):
        cdef PyObject *found
        if not stage:
            return None
        found = PyDict_GetItem(self.ranks, stage)
        if found is not NULL:
            return <object>found
        rank = self.ranks[stage] = self.cfg.stage_rank(stage)
        return rank

    cdef bint is_decider(self, object title):
        cdef PyObject *found
        if title is None:
            return False
        found = PyDict_GetItem(self.deciders, title)
        if found is not NULL:
            return <object>found
        answer = self.deciders[title] = bool(self.cfg.is_decision_maker(title))
        return answer

    cdef double threshold(self, object stage, object tier) except? -1:
        cdef tuple key = (stage, tier)
        cdef PyObject *found = PyDict_GetItem(self.thresholds, key)
        if found is not NULL:
            return <double><object>found
        days = self.thresholds[key] = float(self.cfg.quiet_threshold_days(stage, tier))
        return days

    # ------------------------------------------------------------------ one event

    cdef list fold_deal_fields(self, Deal state, Ev ev, double t, str eid):
        cdef list triggers = []
        cdef bint deleted = ev.etype == "deal.deleted"
        if (
            ev.tier is None and ev.status is None and ev.owner is None and ev.stage is None
            and ev.lost_reason is None and ev.amount is None and ev.close_date is None
            and ev.prev_close_date is None and not deleted
        ):
            # no field the rules read (a name, an account or a currency alone changes nothing they decide)
            if t >= state.info_at:
                state.info_at = t
            return triggers
        if t >= state.info_at:
            state.info_at = t
            state.tier = text_of(ev.tier) or state.tier
        status = text_of(ev.status)
        if deleted:
            status = "deleted"
        self.fold_owner(state, text_of(ev.owner), text_of(ev.prev_owner), t, triggers)
        self.fold_stage(state, text_of(ev.stage), text_of(ev.prev_stage), t, triggers)
        self.fold_status(state, status, t, triggers)
        self.fold_amount(state, number_of(ev.amount), number_of(ev.prev_amount), t, triggers)
        self.fold_close_date(state, parse_date(ev.close_date), parse_date(ev.prev_close_date), t, triggers)
        reason = text_of(ev.lost_reason)
        if reason:
            state.lost_reason = _clip(reason)
        return triggers

    cdef void fold_owner(self, Deal state, object new, object before, double t, list triggers) except *:
        if new is None:
            return
        if before and before != new:
            frm, to, at = before, new, t
        elif state.owner is None or new == state.owner:
            frm = None
        elif t >= state.owner_at:
            frm, to, at = state.owner, new, t
        else:
            frm, to, at = new, state.owner, state.owner_at
        if state.owner is None or t >= state.owner_at:
            state.owner = new
            state.owner_at = t
        if frm is None:
            return
        if to == state.owner:
            state.owner_changed_at = at
        triggers.append(trigger(REASSIGNED, f"reassigned|{frm}|{to}", at))

    cdef void fold_stage(self, Deal state, object new, object old, double t, list triggers) except *:
        if new is None:
            return
        if t < state.stage_at:
            old, new, t = new, state.stage, state.stage_at
        else:
            old = old or state.stage
            state.stage = new
            state.stage_at = t
        old_rank, new_rank = self.stage_rank(old), self.stage_rank(new)
        if old_rank is None or new_rank is None or old_rank == new_rank:
            return
        if new_rank < old_rank:
            state.stage_back = True
            triggers.append(trigger(STALLED, f"stalled|{state.stalls}", t))
            return
        if self.progress_is_activity:
            state.last_act = later_of(state.last_act, t)
        triggers.append(trigger(PROGRESS, "progress", t))

    cdef void fold_status(self, Deal state, object new, double t, list triggers) except *:
        if new is None or t < state.status_at:
            return
        old = state.status
        state.status = new
        state.status_at = t
        if new == old:
            return
        if new == "lost":
            triggers.append(trigger(CLOSED_LOST, f"closed_lost|{state.reopens}", t))
        elif new == "won":
            triggers.append(trigger(WON, "won", t))
        elif new == "open" and old == "lost":
            state.reopens += 1
            triggers.append(trigger(REOPENED, "reopened", t))

    cdef void fold_amount(self, Deal state, object new, object old, double t, list triggers) except *:
        if new is None:
            return
        if old is None and t >= state.amount_at:
            old = state.amount
        if t >= state.amount_at:
            state.amount = new
            state.amount_at = t
        if old is None or old <= 0 or new >= old:
            return
        share = (old - new) / old
        if share <= self.amount_cut_share:
            return
        state.amount_cut = round(share, 3)
        triggers.append(trigger(STALLED, f"stalled|{state.stalls}", t))

    cdef void fold_close_date(self, Deal state, object new, object before, double t, list triggers) except *:
        cdef long pushes_before, slip_before, pushes, slip
        if new is None:
            return
        state.close_pushes(&pushes_before, &slip_before)
        if before is not None:
            state.insert_close(<long long>(t - 1), before)
        state.insert_close(<long long>t, new)
        state.close_pushes(&pushes, &slip)
        if pushes <= pushes_before or state.status not in (None, "open"):
            return
        if pushes >= self.close_date_pushes or slip >= self.close_date_slip_days:
            triggers.append(trigger(STALLED, f"stalled|{state.stalls}", t))

    cdef void fold_activity(self, Deal state, Ev ev, double t, list triggers) except *:
        if not ev.has_activity:
            return
        state.acts += 1
        kind = ev.kind
        direction = ev.direction or "internal"
        scheduled = ev.scheduled_at
        if scheduled and not ev.done:
            when = parse_time(scheduled)
            if when > t:
                state.sched = max(state.sched or 0.0, when)
        if kind in self.qualifying_kinds and direction in self.qualifying_directions:
            state.last_act = later_of(state.last_act, t)
        if direction == "outbound":
            state.insert_out(<long long>t)
        elif direction == "inbound":
            state.last_in = later_of(state.last_in, t)
            triggers.append(trigger(CUSTOMER_ACTIVITY, "customer_activity", t))

    cdef void fold_contact(self, Deal state, Ev ev, double t, list triggers) except *:
        cdef list entry
        if not ev.has_contact or not ev.contact_id:
            return
        cid = str(ev.contact_id)
        change = str(ev.change or "updated")
        active = 0 if change in _LEFT else 1
        dm = 1 if (ev.decision_maker or self.is_decider(text_of(ev.title))) else 0
        for entry in state.contacts:
            if entry[0] == cid:
                if t < entry[2]:
                    return
                entry[1] = dm if active else entry[1]
                entry[2] = int(t)
                entry[3] = active
                break
        else:
            state.contacts.append([cid, dm, int(t), active])
            if len(state.contacts) > MAX_CONTACTS:
                state.contacts.sort(key=_contact_order)
                del state.contacts[0]
        if active:
            return
        state.left_id, state.left_change, state.left_at = cid, change, int(t)
        triggers.append(trigger(CONTACT_LEFT, f"contact_left|{cid}", t))

    cdef bint keep_signals(self, Deal state, Ev ev, double t, str eid) except -1:
        cdef list found = []
        note = text_of(ev.text) if ev.has_activity else None
        if note:
            found += self.extract_one(note, eid, t, str(ev.direction or "internal"), str(ev.kind or "note"))
        reason = text_of(ev.lost_reason)
        if reason:
            found += self.extract_one(reason, eid, t, "internal", "lost_reason")
        if not found:
            return False
        merged = [*state.signals, *found]
        kept = NotImplemented
        if _native_rank is not None:
            kept = _native_rank(merged, self.signals_kept, _KEEP_HALF_LIFE, KEEP_PER_CAUSE)
        if kept is NotImplemented:
            kept = rank_for_keeping(merged, self.signals_kept)
        state.signals = [
            s
            if type(s) is list
            else [
                s.cause,
                _round2(s.weight),
                int(s.at),
                s.event_id,
                s.excerpt[:EXCERPT_KEPT],
                s.side,
                None if s.signal == _TEXT_NAMES.get(s.cause) else s.signal,
            ]
            for s in kept
        ]
        return True

    cdef list extract_one(self, str text, str eid, double t, str direction, str kind):
        if self.extract is not None:
            return self.extract(
                text, eid, t, direction, kind, self.prepare, self.signal_type, self.kind_factor,
                self.direction_factor,
            )
        return self.lexicon.extract(text, event_id=eid, at=t, direction=direction, kind=kind)

    cdef tuple verdict(self, Deal state, int kind, double at):
        cdef long pushes, slip
        cdef double lo = at - self.signal_window
        cdef double hi = POS_INF if kind == WENT_QUIET else at + self.revise_window
        state.close_pushes(&pushes, &slip)
        return self.verdicts.verdict(
            KIND_NAMES[kind],
            at,
            state.owner_changed_at,
            state.left_at,
            state.left_change,
            state.amount_cut,
            pushes,
            slip,
            state.stage_back,
            state.lost_reason,
            state.outbound_since_inbound(),
            state.outs[state.n_outs - 1] if state.n_outs else None,
            state.last_in,
            state.last_act,
            state.acts,
            state.signals,
            lo,
            hi,
        )

    cdef void open(self, Deal state, Trigger tr, list opened_now, object key) except *:
        cdef Episode ep
        if not remember(state.fired, &state.n_fired, MAX_FIRED, fingerprint(tr.identity)):
            return
        cause, side = self.verdict(state, tr.kind, tr.at)
        ep = Episode.__new__(Episode)
        ep.kind = tr.kind
        ep.at = <double>(<long long>tr.at) if tr.at >= 0 else float(int(tr.at))
        ep.cause = cause
        ep.side = side
        ep.identity = tr.identity
        state.episodes.append(ep)
        state.open_kinds[ep.kind] += 1
        opened_now.append(ep)
        counted = (KIND_NAMES[tr.kind], cause)
        self.opened[counted] = self.opened.get(counted, 0) + 1
        if self.by_deal:
            mine = self.fired_by_deal.get(key)
            if mine is None:
                mine = self.fired_by_deal[key] = {}
            mine[KIND_NAMES[tr.kind]] = mine.get(KIND_NAMES[tr.kind], 0) + 1

    cdef void resume(self, Deal state, Trigger tr) except *:
        cdef list keep = []
        cdef Episode ep
        cdef bint wanted
        for ep in state.episodes:
            if tr.kind == WON:
                wanted = True
            elif tr.kind == REOPENED:
                wanted = ep.kind == CLOSED_LOST
            else:
                wanted = ep.kind != CLOSED_LOST
            if wanted and tr.at > ep.at:
                self.resumed += 1
                state.open_kinds[ep.kind] -= 1
                if ep.kind == STALLED:
                    state.stalls += 1
            else:
                keep.append(ep)
        state.episodes = keep

    cdef void revise(self, Deal state, list just_opened) except *:
        cdef Episode ep
        cdef double newest, lo, hi
        cdef list s
        if not state.signals:
            return
        newest = max([s[2] for s in state.signals])
        identities = {ep.identity for ep in just_opened}
        for ep in state.episodes:
            if ep.identity in identities:
                continue
            lo = ep.at - self.signal_window
            hi = POS_INF if ep.kind == WENT_QUIET else ep.at + self.revise_window
            if not lo <= newest <= hi:
                continue
            cause, side = self.verdict(state, ep.kind, ep.at)
            if cause == ep.cause and side == ep.side:
                continue
            ep.cause, ep.side = cause, side
            self.revised += 1

    cdef bint apply(self, Deal state, Ev ev, object key, object t) except -1:
        """``Detector.apply`` of an event (checked) at ``t`` (its time, read): False for a redelivered event."""
        cdef list triggers
        cdef list opened_now = []
        cdef Trigger tr
        cdef str eid
        cdef double td = t
        eid = ev.event_id
        if not remember(state.seen, &state.n_seen, MAX_SEEN, fingerprint(eid)):
            return False
        state.recv = td  # float(ceil(now)) with now the event's own time
        if state.created is None or td < state.created:
            state.created = t
        triggers = self.fold_deal_fields(state, ev, td, eid)
        self.fold_activity(state, ev, td, triggers)
        self.fold_contact(state, ev, td, triggers)
        new_signals = self.keep_signals(state, ev, td, eid)
        for tr in triggers:
            if tr.kind >= CUSTOMER_ACTIVITY:
                self.resume(state, tr)
            elif tr.kind in (WENT_QUIET, STALLED, CLOSED_LOST) and state.has_open(tr.kind):
                continue
            else:
                self.open(state, tr, opened_now, key)
        if new_signals:
            self.revise(state, opened_now)
        return True

    # ------------------------------------------------------------------ quiet deals

    cdef object quiet_deadline(self, Deal state):
        cdef double days
        if state.status not in (None, "open") or state.has_open(WENT_QUIET):
            return None
        anchor = state.last_act if state.last_act is not None else state.created
        if anchor is None:
            return None
        if state.th_stage is state.stage and state.th_tier is state.tier and state.th_days >= 0:
            days = state.th_days
        else:
            days = state.th_days = self.threshold(state.stage, state.tier)
            state.th_stage, state.th_tier = state.stage, state.tier
        if state.memo_anchor is not None and anchor == state.memo_anchor and days == state.memo_days:
            deadline = state.memo_deadline
        else:
            deadline = self.calendar.add_working_days(anchor, days)
            state.memo_anchor, state.memo_days, state.memo_deadline = anchor, days, deadline
        if state.sched is not None and state.sched > deadline:
            deadline = state.sched
        return deadline

    cdef object next_check(self, Deal state):
        deadline = self.quiet_deadline(state)
        if deadline is None:
            return None
        return max(deadline, state.recv + self.grace)

    cdef object check_quiet(self, Deal state, object key, object now):
        """Fires went_quiet when due; returns when to look again (None: not before another event)."""
        cdef list opened_now = []
        deadline = self.quiet_deadline(state)
        if deadline is None:
            return None
        due = max(deadline, state.recv + self.grace)
        if now < due:
            return due
        anchor = state.last_act if state.last_act is not None else state.created
        self.open(state, trigger(WENT_QUIET, f"went_quiet|{int(anchor or 0)}", deadline), opened_now, key)
        return None

    # ------------------------------------------------------------------ the replay

    def replay(self, lines, report, *, until, source, progress, share_index, share_count, reject):
        """``replay.replay_share`` without messages: fills ``report``; ``reject(report, number, exc)`` records a
        refused line as the reference does."""
        # Nothing the replay holds refers back to itself, so the cycle collector would only walk every deal's
        # state again and again (an eighth of the time over 400,000 events): off while it runs.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self.run(lines, report, until, source, progress, share_index, share_count, reject)
        finally:
            if collecting:
                gc.enable()

    cdef object run(self, lines, report, until, str source, progress, long share_index, long share_count, reject):
        cdef dict states = {}
        cdef long number = 0
        cdef long events = 0, duplicates = 0
        cdef Deal state
        cdef Ev ev
        cdef Reader reader = Reader.__new__(Reader)
        cdef bint first = share_index == 0
        cdef bint whole = share_count == 1
        self.by_deal = report.fired is not None
        self.fired_by_deal = report.fired if self.by_deal else None
        for line in lines:
            number += 1
            if progress is not None and number % 10_000 == 0:
                progress(number)
            if not line or (type(line) is not bytes or (<bytes>line)[0] in b" \t\n\r\x0b\x0c") and not line.strip():
                continue
            event = None
            ev = reader.read(line, source)
            if ev is None:
                try:
                    try:
                        raw = _orjson_loads(line)
                    except _JSONDecodeError:
                        raw = _loads(line)
                    event = as_change(raw, source)
                except (BadEvent, ValueError, RecursionError) as exc:
                    if first:
                        reject(report, number, exc)
                    continue
                key = f"{event['source']}:{event['deal_id']}"
            else:
                key = f"{ev.source}:{ev.deal_id}"
            if not whole and fingerprint(key) % share_count != share_index:
                continue
            try:
                when = parse_time(ev.occurred_at if event is None else event.get("occurred_at"))
                t = float(when)
            except (BadEvent, ValueError) as exc:
                reject(report, number, exc)
                continue
            known = states.get(key)
            if known is not None and (<Deal>known).due is not None:
                self.expire(<Deal>known, key, t)
            state = Deal.__new__(Deal) if known is None else known
            try:
                if event is not None:
                    _check(event)
                    ev = from_dict(event)
                fresh = self.apply(state, ev, key, t)
            except BadEvent as exc:
                reject(report, number, exc)
                continue
            events += 1
            if not fresh:
                duplicates += 1
                continue
            if known is None:
                states[key] = state
            state.due = self.next_check(state)
        if until is not None:
            for key, known in states.items():
                if (<Deal>known).due is not None:
                    self.expire(<Deal>known, key, until)
        report.events += events
        report.duplicates += duplicates
        report.deals = len(states)
        report.revised += self.revised
        report.resumed += self.resumed
        for counted, n in self.opened.items():
            report.opened[counted] += n
        if self.by_deal:
            from collections import Counter

            for key, kinds in self.fired_by_deal.items():
                if type(kinds) is dict:
                    self.fired_by_deal[key] = Counter(kinds)
        return report

    cdef void expire(self, Deal state, object key, object upto) except *:
        """Fire the deal's quiet deadlines up to ``upto``; keep when to look next."""
        when = state.due
        while when is not None and when <= upto:
            again = self.check_quiet(state, key, when)
            when = again if again is not None and again > when else None
        state.due = when


cdef dict _calendars = {}


cdef Calendar calendar_of(object reference):
    """One table of days for each calendar, kept for the next replay with it (the tests make many)."""
    cdef Calendar found = _calendars.get(id(reference))
    if found is None or found.reference is not reference:
        if len(_calendars) > 64:
            _calendars.clear()
        found = _calendars[id(reference)] = Calendar(reference)
    return found


def _contact_order(entry):
    return (entry[3], entry[2])


cdef dict as_change(object raw, str source):
    """``replay.as_change``."""
    if not isinstance(raw, dict):
        raise BadEvent("a line must hold one JSON object")
    deal = raw.get("deal")
    if not isinstance(deal, dict) or deal.get("id") in (None, ""):
        raise BadEvent("deal.id is missing")
    if not raw.get("source"):
        raw["source"] = source
    raw["deal_id"] = str(deal["id"])
    return raw


# ---------------------------------------------------------------------------------------------- for the tests

cdef tuple _fields(Ev e):
    return (
        e.event_id, e.source, e.deal_id, e.etype, e.occurred_at, e.tier, e.status, e.owner, e.stage, e.lost_reason,
        e.amount, e.close_date, e.prev_owner, e.prev_stage, e.prev_amount, e.prev_close_date, e.has_activity,
        e.kind, e.direction, e.text, e.scheduled_at, e.done, e.has_contact, e.contact_id, e.change,
        e.decision_maker, e.title,
    )


def read_line(line, source="generic"):
    """The fields the engine reads from a line it reads itself, or None for a line left to orjson."""
    cdef Reader reader = Reader.__new__(Reader)
    ev = reader.read(line, source)
    return None if ev is None else _fields(ev)


def fields_of(dict event):
    """The fields the engine reads from a decoded event that ``as_change`` and ``check`` accepted."""
    return _fields(from_dict(event))


def time_of(value):
    """``event.parse_time`` as the engine reads it."""
    return parse_time(value)


def day_of(value):
    """``event.parse_date`` as the engine reads it."""
    return parse_date(value)
