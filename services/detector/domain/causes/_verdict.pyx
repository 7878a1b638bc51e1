# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""``classify.verdict`` compiled: the primary cause and staff-change side of an interruption, for the replay's engine.

``Verdicts(rules).verdict(...)`` gives exactly what ``verdict(Facts(...), window, rules)`` gives: the same
floating-point operations in the same order (relevance, ``_combined``, the sums in the order the causes were first
seen, ``round(x, 1)`` correctly rounded, ranking by score then priority, the side's votes in item order). Where it
cannot follow the Python exactly it hands over to it: a rule with a construct C does not reproduce (a non-str
``equals``, a non-float bound, a ``Rule`` subclass) is scored by ``Rule.score``; a call with values of other types
than the facts' own (a time that is not an int or float, a non-str contact change) and the rare rankings with a
NaN score are done by the Python; ``Rules`` it cannot read at all (a subclass, non-float settings) make every
call the Python one.

cdivision: the only divisions are by non-zero constants and by a relevance's half-life, checked for zero first.
"""

from cpython.object cimport PyObject, PyObject_RichCompareBool, Py_GT
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_AsDouble, PyFloat_CheckExact
from cpython.long cimport PyLong_CheckExact, PyLong_AsLong, PyLong_AsDouble, PyLong_AsLongLongAndOverflow
from cpython.bool cimport PyBool_Check
from cpython.dict cimport PyDict_GetItemWithError
from cpython.unicode cimport PyUnicode_CheckExact
from libc.math cimport pow, fabs, round as c_round, rint, fma, copysign
from libc.string cimport memset

import sys

from services.detector.domain.causes.model import CAUSES, Facts, Signal
from services.detector.domain.causes.rules import VALUES, Relevance, Rule, Rules, View

cdef extern from *:
    """
    /* A product rounded to double before it is used: never fused with an addition into an FMA, whatever the
       compiler's -ffp-contract, because Python rounds every product. */
    static CYTHON_INLINE double dw_mul(double a, double b) { volatile double p = a * b; return p; }
    """
    double dw_mul(double a, double b) nogil


cdef enum:
    MAXKEYS = 64
    MAXCAUSES = 32
    STACK_ITEMS = 64
    # what a view value is (0: not made yet)
    V_NONE = 1
    V_NUM = 2          # an int or float (exactly the double held)
    V_STR = 3          # an exact str
    BAIL = -2          # a value or input the C does not follow exactly: the Python gives the verdict
    # the values made here; the other VALUES (dates, the stall summary) are made by VALUES[name](facts)
    K_OUTBOUND_SINCE_INBOUND = 0
    K_ACTIVITIES = 1
    K_DAYS_SINCE_OUTBOUND = 2
    K_DAYS_SINCE_INBOUND = 3
    K_DAYS_SINCE_ACTIVITY = 4
    K_OWNER_CHANGED_DAYS = 5
    K_CONTACT_LEFT_DAYS = 6
    K_AMOUNT_CUT_PERCENT = 7
    K_CLOSE_DATE_PUSHES = 8
    K_CLOSE_DATE_SLIP_DAYS = 9
    K_CUSTOMER_SPOKE_LAST = 10
    K_HAS_OUTBOUND = 11
    K_STAGE_MOVED_BACK = 12
    K_CONTACT_CHANGE = 13
    K_HAS_LOST_REASON = 14
    K_LOST_REASON = 15
    N_HOT = 16

_HOT = {
    "outbound_since_inbound": K_OUTBOUND_SINCE_INBOUND,
    "activities": K_ACTIVITIES,
    "days_since_outbound": K_DAYS_SINCE_OUTBOUND,
    "days_since_inbound": K_DAYS_SINCE_INBOUND,
    "days_since_activity": K_DAYS_SINCE_ACTIVITY,
    "owner_changed_days": K_OWNER_CHANGED_DAYS,
    "contact_left_days": K_CONTACT_LEFT_DAYS,
    "amount_cut_percent": K_AMOUNT_CUT_PERCENT,
    "close_date_pushes": K_CLOSE_DATE_PUSHES,
    "close_date_slip_days": K_CLOSE_DATE_SLIP_DAYS,
    "customer_spoke_last": K_CUSTOMER_SPOKE_LAST,
    "has_outbound": K_HAS_OUTBOUND,
    "stage_moved_back": K_STAGE_MOVED_BACK,
    "contact_change": K_CONTACT_CHANGE,
    "has_lost_reason": K_HAS_LOST_REASON,
    "lost_reason": K_LOST_REASON,
}

cdef double DAY = 86400.0
cdef double EXACT_INT = 9007199254740992.0   # 2 ** 53: every int of smaller magnitude is a double exactly
cdef long long EXACT_LL = 9007199254740992
cdef str YES = "yes"
cdef str NO = "no"
cdef str OURS = "ours"
cdef str CUSTOMER = "customer"
cdef str NO_REASON = "no reason given"
cdef dict _VOTES = {"ours": 0, "customer": 1}
cdef object _SIGNAL = Signal


cdef struct Item:
    int cause
    double weight
    PyObject* side     # borrowed: the signal's list or the Rule holds it


cdef struct Args:
    PyObject* kind
    double at
    PyObject* owner_changed_at
    PyObject* contact_left_at
    PyObject* contact_change
    PyObject* amount_cut_share
    long close_date_pushes
    long close_date_slip_days
    bint stage_moved_back
    PyObject* lost_reason
    long outbound_since_inbound
    PyObject* last_outbound_at
    PyObject* last_inbound_at
    PyObject* last_activity_at
    long activities


cdef struct ViewC:
    signed char kind[MAXKEYS]   # V_* once made, 0 before
    double num[MAXKEYS]
    PyObject* obj[MAXKEYS]      # V_STR: an owned reference
    PyObject* facts             # owned, made when first needed (Python-made values, Python-scored rules)
    PyObject* view              # owned: a rules.View for Python-scored rules


# ------------------------------------------------------------------------------------------------ sums

cdef int _SUM_NAIVE = 0
cdef int _SUM_NEUMAIER = 1
cdef int _SUM_PYTHON = 2
cdef int _sum_kind = _SUM_NAIVE


cdef double _sum(double* xs, Py_ssize_t n) except? -1.0:
    """``sum`` of n >= 1 floats as this Python's builtin adds them (3.11: one after the other from 0; 3.12 on:
    Neumaier's compensated sum), checked against ``sum`` when the module loads."""
    cdef double f = 0.0 + xs[0], c = 0.0, x, t
    cdef Py_ssize_t i
    if _sum_kind == _SUM_NAIVE:
        for i in range(1, n):
            f = f + xs[i]
        return f
    if _sum_kind == _SUM_NEUMAIER:
        for i in range(1, n):
            x = xs[i]
            t = f + x
            if fabs(f) >= fabs(x):
                c = c + ((f - t) + x)
            else:
                c = c + ((x - t) + f)
            f = t
        if c != 0.0 and c - c == 0.0:
            f = f + c
        return f
    return PyFloat_AsDouble(sum([xs[i] for i in range(n)]))


def _check_sums():
    """Which of the sums above this Python's ``sum`` is, on cases where they differ; Python's own if neither."""
    import random

    global _sum_kind
    rng = random.Random(20240521)
    cases = [
        [1e16, 1.0, -1e16], [0.1] * 10, [1e308, 1e308, -1e308], [1.0, 1e100, 1.0, -1e100], [-0.0], [-0.0, -0.0],
        [0.3, 0.2, 0.1], [float("inf"), 1.0], [2.0 ** 53, 1.0, 1.0], [1.0, -1.0, 1e-300],
    ]
    for _ in range(300):
        cases.append([rng.choice([1.0, -1.0]) * rng.random() * 10.0 ** rng.randint(-20, 20)
                      for _ in range(rng.randint(1, 12))])
    cdef double buf[16]
    cdef Py_ssize_t i
    for kind in (_SUM_NAIVE, _SUM_NEUMAIER):
        _sum_kind = kind
        for case in cases:
            for i in range(len(case)):
                buf[i] = case[i]
            got = <object>_sum(buf, len(case))
            if got.hex() != float(sum(case)).hex():
                break
        else:
            return
    _sum_kind = _SUM_PYTHON


_check_sums()
SUMMATION = ("naive", "neumaier", "python")[_sum_kind]
"""How this Python's ``sum`` adds floats, as the scores here are added (``python``: by ``sum`` itself)."""


# ------------------------------------------------------------------------------------------------ rounding

cdef double _round1(double x) except? -1.0:
    """Python's ``round(x, 1)``: the decimal with one digit nearest the exact binary value (half to even), then
    the double nearest that decimal."""
    cdef double ax, y, e, r, f
    if x - x != 0.0:  # nan, inf: themselves
        return x
    ax = fabs(x)
    if ax < 0.04:
        return copysign(0.0, x)
    if ax >= 1099511627776.0:  # 2 ** 40: Python's own (the days of no real deal)
        return PyFloat_AsDouble(round(x, 1))
    y = dw_mul(ax, 10.0)
    e = fma(ax, 10.0, -y)      # 10 * ax == y + e exactly
    r = rint(y)                # nearest, ties to even
    f = y - r                  # exact; a multiple of ulp(y) <= 2 ** -8: |f| == 0.5 or |f| <= 0.5 - ulp(y)
    if f == 0.5:
        if e > 0.0:
            r = r + 1.0
    elif f == -0.5:
        if e < 0.0:
            r = r - 1.0
    return copysign(r / 10.0, x)   # r < 2 ** 44: r / 10 is the double nearest the decimal, as strtod makes it


cdef int _percent(double share, double* out) except -1:
    """``round(share * 100)``, Python's round to an int (half to even)."""
    cdef double x = dw_mul(share, 100.0)
    cdef double r = c_round(x)
    if fabs(x - r) == 0.5:
        r = 2.0 * c_round(x / 2.0)
    if r != r:
        raise ValueError("cannot convert float NaN to integer")
    if r - r != 0.0:
        raise OverflowError("cannot convert float infinity to integer")
    out[0] = r
    return V_NUM


# ------------------------------------------------------------------------------------------------ the view

cdef int _time(object o, double* out) except -1:
    """An int or float time as Python's float arithmetic takes it; BAIL for another type."""
    if PyFloat_CheckExact(o):
        out[0] = PyFloat_AS_DOUBLE(o)
        return 0
    if PyLong_CheckExact(o) or PyBool_Check(o):
        out[0] = PyLong_AsDouble(o)   # as float - int converts it (OverflowError when too large)
        return 0
    return BAIL


cdef int _days(double at, PyObject* earlier, double* out, bint ago) except -1:
    """``_days(at, earlier)`` (``_ago`` with ``ago``): round((at - earlier) / DAY, 1)."""
    cdef double d
    cdef object o = <object>earlier
    if o is None:
        return V_NONE
    if _time(o, &d) == BAIL:
        return BAIL
    d = _round1((at - d) / DAY)
    if ago:
        d = fabs(d)   # abs(days or 0.0)
    out[0] = d
    return V_NUM


cdef int _keep_str(ViewC* v, int key, object s):
    Py_INCREF(s)
    v.obj[key] = <PyObject*>s
    return V_STR


cdef int _classify(ViewC* v, int key, object o) except -1:
    """A value made by Python: None, a number held exactly, an exact str; BAIL for anything else."""
    cdef long long n
    cdef int overflow = 0
    if o is None:
        return V_NONE
    if PyFloat_CheckExact(o):
        v.num[key] = PyFloat_AS_DOUBLE(o)
        return V_NUM
    if PyLong_CheckExact(o) or PyBool_Check(o):
        n = PyLong_AsLongLongAndOverflow(o, &overflow)
        if overflow or n > EXACT_LL or n < -EXACT_LL:
            return BAIL
        v.num[key] = <double>n
        return V_NUM
    if PyUnicode_CheckExact(o):
        return _keep_str(v, key, o)
    return BAIL


cdef object _facts(ViewC* v, Args* a):
    if v.facts == NULL:
        f = Facts(
            <object>a.kind, a.at, <object>a.owner_changed_at, <object>a.contact_left_at, <object>a.contact_change,
            <object>a.amount_cut_share, a.close_date_pushes, a.close_date_slip_days, a.stage_moved_back,
            <object>a.lost_reason, a.outbound_since_inbound, <object>a.last_outbound_at,
            <object>a.last_inbound_at, <object>a.last_activity_at, a.activities,
        )
        Py_INCREF(f)
        v.facts = <PyObject*>f
    return <object>v.facts


cdef object _pyview(ViewC* v, Args* a):
    if v.view == NULL:
        w = View(_facts(v, a))
        Py_INCREF(w)
        v.view = <PyObject*>w
    return <object>v.view


cdef int _make(Verdicts self, ViewC* v, Args* a, int key) except -1:
    """View value ``key`` (``VALUES[name](facts)``): its kind, the number in v.num or the str in v.obj."""
    cdef object o, p
    cdef bint spoke
    if key == K_OUTBOUND_SINCE_INBOUND:
        v.num[key] = <double>a.outbound_since_inbound
        return V_NUM
    if key == K_ACTIVITIES:
        v.num[key] = <double>a.activities
        return V_NUM
    if key == K_CLOSE_DATE_PUSHES:
        v.num[key] = <double>a.close_date_pushes
        return V_NUM
    if key == K_CLOSE_DATE_SLIP_DAYS:
        v.num[key] = <double>a.close_date_slip_days
        return V_NUM
    if key == K_DAYS_SINCE_OUTBOUND:
        return _days(a.at, a.last_outbound_at, &v.num[key], False)
    if key == K_DAYS_SINCE_INBOUND:
        return _days(a.at, a.last_inbound_at, &v.num[key], False)
    if key == K_DAYS_SINCE_ACTIVITY:
        return _days(a.at, a.last_activity_at, &v.num[key], False)
    if key == K_OWNER_CHANGED_DAYS:
        return _days(a.at, a.owner_changed_at, &v.num[key], True)
    if key == K_CONTACT_LEFT_DAYS:
        return _days(a.at, a.contact_left_at, &v.num[key], True)
    if key == K_AMOUNT_CUT_PERCENT:
        o = <object>a.amount_cut_share
        if o is None:
            return V_NONE
        if not PyFloat_CheckExact(o):
            return BAIL
        return _percent(PyFloat_AS_DOUBLE(o), &v.num[key])
    if key == K_CUSTOMER_SPOKE_LAST:
        o = <object>a.last_inbound_at
        p = <object>a.last_outbound_at
        if o is None:
            spoke = False
        elif p is None:
            spoke = True
        elif PyFloat_CheckExact(o) and PyFloat_CheckExact(p):
            spoke = PyFloat_AS_DOUBLE(o) > PyFloat_AS_DOUBLE(p)
        else:
            spoke = PyObject_RichCompareBool(o, p, Py_GT)
        return _keep_str(v, key, YES if spoke else NO)
    if key == K_HAS_OUTBOUND:
        if <object>a.last_outbound_at is None and a.outbound_since_inbound == 0:
            return _keep_str(v, key, NO)
        return _keep_str(v, key, YES)
    if key == K_STAGE_MOVED_BACK:
        return _keep_str(v, key, YES if a.stage_moved_back else NO)
    if key == K_CONTACT_CHANGE:
        o = <object>a.contact_change
        if o is None:
            return V_NONE
        if PyUnicode_CheckExact(o):
            return _keep_str(v, key, o)
        return BAIL
    if key == K_HAS_LOST_REASON:
        return _keep_str(v, key, YES if <object>a.lost_reason else NO)
    if key == K_LOST_REASON:
        o = <object>a.lost_reason
        if not o:
            return _keep_str(v, key, NO_REASON)
        if PyUnicode_CheckExact(o):
            return _keep_str(v, key, (<str>o)[:60])
        return BAIL
    return _classify(v, key, VALUES[self._extra_keys[key - N_HOT]](_facts(v, a)))


cdef inline int _value(Verdicts self, ViewC* v, Args* a, int key) except -1:
    cdef int k = v.kind[key]
    if k:
        return k
    k = _make(self, v, a, key)
    if k > 0:
        v.kind[key] = <signed char>k
    return k


cdef int _score_rule(Verdicts self, CRule* r, ViewC* v, Args* a, double* out) except -1:
    """``Rule.score`` in C: the weight in out; BAIL when a value it looks at is not one C follows exactly."""
    cdef int i, k, key
    cdef Cond* c
    cdef double w
    out[0] = 0.0
    for i in range(r.eq0, r.eq1):
        c = &self._conds[i]
        if c.key < 0:
            return 0
        k = _value(self, v, a, c.key)
        if k == BAIL:
            return BAIL
        if k != V_STR or not ((<str><object>v.obj[c.key]) == (<str><object>c.text)):
            return 0
    for i in range(r.min0, r.min1):
        c = &self._conds[i]
        if c.key < 0:
            return 0
        k = _value(self, v, a, c.key)
        if k == BAIL:
            return BAIL
        if k != V_NUM or v.num[c.key] < c.num:
            return 0
    for i in range(r.max0, r.max1):
        c = &self._conds[i]
        if c.key < 0:
            return 0
        k = _value(self, v, a, c.key)
        if k == BAIL:
            return BAIL
        if k != V_NUM or v.num[c.key] > c.num:
            return 0
    w = r.weight
    for i in range(r.step0, r.step1):
        c = &self._conds[i]
        if c.key < 0:
            continue
        k = _value(self, v, a, c.key)
        if k == BAIL:
            return BAIL
        if k == V_NUM:
            w = w + dw_mul(c.num, v.num[c.key] - c.base)
    if r.has_cap and r.cap < w:   # min(weight, cap)
        w = r.cap
    if 0.0 > w:                   # max(weight, 0.0)
        w = 0.0
    out[0] = w
    return 0


# ------------------------------------------------------------------------------------------------ Python

def _python_verdict(rules, kind, at, owner_changed_at, contact_left_at, contact_change, amount_cut_share,
                    close_date_pushes, close_date_slip_days, stage_moved_back, lost_reason, outbound_since_inbound,
                    last_outbound_at, last_inbound_at, last_activity_at, activities, signals, lo, hi):
    """The reference itself, for what the C does not follow exactly."""
    from services.detector.domain.causes.classify import verdict

    facts = Facts(kind, at, owner_changed_at, contact_left_at, contact_change, amount_cut_share, close_date_pushes,
                  close_date_slip_days, stage_moved_back, lost_reason, outbound_since_inbound, last_outbound_at,
                  last_inbound_at, last_activity_at, activities)
    return verdict(facts, [s for s in signals if lo <= s[2] <= hi], rules)


def _ranked_first(causes, scores, priority):
    """``_score``'s ranking done by Python (a NaN score, a cause without a priority: its errors too)."""
    found = dict(zip(causes, scores))
    return sorted(found, key=lambda c: (-found[c], priority.index(c)))[0]


# ------------------------------------------------------------------------------------------------ Verdicts

def _floats(*values):
    for x in values:
        if type(x) is not float:
            return False
    return True


cdef class Verdicts:
    """Built once from a ``causes.rules.Rules`` (``default_rules()``): its rules, relevance per kind, priorities,
    repeat, unknown_below and default sides as C arrays; ``verdict`` then scores an interruption in C."""

    def __cinit__(self):
        self._rules = NULL
        self._conds = NULL
        self._kind_rules = NULL
        self._kinds = NULL
        self._priority = NULL
        self._pow = NULL
        self._pow_ok = NULL
        self._n_pow = 0

    def __dealloc__(self):
        PyMem_Free(self._rules)
        PyMem_Free(self._conds)
        PyMem_Free(self._kind_rules)
        PyMem_Free(self._kinds)
        PyMem_Free(self._priority)
        PyMem_Free(self._pow)
        PyMem_Free(self._pow_ok)

    def __init__(self, rules):
        self.rules = rules
        self._keep = []
        self._last_kind = object()   # no kind: the first call looks its kind up
        self._last_kid = 0
        self._python_only = not self._read(rules)

    def _read(self, rules):
        """The rules as C arrays; False when C cannot follow them (every verdict is then the Python one)."""
        cdef int i, j
        if type(rules) is not Rules or not _floats(rules.repeat, rules.unknown_below):
            return False
        if type(rules.relevance) is not dict or type(rules.default_side) is not dict:
            return False
        if type(rules.priority) is not tuple or type(rules.rules) is not tuple:
            return False
        self._unknown_below = rules.unknown_below
        causes = [c for c in CAUSES if c != "unknown"]
        cause_ids = {c: i for i, c in enumerate(causes)}
        self._n_scorable = len(causes)
        kinds = {}
        try:
            for r in rules.rules:
                if not isinstance(r, Rule) or (r.kinds is not None and type(r.kinds) not in (frozenset, set)):
                    return False
                if r.cause not in cause_ids:
                    cause_ids[r.cause] = len(causes)
                    causes.append(r.cause)
                if r.kinds is not None:
                    for k in r.kinds:
                        kinds.setdefault(k, len(kinds))
            for k in rules.relevance:
                kinds.setdefault(k, len(kinds))
            for k in rules.default_side:
                kinds.setdefault(k, len(kinds))
        except TypeError:  # an unhashable cause or kind
            return False
        if len(causes) > MAXCAUSES:
            return False
        self._causes = tuple(causes)
        self._cause_ids = cause_ids
        self._n_causes = len(causes)
        self._staff = cause_ids["staff_change"]

        # rules and their conditions
        keys = {}
        self._extra_keys = []
        conds = []
        parsed = []
        for r in rules.rules:
            row = self._read_rule(r, keys, conds)
            if row is None:
                row = (True, cause_ids[r.cause], 0.0, False, 0.0, (0,) * 8)
            parsed.append(row)
        self._n_keys = N_HOT + len(self._extra_keys)
        if self._n_keys > MAXKEYS:
            return False
        self._n_rules = len(parsed)
        self._rules = <CRule*>PyMem_Malloc(max(1, self._n_rules) * sizeof(CRule))
        self._n_conds = len(conds)
        self._conds = <Cond*>PyMem_Malloc(max(1, self._n_conds) * sizeof(Cond))
        if self._rules == NULL or self._conds == NULL:
            raise MemoryError()
        for i, (python, cause, weight, has_cap, cap, ranges) in enumerate(parsed):
            r = rules.rules[i]
            self._rules[i].python = python
            self._rules[i].cause = cause
            self._rules[i].weight = weight
            self._rules[i].has_cap = has_cap
            self._rules[i].cap = cap
            self._rules[i].eq0 = ranges[0]
            self._rules[i].eq1 = ranges[1]
            self._rules[i].min0 = ranges[2]
            self._rules[i].min1 = ranges[3]
            self._rules[i].max0 = ranges[4]
            self._rules[i].max1 = ranges[5]
            self._rules[i].step0 = ranges[6]
            self._rules[i].step1 = ranges[7]
            self._rules[i].rule = <PyObject*>r
            side = r.side
            self._keep.append(side)
            self._rules[i].side = <PyObject*>side
        for i, (key, num, base, text) in enumerate(conds):
            self._conds[i].key = key
            self._conds[i].num = num
            self._conds[i].base = base
            self._keep.append(text)
            self._conds[i].text = <PyObject*>text

        # kinds: relevance, rules in order, default side; the last for every kind no table names
        names = list(kinds)
        self._kind_ids = kinds
        self._n_kinds = len(names) + 1
        self._kinds = <CKind*>PyMem_Malloc(self._n_kinds * sizeof(CKind))
        lists = []
        for k in names:
            lists.append([i for i, r in enumerate(rules.rules) if r.kinds is None or k in r.kinds])
        lists.append([i for i, r in enumerate(rules.rules) if r.kinds is None])
        self._kind_rules = <int*>PyMem_Malloc(max(1, sum(len(x) for x in lists)) * sizeof(int))
        if self._kinds == NULL or self._kind_rules == NULL:
            raise MemoryError()
        j = 0
        for i in range(self._n_kinds):
            if i < len(names):
                rel = rules.relevance_of(names[i])
                side = rules.default_side.get(names[i], "customer")
                self._keep.append(side)
                self._kinds[i].default_side = <PyObject*>side
            else:
                rel = Relevance()
                self._kinds[i].default_side = NULL
            if type(rel) is not Relevance or not _floats(rel.half_life_days, rel.floor, rel.after_days):
                return False
            self._kinds[i].half_life = rel.half_life_days
            self._kinds[i].floor = rel.floor
            self._kinds[i].after = rel.after_days
            self._kinds[i].rules0 = j
            for x in lists[i]:
                self._kind_rules[j] = x
                j += 1
            self._kinds[i].rules1 = j

        # priorities and repeat ** n
        self._priority = <Py_ssize_t*>PyMem_Malloc(self._n_causes * sizeof(Py_ssize_t))
        if self._priority == NULL:
            raise MemoryError()
        for i, c in enumerate(causes):
            self._priority[i] = rules.priority.index(c) if c in rules.priority else -1
        self._grow_pow(16)
        return True

    def _read_rule(self, r, keys, conds):
        """A rule's row for the C arrays (its conditions appended to conds); None: scored by ``Rule.score``."""
        if type(r) is not Rule or not _floats(r.weight) or (r.cap is not None and not _floats(r.cap)):
            return None
        for m in (r.equals, r.minimum, r.maximum, r.step):
            if type(m) is not dict:
                return None
        ranges = []
        start = len(conds)
        try:
            for key, expected in r.equals.items():
                if type(expected) is not str:
                    return None
                conds.append((self._key_id(key, keys), 0.0, 0.0, expected))
            ranges += [start, len(conds)]
            for bounds in (r.minimum, r.maximum):
                start = len(conds)
                for key, bound in bounds.items():
                    if not _floats(bound):
                        return None
                    conds.append((self._key_id(key, keys), bound, 0.0, None))
                ranges += [start, len(conds)]
            start = len(conds)
            for key, per_unit in r.step.items():
                base = r.minimum.get(key, 0.0)
                if not _floats(per_unit, base):
                    return None
                conds.append((self._key_id(key, keys), per_unit, base, None))
            ranges += [start, len(conds)]
        except TypeError:  # an unhashable name
            return None
        return (False, self._cause_ids[r.cause], r.weight, r.cap is not None, r.cap or 0.0, tuple(ranges))

    def _key_id(self, key, keys):
        if key not in VALUES:
            return -1
        if key in _HOT:
            return _HOT[key]
        if key not in keys:
            keys[key] = N_HOT + len(self._extra_keys)
            self._extra_keys.append(key)
        return keys[key]

    def _grow_pow(self, int n):
        """repeat ** i for i < n, as Python's float power makes it (0 in _pow_ok where it raises)."""
        cdef int i
        if n <= self._n_pow:
            return
        pw = <double*>PyMem_Realloc(self._pow, n * sizeof(double))
        if pw == NULL:
            raise MemoryError()
        self._pow = pw
        ok = <char*>PyMem_Realloc(self._pow_ok, n * sizeof(char))
        if ok == NULL:
            raise MemoryError()
        self._pow_ok = ok
        repeat = self.rules.repeat
        for i in range(self._n_pow, n):
            try:
                self._pow[i] = repeat ** i
                self._pow_ok[i] = 1
            except ArithmeticError:
                self._pow[i] = 0.0
                self._pow_ok[i] = 0
        self._n_pow = n

    cpdef tuple verdict(self, str kind, double at,
                        object owner_changed_at, object contact_left_at, object contact_change,
                        object amount_cut_share, long close_date_pushes, long close_date_slip_days,
                        bint stage_moved_back, object lost_reason, long outbound_since_inbound,
                        object last_outbound_at, object last_inbound_at, object last_activity_at,
                        long activities, list signals, double lo, double hi):
        """``verdict(Facts(kind, at, ...), [s for s in signals if lo <= s[2] <= hi], rules)``: (cause, side)."""
        cdef Args a
        cdef ViewC v
        cdef int i
        if signals is None:
            raise TypeError("signals must be a list")
        if not self._python_only:
            a.kind = <PyObject*>kind
            a.at = at
            a.owner_changed_at = <PyObject*>owner_changed_at
            a.contact_left_at = <PyObject*>contact_left_at
            a.contact_change = <PyObject*>contact_change
            a.amount_cut_share = <PyObject*>amount_cut_share
            a.close_date_pushes = close_date_pushes
            a.close_date_slip_days = close_date_slip_days
            a.stage_moved_back = stage_moved_back
            a.lost_reason = <PyObject*>lost_reason
            a.outbound_since_inbound = outbound_since_inbound
            a.last_outbound_at = <PyObject*>last_outbound_at
            a.last_inbound_at = <PyObject*>last_inbound_at
            a.last_activity_at = <PyObject*>last_activity_at
            a.activities = activities
            memset(v.kind, 0, self._n_keys)
            v.facts = NULL
            v.view = NULL
            try:
                found = _decide(self, &a, &v, kind, signals, lo, hi)
            finally:
                for i in range(self._n_keys):
                    if v.kind[i] == V_STR:
                        Py_XDECREF(v.obj[i])
                Py_XDECREF(v.facts)
                Py_XDECREF(v.view)
            if found is not None:
                return <tuple>found
        return _python_verdict(
            self.rules, kind, at, owner_changed_at, contact_left_at, contact_change, amount_cut_share,
            close_date_pushes, close_date_slip_days, stage_moved_back, lost_reason, outbound_since_inbound,
            last_outbound_at, last_inbound_at, last_activity_at, activities, signals, lo, hi,
        )


cdef inline int _number(object o, double* out) except -1:
    """An int or float weight or time held exactly as a double (0); BAIL for anything else."""
    cdef long long n
    cdef int overflow = 0
    if PyFloat_CheckExact(o):
        out[0] = PyFloat_AS_DOUBLE(o)
        return 0
    if PyLong_CheckExact(o) or PyBool_Check(o):
        n = PyLong_AsLongLongAndOverflow(o, &overflow)
        if overflow or n > EXACT_LL or n < -EXACT_LL:
            return BAIL
        out[0] = <double>n
        return 0
    return BAIL


cdef object _decide(Verdicts self, Args* a, ViewC* v, str kind, list signals, double lo, double hi):
    """(cause, side), or None where the Python must decide."""
    cdef Item stack_items[STACK_ITEMS]
    cdef double stack_weights[STACK_ITEMS]
    cdef Item* items = stack_items
    cdef double* weights = stack_weights
    cdef Py_ssize_t n = PyList_GET_SIZE(signals), i, j, m, q, n_items = 0, capacity
    cdef int kid, c, k, n_seen = 0, best
    cdef int seen[MAXCAUSES]
    cdef int order[MAXCAUSES]
    cdef double scores[MAXCAUSES]
    cdef CKind* K
    cdef CRule* r
    cdef PyObject* p
    cdef PyObject* found
    cdef double td, wd, age, x, f, total, ours, theirs
    cdef bint ranked_by_python = False
    cdef object s, t

    if kind is self._last_kind:
        kid = self._last_kid
    else:
        found = PyDict_GetItemWithError(self._kind_ids, kind)
        kid = self._n_kinds - 1 if found == NULL else PyLong_AsLong(<object>found)
        self._last_kind = kind
        self._last_kid = kid
    K = &self._kinds[kid]
    capacity = n + (K.rules1 - K.rules0)
    if capacity > STACK_ITEMS:
        items = <Item*>PyMem_Malloc(capacity * sizeof(Item))
        weights = <double*>PyMem_Malloc(capacity * sizeof(double))
        if items == NULL or weights == NULL:
            PyMem_Free(items)
            PyMem_Free(weights)
            raise MemoryError()
    try:
        # the window's text signals: weight x relevance by age
        for i in range(n):
            s = <object>PyList_GET_ITEM(signals, i)
            if type(s) is list:
                if PyList_GET_SIZE(s) < 7:
                    return None
                p = PyList_GET_ITEM(s, 0)
                t = <object>PyList_GET_ITEM(s, 2)
            elif type(s) is tuple or type(s) is _SIGNAL:
                if PyTuple_GET_SIZE(s) < 7:
                    return None
                p = PyTuple_GET_ITEM(s, 0)
                t = <object>PyTuple_GET_ITEM(s, 2)
            else:
                return None
            if _number(t, &td) == BAIL:
                return None
            if not (lo <= td and td <= hi):
                continue
            found = PyDict_GetItemWithError(self._cause_ids, <object>p)
            if found == NULL:
                continue
            c = PyLong_AsLong(<object>found)
            if c >= self._n_scorable:
                continue
            if type(s) is list:
                t = <object>PyList_GET_ITEM(s, 1)
                p = PyList_GET_ITEM(s, 5)
            else:
                t = <object>PyTuple_GET_ITEM(s, 1)
                p = PyTuple_GET_ITEM(s, 5)
            if _number(t, &wd) == BAIL:
                return None
            if wd <= 0:
                continue
            age = (a.at - td) / DAY
            if age < -K.after:
                f = 0.0
            elif age <= 0:
                f = 1.0
            else:
                if K.half_life == 0.0:
                    raise ZeroDivisionError("float division by zero")
                x = age / K.half_life
                f = pow(0.5, x)
                if f > 1.7976931348623157e308 and x - x == 0.0:   # inf from a finite power
                    raise OverflowError("math range error")
                if not (f > K.floor):   # max(floor, f)
                    f = K.floor
            wd = dw_mul(wd, f)
            if wd > 0:
                items[n_items].cause = c
                items[n_items].weight = wd
                items[n_items].side = p
                n_items += 1

        # the kind's rules, in order
        for i in range(K.rules0, K.rules1):
            r = &self._rules[self._kind_rules[i]]
            if r.python:
                wd = PyFloat_AsDouble((<object>r.rule).score(kind, _pyview(v, a)))
            elif _score_rule(self, r, v, a, &wd) == BAIL:
                return None
            if wd > 0:
                items[n_items].cause = r.cause
                items[n_items].weight = wd
                items[n_items].side = r.side
                n_items += 1
        if n_items == 0:
            return ("unknown", None)

        # each cause's score (_combined), in the order the causes were first seen
        for c in range(self._n_causes):
            seen[c] = -1
        for i in range(n_items):
            c = items[i].cause
            if seen[c] < 0:
                seen[c] = n_seen
                order[n_seen] = c
                n_seen += 1
        for j in range(n_seen):
            c = order[j]
            m = 0
            for i in range(n_items):
                if items[i].cause == c:
                    x = items[i].weight
                    q = m
                    while q > 0 and weights[q - 1] < x:   # sorted(weights, reverse=True)
                        weights[q] = weights[q - 1]
                        q -= 1
                    weights[q] = x
                    m += 1
            if m > self._n_pow:
                self._grow_pow(max(m, 2 * self._n_pow))
            for q in range(m):
                if not self._pow_ok[q]:
                    t = self.rules.repeat ** q   # raises as Python's does
                weights[q] = dw_mul(weights[q], self._pow[q])
            scores[j] = _sum(weights, m)
            if scores[j] != scores[j] or self._priority[c] < 0:
                ranked_by_python = True
        total = _sum(scores, n_seen)

        # ranking: highest score, then the earlier priority
        if ranked_by_python:
            first = _ranked_first([self._causes[order[j]] for j in range(n_seen)],
                                  [scores[j] for j in range(n_seen)], self.rules.priority)
            best = self._cause_ids[first]
        else:
            best = order[0]
            x = scores[0]
            for j in range(1, n_seen):
                c = order[j]
                if scores[j] > x or (scores[j] == x and self._priority[c] < self._priority[best]):
                    best = c
                    x = scores[j]
        if total < self._unknown_below:
            return ("unknown", None)
        if best != self._staff:
            return (self._causes[best], None)

        # a staff change's side: its items' votes in order, the kind's default on a tie
        ours = 0.0
        theirs = 0.0
        for i in range(n_items):
            if items[i].cause != best:
                continue
            p = items[i].side
            if <object>p is None:
                continue
            if PyUnicode_CheckExact(<object>p):
                if (<str><object>p) == OURS:
                    ours = ours + items[i].weight
                elif (<str><object>p) == CUSTOMER:
                    theirs = theirs + items[i].weight
            else:
                found = PyDict_GetItemWithError(_VOTES, <object>p)
                if found != NULL:
                    if PyLong_AsLong(<object>found) == 0:
                        ours = ours + items[i].weight
                    else:
                        theirs = theirs + items[i].weight
        if ours == theirs:
            if K.default_side != NULL:
                return (self._causes[best], <object>K.default_side)
            return (self._causes[best], self.rules.default_side.get(kind, "customer"))
        return (self._causes[best], OURS if ours > theirs else CUSTOMER)
    finally:
        if items != stack_items:
            PyMem_Free(items)
            PyMem_Free(weights)
