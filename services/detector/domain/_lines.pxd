# cython: language_level=3
"""Declarations of ``_lines.pyx`` for the replay's engine (``_replay.pyx``), which cimports them."""

cimport cython
from libc.stdint cimport uint32_t, uint64_t

cdef enum:
    MAX_DEPTH = 32   # nesting a line may have and still be read here
    BUF = 512        # bytes of an escaped string read here (a longer one is left to orjson)
    SHORT = 24       # strings of at most this many bytes are remembered by the reader
    SLOTS = 1024
    SPANS = 45       # the keys the rules read: 9 places in each of the event, deal, previous, activity, contact

cdef enum:           # a scalar read: a string without escapes, with them, or a number, true, false or null
    PLAIN = 0
    ESCAPED = 1
    OTHER = 2


@cython.final
cdef class Ev:
    cdef object event_id, source, deal_id, etype, occurred_at
    cdef object tier, status, owner, stage, lost_reason, amount, close_date
    cdef object prev_owner, prev_stage, prev_amount, prev_close_date
    cdef bint has_activity
    cdef object kind, direction, text, scheduled_at, done
    cdef bint has_contact
    cdef object contact_id, change, decision_maker, title

    cdef void clear_values(self) noexcept


@cython.final
cdef class Reader:
    cdef const unsigned char *p
    cdef Py_ssize_t i, n
    cdef char buf[BUF]
    cdef int depth
    cdef object value
    cdef Ev event            # the event of the last line read, filled again for the next (nothing keeps it)
    cdef char short_bytes[SLOTS][SHORT]
    cdef Py_ssize_t short_size[SLOTS]
    cdef list short_value
    cdef bint repeats        # whether the value being read is of a field with few values (see ``text``)
    cdef bint escaped        # whether the last string read had escapes
    cdef bint high           # whether it had a byte of 0x80 or more (it is not ASCII)
    # where each scalar of the line is (by ``slot_of``'s place: 9 * object + slot), until its value is made
    cdef Py_ssize_t span_start[SPANS]
    cdef Py_ssize_t span_end[SPANS]
    cdef unsigned char span_kind[SPANS]
    cdef unsigned char span_high[SPANS]  # a string's ``high``
    cdef uint64_t present
    cdef bint elsewhere      # the last line read is of another share's deal
    cdef bint hashed         # the share's check made the CRC-32 of the last line's key (as the engine makes it)
    cdef uint32_t key_hash   # and this is it
    cdef object source_name  # the default source, and its UTF-8
    cdef bytes source_utf8

    cdef inline void ws(self) noexcept
    cdef bint utf8(self, Py_ssize_t at, Py_ssize_t end) noexcept
    cdef int string(self, bint keep) except -1
    cdef object text(self, const char *data, Py_ssize_t size, bint ascii)
    cdef int number(self, bint keep) except -1
    cdef int literal(self, bint keep) except -1
    cdef int scalar(self) except -1
    cdef int skip(self) except -1
    cdef int obj(self, int which, Ev e) except -1
    cdef int field(self, int which, int slot, Ev e) except -1
    cdef int make(self, Ev e) except -1
    cdef bint elsewhere_of(self, str source, long count, long index)
    cdef int key_at(self, const unsigned char *data, Py_ssize_t size, str source, Ev scratch) except -1
    cdef void at_line(self, const unsigned char *data, Py_ssize_t size) noexcept
    cdef int walk(self, const unsigned char *data, Py_ssize_t size, Ev e) except -1
    cdef Py_ssize_t walk_size(self) noexcept
    cdef void keep_walk(self, unsigned char *out, Ev walked) noexcept
    cdef Ev read_walked(self, const unsigned char *data, Py_ssize_t size, const unsigned char *walk, str source)
    cdef Ev finish(self, Ev e, str source)
    cdef Ev read(self, object line, str source, long share_count, long share_index)
    cdef Ev read_at(self, const unsigned char *data, Py_ssize_t size, str source, long share_count,
                    long share_index)


cdef uint32_t crc32_more(uint32_t crc, const unsigned char *data, Py_ssize_t size) noexcept


cdef object parse_time(object value)
cdef double time_of_event(object value) except? -1.0
cdef object parse_date(object value)
cdef Ev from_dict(dict ev)
cdef dict as_change(object raw, str source)
