/* A character trie of literal phrases, matched over a Python str: the compiled form of ``text.LiteralSet``.
 *
 * It finds exactly what the trie regex of ``text._trie_source`` finds (the tests hold the two equal over the
 * lexicon's phrases and generated texts), without the regex engine's cost of trying each first character's branch
 * in turn: a position whose character starts no phrase costs one bit test, and a match one walk down the trie.
 *
 * Matching at a position walks the trie as far as the text goes, then takes the deepest node on that path whose
 * phrase may end there (the regex tries a node's children before its end, and only one child can match):
 *   END    the phrase's last character is not an ASCII letter or digit: it ends here;
 *   BOUND  it is one: the next character must not be one of [a-z0-9] (or the end of the searched range);
 *   WILD   a phrase written with a trailing *: the match goes on over [a-z0-9]*.
 * A phrase starting with an ASCII letter or digit does not match right after one of [a-z0-9]. A ``plain`` trie
 * (clause and sentence breaks) has neither boundary: every node with a phrase is an END.
 *
 * The Python side builds the trie (``text._flat_trie``) and hands over its nodes and sorted edges as lists.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

enum { TERM_NONE = 0, TERM_END = 1, TERM_BOUND = 2, TERM_WILD = 3 };

#define PAIR_BITS (1 << 16)

typedef struct {
    int32_t first_edge;
    int32_t edges;
    int32_t exact; /* value id of the phrase ending here, or -1 */
    int32_t wild;  /* value id of the wild phrase ending here, or -1 */
    int32_t term;
} Node;

typedef struct {
    PyObject_HEAD
    Node *nodes;
    Py_UCS4 *edge_chars;
    int32_t *edge_children;
    int32_t *path;
    Py_ssize_t node_count;
    Py_ssize_t edge_count;
    Py_ssize_t depth;
    int plain;
    uint8_t firsts[8192]; /* bit per BMP character: it starts a phrase */
    uint8_t alone[8192];  /* bit per BMP character: a phrase of it alone may end there */
    uint8_t pairs[PAIR_BITS / 8]; /* bit per hashed pair of characters: a phrase may start with the two */
    /* the root's children by character, hashed (open addressing): character + 1 (0: empty), child */
    uint32_t *root_keys;
    int32_t *root_kids;
    uint32_t root_mask;
    int root_shift;
    PyObject *values;     /* list: value id -> tuple of values */
} Trie;

static inline int text_alnum(Py_UCS4 c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
static inline int phrase_alnum(Py_UCS4 c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static inline int32_t child_of(const Trie *t, int32_t node, Py_UCS4 c) {
    const Node *n = &t->nodes[node];
    int32_t lo = n->first_edge, hi = n->first_edge + n->edges;
    while (lo < hi) {
        int32_t mid = (lo + hi) >> 1;
        Py_UCS4 m = t->edge_chars[mid];
        if (m == c) return t->edge_children[mid];
        if (m < c) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* A bit of a bitmap of bytes. */
static inline int bit_of(const uint8_t *bits, uint32_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }
static inline void set_bit(uint8_t *bits, uint32_t i) { bits[i >> 3] |= (uint8_t)(1u << (i & 7)); }

/* Whether a phrase may start with the character (outside the BMP: always, match_at decides). */
static inline int may_start(const Trie *t, Py_UCS4 c) { return c >= 65536 || bit_of(t->firsts, c); }

static inline uint32_t pair_bit(Py_UCS4 a, Py_UCS4 b) {
    return ((uint32_t)a * 2654435761u ^ (uint32_t)b * 2246822519u) >> 16;
}

/* Whether a match may start at q, by the character there and the next one (when q + 1 < hi): a filter, true of
 * every position where ``match_at`` finds one (a phrase of one character, or of two or more starting with the
 * pair), and false of most others; a character outside the BMP is always tried. One for each width of character. */
#define MAY_MATCH(NAME, T)                                                                                            \
    static inline int NAME(const Trie *t, const T *s, Py_ssize_t q, Py_ssize_t hi) {                                 \
        Py_UCS4 c = s[q];                                                                                            \
        if (!may_start(t, c)) return 0;                                                                              \
        if (c >= 65536 || bit_of(t->alone, c)) return 1;                                                             \
        return q + 1 < hi && bit_of(t->pairs, pair_bit(c, s[q + 1]));                                                \
    }
MAY_MATCH(may_match_1, Py_UCS1)
MAY_MATCH(may_match_2, Py_UCS2)
MAY_MATCH(may_match_4, Py_UCS4)

static inline uint32_t root_slot(const Trie *t, Py_UCS4 c) { return ((uint32_t)c * 2654435761u) >> t->root_shift; }

static inline int32_t root_child(const Trie *t, Py_UCS4 c) {
    uint32_t i = root_slot(t, c);
    for (;;) {
        uint32_t k = t->root_keys[i];
        if (k == (uint32_t)c + 1) return t->root_kids[i];
        if (k == 0) return -1;
        i = (i + 1) & t->root_mask;
    }
}

/* The end of the match starting at ``p`` (and its value id in ``*id``), or -1. Characters before ``behind`` and
 * from ``hi`` on are outside the text, as they are for a regex given a slice (``behind`` = start of the search)
 * or given pos and endpos (``behind`` = 0). */
static Py_ssize_t match_at(const Trie *t, int kind, const void *data, Py_ssize_t p, Py_ssize_t hi,
                           Py_ssize_t behind, int32_t *id) {
    Py_UCS4 c = PyUnicode_READ(kind, data, p);
    if (!may_start(t, c)) return -1;
    int32_t node = root_child(t, c);
    if (node < 0) return -1;
    if (!t->plain && phrase_alnum(c) && p > behind && text_alnum(PyUnicode_READ(kind, data, p - 1))) return -1;
    int32_t *path = t->path;
    Py_ssize_t d = 0;
    path[0] = node;
    for (Py_ssize_t q = p + 1; q < hi && d + 1 < t->depth; q++) {
        int32_t next = child_of(t, node, PyUnicode_READ(kind, data, q));
        if (next < 0) break;
        path[++d] = node = next;
    }
    for (; d >= 0; d--) {
        const Node *n = &t->nodes[path[d]];
        Py_ssize_t e = p + d + 1;
        switch (n->term) {
        case TERM_END:
            *id = n->exact >= 0 ? n->exact : n->wild;
            return e;
        case TERM_BOUND:
            if (e >= hi || !text_alnum(PyUnicode_READ(kind, data, e))) {
                *id = n->exact;
                return e;
            }
            break;
        case TERM_WILD: {
            Py_ssize_t x = e;
            while (x < hi && text_alnum(PyUnicode_READ(kind, data, x))) x++;
            *id = (x == e && n->exact >= 0) ? n->exact : n->wild;
            return x;
        }
        default:
            break;
        }
    }
    return -1;
}

/* The next hit from *p on, as a regex's finditer moves (leftmost, then the trie's preference): its start in *start,
 * its value id in *id, its end returned and *p moved to it; -1 when none is left before ``hi``. */
static Py_ssize_t next_hit(const Trie *t, int kind, const void *data, Py_ssize_t *p, Py_ssize_t hi, Py_ssize_t behind,
                           Py_ssize_t *start, int32_t *id) {
    Py_ssize_t q = *p;
    while (q < hi) {
        /* past the characters that start no phrase (most of them), a bit test each, without a call */
        switch (kind) {
        case PyUnicode_1BYTE_KIND:
            while (q < hi && !may_match_1(t, data, q, hi)) q++;
            break;
        case PyUnicode_2BYTE_KIND:
            while (q < hi && !may_match_2(t, data, q, hi)) q++;
            break;
        default:
            while (q < hi && !may_match_4(t, data, q, hi)) q++;
            break;
        }
        if (q >= hi) break;
        Py_ssize_t e = match_at(t, kind, data, q, hi, behind, id);
        if (e >= 0) {
            *start = q;
            *p = e;
            return e;
        }
        q++;
    }
    *p = hi;
    return -1;
}

static void range_of(PyObject *text, Py_ssize_t *lo, Py_ssize_t *hi) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(text);
    if (*hi < 0 || *hi > len) *hi = len;
    if (*lo < 0) *lo = 0;
}

/* Append (start, end, value) for each value of the id. */
static int append_hits(const Trie *t, PyObject *out, Py_ssize_t s, Py_ssize_t e, int32_t id) {
    PyObject *vals = PyList_GET_ITEM(t->values, id);
    Py_ssize_t n = PyTuple_GET_SIZE(vals);
    if (n == 0) return 0;
    PyObject *ps = PyLong_FromSsize_t(s), *pe = PyLong_FromSsize_t(e);
    if (!ps || !pe) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_Pack(3, ps, pe, PyTuple_GET_ITEM(vals, i));
        if (!item) goto fail;
        int r = PyList_Append(out, item);
        Py_DECREF(item);
        if (r < 0) goto fail;
    }
    Py_DECREF(ps);
    Py_DECREF(pe);
    return 0;
fail:
    Py_XDECREF(ps);
    Py_XDECREF(pe);
    return -1;
}

static PyObject *Trie_find(Trie *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t lo = 0, hi = -1;
    if (!PyArg_ParseTuple(args, "U|nn:find", &text, &lo, &hi)) return NULL;
    range_of(text, &lo, &hi);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    Py_ssize_t p = lo, s, e;
    int32_t id;
    while ((e = next_hit(self, kind, data, &p, hi, 0, &s, &id)) >= 0) {
        if (append_hits(self, out, s, e, id) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyObject *Trie_search(Trie *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t lo = 0, hi = -1;
    if (!PyArg_ParseTuple(args, "U|nn:search", &text, &lo, &hi)) return NULL;
    range_of(text, &lo, &hi);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t p = lo, s;
    int32_t id;
    return PyBool_FromLong(next_hit(self, kind, data, &p, hi, lo, &s, &id) >= 0);
}

static PyObject *Trie_found_in(Trie *self, PyObject *args) {
    PyObject *text;
    if (!PyArg_ParseTuple(args, "U:found_in", &text)) return NULL;
    Py_ssize_t hi = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    Py_ssize_t p = 0, s;
    int32_t id;
    while (next_hit(self, kind, data, &p, hi, 0, &s, &id) >= 0) {
        PyObject *vals = PyList_GET_ITEM(self->values, id);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(vals); i++) {
            if (PyList_Append(out, PyTuple_GET_ITEM(vals, i)) < 0) {
                Py_DECREF(out);
                return NULL;
            }
        }
    }
    return out;
}

static PyObject *Trie_starts(Trie *self, PyObject *args) {
    PyObject *text;
    if (!PyArg_ParseTuple(args, "U:starts", &text)) return NULL;
    Py_ssize_t hi = PyUnicode_GET_LENGTH(text);
    int32_t id;
    if (hi == 0 || match_at(self, PyUnicode_KIND(text), PyUnicode_DATA(text), 0, hi, 0, &id) < 0)
        return PyTuple_New(0);
    PyObject *vals = PyList_GET_ITEM(self->values, id);
    Py_INCREF(vals);
    return vals;
}

static PyObject *Trie_spans(Trie *self, PyObject *args) {
    PyObject *text;
    if (!PyArg_ParseTuple(args, "U:spans", &text)) return NULL;
    Py_ssize_t hi = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    PyObject *starts = PyList_New(0), *ends = PyList_New(0);
    if (!starts || !ends) goto fail;
    Py_ssize_t p = 0, s, e;
    int32_t id;
    while ((e = next_hit(self, kind, data, &p, hi, 0, &s, &id)) >= 0) {
        PyObject *ps = PyLong_FromSsize_t(s), *pe = PyLong_FromSsize_t(e);
        int bad = !ps || !pe || PyList_Append(starts, ps) < 0 || PyList_Append(ends, pe) < 0;
        Py_XDECREF(ps);
        Py_XDECREF(pe);
        if (bad) goto fail;
    }
    return Py_BuildValue("(NN)", starts, ends);
fail:
    Py_XDECREF(starts);
    Py_XDECREF(ends);
    return NULL;
}

static int read_ints(PyObject *seq, Py_ssize_t n, int32_t *out, const char *what) {
    for (Py_ssize_t i = 0; i < n; i++) {
        long v = PyLong_AsLong(PyList_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) return -1;
        if (v < INT32_MIN || v > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "%s out of range", what);
            return -1;
        }
        out[i] = (int32_t)v;
    }
    return 0;
}

/* Trie(nodes, edge_chars, edge_children, values, depth, plain): ``nodes`` a flat list of five ints per node
 * (first edge, edge count, exact id, wild id, term), node 0 the root; each node's edges sorted by character. */
static int Trie_init(Trie *self, PyObject *args, PyObject *kwds) {
    PyObject *nodes, *chars, *children, *values;
    Py_ssize_t depth;
    int plain;
    static char *kwlist[] = {"nodes", "edge_chars", "edge_children", "values", "depth", "plain", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!O!np:Trie", kwlist, &PyList_Type, &nodes, &PyList_Type,
                                     &chars, &PyList_Type, &children, &PyList_Type, &values, &depth, &plain))
        return -1;
    if (self->nodes != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Trie is already built");
        return -1;
    }
    Py_ssize_t flat = PyList_GET_SIZE(nodes), edges = PyList_GET_SIZE(chars);
    if (flat == 0 || flat % 5 != 0 || PyList_GET_SIZE(children) != edges || depth < 1) {
        PyErr_SetString(PyExc_ValueError, "malformed trie");
        return -1;
    }
    Py_ssize_t count = flat / 5, nvalues = PyList_GET_SIZE(values);
    for (Py_ssize_t i = 0; i < nvalues; i++) {
        if (!PyTuple_Check(PyList_GET_ITEM(values, i))) {
            PyErr_SetString(PyExc_TypeError, "values must be tuples");
            return -1;
        }
    }
    int32_t *raw = PyMem_Malloc(sizeof(int32_t) * (size_t)flat);
    int32_t *edge_chars = PyMem_Malloc(sizeof(int32_t) * (size_t)(edges ? edges : 1));
    self->nodes = PyMem_Malloc(sizeof(Node) * (size_t)count);
    self->edge_chars = PyMem_Malloc(sizeof(Py_UCS4) * (size_t)(edges ? edges : 1));
    self->edge_children = PyMem_Malloc(sizeof(int32_t) * (size_t)(edges ? edges : 1));
    self->path = PyMem_Malloc(sizeof(int32_t) * (size_t)depth);
    if (!raw || !edge_chars || !self->nodes || !self->edge_chars || !self->edge_children || !self->path) {
        PyMem_Free(raw);
        PyMem_Free(edge_chars);
        PyErr_NoMemory();
        return -1;
    }
    int bad = read_ints(nodes, flat, raw, "node") < 0 || read_ints(chars, edges, edge_chars, "character") < 0 ||
              read_ints(children, edges, self->edge_children, "child") < 0;
    for (Py_ssize_t i = 0; !bad && i < count; i++) {
        Node *n = &self->nodes[i];
        n->first_edge = raw[5 * i];
        n->edges = raw[5 * i + 1];
        n->exact = raw[5 * i + 2];
        n->wild = raw[5 * i + 3];
        n->term = raw[5 * i + 4];
        if (n->first_edge < 0 || n->edges < 0 || n->first_edge + n->edges > edges || n->exact >= nvalues ||
            n->wild >= nvalues || n->term < TERM_NONE || n->term > TERM_WILD ||
            (n->term != TERM_NONE && n->exact < 0 && n->wild < 0) || (n->term == TERM_BOUND && n->exact < 0)) {
            PyErr_SetString(PyExc_ValueError, "malformed trie node");
            bad = 1;
        }
    }
    for (Py_ssize_t i = 0; !bad && i < edges; i++) {
        if (edge_chars[i] < 0 || self->edge_children[i] <= 0 || self->edge_children[i] >= count) {
            PyErr_SetString(PyExc_ValueError, "malformed trie edge");
            bad = 1;
        }
        self->edge_chars[i] = (Py_UCS4)edge_chars[i];
    }
    PyMem_Free(raw);
    PyMem_Free(edge_chars);
    if (bad) return -1;
    self->node_count = count;
    self->edge_count = edges;
    self->depth = depth;
    self->plain = plain;
    memset(self->firsts, 0, sizeof(self->firsts));
    memset(self->alone, 0, sizeof(self->alone));
    memset(self->pairs, 0, sizeof(self->pairs));
    const Node *root = &self->nodes[0];
    int bits = 3;
    while (((Py_ssize_t)1 << bits) < 2 * (Py_ssize_t)root->edges) bits++;
    self->root_shift = 32 - bits;
    self->root_mask = ((uint32_t)1 << bits) - 1;
    self->root_keys = PyMem_Calloc((size_t)1 << bits, sizeof(uint32_t));
    self->root_kids = PyMem_Calloc((size_t)1 << bits, sizeof(int32_t));
    if (!self->root_keys || !self->root_kids) {
        PyErr_NoMemory();
        return -1;
    }
    for (int32_t i = root->first_edge; i < root->first_edge + root->edges; i++) {
        Py_UCS4 c = self->edge_chars[i];
        const Node *kid = &self->nodes[self->edge_children[i]];
        if (c < 65536) {
            set_bit(self->firsts, c);
            if (kid->term != TERM_NONE) set_bit(self->alone, c);
            for (int32_t j = kid->first_edge; j < kid->first_edge + kid->edges; j++)
                set_bit(self->pairs, pair_bit(c, self->edge_chars[j]));
        }
        uint32_t h = root_slot(self, c);
        while (self->root_keys[h]) h = (h + 1) & self->root_mask;
        self->root_keys[h] = (uint32_t)c + 1;
        self->root_kids[h] = self->edge_children[i];
    }
    Py_INCREF(values);
    Py_XSETREF(self->values, values);
    return 0;
}

static void Trie_dealloc(Trie *self) {
    PyMem_Free(self->root_keys);
    PyMem_Free(self->root_kids);
    PyMem_Free(self->nodes);
    PyMem_Free(self->edge_chars);
    PyMem_Free(self->edge_children);
    PyMem_Free(self->path);
    Py_XDECREF(self->values);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Trie_methods[] = {
    {"find", (PyCFunction)Trie_find, METH_VARARGS,
     "find(text, lo=0, hi=-1): every hit in text[lo:hi] as (start, end, value), in order; characters before lo "
     "count for a word boundary (a regex's finditer with pos and endpos)."},
    {"search", (PyCFunction)Trie_search, METH_VARARGS,
     "search(text, lo=0, hi=-1): whether text[lo:hi] holds a phrase (as a regex search of the slice)."},
    {"found_in", (PyCFunction)Trie_found_in, METH_VARARGS, "found_in(text): the values of every hit in text."},
    {"starts", (PyCFunction)Trie_starts, METH_VARARGS,
     "starts(text): the values of the phrase text begins with, or ()."},
    {"spans", (PyCFunction)Trie_spans, METH_VARARGS, "spans(text): (starts, ends) of every hit in text."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TrieType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "services.detector.domain.causes._scan.Trie",
    .tp_basicsize = sizeof(Trie),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Literal phrases in a character trie, matched over a str (see text.LiteralSet).",
    .tp_new = PyType_GenericNew, /* zeroed: pointers NULL until init */
    .tp_init = (initproc)Trie_init,
    .tp_dealloc = (destructor)Trie_dealloc,
    .tp_methods = Trie_methods,
};

/* ------------------------------------------------------------------------------------------------------------
 * Extractor: the hit loop of ``Lexicon.extract`` (``lexicon.py``, ``Lexicon._hits`` and ``Lexicon._weight``), the
 * same arithmetic in the same order; the Python versions are its reference and its stand-in, and the tests hold
 * the two equal. Sums and rounding go through Python's own ``sum`` and ``round`` so they agree to the last bit.
 */

#define MAX_CAUSES 32
#define ROUND_CACHE_BITS 8

typedef struct {
    int32_t cause, lang, side, when_ours, when_customer; /* side and causes: -1 for none; side 0 ours, 1 customer */
    double weight;
    int boost, stop, sided;
} Term;

typedef struct {
    PyObject *name;
    Py_ssize_t pre_chars, post_chars, booster_reach;
    int plain_breaks;
    Trie *clauses, *sentences, *pre, *post, *post_start, *sides, *after_cue;
} Lang;

typedef struct {
    PyObject_HEAD
    Trie *terms;
    Term *term_table;
    Py_ssize_t term_count;
    Lang *langs;
    Py_ssize_t lang_count;
    PyObject *causes; /* list of str */
    PyObject *sides;  /* ("ours", "customer") */
    PyObject *objects; /* every object referred to above, kept alive */
    double merge_repeat, cap, min_share, min_weight;
    Py_ssize_t max_per_text;
    PyObject *sum, *round, *four;
    PyObject *text_names;       /* "text:<cause>" for each cause */
    PyObject *lost_reason_name; /* "field:lost_reason" */
    Py_ssize_t excerpt_limit;
    uint64_t round_in[1 << ROUND_CACHE_BITS];
    double round_out[1 << ROUND_CACHE_BITS];
    uint8_t round_filled[1 << ROUND_CACHE_BITS];
} Extractor;

typedef struct {
    Py_ssize_t start, end;
    int32_t term;
} Found;

typedef struct {
    double weight;
    Py_ssize_t start, end;
    int32_t lang, side;
} Hit;

typedef struct {
    Py_ssize_t *starts, *ends;
    Py_ssize_t n;
    int done;
} Spans;

/* Where a trie's phrases fall in the whole text, once per text (``Segmented``). */
static int spans_of(const Trie *t, int kind, const void *data, Py_ssize_t len, Spans *sp) {
    if (sp->done) return 0;
    Py_ssize_t cap = 8, n = 0;
    sp->starts = PyMem_Malloc(sizeof(Py_ssize_t) * cap);
    sp->ends = PyMem_Malloc(sizeof(Py_ssize_t) * cap);
    if (!sp->starts || !sp->ends) return -1;
    Py_ssize_t p = 0, s, e;
    int32_t id;
    while ((e = next_hit(t, kind, data, &p, len, 0, &s, &id)) >= 0) {
        if (n == cap) {
            cap *= 2;
            Py_ssize_t *a = PyMem_Realloc(sp->starts, sizeof(Py_ssize_t) * cap);
            if (!a) return -1;
            sp->starts = a;
            a = PyMem_Realloc(sp->ends, sizeof(Py_ssize_t) * cap);
            if (!a) return -1;
            sp->ends = a;
        }
        sp->starts[n] = s;
        sp->ends[n] = e;
        n++;
    }
    sp->n = n;
    sp->done = 1;
    return 0;
}

/* ``Segmented.bounds``: after the last break ending at or before start, up to the first starting at or after end. */
static void bounds_of(const Spans *sp, Py_ssize_t len, Py_ssize_t start, Py_ssize_t end, Py_ssize_t *lo,
                      Py_ssize_t *hi) {
    Py_ssize_t a = 0, b = sp->n; /* bisect_right(ends, start) */
    while (a < b) {
        Py_ssize_t m = (a + b) / 2;
        if (start < sp->ends[m]) b = m;
        else a = m + 1;
    }
    *lo = a ? sp->ends[a - 1] : 0;
    a = 0, b = sp->n; /* bisect_left(starts, end) */
    while (a < b) {
        Py_ssize_t m = (a + b) / 2;
        if (sp->starts[m] < end) a = m + 1;
        else b = m;
    }
    *hi = a < sp->n ? sp->starts[a] : len;
}

/* A regex search of the slice text[lo:hi]. */
static int slice_has(const Trie *t, int kind, const void *data, Py_ssize_t lo, Py_ssize_t hi) {
    Py_ssize_t p = lo, s;
    int32_t id;
    return next_hit(t, kind, data, &p, hi, lo, &s, &id) >= 0;
}

/* The values (floats) of every phrase in the slice text[lo:hi], or only of the one it begins with: the smallest
 * into *least, whether any into *any. */
static int least_in(const Trie *t, int kind, const void *data, Py_ssize_t lo, Py_ssize_t hi, int at_start,
                    double *least, int *any) {
    Py_ssize_t p = lo, s;
    int32_t id;
    for (;;) {
        if (at_start ? lo >= hi || match_at(t, kind, data, lo, hi, lo, &id) < 0
                     : next_hit(t, kind, data, &p, hi, lo, &s, &id) < 0)
            return 0;
        PyObject *vals = PyList_GET_ITEM(t->values, id);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(vals); i++) {
            double v = PyFloat_AsDouble(PyTuple_GET_ITEM(vals, i));
            if (v == -1.0 && PyErr_Occurred()) return -1;
            if (!*any || v < *least) *least = v;
            *any = 1;
        }
        if (at_start) return 0;
    }
}

/* Python's sum of the hits' weights (its own order of additions, whatever the version). Before 3.12, ``sum`` of
 * floats adds them one by one into a C double from 0 (an empty sum is the int 0, read as 0.0): done here without
 * the list. From 3.12 it compensates the rounding, so Python's own is called. */
static PyObject *py_sum(Extractor *x, const Hit *hits, Py_ssize_t from, Py_ssize_t to, int side) {
#if PY_VERSION_HEX < 0x030C0000
    (void)x;
    double total = 0.0;
    for (Py_ssize_t i = from; i < to; i++) {
        if (side >= 0 && hits[i].side != side) continue;
        total += hits[i].weight;
    }
    return PyFloat_FromDouble(total);
#else
    PyObject *list = PyList_New(0); /* the weights of the hits on ``side`` (any side: -1) */
    if (!list) return NULL;
    for (Py_ssize_t i = from; i < to; i++) {
        if (side >= 0 && hits[i].side != side) continue;
        PyObject *w = PyFloat_FromDouble(hits[i].weight);
        if (!w || PyList_Append(list, w) < 0) {
            Py_XDECREF(w);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(w);
    }
    PyObject *total = PyObject_CallOneArg(x->sum, list);
    Py_DECREF(list);
    return total;
#endif
}

static int as_double(PyObject *o, double *out) {
    if (!o) return -1;
    *out = PyFloat_AsDouble(o);
    Py_DECREF(o);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* Python's round(v, 4) (correctly rounded through decimal digits, so not cheap), remembered for the last values
 * seen in a small table: a lexicon's weights and factors repeat. A pure function of v's bits, so the table only
 * saves the call. */
static int py_round4(Extractor *x, double v, double *out) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    size_t slot = (size_t)((bits * 0x9E3779B97F4A7C15ull) >> (64 - ROUND_CACHE_BITS));
    if (x->round_filled[slot] && x->round_in[slot] == bits) {
        *out = x->round_out[slot];
        return 0;
    }
    PyObject *f = PyFloat_FromDouble(v);
    if (!f) return -1;
    PyObject *r = PyObject_CallFunctionObjArgs(x->round, f, x->four, NULL);
    Py_DECREF(f);
    if (as_double(r, out) < 0) return -1;
    x->round_in[slot] = bits;
    x->round_out[slot] = *out;
    x->round_filled[slot] = 1;
    return 0;
}

/* ``Language.side``: whose person the hit is about, from side cues in its sentence (-1: neither). */
static int side_of(Extractor *x, const Lang *lang, int kind, const void *data, Py_ssize_t len, Spans *sentences,
                   Py_ssize_t start, Py_ssize_t end, int32_t *side) {
    if (spans_of(lang->sentences, kind, data, len, sentences) < 0) return -1;
    Py_ssize_t lo, hi;
    bounds_of(sentences, len, start, end, &lo, &hi);
    double ours = 0.0, customer = 0.0;
    const Trie *t = lang->sides;
    Py_ssize_t p = lo, s, e;
    int32_t id;
    while ((e = next_hit(t, kind, data, &p, hi, 0, &s, &id)) >= 0) {
        if (s < end && e > start) continue;
        Py_ssize_t gap = e <= start ? start - e : s - end;
        double near = 1.0 + (double)(gap > 0 ? gap : 0) / 15.0;
        PyObject *vals = PyList_GET_ITEM(t->values, id);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(vals); i++) {
            PyObject *v = PyTuple_GET_ITEM(vals, i);
            double w = PyFloat_AsDouble(PyTuple_GET_ITEM(v, 1));
            if (w == -1.0 && PyErr_Occurred()) return -1;
            if (PyUnicode_Compare(PyTuple_GET_ITEM(v, 0), PyTuple_GET_ITEM(x->sides, 0)) == 0) ours += w / near;
            else customer += w / near;
        }
    }
    *side = ours == customer ? -1 : (ours > customer ? 0 : 1);
    return 0;
}

/* Stable sort, strongest first (as sorting on the negated weight). */
static void sort_hits(Hit *h, Py_ssize_t n) {
    for (Py_ssize_t i = 1; i < n; i++) {
        Hit v = h[i];
        Py_ssize_t j = i;
        while (j > 0 && h[j - 1].weight < v.weight) {
            h[j] = h[j - 1];
            j--;
        }
        h[j] = v;
    }
}

static PyObject *hit_tuple(Extractor *x, const Hit *h) {
    PyObject *side = h->side < 0 ? Py_None : PyTuple_GET_ITEM(x->sides, h->side);
    return Py_BuildValue("(dnnOO)", h->weight, h->start, h->end, x->langs[h->lang].name, side);
}

/* What one text speaks for: its hits grouped by cause, causes in order of their first hit, each group strongest
 * first; each cause's weight; the causes ``extract`` keeps, strongest first; the text's break positions. */
typedef struct {
    Hit *grouped;
    Py_ssize_t first[MAX_CAUSES + 1];
    int32_t cause[MAX_CAUSES];
    double weight[MAX_CAUSES];
    Py_ssize_t kept[MAX_CAUSES];
    Py_ssize_t ncauses, nkept;
    Spans *spans; /* clauses and sentences of each language */
} Weighed;

static void weighed_free(Extractor *x, Weighed *w) {
    if (w->spans) {
        for (Py_ssize_t i = 0; i < 2 * x->lang_count; i++) {
            PyMem_Free(w->spans[i].starts);
            PyMem_Free(w->spans[i].ends);
        }
    }
    PyMem_Free(w->spans);
    PyMem_Free(w->grouped);
    w->spans = NULL;
    w->grouped = NULL;
}

/* ``Lexicon._kept_here``: fills *w (free it with weighed_free, also on failure); -1 with an exception set. */
static int weigh(Extractor *x, PyObject *text, double factor, Weighed *w) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Found *found = NULL;
    Hit *hits = NULL;
    int32_t *causes_of = NULL;
    Py_ssize_t nfound = 0, cap = 0, nhits = 0;
    memset(w, 0, sizeof *w);
    /* every term hit, in order (``LiteralSet.find``) */
    Py_ssize_t p = 0, s, e;
    int32_t id;
    while ((e = next_hit(x->terms, kind, data, &p, len, 0, &s, &id)) >= 0) {
        PyObject *vals = PyList_GET_ITEM(x->terms->values, id);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(vals); i++) {
            if (nfound == cap) {
                cap = cap ? 2 * cap : 8;
                Found *f = PyMem_Realloc(found, sizeof(Found) * cap);
                if (!f) goto nomem;
                found = f;
            }
            found[nfound].start = s;
            found[nfound].end = e;
            found[nfound].term = (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(vals, i));
            nfound++;
        }
    }
    if (nfound == 0) return 0;
    hits = PyMem_Malloc(sizeof(Hit) * nfound);
    causes_of = PyMem_Malloc(sizeof(int32_t) * nfound);
    w->spans = PyMem_Calloc((size_t)x->lang_count * 2, sizeof(Spans));
    if (!hits || !causes_of || !w->spans) goto nomem;
    uint32_t boosted = 0;
    for (Py_ssize_t i = 0; i < nfound; i++) {
        const Term *t = &x->term_table[found[i].term];
        if (t->boost) boosted |= 1u << t->cause;
    }
    for (Py_ssize_t i = 0; i < nfound; i++) {
        const Term *t = &x->term_table[found[i].term];
        if (t->boost || t->stop || (t->weight <= 0.0 && !(boosted & (1u << t->cause)))) continue;
        const Lang *lang = &x->langs[t->lang];
        Py_ssize_t start = found[i].start, end = found[i].end;
        double weight = t->weight;
        int boost = (boosted >> t->cause) & 1;
        /* ``Language.alone``: no modifier cue within reach, whatever the clause */
        if (boost || !lang->plain_breaks ||
            slice_has(lang->pre, kind, data, start > lang->pre_chars ? start - lang->pre_chars : 0, start) ||
            slice_has(lang->after_cue, kind, data, end, len - end > lang->post_chars ? end + lang->post_chars : len)) {
            Spans *clauses = &w->spans[2 * t->lang];
            if (spans_of(lang->clauses, kind, data, len, clauses) < 0) goto nomem;
            Py_ssize_t lo, hi;
            bounds_of(clauses, len, start, end, &lo, &hi);
            if (boost) { /* ``Lexicon._bonus`` */
                double bonus = 0.0;
                Py_ssize_t reach = lang->booster_reach;
                for (Py_ssize_t k = 0; k < nfound; k++) {
                    const Term *b = &x->term_table[found[k].term];
                    Py_ssize_t s = found[k].start, e = found[k].end;
                    if (!b->boost) continue;
                    int inside = lo <= s && e <= hi && (e <= start || s >= end);
                    if (b->cause == t->cause && inside && start - e <= reach && s - end <= reach && b->weight > bonus)
                        bonus = b->weight;
                }
                weight += bonus;
            }
            if (weight <= 0.0) continue;
            /* ``Language.modifier`` */
            Py_ssize_t blo = start - lang->pre_chars > lo ? start - lang->pre_chars : lo;
            Py_ssize_t ahi = end + lang->post_chars < hi ? end + lang->post_chars : hi;
            if (ahi < end) ahi = end;
            if (blo > start) blo = start;
            if (slice_has(lang->pre, kind, data, blo, start) || slice_has(lang->after_cue, kind, data, end, ahi)) {
                double least = 1.0;
                int any = 0;
                if (least_in(lang->pre, kind, data, blo, start, 0, &least, &any) < 0 ||
                    least_in(lang->post, kind, data, end, ahi, 0, &least, &any) < 0)
                    goto fail;
                Py_ssize_t q = end;
                while (q < ahi && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, q))) q++;
                if (least_in(lang->post_start, kind, data, q, ahi, 1, &least, &any) < 0) goto fail;
                weight *= any ? least : 1.0;
            }
            if (weight <= 0.0) continue;
        }
        int32_t cause = t->cause, side = t->side;
        if (t->sided) {
            int32_t found_side;
            if (side_of(x, lang, kind, data, len, &w->spans[2 * t->lang + 1], start, end, &found_side) < 0)
                goto fail;
            if (found_side >= 0) side = found_side;
            if (side == 0 && t->when_ours >= 0) cause = t->when_ours;
            else if (side == 1 && t->when_customer >= 0) cause = t->when_customer;
        }
        Py_ssize_t c;
        for (c = 0; c < w->ncauses && w->cause[c] != cause; c++) {
        }
        if (c == w->ncauses) w->cause[w->ncauses++] = cause;
        hits[nhits].weight = weight;
        hits[nhits].start = start;
        hits[nhits].end = end;
        hits[nhits].lang = t->lang;
        hits[nhits].side = side;
        causes_of[nhits] = cause;
        nhits++;
    }
    /* group the hits by cause (``dict.setdefault``) and weigh each cause (``Lexicon._weight``) */
    w->grouped = PyMem_Malloc(sizeof(Hit) * (nhits ? nhits : 1));
    if (!w->grouped) goto nomem;
    Py_ssize_t g = 0;
    Py_ssize_t order[MAX_CAUSES];
    for (Py_ssize_t c = 0; c < w->ncauses; c++) {
        w->first[c] = g;
        for (Py_ssize_t i = 0; i < nhits; i++)
            if (causes_of[i] == w->cause[c]) w->grouped[g++] = hits[i];
    }
    w->first[w->ncauses] = g;
    for (Py_ssize_t c = 0; c < w->ncauses; c++) {
        Hit *h = &w->grouped[w->first[c]];
        Py_ssize_t n = w->first[c + 1] - w->first[c];
        double v;
        if (n == 1) {
            v = h[0].weight * factor;
        } else {
            sort_hits(h, n);
            double rest;
            if (as_double(py_sum(x, h, 1, n, -1), &rest) < 0) goto fail;
            v = (h[0].weight + x->merge_repeat * rest) * factor;
        }
        if (py_round4(x, v < x->cap ? v : x->cap, &w->weight[c]) < 0) goto fail;
        order[c] = c;
    }
    for (Py_ssize_t i = 1; i < w->ncauses; i++) { /* stable, strongest cause first */
        Py_ssize_t v = order[i], j = i;
        while (j > 0 && w->weight[order[j - 1]] < w->weight[v]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    if (w->ncauses) {
        double top = w->weight[order[0]] * x->min_share;
        double floor = x->min_weight > top ? x->min_weight : top;
        for (Py_ssize_t k = 0; k < w->ncauses && k < x->max_per_text; k++)
            if (w->weight[order[k]] >= floor) w->kept[w->nkept++] = order[k];
    }
    PyMem_Free(found);
    PyMem_Free(hits);
    PyMem_Free(causes_of);
    return 0;
nomem:
    PyErr_NoMemory();
fail:
    PyMem_Free(found);
    PyMem_Free(hits);
    PyMem_Free(causes_of);
    return -1;
}

static PyObject *Extractor_hits(Extractor *x, PyObject *args) {
    PyObject *text;
    double factor;
    if (!PyArg_ParseTuple(args, "Ud:hits", &text, &factor)) return NULL;
    Weighed w;
    PyObject *out = NULL;
    if (weigh(x, text, factor, &w) < 0) goto done;
    out = PyList_New(0);
    for (Py_ssize_t k = 0; out && k < w.nkept; k++) {
        Py_ssize_t c = w.kept[k];
        PyObject *list = PyList_New(w.first[c + 1] - w.first[c]);
        if (!list) goto fail;
        for (Py_ssize_t i = w.first[c]; i < w.first[c + 1]; i++) {
            PyObject *h = hit_tuple(x, &w.grouped[i]);
            if (!h) {
                Py_DECREF(list);
                goto fail;
            }
            PyList_SET_ITEM(list, i - w.first[c], h);
        }
        PyObject *item = Py_BuildValue("(dON)", w.weight[c], PyList_GET_ITEM(x->causes, w.cause[c]), list);
        if (!item || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            goto fail;
        }
        Py_DECREF(item);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    weighed_free(x, &w);
    return out;
}

/* ``text.excerpt``: the matched words inside their sentence, cut to ``limit`` characters around the match. */
static PyObject *excerpt_of(PyObject *shown, Py_ssize_t start, Py_ssize_t end, Py_ssize_t lo, Py_ssize_t hi,
                            Py_ssize_t limit) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(shown);
    int kind = PyUnicode_KIND(shown);
    const void *data = PyUnicode_DATA(shown);
    if (lo < 0) lo = 0;
    if (hi > len) hi = len;
    Py_ssize_t left = lo, right = hi;
    int cut = hi - lo > limit;
    if (cut) {
        Py_ssize_t room = limit - (end - start) - 2;
        if (room < 0) room = 0;
        left = start - room / 2 > lo ? start - room / 2 : lo;
        right = left + limit - 2 < hi ? left + limit - 2 : hi;
        left = right - (limit - 2) > lo ? right - (limit - 2) : lo;
    }
    if (right < left) right = left;
    Py_ssize_t a = left, b = right; /* str.strip() */
    while (a < b && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, a))) a++;
    while (b > a && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, b - 1))) b--;
    PyObject *words = PyUnicode_Substring(shown, a, b);
    if (!words || !cut) return words;
    int before = left > lo, after = right < hi;
    if (!before && !after) return words;
    PyObject *joined = PyUnicode_FromFormat("%s%U%s", before ? "\xe2\x80\xa6" : "", words, after ? "\xe2\x80\xa6" : "");
    Py_DECREF(words);
    return joined;
}

/* extract(text, event_id, at, direction, kind, prepare, signal, kind_factor, direction_factor): ``Lexicon.extract``
 * whole. ``prepare``: the Python preparation, for a text ``prepare_stable`` declines; ``signal``: the Signal type,
 * made without running its Python constructor, or None for each signal's fields as a list with no excerpt and no
 * signal name ([cause, weight, at, event_id, None, side, None]: what the replay's engine keeps and decides on,
 * without finding the sentence of each match). */
static PyObject *prepare_stable(PyObject *module, PyObject *text);

static PyObject *Extractor_extract(Extractor *x, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "extract takes 9 arguments");
        return NULL;
    }
    PyObject *text = args[0], *event_id = args[1], *at = args[2], *direction = args[3], *kind = args[4];
    PyObject *prepare = args[5], *signal = args[6], *kind_factor = args[7], *direction_factor = args[8];
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text must be a str");
        return NULL;
    }
    int bare = signal == Py_None;
    if ((!bare && (!PyType_Check(signal) || !PyType_IsSubtype((PyTypeObject *)signal, &PyTuple_Type))) ||
        !PyDict_Check(kind_factor) || !PyDict_Check(direction_factor)) {
        PyErr_SetString(PyExc_TypeError, "signal must be a tuple type and the factors dicts");
        return NULL;
    }
    if (PyUnicode_GET_LENGTH(text) == 0) return PyList_New(0);
    PyObject *prepared = prepare_stable(NULL, text);
    if (prepared == Py_None) {
        Py_DECREF(prepared);
        prepared = PyObject_CallOneArg(prepare, text);
    }
    if (!prepared) return NULL;
    if (!PyTuple_Check(prepared) || PyTuple_GET_SIZE(prepared) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(prepared, 0)) ||
        !PyUnicode_Check(PyTuple_GET_ITEM(prepared, 1))) {
        Py_DECREF(prepared);
        PyErr_SetString(PyExc_TypeError, "prepare must give two str");
        return NULL;
    }
    PyObject *shown = PyTuple_GET_ITEM(prepared, 0), *folded = PyTuple_GET_ITEM(prepared, 1);
    double factor = 1.0, f;
    PyObject *v = PyDict_GetItemWithError(kind_factor, kind);
    if (v) {
        if ((f = PyFloat_AsDouble(v)) == -1.0 && PyErr_Occurred()) goto fail_prepared;
        factor = f;
    } else if (PyErr_Occurred()) {
        goto fail_prepared;
    }
    v = PyDict_GetItemWithError(direction_factor, direction);
    if (v) {
        if ((f = PyFloat_AsDouble(v)) == -1.0 && PyErr_Occurred()) goto fail_prepared;
        factor *= f;
    } else if (PyErr_Occurred()) {
        goto fail_prepared;
    }
    Weighed w;
    PyObject *out = NULL;
    if (weigh(x, folded, factor, &w) < 0) goto done;
    out = PyList_New(w.nkept);
    int lost_reason = PyUnicode_Check(kind) && PyUnicode_CompareWithASCIIString(kind, "lost_reason") == 0;
    Py_ssize_t len = PyUnicode_GET_LENGTH(folded);
    for (Py_ssize_t k = 0; out && k < w.nkept; k++) { /* ``Lexicon._signal`` */
        Py_ssize_t c = w.kept[k];
        const Hit *top = &w.grouped[w.first[c]];
        PyObject *side = Py_None;
        if (PyUnicode_CompareWithASCIIString(PyList_GET_ITEM(x->causes, w.cause[c]), "staff_change") == 0) {
            double ours, customer;
            if (as_double(py_sum(x, w.grouped, w.first[c], w.first[c + 1], 0), &ours) < 0 ||
                as_double(py_sum(x, w.grouped, w.first[c], w.first[c + 1], 1), &customer) < 0)
                goto fail;
            if (ours != customer) side = PyTuple_GET_ITEM(x->sides, ours > customer ? 0 : 1);
        }
        if (bare) {
            PyObject *fields = PyList_New(7), *weight = PyFloat_FromDouble(w.weight[c]);
            if (!fields || !weight) {
                Py_XDECREF(fields);
                Py_XDECREF(weight);
                goto fail;
            }
            PyObject *cause = PyList_GET_ITEM(x->causes, w.cause[c]);
            Py_INCREF(cause);
            Py_INCREF(at);
            Py_INCREF(event_id);
            Py_INCREF(Py_None);
            Py_INCREF(side);
            Py_INCREF(Py_None);
            PyList_SET_ITEM(fields, 0, cause);
            PyList_SET_ITEM(fields, 1, weight);
            PyList_SET_ITEM(fields, 2, at);
            PyList_SET_ITEM(fields, 3, event_id);
            PyList_SET_ITEM(fields, 4, Py_None);
            PyList_SET_ITEM(fields, 5, side);
            PyList_SET_ITEM(fields, 6, Py_None);
            PyList_SET_ITEM(out, k, fields);
            continue;
        }
        const Lang *lang = &x->langs[top->lang];
        Spans *sentences = &w.spans[2 * top->lang + 1];
        if (spans_of(lang->sentences, PyUnicode_KIND(folded), PyUnicode_DATA(folded), len, sentences) < 0) {
            PyErr_NoMemory();
            goto fail;
        }
        Py_ssize_t lo, hi;
        bounds_of(sentences, len, top->start, top->end, &lo, &hi);
        PyObject *words = excerpt_of(shown, top->start, top->end, lo, hi, x->excerpt_limit);
        if (!words) goto fail;
        PyObject *weight = PyFloat_FromDouble(w.weight[c]);
        PyObject *name = lost_reason ? x->lost_reason_name : PyList_GET_ITEM(x->text_names, w.cause[c]);
        PyObject *fields = weight ? PyTuple_Pack(7, PyList_GET_ITEM(x->causes, w.cause[c]), weight, at, event_id,
                                                 words, side, name)
                                  : NULL;
        Py_XDECREF(weight);
        Py_DECREF(words);
        if (!fields) goto fail;
        PyObject *packed = PyTuple_Pack(1, fields);
        Py_DECREF(fields);
        if (!packed) goto fail;
        PyObject *made = PyTuple_Type.tp_new((PyTypeObject *)signal, packed, NULL);
        Py_DECREF(packed);
        if (!made) goto fail;
        PyList_SET_ITEM(out, k, made);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    weighed_free(x, &w);
    Py_DECREF(prepared);
    return out;
fail_prepared:
    Py_DECREF(prepared);
    return NULL;
}

/* Every value of the trie a float (sided: a (str, float) pair). */
static int check_values(const Trie *t, int sided) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(t->values); i++) {
        PyObject *vals = PyList_GET_ITEM(t->values, i);
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(vals); k++) {
            PyObject *v = PyTuple_GET_ITEM(vals, k);
            int ok = sided ? PyTuple_Check(v) && PyTuple_GET_SIZE(v) == 2 && PyUnicode_Check(PyTuple_GET_ITEM(v, 0)) &&
                                 PyFloat_Check(PyTuple_GET_ITEM(v, 1))
                           : PyFloat_Check(v);
            if (!ok) {
                PyErr_SetString(PyExc_TypeError, sided ? "side cues must be (str, float)" : "cue factors must be floats");
                return -1;
            }
        }
    }
    return 0;
}

static Trie *as_trie(PyObject *o) {
    if (!PyObject_TypeCheck(o, &TrieType)) {
        PyErr_SetString(PyExc_TypeError, "expected a Trie");
        return NULL;
    }
    return (Trie *)o;
}

/* Extractor(terms, term_table, languages, causes, sides, settings): ``terms`` a Trie whose values are indexes
 * into ``term_table`` (cause, language, side, when_ours, when_customer, weight, boost, stop, sided: indexes into
 * ``causes``, ``languages`` and ``sides`` or -1); ``languages`` (name, pre_chars, post_chars, booster_reach,
 * plain_breaks, clauses, sentences, pre, post, post_start, sides, after_cue: the last seven Tries);
 * ``settings`` (merge_repeat, cap, max_per_text, min_share, min_weight). */
static int Extractor_init(Extractor *x, PyObject *args, PyObject *kwds) {
    PyObject *terms, *table, *langs, *causes, *sides, *settings;
    static char *kwlist[] = {"terms", "term_table", "languages", "causes", "sides", "settings", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!O!O!O!O!:Extractor", kwlist, &terms, &PyList_Type, &table,
                                     &PyList_Type, &langs, &PyList_Type, &causes, &PyTuple_Type, &sides,
                                     &PyTuple_Type, &settings))
        return -1;
    if (x->objects != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Extractor is already built");
        return -1;
    }
    if (!as_trie(terms)) return -1;
    Py_ssize_t ncauses = PyList_GET_SIZE(causes);
    if (ncauses > MAX_CAUSES || PyTuple_GET_SIZE(sides) != 2) {
        PyErr_SetString(PyExc_ValueError, "too many causes, or sides not a pair");
        return -1;
    }
    if (!PyArg_ParseTuple(settings, "ddnddn:settings", &x->merge_repeat, &x->cap, &x->max_per_text, &x->min_share,
                          &x->min_weight, &x->excerpt_limit))
        return -1;
    if (x->excerpt_limit < 2) {
        PyErr_SetString(PyExc_ValueError, "excerpt limit below 2");
        return -1;
    }
    x->text_names = PyList_New(ncauses);
    x->lost_reason_name = PyUnicode_FromString("field:lost_reason");
    if (!x->text_names || !x->lost_reason_name) return -1;
    for (Py_ssize_t i = 0; i < ncauses; i++) {
        PyObject *name = PyUnicode_FromFormat("text:%U", PyList_GET_ITEM(causes, i));
        if (!name) return -1;
        PyList_SET_ITEM(x->text_names, i, name);
    }
    x->term_count = PyList_GET_SIZE(table);
    x->lang_count = PyList_GET_SIZE(langs);
    x->term_table = PyMem_Calloc((size_t)(x->term_count ? x->term_count : 1), sizeof(Term));
    x->langs = PyMem_Calloc((size_t)(x->lang_count ? x->lang_count : 1), sizeof(Lang));
    if (!x->term_table || !x->langs) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < x->term_count; i++) {
        Term *t = &x->term_table[i];
        if (!PyArg_ParseTuple(PyList_GET_ITEM(table, i), "iiiiidppp:term", &t->cause, &t->lang, &t->side,
                              &t->when_ours, &t->when_customer, &t->weight, &t->boost, &t->stop, &t->sided))
            return -1;
        if (t->cause < 0 || t->cause >= ncauses || t->lang < 0 || t->lang >= x->lang_count || t->side < -1 ||
            t->side > 1 || t->when_ours < -1 || t->when_ours >= ncauses || t->when_customer < -1 ||
            t->when_customer >= ncauses) {
            PyErr_SetString(PyExc_ValueError, "term out of range");
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < x->lang_count; i++) {
        Lang *l = &x->langs[i];
        PyObject *t[7];
        if (!PyArg_ParseTuple(PyList_GET_ITEM(langs, i), "Unnnp" "OOOOOOO:language", &l->name, &l->pre_chars,
                              &l->post_chars, &l->booster_reach, &l->plain_breaks, &t[0], &t[1], &t[2], &t[3],
                              &t[4], &t[5], &t[6]))
            return -1;
        Trie **slots[7] = {&l->clauses, &l->sentences, &l->pre, &l->post, &l->post_start, &l->sides, &l->after_cue};
        for (int k = 0; k < 7; k++)
            if (!(*slots[k] = as_trie(t[k]))) return -1;
        if (l->pre_chars < 0 || l->post_chars < 0) {
            PyErr_SetString(PyExc_ValueError, "negative reach");
            return -1;
        }
        /* the values the hit loop reads without checking: cue factors are floats, side cues (side, weight) */
        Trie *floats[3] = {l->pre, l->post, l->post_start};
        for (int k = 0; k < 3; k++)
            if (check_values(floats[k], 0) < 0) return -1;
        if (check_values(l->sides, 1) < 0) return -1;
    }
    /* every term id the trie can give names a term */
    PyObject *vals = ((Trie *)terms)->values;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(vals); i++) {
        PyObject *tup = PyList_GET_ITEM(vals, i);
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(tup); k++) {
            long v = PyLong_AsLong(PyTuple_GET_ITEM(tup, k));
            if (v < 0 || v >= x->term_count) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "term id out of range");
                return -1;
            }
        }
    }
    PyObject *builtins = PyEval_GetBuiltins();
    x->sum = Py_XNewRef(PyDict_GetItemString(builtins, "sum"));
    x->round = Py_XNewRef(PyDict_GetItemString(builtins, "round"));
    x->four = PyLong_FromLong(4);
    if (!x->sum || !x->round || !x->four) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "no sum or round");
        return -1;
    }
    x->terms = (Trie *)terms;
    x->causes = Py_NewRef(causes);
    x->sides = Py_NewRef(sides);
    PyObject *held = PySequence_Tuple(langs); /* the Tries and language names, as they are now */
    if (!held) return -1;
    x->objects = PyTuple_Pack(2, terms, held);
    Py_DECREF(held);
    return x->objects ? 0 : -1;
}

static void Extractor_dealloc(Extractor *x) {
    PyMem_Free(x->term_table);
    PyMem_Free(x->langs);
    Py_XDECREF(x->causes);
    Py_XDECREF(x->sides);
    Py_XDECREF(x->objects);
    Py_XDECREF(x->sum);
    Py_XDECREF(x->round);
    Py_XDECREF(x->four);
    Py_XDECREF(x->text_names);
    Py_XDECREF(x->lost_reason_name);
    Py_TYPE(x)->tp_free((PyObject *)x);
}

static PyMethodDef Extractor_methods[] = {
    {"extract", (PyCFunction)(void (*)(void))Extractor_extract, METH_FASTCALL,
     "extract(text, event_id, at, direction, kind, prepare, signal, kind_factor, direction_factor): "
     "Lexicon.extract's signals (see lexicon.py)."},
    {"hits", (PyCFunction)Extractor_hits, METH_VARARGS,
     "hits(folded, factor): the causes a folded text speaks for, strongest first, as (weight, cause, hits), "
     "only those Lexicon.extract keeps; each hit (weight, start, end, language, side), strongest first."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ExtractorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "services.detector.domain.causes._scan.Extractor",
    .tp_basicsize = sizeof(Extractor),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The hit loop of Lexicon.extract over compiled tries (see lexicon.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Extractor_init,
    .tp_dealloc = (destructor)Extractor_dealloc,
    .tp_methods = Extractor_methods,
};

/* ------------------------------------------------------------------------------------------------------------
 * ``text.prepare`` for the texts most notes are: no tag or entity, and only characters that NFKC leaves alone and
 * never joins (ASCII, kana, the common ideographs, Japanese punctuation: ``text._STABLE``, the same ranges). For
 * those, preparing is: "_" and "/" become spaces, a hyphen between two word characters becomes a space, runs of
 * whitespace become one space (none at the ends), and case folding is ASCII lower-casing (no other of these
 * characters has a case). Any other text gives None, and ``prepare`` does it in Python.
 */
static inline int stable_char(Py_UCS4 c) {
    return c < 0x80 || (c >= 0x3001 && c <= 0x3003) || (c >= 0x300C && c <= 0x3011) || c == 0x301C ||
           (c >= 0x3041 && c <= 0x3096) || (c >= 0x30A1 && c <= 0x30FA) || c == 0x30FC ||
           (c >= 0x4E00 && c <= 0x9FFF);
}

/* Each BMP character as the first pass below sees it: UNSTABLE (the text is left to Python), KEPT (it stays as it
 * is), CHANGED (stable, but a step below changes it or what is around it). Filled when the module is loaded. */
enum { UNSTABLE = 0, KEPT = 1, CHANGED = 2 };
static uint8_t stable_class[65536];

static void stable_classes(void) {
    for (Py_UCS4 c = 0; c < 65536; c++) {
        if (c == '<' || c == '&' || !stable_char(c)) stable_class[c] = UNSTABLE;
        else if (c <= ' ' || c == '_' || c == '/' || c == '-' || (c >= 'A' && c <= 'Z')) stable_class[c] = CHANGED;
        else stable_class[c] = KEPT;
    }
}

static PyObject *prepare_stable(PyObject *module, PyObject *text) {
    (void)module;
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "prepare_stable takes a str");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    if (kind == PyUnicode_4BYTE_KIND) Py_RETURN_NONE; /* a character past the BMP: none of them is stable */
    unsigned seen = 0; /* the classes met: the text is its own shown and folded form when none is CHANGED */
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *s = data;
        for (Py_ssize_t i = 0; i < n; i++) {
            uint8_t k = stable_class[s[i]];
            if (k == UNSTABLE) Py_RETURN_NONE;
            seen |= k;
        }
    } else {
        const Py_UCS2 *s = data;
        for (Py_ssize_t i = 0; i < n; i++) {
            uint8_t k = stable_class[s[i]];
            if (k == UNSTABLE) Py_RETURN_NONE;
            seen |= k;
        }
    }
    int same = !(seen & CHANGED);
    if (same) return PyTuple_Pack(2, text, text);
    Py_UCS4 *mapped = PyMem_Malloc(sizeof(Py_UCS4) * (size_t)(2 * n + 1));
    if (!mapped) return PyErr_NoMemory();
    Py_UCS4 *buf = mapped + n;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        mapped[i] = (c == '_' || c == '/') ? ' ' : c;
    }
    Py_ssize_t m = 0;
    int upper = 0, pending = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = mapped[i];
        /* the hyphen rule looks at the mapped text around it, as the regex does over the whole string */
        if (c == '-' && i > 0 && i + 1 < n && Py_UNICODE_ISALNUM(mapped[i - 1]) && Py_UNICODE_ISALNUM(mapped[i + 1]))
            c = ' ';
        if (Py_UNICODE_ISSPACE(c)) {
            pending = m > 0;
            continue;
        }
        if (pending) {
            buf[m++] = ' ';
            pending = 0;
        }
        if (c >= 'A' && c <= 'Z') upper = 1;
        buf[m++] = c;
    }
    PyObject *shown = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, m);
    if (!shown) {
        PyMem_Free(mapped);
        return NULL;
    }
    PyObject *folded;
    if (upper) {
        for (Py_ssize_t i = 0; i < m; i++)
            if (buf[i] >= 'A' && buf[i] <= 'Z') buf[i] += 'a' - 'A';
        folded = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, m);
    } else {
        folded = Py_NewRef(shown);
    }
    PyMem_Free(mapped);
    if (!folded) {
        Py_DECREF(shown);
        return NULL;
    }
    PyObject *both = PyTuple_New(2);
    if (!both) {
        Py_DECREF(shown);
        Py_DECREF(folded);
        return NULL;
    }
    PyTuple_SET_ITEM(both, 0, shown);
    PyTuple_SET_ITEM(both, 1, folded);
    return both;
}

/* ------------------------------------------------------------------------------------------------------------
 * ``classify.rank_for_keeping`` for the signals a deal keeps: the same order from the same keys. Gives
 * NotImplemented for anything but lists or tuples of (cause str, weight float, time int or float, event id str,
 * ...) with finite numbers, and the Python version ranks those.
 */
typedef struct {
    PyObject *item, *cause, *event;
    double weight, at, k0;
    int count_rank; /* position among its cause, from 1 */
} Ranked;

static int ranked_before(const Ranked *a, const Ranked *b) { /* a's key < b's key */
    if (a->k0 != b->k0) return a->k0 < b->k0;
    if (a->at != b->at) return -a->at < -b->at;
    int c = PyUnicode_Compare(a->event, b->event);
    if (c != 0) return c < 0;
    return PyUnicode_Compare(a->cause, b->cause) < 0;
}

static PyObject *rank_signals(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    Py_ssize_t limit, per_cause;
    double half_life;
    if (nargs != 4 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "rank(signals: list, limit, half_life, per_cause)");
        return NULL;
    }
    limit = PyLong_AsSsize_t(args[1]);
    half_life = PyFloat_AsDouble(args[2]);
    per_cause = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred()) return NULL;
    PyObject *signals = args[0];
    Py_ssize_t n = PyList_GET_SIZE(signals);
    if (limit <= 0) return PyList_New(0);
    Ranked *best = PyMem_Malloc(sizeof(Ranked) * (size_t)(n ? n : 1));
    if (!best) return PyErr_NoMemory();
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PyList_GET_ITEM(signals, i);
        PyObject *cause, *w, *at, *event;
        if (PyList_Check(s) && PyList_GET_SIZE(s) >= 4) {
            cause = PyList_GET_ITEM(s, 0), w = PyList_GET_ITEM(s, 1), at = PyList_GET_ITEM(s, 2), event = PyList_GET_ITEM(s, 3);
        } else if (PyTuple_Check(s) && PyTuple_GET_SIZE(s) >= 4) {
            cause = PyTuple_GET_ITEM(s, 0), w = PyTuple_GET_ITEM(s, 1), at = PyTuple_GET_ITEM(s, 2), event = PyTuple_GET_ITEM(s, 3);
        } else {
            goto python;
        }
        if (!PyUnicode_CheckExact(cause) || !PyUnicode_CheckExact(event) || !PyFloat_CheckExact(w)) goto python;
        double t;
        if (PyFloat_CheckExact(at)) {
            t = PyFloat_AS_DOUBLE(at);
        } else if (PyLong_CheckExact(at)) {
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(at, &overflow);
            if (overflow || v > (1LL << 53) || v < -(1LL << 53)) goto python;
            t = (double)v;
        } else {
            goto python;
        }
        double weight = PyFloat_AS_DOUBLE(w);
        if (!isfinite(weight) || !isfinite(t)) goto python;
        Py_ssize_t k;
        for (k = 0; k < m; k++) /* one signal per event and cause, the first of the strongest */
            if (PyUnicode_Compare(best[k].event, event) == 0 && PyUnicode_Compare(best[k].cause, cause) == 0) break;
        if (k == m) {
            best[m].item = s, best[m].cause = cause, best[m].event = event, best[m].weight = weight, best[m].at = t;
            m++;
        } else if (weight > best[k].weight) {
            best[k].item = s, best[k].cause = cause, best[k].event = event, best[k].weight = weight, best[k].at = t;
        }
    }
    if (m == 0) {
        PyMem_Free(best);
        return PyList_New(0);
    }
    double newest = best[0].at;
    for (Py_ssize_t k = 1; k < m; k++)
        if (best[k].at > newest) newest = best[k].at;
    for (Py_ssize_t k = 0; k < m; k++) {
        best[k].k0 = -(best[k].weight * pow(0.5, (newest - best[k].at) / half_life));
        if (!isfinite(best[k].k0)) goto python;
    }
    for (Py_ssize_t i = 1; i < m; i++) { /* sorted by key (keys are unique) */
        Ranked v = best[i];
        Py_ssize_t j = i;
        while (j > 0 && ranked_before(&v, &best[j - 1])) {
            best[j] = best[j - 1];
            j--;
        }
        best[j] = v;
    }
    if (PyErr_Occurred()) goto fail;
    /* at most ``per_cause`` of one cause while others wait: those first, the rest after, then the first ``limit``
     * of that back in rank order */
    int *take = PyMem_Calloc((size_t)m, sizeof(int));
    if (!take) {
        PyMem_Free(best);
        return PyErr_NoMemory();
    }
    Py_ssize_t taken = 0;
    if (m > per_cause) {
        for (Py_ssize_t i = 0; i < m; i++) {
            int count = 1;
            for (Py_ssize_t j = 0; j < i; j++)
                if (PyUnicode_Compare(best[j].cause, best[i].cause) == 0) count++;
            best[i].count_rank = count;
        }
        for (int pass = 0; pass < 2; pass++)
            for (Py_ssize_t i = 0; i < m && taken < limit; i++)
                if ((best[i].count_rank <= per_cause) == (pass == 0)) take[i] = 1, taken++;
    } else {
        for (Py_ssize_t i = 0; i < m && taken < limit; i++) take[i] = 1, taken++;
    }
    PyObject *out = PyList_New(taken);
    if (out) {
        Py_ssize_t o = 0;
        for (Py_ssize_t i = 0; i < m; i++)
            if (take[i]) PyList_SET_ITEM(out, o++, Py_NewRef(best[i].item));
    }
    PyMem_Free(take);
    PyMem_Free(best);
    return out;
python:
    PyMem_Free(best);
    Py_RETURN_NOTIMPLEMENTED;
fail:
    PyMem_Free(best);
    return NULL;
}

static PyMethodDef scan_functions[] = {
    {"rank", (PyCFunction)(void (*)(void))rank_signals, METH_FASTCALL,
     "rank(signals, limit, half_life, per_cause): classify.rank_for_keeping's answer for a list of plain signals, "
     "or NotImplemented."},
    {"prepare_stable", (PyCFunction)prepare_stable, METH_O,
     "prepare_stable(text): text.prepare's (shown, folded) for a text of stable characters without '<' or '&'; "
     "None for any other text."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_scan",
    .m_doc = "The compiled phrase scanner of the cause lexicon.",
    .m_size = -1,
    .m_methods = scan_functions,
};

PyMODINIT_FUNC PyInit__scan(void) {
    stable_classes();
    if (PyType_Ready(&TrieType) < 0 || PyType_Ready(&ExtractorType) < 0) return NULL;
    PyObject *m = PyModule_Create(&scan_module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Trie", (PyObject *)&TrieType) < 0 ||
        PyModule_AddObjectRef(m, "Extractor", (PyObject *)&ExtractorType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
