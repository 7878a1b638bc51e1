# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The replay's engine compiled: ``Detector.apply``, ``check_quiet`` and ``next_check`` (rules.py, fold.py) over
C fields, for the replay's summary (what opened, of which cause; what resumed and was revised; no messages). Lines
are read by ``_lines.pyx``, working days counted by ``_calendar.pyx``.

Every decision is the Python reference's, made in the same order with the same arithmetic, so a replay's report
is the same with either (the tests hold the two equal on generated and shuffled histories, bad lines and
redeliveries). What only a message shows (ids, excerpts, evidence, batches, flags) is not made here: a replay
that writes messages runs the Python reference. Rare paths (a lost reason's clipping, thresholds, a title's
decision power) call the reference's own functions, so they cannot differ.
"""

cimport cython
from libc.stdint cimport uint32_t
from libc.string cimport memchr, memcmp, memcpy, memmove, memset
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItem
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject, PyTypeObject
from posix.mman cimport (
    MADV_HUGEPAGE, MAP_ANONYMOUS, MAP_FAILED, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, madvise, mmap, munmap,
)

cdef extern from *:
    void __builtin_prefetch(const void *address) noexcept nogil


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)
    const char *PyUnicode_DATA(object)
    str PyUnicode_DecodeASCII(const char *s, Py_ssize_t size, const char *errors)

import gc

import orjson

from services.detector.domain._calendar cimport Calendar, calendar_of
from services.detector.domain._lines cimport (
    Ev, Reader, as_change, crc32_more, from_dict, parse_date, parse_time, time_of_event,
)
from services.detector.domain.causes._verdict cimport Verdicts
from services.detector.domain.causes import rank_for_keeping, default_rules
from services.detector.domain.causes.classify import _KEEP_HALF_LIFE, KEEP_PER_CAUSE, _rank as _native_rank
from services.detector.domain.event import BadEvent, check as _check, loads as _loads
from services.detector.domain.fold import LEFT_CHANGES, _clip
from services.detector.domain.rules import _round2
from services.detector.domain.state import MAX_CLOSES, MAX_CONTACTS, MAX_FIRED, MAX_OUTBOUND, MAX_SEEN

DEF SEEN_CAP = 17
DEF KEY_INLINE = 48  # bytes of a deal's key kept in its state (a longer one is compared as text)
DEF CLOSES_CAP = 9
DEF OUTS_CAP = 9

WINDOW = 512 << 20
"""Bytes of an export's lines (of one share) replayed a deal at a time, at most (``Engine.flush``)."""

cdef object _orjson_loads = orjson.loads
cdef object _JSONDecodeError = orjson.JSONDecodeError
cdef frozenset _LEFT = frozenset(LEFT_CHANGES)
cdef object _NOTHING = object()
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


cdef inline uint32_t fingerprint(str text) except? 0:
    """``state.short_hash``: the CRC-32 of the text's UTF-8 bytes (lone surrogates passed through)."""
    cdef bytes raw
    if PyUnicode_IS_ASCII(text):
        return crc32_more(0, <const unsigned char *>PyUnicode_DATA(text), len(text))
    raw = text.encode("utf-8", "surrogatepass")
    return crc32_more(0, <const unsigned char *><const char *>raw, len(raw))


cdef inline object text_of(object value):
    """``event.text``: a non-empty string, or None."""
    return value if isinstance(value, str) and value else None


cdef object number_of(object value):
    """``event.number``: a finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    cdef double v = float(value)
    if v != v or v == POS_INF or v == NEG_INF:
        return None
    return v


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
@cython.final
cdef class Deal:
    """``DealState``'s fields that decide what opens (what only a message shows is left out)."""

    # what most events read first (the key's bytes, when to look next, the events seen), then the rest; the
    # arrays of past close dates, outbound times and fired episodes last
    cdef Py_ssize_t key_size
    """The UTF-8 length of the deal's key, ``f"{source}:{deal_id}"``; its bytes, when they are few."""
    cdef char key_bytes[KEY_INLINE]
    cdef object due
    """When the replay looks at the deal's quiet deadline next (None: not before its next event)."""
    cdef unsigned int seen[SEEN_CAP]
    cdef int n_seen
    cdef double recv
    cdef object created
    cdef double info_at
    cdef object status
    cdef double status_at
    cdef object stage
    cdef double stage_at
    cdef object tier
    cdef object last_act
    cdef object sched
    cdef unsigned char open_kinds[5]
    """How many episodes of each interruption kind are open."""
    # the threshold of the last (stage, tier), and the last deadline asked of the calendar: (anchor, days) -> deadline
    cdef object th_stage
    cdef object th_tier
    cdef double th_days
    cdef object memo_anchor
    cdef double memo_days
    cdef double memo_deadline
    cdef list episodes
    cdef list signals
    cdef long acts
    cdef object owner
    cdef double owner_at
    cdef object owner_changed_at
    cdef bint stage_back
    cdef long reopens
    cdef object amount
    cdef double amount_at
    cdef object amount_cut
    cdef object lost_reason
    cdef object last_in
    cdef list contacts
    cdef object left_id
    cdef object left_change
    cdef object left_at
    cdef long stalls
    cdef str key
    cdef int n_closes
    cdef int n_outs
    cdef int n_fired
    cdef long long close_t[CLOSES_CAP]
    cdef long long close_d[CLOSES_CAP]
    cdef long long outs[OUTS_CAP]
    cdef unsigned int fired[SEEN_CAP]

    def __cinit__(self):
        self.th_days = -1.0
        self.contacts = []
        self.episodes = []
        self.signals = []

    cdef inline bint has_open(self, int kind) noexcept:
        return self.open_kinds[kind] > 0

    cdef void close_pushes(self, long *pushes, long *slip) noexcept:
        cdef int i
        pushes[0] = slip[0] = 0
        for i in range(1, self.n_closes):
            if self.close_d[i] > self.close_d[i - 1]:
                pushes[0] += 1
                slip[0] += self.close_d[i] - self.close_d[i - 1]

    cdef void insert_close(self, long long t, long long ordinal) noexcept:
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

    cdef void insert_out(self, long long t) noexcept:
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


cdef Py_ssize_t DEAL_BYTES = (<PyTypeObject *>Deal).tp_basicsize  # what ``Engine.hint`` asks for


cdef bint remember(unsigned int *ring, int *count, int cap, unsigned int value) noexcept:
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


DEF RING = 4  # lines read and not yet applied, at most
DEF AHEAD = 3  # lines read ahead of the one applied


@cython.final
cdef class Staged:
    """A line read and not yet applied (``Engine.line``)."""
    cdef Ev ev  # its event as the reader read it (the reader fills this one)
    cdef object line  # or its bytes, when the reader left them to orjson
    cdef long number
    cdef char key_bytes[KEY_INLINE]  # its deal's key (UTF-8), when short ASCII
    cdef Py_ssize_t size
    cdef str text  # else the key
    cdef bytes utf8  # and its UTF-8
    cdef uint32_t hash
    cdef PyObject *deal  # the deal its key's hash found in the table when asked for (``Engine.hint``), or NULL

    def __cinit__(self):
        self.ev = Ev.__new__(Ev)


cdef struct Slot:
    uint32_t hash  # the CRC-32 of the deal's key
    PyObject *deal  # NULL: empty; else a Deal that ``Engine.deals`` holds


cdef struct Entry:
    uint32_t hash  # the CRC-32 of the line's deal's key
    Py_ssize_t at  # where the line starts among the lines kept (``Engine.gather``), and its size (with its newline)
    Py_ssize_t size
    Py_ssize_t walk  # where what its walk found is kept (``Reader.keep_walk``), or -1
    long number  # its number in the export


cdef int sort_by_hash(Entry *entries, Py_ssize_t n) except -1:
    """Sort ``entries`` by ``hash``, keeping the order of equal ones (a radix sort of two 16-bit digits, or for a
    few an insertion sort)."""
    cdef Entry *spare
    cdef Entry *src
    cdef Entry *dst
    cdef Entry *swap
    cdef Py_ssize_t *count
    cdef Py_ssize_t k, total, c
    cdef int shift, d
    cdef Entry moved
    if n < 64:  # a few (an insertion sort)
        for k in range(1, n):
            moved = entries[k]
            c = k
            while c > 0 and entries[c - 1].hash > moved.hash:
                entries[c] = entries[c - 1]
                c -= 1
            entries[c] = moved
        return 0
    spare = <Entry *>PyMem_Malloc(n * sizeof(Entry))
    count = <Py_ssize_t *>PyMem_Malloc(65536 * sizeof(Py_ssize_t))
    if spare == NULL or count == NULL:
        PyMem_Free(spare)
        PyMem_Free(count)
        raise MemoryError()
    src, dst = entries, spare
    for shift in (0, 16):
        memset(count, 0, 65536 * sizeof(Py_ssize_t))
        for k in range(n):
            count[(src[k].hash >> shift) & 0xFFFF] += 1
        total = 0
        for d in range(65536):
            c = count[d]
            count[d] = total
            total += c
        for k in range(n):
            d = (src[k].hash >> shift) & 0xFFFF
            dst[count[d]] = src[k]
            count[d] += 1
        swap = src
        src = dst
        dst = swap
    # two passes: the sorted entries are back in ``entries``
    PyMem_Free(spare)
    PyMem_Free(count)
    return 0


@cython.final
cdef class Engine:
    """One ``Detector``'s rules, compiled; ``replay`` runs them over an export's lines."""

    cdef object cfg
    cdef object lexicon
    cdef object extract
    cdef object kind_factor
    cdef object direction_factor
    cdef object prepare
    cdef Verdicts verdicts
    cdef Calendar calendar
    cdef dict thresholds
    cdef list th_stages  # the last (stage, tier) of each of 64 places (by identity), and its threshold
    cdef list th_tiers
    cdef double th_days[64]
    cdef dict ranks
    cdef dict deciders
    cdef dict rounded  # a kept signal's weight (a float) -> it to two places (``rules._round2``)
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
    # one replay's state: the deals (in the order first seen, and by key in an open-addressed table), what it
    # counted, how it reads
    cdef list deals
    cdef Slot *table
    cdef Py_ssize_t table_mask
    cdef list ring  # the lines read and not yet applied (``Staged``), oldest first from ``ring_head``
    cdef Staged spare  # where ``key_in`` makes a key
    # the lines of this share kept for the window (``gather``): their bytes, and where each is
    cdef unsigned char *kept
    cdef Py_ssize_t kept_size
    cdef Py_ssize_t kept_used
    cdef Entry *entries
    cdef Py_ssize_t entries_size
    cdef Py_ssize_t kept_count
    cdef long kept_first  # the last line read before the window's first
    cdef int ring_head
    cdef int ring_count
    cdef long events
    cdef long duplicates
    cdef Reader reader
    cdef object report
    cdef object reject
    cdef str source
    cdef long share_index
    cdef long share_count

    def __init__(self, detector):
        from services.detector.domain.causes.text import _prepare

        cfg = self.cfg = detector.cfg
        self.lexicon = detector.lexicon
        native = getattr(self.lexicon, "_native", None)
        self.extract = native.extract if native is not None else None
        self.kind_factor = getattr(self.lexicon, "_kind_factor", None)
        self.direction_factor = getattr(self.lexicon, "_direction_factor", None)
        self.prepare = _prepare
        self.verdicts = Verdicts(default_rules())
        self.calendar = calendar_of(cfg.calendar)
        self.thresholds = {}
        self.th_stages = [_NOTHING] * 64
        self.th_tiers = [_NOTHING] * 64
        self.ranks = {}
        self.deciders = {}
        self.rounded = {}
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
        # the same objects come back (the reader gives a stage or a tier it has seen as the same str): looked up
        # by identity first, then by value
        cdef Py_ssize_t slot = ((<Py_ssize_t><PyObject *>stage >> 4) ^ (<Py_ssize_t><PyObject *>tier >> 3)) & 63
        if self.th_stages[slot] is stage and self.th_tiers[slot] is tier:
            return self.th_days[slot]
        cdef tuple key = (stage, tier)
        cdef PyObject *found = PyDict_GetItem(self.thresholds, key)
        if found is not NULL:
            days = <double><object>found
        else:
            days = self.thresholds[key] = float(self.cfg.quiet_threshold_days(stage, tier))
        self.th_stages[slot] = stage
        self.th_tiers[slot] = tier
        self.th_days[slot] = days
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
        cdef list found
        note = text_of(ev.text) if ev.has_activity else None
        reason = text_of(ev.lost_reason)
        if not note and not reason:
            return False
        found = []
        if note:
            found += self.extract_one(note, eid, t, str(ev.direction or "internal"), str(ev.kind or "note"))
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
        # a kept signal as a tuple (the reference keeps a list): one object, read in one place. Its excerpt and
        # signal's name are not kept: they are evidence, which only a message shows, and decide nothing
        state.signals = [
            s
            if type(s) is tuple
            else (s[0], self.round2(s[1]), int(s[2]), s[3], None, s[5], None)
            for s in kept
        ]
        return True

    cdef object round2(self, object weight):
        """``rules._round2`` of a float, remembered here (a lexicon's weights repeat; the reference's cache is
        cheaper than rounding, but a call to it still costs as much as a dict's lookup ten times over)."""
        cdef PyObject *found
        if type(weight) is not float:
            return _round2(weight)
        found = PyDict_GetItem(self.rounded, weight)
        if found != NULL:
            return <object>found
        value = _round2(weight)
        if len(self.rounded) >= 4096:
            self.rounded.clear()
        self.rounded[weight] = value
        return value

    cdef list extract_one(self, str text, str eid, double t, str direction, str kind):
        if self.extract is not None:  # each signal as a list of its fields, with no excerpt (nothing here shows one)
            return self.extract(
                text, eid, t, direction, kind, self.prepare, None, self.kind_factor, self.direction_factor,
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
        cdef tuple s
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

    def replay(
        self, lines, report, *, until, source, progress, share_index, share_count, reject, keep=False, window=None
    ):
        """``replay.replay_share`` without messages: fills ``report``; ``reject(report, number, exc)`` records a
        refused line as the reference does. ``keep`` leaves the deals' state to the engine (freed with it or by
        the next replay) instead of freeing it before returning. ``window``: bytes of lines replayed a deal at a
        time (``WINDOW`` when None)."""
        # Nothing the replay holds refers back to itself, so the cycle collector would only walk every deal's
        # state again and again (an eighth of the time over 400,000 events): off while it runs.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self.run(
                lines, report, until, source, progress, share_index, share_count, reject, keep,
                WINDOW if window is None else window,
            )
        finally:
            if collecting:
                gc.enable()

    cdef object run(
        self, lines, report, until, str source, progress, long share_index, long share_count, reject, bint keep,
        Py_ssize_t window,
    ):
        cdef long number = 0
        cdef const unsigned char[::1] block
        cdef Py_ssize_t size
        self.deals = []
        self.table_init(1024)
        self.events = self.duplicates = 0
        self.reader = Reader.__new__(Reader)
        self.ring = [Staged() for _ in range(RING)]
        self.spare = Staged()
        self.ring_head = self.ring_count = 0
        self.report = report
        self.reject = reject
        self.source = source
        self.share_index = share_index
        self.share_count = share_count
        self.by_deal = report.fired is not None
        self.fired_by_deal = report.fired if self.by_deal else None
        blocks = getattr(lines, "blocks", None)
        if blocks is not None:
            # pieces of the export that end where a line does (each good until the next is asked for): this
            # share's lines are kept, and replayed a deal at a time (``gather``, ``flush``)
            self.kept_init(window)
            try:
                for piece in blocks():
                    block = piece
                    size = block.shape[0]
                    if size:
                        number = self.gather(&block[0], size, number, progress)
                    block = None  # the piece let go of before the next is read
                self.flush(number, progress)
            finally:
                self.kept_free()
        else:
            for line in lines:
                number += 1
                if progress is not None and number % 10_000 == 0:
                    progress(number)
                self.line(line, NULL, 0, 0, number, 0, NULL)
        while self.ring_count:
            self.settle_next()
        cdef Deal known
        if until is not None:
            for known in self.deals:
                if known.due is not None:
                    self.expire(known, known.key, until)
        report.events += self.events
        report.duplicates += self.duplicates
        report.deals = len(self.deals)
        report.revised += self.revised
        report.resumed += self.resumed
        for counted, n in self.opened.items():
            report.opened[counted] += n
        if self.by_deal:
            from collections import Counter

            for key, kinds in self.fired_by_deal.items():
                if type(kinds) is dict:
                    self.fired_by_deal[key] = Counter(kinds)
        if not keep:
            self.deals = None
            PyMem_Free(self.table)
            self.table = NULL
        return report

    def __dealloc__(self):
        PyMem_Free(self.table)
        self.kept_free()

    cdef int kept_init(self, Py_ssize_t window) except -1:
        """Room for ``window`` bytes of lines kept (``gather``), mapped on demand, in huge pages where the system
        gives them (a window's lines are read in the order of their deals: one page table entry covers 512 times
        as many of them)."""
        self.kept_size = max(window, 1)
        self.kept = <unsigned char *>mmap(
            NULL, self.kept_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0
        )
        if self.kept == <unsigned char *>MAP_FAILED:
            self.kept = NULL
            raise MemoryError(f"cannot map {self.kept_size} bytes for the replay's window")
        madvise(self.kept, self.kept_size, MADV_HUGEPAGE)  # a hint: refused where huge pages are off
        self.kept_used = self.kept_count = self.kept_first = 0
        return 0

    cdef void kept_free(self) noexcept:
        if self.kept != NULL:
            munmap(self.kept, self.kept_size)
            self.kept = NULL
        PyMem_Free(self.entries)
        self.entries = NULL
        self.entries_size = self.kept_count = 0

    cdef long gather(self, const unsigned char *data, Py_ssize_t size, long number, progress) except -1:
        """The lines of a piece of the export (``size`` bytes at ``data``, ending where a line does): each of this
        share's is kept with its deal's key's hash, to be replayed a deal at a time once the window is full
        (``flush``). Returns the number of the piece's last line."""
        cdef Py_ssize_t at = 0, end, k, length
        cdef const unsigned char *newline
        cdef uint32_t hash
        cdef Entry *grown
        cdef Entry *entry
        cdef int found
        cdef Py_ssize_t walked
        cdef Ev scratch = self.spare.ev
        while at < size:
            newline = <const unsigned char *>memchr(data + at, 10, size - at)
            end = size if newline == NULL else newline - data + 1
            length = end - at
            number += 1
            k = at
            while k < end and data[k] in b" \t\n\r\x0b\x0c":  # a blank line (what bytes.strip() takes away)
                k += 1
            found = self.key_in(data + at, length, number, scratch, &hash) if k < end else 0
            if found and (self.share_count == 1 or hash % self.share_count == self.share_index):
                # what the walk found is kept with the line (when it was walked here, and is not too long): it is
                # not walked again
                walked = self.reader.walk_size() if found == 2 else 0
                if self.kept_used + walked + length > self.kept_size:
                    self.flush(number - 1, progress)
                    if walked:  # the reader has read other lines since: this one walked again
                        self.reader.key_at(data + at, length, self.source, scratch)
                if walked + length > self.kept_size:  # a line longer than a window: replayed as it is
                    self.line(None, data, at, end, number, hash, NULL)
                    while self.ring_count:
                        self.settle_next()
                    self.kept_first = number
                else:
                    if self.kept_count == self.entries_size:
                        self.entries_size = 2 * self.entries_size if self.entries_size else 65536
                        grown = <Entry *>PyMem_Realloc(self.entries, self.entries_size * sizeof(Entry))
                        if grown == NULL:
                            raise MemoryError()
                        self.entries = grown
                    entry = &self.entries[self.kept_count]
                    entry.walk = -1
                    if walked:
                        self.reader.keep_walk(self.kept + self.kept_used, scratch)
                        entry.walk = self.kept_used
                        self.kept_used += walked
                    memcpy(self.kept + self.kept_used, data + at, length)
                    entry.hash = hash
                    entry.at = self.kept_used
                    entry.size = length
                    entry.number = number
                    self.kept_count += 1
                    self.kept_used += length
            at = end
        return number

    cdef int flush(self, long number, progress) except -1:
        """Replay the lines kept, a deal at a time: in the order of their deal's key's hash, each deal's in the
        export's order. A deal's replay reads only its own events (its time is its own), so this is the replay in
        the export's order; but each deal's state stays at hand while its events are applied, instead of being
        fetched from memory again for each (over many deals, most of a replay's time). ``number``: the last line
        read; the lines read so far are shown as a share of the window's while it is replayed."""
        cdef Entry *entries = self.entries
        cdef Entry *entry
        cdef Py_ssize_t n = self.kept_count, k, offset
        cdef long first = self.kept_first, lines = number - self.kept_first
        sort_by_hash(entries, n)
        for k in range(n):
            if k + 8 < n:  # the line applied eight lines on, asked for from memory now
                entry = &entries[k + 8]
                for offset in range(0, min(entry.size, 256), 64):
                    __builtin_prefetch(self.kept + entry.at + offset)
            if progress is not None and k % 10_000 == 0 and k:
                progress(first + lines * k // n)
            entry = &entries[k]
            self.line(
                None, self.kept, entry.at, entry.at + entry.size, entry.number, entry.hash,
                self.kept + entry.walk if entry.walk >= 0 else NULL,
            )
        while self.ring_count:  # applied before the window is filled again
            self.settle_next()
        self.kept_used = self.kept_count = 0
        self.kept_first = number
        if progress is not None and lines > 0:
            progress(number)
        return 0

    cdef int key_in(
        self, const unsigned char *data, Py_ssize_t size, long number, Ev scratch, uint32_t *hash
    ) except -1:
        """The hash of the key of the deal of a line (not blank) into ``hash``, as ``key_of`` makes it: from its
        bytes when they tell (2: the reader's walk of it is kept, ``Reader.keep_walk``), else from its event as
        ``line`` and ``settle`` read it (made here, or by orjson; 1). 0 for a line refused there (as ``settle``
        refuses it, by the first share only)."""
        cdef Reader reader = self.reader
        cdef Staged staged
        cdef Ev ev
        if reader.key_at(data, size, self.source, scratch):
            hash[0] = reader.key_hash
            return 2
        staged = self.spare
        reader.event = scratch
        ev = reader.read_at(data, size, self.source, 1, 0)
        if ev is not None:
            self.key_of(staged, ev.source, ev.deal_id, reader.key_hash, reader.hashed)
            hash[0] = staged.hash
            return True
        event = self.decoded(PyBytes_FromStringAndSize(<const char *>data, size), number)
        if event is None:
            return False
        self.key_of(staged, event["source"], event["deal_id"], 0, False)
        hash[0] = staged.hash
        return True

    # ------------------------------------------------------------------ the deals, by key

    cdef int table_init(self, Py_ssize_t capacity) except -1:
        PyMem_Free(self.table)
        self.table = <Slot *>PyMem_Calloc(capacity, sizeof(Slot))
        if self.table == NULL:
            raise MemoryError()
        self.table_mask = capacity - 1
        return 0

    cdef Deal find(self, const char *key, Py_ssize_t size, uint32_t hash, str text):
        """The deal of the key (its UTF-8 bytes; ``text``: the key itself when they are more than ``KEY_INLINE``),
        or None."""
        cdef Py_ssize_t i = hash & self.table_mask
        cdef Deal deal
        while self.table[i].deal != NULL:
            if self.table[i].hash == hash:
                deal = <Deal>self.table[i].deal
                if deal.key_size == size and (
                    memcmp(deal.key_bytes, key, size) == 0 if size <= KEY_INLINE else deal.key == text
                ):
                    return deal
            i = (i + 1) & self.table_mask
        return None

    cdef int keep(self, Deal deal, uint32_t hash) except -1:
        """A new deal, from now on found by its key (the table doubled when half full)."""
        cdef Slot *old = self.table
        cdef Py_ssize_t capacity = self.table_mask + 1, j
        cdef Slot slot
        self.deals.append(deal)
        if 2 * len(self.deals) > capacity:
            self.table = NULL
            self.table_init(2 * capacity)
            for j in range(capacity):
                if old[j].deal != NULL:
                    self.place(old[j])
            PyMem_Free(old)
        slot.hash = hash
        slot.deal = <PyObject *>deal
        self.place(slot)
        return 0

    cdef void place(self, Slot slot) noexcept:
        cdef Py_ssize_t i = slot.hash & self.table_mask
        while self.table[i].deal != NULL:
            i = (i + 1) & self.table_mask
        self.table[i] = slot

    cdef int line(
        self, object line, const unsigned char *data, Py_ssize_t at, Py_ssize_t end, long number, uint32_t hash,
        const unsigned char *walk,
    ) except -1:
        """One line of the export: ``line``; or (None) bytes at..end of ``data`` (with its newline), a line not
        blank of this share's deal whose key has ``hash`` (``flush``), with what its walk found (``walk``) when it
        was kept. It is read now and applied once ``AHEAD`` more lines are read (``settle``): meanwhile its deal's
        state is asked for from memory (``hint``)."""
        cdef Staged staged = <Staged>self.ring[(self.ring_head + self.ring_count) % RING]
        cdef Reader reader = self.reader
        cdef Ev ev
        cdef bint known = line is None
        reader.event = staged.ev
        if known:
            if walk != NULL:
                ev = reader.read_walked(data + at, end - at, walk, self.source)
            else:
                ev = reader.read_at(data + at, end - at, self.source, 1, 0)
            if ev is None:
                line = PyBytes_FromStringAndSize(<const char *>data + at, end - at)
        else:
            if not line or (type(line) is not bytes or (<bytes>line)[0] in b" \t\n\r\x0b\x0c") and not line.strip():
                return 0
            ev = reader.read(line, self.source, self.share_count, self.share_index)
        if ev is None:
            if reader.elsewhere:
                return 0
            staged.line = line  # left to orjson and the reference's checks, when its turn comes
        else:
            staged.line = None
            if not self.key_of(
                staged, ev.source, ev.deal_id, hash if known else reader.key_hash, known or reader.hashed
            ):
                return 0  # another share's deal
            __builtin_prefetch(&self.table[staged.hash & self.table_mask])
        staged.number = number
        self.ring_count += 1
        if self.ring_count >= 2:
            self.hint(<Staged>self.ring[(self.ring_head + self.ring_count - 2) % RING])
        if self.ring_count >= 3:
            self.hint_more(<Staged>self.ring[(self.ring_head + self.ring_count - 3) % RING])
        if self.ring_count > AHEAD:
            self.settle_next()
        return 0

    cdef int settle_next(self) except -1:
        """Apply the oldest line read and not yet applied."""
        cdef Staged staged = <Staged>self.ring[self.ring_head]
        self.ring_head = (self.ring_head + 1) % RING
        self.ring_count -= 1
        return self.settle(staged)

    cdef bint key_of(self, Staged staged, object source, object deal_id, uint32_t hash, bint hashed) except -1:
        """The deal's key into ``staged`` (its UTF-8 bytes, its CRC-32; ``hash`` when ``hashed``, made from the same
        bytes by the reader); whether the deal is this share's."""
        cdef Py_ssize_t source_size
        cdef const char *key
        # the key's UTF-8 bytes: put together here when both are short ASCII text, else from the key made
        staged.text = None
        if (
            type(source) is str and type(deal_id) is str and PyUnicode_IS_ASCII(source) and PyUnicode_IS_ASCII(deal_id)
            and len(<str>source) + 1 + len(<str>deal_id) <= KEY_INLINE
        ):
            source_size = len(<str>source)
            staged.size = source_size + 1 + len(<str>deal_id)
            memcpy(staged.key_bytes, PyUnicode_DATA(source), source_size)
            staged.key_bytes[source_size] = 58  # :
            memcpy(staged.key_bytes + source_size + 1, PyUnicode_DATA(deal_id), staged.size - source_size - 1)
            key = staged.key_bytes
        else:
            staged.text = f"{source}:{deal_id}"
            staged.utf8 = staged.text.encode("utf-8", "surrogatepass")
            key = <const char *>staged.utf8
            staged.size = len(staged.utf8)
        staged.hash = hash if hashed else crc32_more(0, <const unsigned char *>key, staged.size)  # fingerprint(key)
        return self.share_count == 1 or staged.hash % self.share_count == self.share_index

    cdef void hint(self, Staged staged) noexcept:
        """Ask for the state of the deal of a line read (its place in the table, asked for when it was read, is
        likely here by now): nothing is decided here, only fetched."""
        cdef Py_ssize_t i
        cdef const char *deal
        cdef Py_ssize_t offset
        staged.deal = NULL
        if staged.line is not None:
            return
        i = staged.hash & self.table_mask
        while self.table[i].deal != NULL:
            if self.table[i].hash == staged.hash:
                staged.deal = self.table[i].deal
                deal = <const char *>staged.deal
                for offset in range(0, DEAL_BYTES, 64):
                    __builtin_prefetch(deal + offset)
                return
            i = (i + 1) & self.table_mask

    cdef void hint_more(self, Staged staged) noexcept:
        """Then (the deal's state likely here by now) ask for the objects it holds that every event reads."""
        cdef Deal deal
        if staged.deal == NULL:
            return
        deal = <Deal>staged.deal
        __builtin_prefetch(<PyObject *>deal.due)
        __builtin_prefetch(<PyObject *>deal.created)
        __builtin_prefetch(<PyObject *>deal.last_act)
        __builtin_prefetch(<PyObject *>deal.memo_anchor)
        __builtin_prefetch(<PyObject *>deal.episodes)
        __builtin_prefetch(<PyObject *>deal.signals)
        __builtin_prefetch(<PyObject *>deal.contacts)

    cdef dict decoded(self, object line, long number):
        """A line left to orjson, decoded and checked as the reference does (``as_change``); None when it is
        refused (recorded by the first share only: every share reads it)."""
        try:
            try:
                raw = _orjson_loads(line)
            except _JSONDecodeError:
                raw = _loads(line)
            return as_change(raw, self.source)
        except (BadEvent, ValueError, RecursionError) as exc:
            if self.share_index == 0:
                self.reject(self.report, number, exc)
            return None

    cdef int settle(self, Staged staged) except -1:
        """Apply a line read (``line``)."""
        cdef Deal state
        cdef Ev ev = staged.ev
        cdef long number = staged.number
        cdef const char *key
        cdef double t
        event = None
        if staged.line is not None:
            line = staged.line
            staged.line = None
            event = self.decoded(line, number)
            if event is None:
                return 0
            if not self.key_of(staged, event["source"], event["deal_id"], 0, False):
                return 0  # another share's deal
        if staged.text is None:
            key = staged.key_bytes
        else:
            key = <const char *>staged.utf8
        try:
            t = time_of_event(ev.occurred_at if event is None else event.get("occurred_at"))
        except (BadEvent, ValueError) as exc:
            self.reject(self.report, number, exc)
            return 0
        known = self.find(key, staged.size, staged.hash, staged.text)
        if known is not None and (<Deal>known).due is not None:
            self.expire(<Deal>known, (<Deal>known).key, t)
        if known is None:
            state = Deal.__new__(Deal)
            state.key = staged.text if staged.text is not None else PyUnicode_DecodeASCII(key, staged.size, NULL)
            state.key_size = staged.size
            if staged.size <= KEY_INLINE:
                memcpy(state.key_bytes, key, staged.size)
        else:
            state = known
        try:
            if event is not None:
                _check(event)
                ev = from_dict(event)
            fresh = self.apply(state, ev, state.key, t)
        except BadEvent as exc:
            self.reject(self.report, number, exc)
            return 0
        self.events += 1
        if not fresh:
            self.duplicates += 1
            return 0
        if known is None:
            self.keep(state, staged.hash)
        state.due = self.next_check(state)
        return 0

    cdef void expire(self, Deal state, object key, object upto) except *:
        """Fire the deal's quiet deadlines up to ``upto``; keep when to look next."""
        when = state.due
        while when is not None and when <= upto:
            again = self.check_quiet(state, key, when)
            when = again if again is not None and again > when else None
        state.due = when


def _contact_order(entry):
    return (entry[3], entry[2])
