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
#include <string.h>

enum { TERM_NONE = 0, TERM_END = 1, TERM_BOUND = 2, TERM_WILD = 3 };

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

/* The end of the match starting at ``p`` (and its value id in ``*id``), or -1. Characters before ``behind`` and
 * from ``hi`` on are outside the text, as they are for a regex given a slice (``behind`` = start of the search)
 * or given pos and endpos (``behind`` = 0). */
static Py_ssize_t match_at(const Trie *t, int kind, const void *data, Py_ssize_t p, Py_ssize_t hi,
                           Py_ssize_t behind, int32_t *id) {
    Py_UCS4 c = PyUnicode_READ(kind, data, p);
    if (c < 65536 && !(t->firsts[c >> 3] & (1u << (c & 7)))) return -1;
    int32_t node = child_of(t, 0, c);
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

static int range_of(PyObject *text, Py_ssize_t *lo, Py_ssize_t *hi) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(text);
    if (*hi < 0 || *hi > len) *hi = len;
    if (*lo < 0) *lo = 0;
    return 0;
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
    for (Py_ssize_t p = lo; p < hi;) {
        int32_t id;
        Py_ssize_t e = match_at(self, kind, data, p, hi, 0, &id);
        if (e < 0) {
            p++;
            continue;
        }
        if (append_hits(self, out, p, e, id) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        p = e;
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
    for (Py_ssize_t p = lo; p < hi; p++) {
        int32_t id;
        if (match_at(self, kind, data, p, hi, lo, &id) >= 0) Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}

static PyObject *Trie_found_in(Trie *self, PyObject *args) {
    PyObject *text;
    if (!PyArg_ParseTuple(args, "U:found_in", &text)) return NULL;
    Py_ssize_t hi = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (Py_ssize_t p = 0; p < hi;) {
        int32_t id;
        Py_ssize_t e = match_at(self, kind, data, p, hi, 0, &id);
        if (e < 0) {
            p++;
            continue;
        }
        PyObject *vals = PyList_GET_ITEM(self->values, id);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(vals); i++) {
            if (PyList_Append(out, PyTuple_GET_ITEM(vals, i)) < 0) {
                Py_DECREF(out);
                return NULL;
            }
        }
        p = e;
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
    for (Py_ssize_t p = 0; p < hi;) {
        int32_t id;
        Py_ssize_t e = match_at(self, kind, data, p, hi, 0, &id);
        if (e < 0) {
            p++;
            continue;
        }
        PyObject *ps = PyLong_FromSsize_t(p), *pe = PyLong_FromSsize_t(e);
        int bad = !ps || !pe || PyList_Append(starts, ps) < 0 || PyList_Append(ends, pe) < 0;
        Py_XDECREF(ps);
        Py_XDECREF(pe);
        if (bad) goto fail;
        p = e;
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
    const Node *root = &self->nodes[0];
    for (int32_t i = root->first_edge; i < root->first_edge + root->edges; i++) {
        Py_UCS4 c = self->edge_chars[i];
        if (c < 65536) self->firsts[c >> 3] |= (uint8_t)(1u << (c & 7));
    }
    Py_INCREF(values);
    Py_XSETREF(self->values, values);
    return 0;
}

static void Trie_dealloc(Trie *self) {
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

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_scan",
    .m_doc = "The compiled phrase scanner of the cause lexicon.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__scan(void) {
    if (PyType_Ready(&TrieType) < 0) return NULL;
    PyObject *m = PyModule_Create(&scan_module);
    if (!m) return NULL;
    Py_INCREF(&TrieType);
    if (PyModule_AddObject(m, "Trie", (PyObject *)&TrieType) < 0) {
        Py_DECREF(&TrieType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
