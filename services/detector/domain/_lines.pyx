# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The replay's reading of an export's lines, compiled: each line straight into the fields the rules read (``Ev``),
and event times and dates as ``event.parse_time`` and ``event.parse_date`` read them.

A line is read here only when orjson and the reference's checks (``replay.as_change``, ``event.check``) would read
it alike; anything else is left to them (``Reader.read`` gives None), and an unusual time or date to the
reference's own functions, so nothing can be read differently. The tests hold the two equal.
"""

cimport cython
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from libc.stdlib cimport strtod
from libc.string cimport memcmp, memcpy

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    /* The first byte from k on (before n) that is a quote, a backslash or a control character, or n when none is;
     * *high is set when a byte before it has its top bit set. Sixteen bytes at a time where SSE2 is, then eight
     * (a flag in a word: the lowest is exact, a false one can only follow a true one), then one by one. */
    static inline Py_ssize_t dealwatch_string_stop(const unsigned char *p, Py_ssize_t k, Py_ssize_t n, int *high) {
    #if defined(__SSE2__)
        const __m128i quote = _mm_set1_epi8(34), backslash = _mm_set1_epi8(92), control = _mm_set1_epi8(0x1F);
        while (k + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + k));
            __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                       _mm_cmpeq_epi8(_mm_min_epu8(v, control), v));
            unsigned m = (unsigned)_mm_movemask_epi8(hit), h = (unsigned)_mm_movemask_epi8(v);
            if (m) {
                unsigned j = (unsigned)__builtin_ctz(m);
                *high |= (h & ((1u << j) - 1)) != 0;
                return k + j;
            }
            *high |= h != 0;
            k += 16;
        }
    #endif
        while (k + 8 <= n) {
            uint64_t word, x, found;
            memcpy(&word, p + k, 8);
            found = (word - 0x2020202020202020ULL) & ~word;
            x = word ^ 0x2222222222222222ULL;
            found |= (x - 0x0101010101010101ULL) & ~x;
            x = word ^ 0x5C5C5C5C5C5C5C5CULL;
            found |= (x - 0x0101010101010101ULL) & ~x;
            found &= 0x8080808080808080ULL;
            if (found) {
                unsigned j = (unsigned)__builtin_ctzll(found) >> 3;
                if (j) *high |= (word & (((uint64_t)1 << (8 * j)) - 1) & 0x8080808080808080ULL) != 0;
                return k + j;
            }
            *high |= (word & 0x8080808080808080ULL) != 0;
            k += 8;
        }
        for (; k < n; k++) {
            unsigned char c = p[k];
            if (c == 34 || c == 92 || c < 0x20) return k; /* a quote, a backslash */
            *high |= c >= 0x80;
        }
        return n;
    }
    """
    int __builtin_ctzll(unsigned long long) nogil
    int __builtin_popcountll(unsigned long long) nogil
    Py_ssize_t dealwatch_string_stop(const unsigned char *p, Py_ssize_t k, Py_ssize_t n, int *high) nogil

from services.detector.domain.event import BadEvent
from services.detector.domain.event import parse_date as _parse_date
from services.detector.domain.event import parse_time as _parse_time

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)
    const char *PyUnicode_DATA(object)
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    char *PyUnicode_1BYTE_DATA(object)
    object PyLong_FromLongLong(long long v)


# ---------------------------------------------------------------------------------------------- CRC-32

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


cdef uint32_t crc32_more(uint32_t crc, const unsigned char *data, Py_ssize_t size) noexcept:
    """``zlib.crc32(data, crc)``: the CRC-32 of bytes that follow those whose CRC-32 is ``crc`` (0 to start)."""
    cdef uint32_t c = crc ^ 0xFFFFFFFFu
    cdef Py_ssize_t i
    for i in range(size):
        c = CRC[(c ^ data[i]) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFFu


# ---------------------------------------------------------------------------------------------- times and dates


cdef inline bint _digits(const char *s, Py_ssize_t n, long *out) noexcept:
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


cdef bint _date_part(const char *s, Py_ssize_t n, long *days) noexcept:
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


cdef bint _time_seconds(object value, long long *seconds) noexcept:
    """The common form of an event's time (``YYYY-MM-DDTHH:MM:SS[.fff[fff]]`` with ``Z`` or an offset, ASCII) as
    ``event.parse_time`` reads it, whole epoch seconds into ``seconds``; False for anything else."""
    cdef const char *s
    cdef long day, hh, mi, ss, oh = 0, om = 0, frac = 0, scale = 1
    cdef Py_ssize_t n, i
    cdef char c
    cdef long long micros
    cdef int sign = 1
    if type(value) is not str or not PyUnicode_IS_ASCII(value):
        return False
    s = PyUnicode_DATA(value)
    n = len(<str>value)
    if n < 20 or s[10] != 84 or s[13] != 58 or s[16] != 58 or not _date_part(s, n, &day):  # T : :
        return False
    if not (_digits(s + 11, 2, &hh) and _digits(s + 14, 2, &mi) and _digits(s + 17, 2, &ss)):
        return False
    if hh > 23 or mi > 59 or ss > 59:
        return False
    i = 19
    if s[i] == 46:  # .
        i += 1
        while i < n and 48 <= s[i] <= 57 and i < 26:
            frac = frac * 10 + (s[i] - 48)
            scale *= 10
            i += 1
        if scale != 1000 and scale != 1000000:  # 3 or 6 digits: what fromisoformat takes without question
            return False
    c = s[i] if i < n else 0
    if c == 90 and i + 1 == n:  # Z
        pass
    elif (c == 43 or c == 45) and i + 6 == n and s[i + 3] == 58:  # + or -, then HH:MM
        if not (_digits(s + i + 1, 2, &oh) and _digits(s + i + 4, 2, &om)) or oh > 23 or om > 59:
            return False
        sign = 1 if c == 43 else -1
    else:
        return False
    micros = (<long long>day * 86400 + hh * 3600 + mi * 60 + ss - sign * (oh * 3600 + om * 60)) * 1000000
    micros += frac * (1000000 // scale)
    if micros % 1000000 == 0:
        seconds[0] = micros // 1000000
    else:
        seconds[0] = <long long>(<double>micros / 1e6)  # int() of the float, as the reference rounds
    return True


cdef object parse_time(object value):
    """``event.parse_time``: epoch seconds, whole. The common form is read here; anything else by the reference,
    which reads or refuses it."""
    cdef long long seconds
    if _time_seconds(value, &seconds):
        return PyLong_FromLongLong(seconds)
    return _parse_time(value)


cdef double time_of_event(object value) except? -1.0:
    """``float(event.parse_time(value))`` without the int between (the reference's errors raised alike)."""
    cdef long long seconds
    if _time_seconds(value, &seconds):
        return <double>seconds
    return float(_parse_time(value))


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


    cdef void clear_values(self) noexcept:
        """Every value None (the flags ``has_activity`` and ``has_contact`` are left as they are)."""
        self.event_id = self.source = self.deal_id = self.etype = self.occurred_at = None
        self.tier = self.status = self.owner = self.stage = self.lost_reason = self.amount = None
        self.close_date = self.prev_owner = self.prev_stage = self.prev_amount = self.prev_close_date = None
        self.kind = self.direction = self.text = self.scheduled_at = self.done = None
        self.contact_id = self.change = self.decision_maker = self.title = None


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


cdef inline void store(Ev e, int which, int slot, object v) noexcept:
    """The value of a key the rules read (``slot_of``) of the event (0) or its deal, previous, activity or contact."""
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


# A line is read here when it is a JSON object that orjson reads alike and that ``as_change`` and ``check``
# accept, with plain values (a string, a number, true, false or null) where the rules read one; anything else
# (invalid or unusual JSON, a value of another type, a key given twice) is left to orjson and the reference's
# checks, so that it is read, or refused, exactly as the reference does.


cdef class Reader:
    """Reads one line (bytes) at a time into an ``Ev``; ``read`` gives None for a line it leaves to orjson.

    The whole line is checked first, each value it holds only marked where it lies; values are made once it is
    known to be read here, and, in a share of a replay, to be of a deal of that share (the other shares' lines,
    most of them, cost only the check)."""


    def __cinit__(self):
        self.short_value = [None] * SLOTS
        for j in range(SLOTS):
            self.short_size[j] = -1

    cdef inline void ws(self) noexcept:
        """Past whitespace (most lines have none: inlined, so that a call costs no more than the test)."""
        cdef unsigned char c
        if self.i >= self.n or self.p[self.i] > 32:
            return
        while self.i < self.n:
            c = self.p[self.i]
            if c == 32 or c == 10 or c == 13 or c == 9:
                self.i += 1
            else:
                return

    cdef bint utf8(self, Py_ssize_t at, Py_ssize_t end) noexcept:
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
        """A string at ``i`` (its opening quote): 1, with its value in ``value`` when kept; 0 to leave the line."""
        cdef Py_ssize_t start = self.i + 1, k = start, w = 0
        cdef const unsigned char *p = self.p
        cdef unsigned char c
        cdef bint escaped = False
        cdef unsigned int u
        cdef int j, h
        cdef Py_ssize_t n = self.n
        cdef int high_seen = 0
        # to the closing quote, past escapes (checked below when decoded)
        while True:
            k = dealwatch_string_stop(p, k, n, &high_seen)
            if k >= n:
                return 0
            c = p[k]
            if c == 34:  # "
                break
            if c < 0x20:
                return 0
            escaped = True  # a backslash: it and the byte it escapes
            k += 2
        if high_seen and not self.utf8(start, k):
            return 0
        self.escaped = escaped
        self.high = high_seen
        if not escaped:
            if keep:
                self.value = self.text(<const char *>p + start, k - start, not high_seen)
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

    cdef object text(self, const char *data, Py_ssize_t size, bint ascii):
        """The string of well-formed UTF-8 bytes (``ascii``: all below 0x80, copied as they are); a short one is
        kept and given again when the same bytes come back (a type, a stage, an owner, a direction: few values, on
        every line)."""
        cdef uint32_t h = 2166136261u
        cdef Py_ssize_t j
        cdef int slot
        if size > SHORT or not self.repeats:
            if ascii:
                value = PyUnicode_New(size, 127)
                memcpy(PyUnicode_1BYTE_DATA(value), data, size)
                return value
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
            if self.escaped:
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
        # a scalar: checked here, made into a value once the line is read (and only when it is wanted)
        cdef int flat = which * 9 + slot
        self.span_start[flat] = self.i
        if c == 34:
            if not self.string(False):
                return 0
            self.span_kind[flat] = ESCAPED if self.escaped else PLAIN
            self.span_high[flat] = self.high
        else:
            if not (self.number(False) if (c == 45 or 48 <= c <= 57) else self.literal(False)):
                return 0
            self.span_kind[flat] = OTHER
        self.span_end[flat] = self.i
        self.present |= (<uint64_t>1) << flat
        return 1

    cdef int make(self, Ev e) except -1:
        """The values of the scalars the line holds, into ``e``."""
        cdef uint64_t left = self.present
        cdef int flat
        cdef Py_ssize_t at
        while left:
            flat = __builtin_ctzll(left)
            left &= left - 1
            which, slot = flat // 9, flat % 9
            # a value of few kinds is remembered; an event's id, time or text, different on each line, is not, nor
            # are the ids of deals and contacts (too many to remember)
            self.repeats = not (
                (which == 0 and (slot == 0 or slot == 3)) or (which == 1 and (slot == 0 or slot == 5))
                or (which == 3 and slot >= 2) or (which == 4 and (slot == 0 or slot == 3))
            )
            at = self.span_start[flat]
            if self.span_kind[flat] == PLAIN:
                v = self.text(<const char *>self.p + at + 1, self.span_end[flat] - at - 2, not self.span_high[flat])
            else:
                self.i = at
                if not self.scalar():
                    return 0
                v = self.value
            store(e, which, slot, v)
        return 1


    cdef bint elsewhere_of(self, str source, long count, long index):
        """Whether the line read is of a deal of another share, when its bytes tell (the deal's id a string
        without escapes, the source one too, or null, or absent): ``fingerprint(key) % count != index`` for the
        key the engine makes, ``f"{source}:{deal_id}"``. False when they do not: the event is made, and decides."""
        cdef int ID = 1 * 9 + 0, SRC = 0 * 9 + 1
        cdef uint32_t crc
        cdef Py_ssize_t at, size
        if not (self.present >> ID) & 1 or self.span_kind[ID] != PLAIN:
            return False
        at = self.span_start[ID]
        size = self.span_end[ID] - at - 2
        if size == 0:
            return False  # an empty id, which the reference refuses
        if (self.present >> SRC) & 1 and not (
            self.span_kind[SRC] == OTHER and self.p[self.span_start[SRC]] == 110  # null: the default source
            or self.span_kind[SRC] == PLAIN and self.span_end[SRC] - self.span_start[SRC] == 2  # "": the same
        ):
            if self.span_kind[SRC] != PLAIN:
                return False
            crc = crc32_more(0, self.p + self.span_start[SRC] + 1, self.span_end[SRC] - self.span_start[SRC] - 2)
        else:
            if source is not self.source_name:
                self.source_utf8 = source.encode("utf-8", "surrogatepass")
                self.source_name = source
            crc = crc32_more(0, <const unsigned char *><const char *>self.source_utf8, len(self.source_utf8))
        crc = crc32_more(crc, <const unsigned char *>b":", 1)
        crc = crc32_more(crc, self.p + at + 1, size)
        self.hashed = True
        self.key_hash = crc
        return crc % count != index

    cdef int key_at(self, const unsigned char *data, Py_ssize_t size, str source, Ev scratch) except -1:
        """Walk the line of ``size`` bytes at ``data`` as ``read_at`` does, making no value: True when its bytes
        tell the CRC-32 of its deal's key (``key_hash``, as ``elsewhere_of`` makes it); False when they do not
        (the event made, or orjson, tells). ``scratch`` is walked into (what the walk marks)."""
        self.elsewhere = self.hashed = False
        if not self.walk(data, size, scratch):
            return False
        self.elsewhere_of(source, 1, 0)
        return self.hashed

    cdef void at_line(self, const unsigned char *data, Py_ssize_t size) noexcept:
        """Read the line of ``size`` bytes at ``data`` from its start."""
        self.p = data
        self.n = size
        self.i = 0
        self.depth = 0

    cdef int walk(self, const unsigned char *data, Py_ssize_t size, Ev e) except -1:
        """Walk the line of ``size`` bytes at ``data``, marking where each scalar the rules read lies (and in ``e``
        whether it has an activity and a contact): 1 when it is read here, 0 when it is left to orjson."""
        self.at_line(data, size)
        self.present = 0
        e.has_activity = e.has_contact = False  # set while the line is walked
        self.ws()
        if not self.obj(0, e):
            return 0
        self.ws()
        return self.i == self.n

    cdef Ev read(self, object line, str source, long share_count, long share_index):
        """The event on ``line`` when it is read here (see above), else None: ``elsewhere`` tells a line of a deal
        of another share (of ``share_count``), whose values are not made."""
        if type(line) is not bytes:
            self.elsewhere = self.hashed = False
            return None
        return self.read_at(<const unsigned char *><const char *>(<bytes>line), len(<bytes>line), source,
                            share_count, share_index)

    cdef Ev read_at(self, const unsigned char *data, Py_ssize_t size, str source, long share_count,
                    long share_index):
        """``read`` of the line of ``size`` bytes at ``data`` (which must stay until the next line is read)."""
        cdef Ev e = self.event
        self.elsewhere = self.hashed = False
        if e is None:
            e = self.event = Ev.__new__(Ev)
        if not self.walk(data, size, e):
            return None
        if share_count > 1 and self.elsewhere_of(source, share_count, share_index):
            self.elsewhere = True
            return None
        return self.finish(e, source)

    cdef Py_ssize_t walk_size(self) noexcept:
        """The bytes ``keep_walk`` writes for the line walked last (0: none, the line is too long for them)."""
        if self.n > 0xFFFF:
            return 0
        return 9 + 6 * __builtin_popcountll(self.present)

    cdef void keep_walk(self, unsigned char *out, Ev walked) noexcept:
        """What the walk of the line found (``walk_size`` bytes into ``out``): which scalars it holds, where each
        lies, of what kind, and whether it has an activity and a contact, for ``read_walked``."""
        cdef uint64_t left = self.present
        cdef int flat
        cdef uint16_t at, end
        memcpy(out, &self.present, 8)
        out[8] = walked.has_activity | (walked.has_contact << 1)
        out += 9
        while left:
            flat = __builtin_ctzll(left)
            left &= left - 1
            at = <uint16_t>self.span_start[flat]
            end = <uint16_t>self.span_end[flat]
            memcpy(out, &at, 2)
            memcpy(out + 2, &end, 2)
            out[4] = self.span_kind[flat]
            out[5] = self.span_high[flat]
            out += 6

    cdef Ev read_walked(self, const unsigned char *data, Py_ssize_t size, const unsigned char *walk, str source):
        """``read_at`` (of no share) of a line walked before, from what ``keep_walk`` kept of that walk: the line
        is not walked again."""
        cdef Ev e = self.event
        cdef uint64_t left
        cdef int flat
        cdef uint16_t at, end
        self.elsewhere = self.hashed = False
        self.at_line(data, size)
        if e is None:
            e = self.event = Ev.__new__(Ev)
        memcpy(&self.present, walk, 8)
        e.has_activity = walk[8] & 1
        e.has_contact = (walk[8] >> 1) & 1
        walk += 9
        left = self.present
        while left:
            flat = __builtin_ctzll(left)
            left &= left - 1
            memcpy(&at, walk, 2)
            memcpy(&end, walk + 2, 2)
            self.span_start[flat] = at
            self.span_end[flat] = end
            self.span_kind[flat] = walk[4]
            self.span_high[flat] = walk[5]
            walk += 6
        return self.finish(e, source)

    cdef Ev finish(self, Ev e, str source):
        """The values of the line walked, into ``e``; None when it is left to orjson."""
        # the values of the line before go only now: a line of another share's deal leaves them
        e.clear_values()
        e.deal_id = _MISSING
        if not self.make(e):
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


cdef int slot_of(int which, const char *name, Py_ssize_t size) noexcept:
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
    return read_lines([line], source)[0]


def read_lines(lines, source="generic"):
    """The fields the engine reads from each line in turn (None for a line left to orjson), by one reader, as the
    engine reads an export."""
    cdef Reader reader = Reader.__new__(Reader)
    out = []
    for line in lines:
        ev = reader.read(line, source, 1, 0)
        out.append(None if ev is None else _fields(ev))
    return out


def fields_of(dict event):
    """The fields the engine reads from a decoded event that ``as_change`` and ``check`` accepted."""
    return _fields(from_dict(event))


def time_of(value):
    """``event.parse_time`` as the engine reads it."""
    return parse_time(value)


def event_time_of(value):
    """``float(event.parse_time(value))`` as the engine reads an event's time."""
    return time_of_event(value)


def day_of(value):
    """``event.parse_date`` as the engine reads it."""
    return parse_date(value)
