# cython: language_level=3
"""The cause classifier's ``verdict`` compiled (``_verdict.pyx``): declared here so a compiled caller (the replay's
engine) can ``cimport`` ``Verdicts`` and call ``verdict`` through its C vtable."""

cimport cython

from cpython.object cimport PyObject


cdef struct Cond:
    int key            # the view value's id (``_verdict.pyx``: K_*), -1 for a name not in ``VALUES`` (None)
    double num         # min / max: the bound; step: the weight per unit
    double base        # step: the rule's min for that value, else 0.0
    PyObject* text     # equals: the expected str (borrowed: the Rule holds it)


cdef struct CRule:
    int cause          # index into Verdicts._causes
    double weight
    bint has_cap
    double cap
    int eq0, eq1, min0, min1, max0, max1, step0, step1   # ranges of Verdicts._conds
    bint python        # scored by the Rule's own ``score`` (a construct C does not reproduce exactly)
    PyObject* rule     # the Rule (borrowed: Verdicts.rules holds it)
    PyObject* side     # Rule.side (borrowed)


cdef struct CKind:
    double half_life   # the kind's Relevance
    double floor
    double after
    int rules0, rules1      # range of Verdicts._kind_rules: the rules of the kind, in order
    PyObject* default_side  # borrowed (Verdicts._keep); NULL: looked up per call (a kind no table names)


@cython.final
cdef class Verdicts:
    cdef readonly object rules
    cdef list _keep             # the objects the C arrays point at
    cdef bint _python_only      # rules C cannot follow exactly: every verdict is the Python one
    cdef CRule* _rules
    cdef int _n_rules
    cdef Cond* _conds
    cdef int _n_conds
    cdef int* _kind_rules
    cdef CKind* _kinds          # by kind id; the last is every kind no rule, relevance or side names
    cdef int _n_kinds
    cdef dict _kind_ids
    cdef object _last_kind
    cdef int _last_kid
    cdef tuple _causes          # the contract's causes but unknown, in order, then other rule causes
    cdef dict _cause_ids
    cdef int _n_causes
    cdef int _n_scorable        # the first causes, the ones a text signal may name
    cdef int _staff             # the id of staff_change
    cdef Py_ssize_t* _priority  # Rules.priority.index(cause), -1 when absent
    cdef list _extra_keys       # VALUES names made by VALUES[name](facts), ids from N_HOT on
    cdef int _n_keys
    cdef double _unknown_below
    cdef double* _pow           # repeat ** n
    cdef char* _pow_ok          # 0 where Python's repeat ** n raises
    cdef int _n_pow

    cpdef tuple verdict(self, str kind, double at,
                        object owner_changed_at, object contact_left_at, object contact_change,
                        object amount_cut_share, long close_date_pushes, long close_date_slip_days,
                        bint stage_moved_back, object lost_reason, long outbound_since_inbound,
                        object last_outbound_at, object last_inbound_at, object last_activity_at,
                        long activities, list signals, double lo, double hi)
