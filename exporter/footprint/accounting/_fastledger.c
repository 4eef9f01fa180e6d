/* The ledger's per-sample arithmetic: the counter rule and a sample's additions, in C.

   Optional, like the meters' C reader: setup.py builds it where a C compiler and Python's headers
   exist, and ledger.py uses its pure-Python twins where it is absent. Both functions are exact twins of
   Python code kept in ledger.py (`_rule`, and the addition loop of `Transaction.__exit__`), checked
   against them by hypothesis properties (tests/unit/test_fastledger.py); `apply_ops` hands anything
   unusual (a removal, an amount that is not a plain float, a bad amount) back to the Python path.

   Why: at 1 Hz every sample runs with cold caches, and the rule (once per counter reading) and the ~40
   additions of a sample were a third of the sampler's Python bytecode (bench/README.md). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>

/* As ledger.py: SLACK_RATIO and SLACK_SECONDS (a test compares them). */
#define SLACK_RATIO 0.05
#define SLACK_SECONDS 0.01

static PyObject *kind_ok, *kind_wrap, *kind_reset, *kind_non_finite, *kind_out_of_range, *kind_backwards,
    *kind_jump, *kind_implausible_wrap, *kind_ambiguous_wrap, *kind_implausible_reset;

/* ledger._rule, branch for branch: the verdict's kind, and in *joules the energy when it is accepted
   (`accepted` says which: a rejected verdict has joules None). */
static PyObject *judge(double prev, double now, double elapsed, double max_watts, int has_wrap, double wrap,
                       int restarted, int *accepted, double *joules) {
    *accepted = 0;
    if (!(isfinite(prev) && isfinite(now) && isfinite(elapsed) && isfinite(max_watts)) || elapsed < 0 ||
        max_watts <= 0)
        return kind_non_finite;
    if (has_wrap && !(isfinite(wrap) && wrap > 0)) has_wrap = 0; /* a range we cannot use */
    if (now < 0 || (has_wrap && now > wrap)) return kind_out_of_range;
    double budget = max_watts * (elapsed * (1.0 + SLACK_RATIO) + SLACK_SECONDS);
    *accepted = 1;
    if (restarted) {
        *joules = now;
        if (now <= budget) return kind_reset;
        *accepted = 0;
        return kind_implausible_reset;
    }
    *accepted = 0;
    if (prev < 0 || (has_wrap && prev > wrap)) return kind_out_of_range;
    if (has_wrap && budget >= wrap) return kind_ambiguous_wrap;
    if (now >= prev) {
        *joules = now - prev;
        *accepted = *joules <= budget;
        return *accepted ? kind_ok : kind_jump;
    }
    if (has_wrap && now + wrap - prev <= budget) {
        *joules = now + wrap - prev;
        *accepted = 1;
        return kind_wrap;
    }
    if (now <= budget) {
        *joules = now;
        *accepted = 1;
        return kind_reset;
    }
    return has_wrap ? kind_implausible_wrap : kind_backwards;
}

/* A number as a double, 0 on success; -1 with the exception cleared when it is not one. */
static int as_double(PyObject *value, double *out) {
    *out = PyFloat_AsDouble(value);
    if (*out == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

/* rule(prev_raw, new_raw, elapsed_seconds, max_watts, wrap_joules, restarted) -> (joules | None, kind) */
static PyObject *rule(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "rule: six arguments");
        return NULL;
    }
    double number[5] = {0};
    for (int i = 0; i < 5; i++) {
        if (i == 4 && args[4] == Py_None) break;
        number[i] = PyFloat_AsDouble(args[i]);
        if (number[i] == -1.0 && PyErr_Occurred()) return NULL;
    }
    int restarted = PyObject_IsTrue(args[5]);
    if (restarted < 0) return NULL;
    int accepted;
    double joules = 0.0;
    PyObject *kind = judge(number[0], number[1], number[2], number[3], args[4] != Py_None, number[4], restarted,
                           &accepted, &joules);
    if (!accepted) return PyTuple_Pack(2, Py_None, kind);
    PyObject *value = PyFloat_FromDouble(joules);
    if (value == NULL) return NULL;
    PyObject *out = PyTuple_Pack(2, value, kind);
    Py_DECREF(value);
    return out;
}

static PyObject *attr_key, *attr_hardware_counter, *attr_counter_epoch, *attr_energy_joules, *attr_wrap_joules,
    *attr_max_watts, *attr_component, *empty_tuple;

/* One reading's steady delta as CounterTracker.delta's (joules, (), seconds), the baseline moved on;
   Py_None (a new reference) where the Python path must judge it; NULL on a real error. */
static PyObject *steady_one(PyObject *r, PyObject *at_obj, PyObject *states, PyObject *suspects,
                            PyTypeObject *state_type, PyObject *defaults, double fallback) {
    PyObject *key = NULL, *hardware = NULL, *epoch = NULL, *energy = NULL, *wrap = NULL, *bound = NULL,
             *component = NULL, *out = NULL;
    double at, prev_at, now, limit, wrap_value = 0.0;
    if (as_double(at_obj, &at)) goto python;
    if ((hardware = PyObject_GetAttr(r, attr_hardware_counter)) == NULL) goto error;
    if (hardware != Py_True) goto python; /* integrated by the meter: its own rule */
    if ((key = PyObject_GetAttr(r, attr_key)) == NULL) goto error;
    int suspect = PyDict_GET_SIZE(suspects) ? PyDict_Contains(suspects, key) : 0; /* nearly always none */
    if (suspect < 0) goto error;
    if (suspect) goto python;
    PyObject *prev = PyDict_GetItemWithError(states, key); /* borrowed */
    if (prev == NULL) {
        if (PyErr_Occurred()) goto error;
        goto python; /* first sight: a baseline */
    }
    if (Py_TYPE(prev) != state_type || PyTuple_GET_SIZE(prev) != 4) goto python;
    /* CounterState: (raw, epoch, hardware, at) */
    if (PyTuple_GET_ITEM(prev, 2) != Py_True || as_double(PyTuple_GET_ITEM(prev, 3), &prev_at)) goto python;
    if ((epoch = PyObject_GetAttr(r, attr_counter_epoch)) == NULL) goto error;
    int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(prev, 1), epoch, Py_EQ);
    if (same < 0) goto error;
    if (!same) goto python; /* restarted */
    if ((energy = PyObject_GetAttr(r, attr_energy_joules)) == NULL || (wrap = PyObject_GetAttr(r, attr_wrap_joules)) == NULL ||
        (bound = PyObject_GetAttr(r, attr_max_watts)) == NULL)
        goto error;
    /* plain floats only: the Python path's arithmetic on other numbers (an int's exact subtraction) is its own */
    PyObject *raw = PyTuple_GET_ITEM(prev, 0);
    if (!PyFloat_CheckExact(raw) || !PyFloat_CheckExact(energy)) goto python;
    double prev_raw = PyFloat_AS_DOUBLE(raw);
    now = PyFloat_AS_DOUBLE(energy);
    if (wrap != Py_None && as_double(wrap, &wrap_value)) goto python;
    if (bound != Py_None && as_double(bound, &limit)) goto python; /* not a number: the Python path raises */
    /* ledger.ceiling_watts: the meter's bound when positive and finite, else the component's default */
    if (bound == Py_None || !(limit > 0 && limit < INFINITY)) {
        if ((component = PyObject_GetAttr(r, attr_component)) == NULL) goto error;
        PyObject *fixed = PyDict_GetItemWithError(defaults, component); /* borrowed */
        if (fixed == NULL && PyErr_Occurred()) goto error;
        if (fixed == NULL) limit = fallback;
        else if (as_double(fixed, &limit)) goto python;
    }
    int accepted;
    double joules = 0.0;
    PyObject *kind = judge(prev_raw, now, at - prev_at, limit, wrap != Py_None, wrap_value, 0, &accepted, &joules);
    if (!accepted || (kind != kind_ok && kind != kind_wrap)) goto python; /* a glitch or an unconfirmed reset */
    PyObject *fields = PyTuple_Pack(4, energy, epoch, Py_True, at_obj);
    if (fields == NULL) goto error;
    PyObject *one = PyTuple_Pack(1, fields);
    Py_DECREF(fields);
    if (one == NULL) goto error;
    PyObject *state = PyTuple_Type.tp_new(state_type, one, NULL); /* tuple.__new__(CounterState, fields) */
    Py_DECREF(one);
    if (state == NULL) goto error;
    int failed = PyDict_SetItem(states, key, state);
    Py_DECREF(state);
    if (failed) goto error;
    PyObject *delta = PyFloat_FromDouble(joules), *span = PyFloat_FromDouble(at - prev_at);
    if (delta != NULL && span != NULL) out = PyTuple_Pack(3, delta, empty_tuple, span);
    Py_XDECREF(delta);
    Py_XDECREF(span);
    goto done;
python:
    out = Py_NewRef(Py_None);
    goto done;
error:
    out = NULL;
done:
    Py_XDECREF(key);
    Py_XDECREF(hardware);
    Py_XDECREF(epoch);
    Py_XDECREF(energy);
    Py_XDECREF(wrap);
    Py_XDECREF(bound);
    Py_XDECREF(component);
    return out;
}

/* steady_deltas(readings, read_at, states, suspects, state_type, defaults, fallback) -> list: for each
   reading, CounterTracker.delta's (joules, (), seconds) where it is steady (a hardware counter with a
   baseline of this process, the same epoch, no suspect, and a verdict "ok" or "wrap"), its baseline moved
   to it in `states`; None for it and every reading after it, which the Python path judges in order. */
static PyObject *steady_deltas(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[1]) || !PyDict_Check(args[2]) ||
        !PyDict_Check(args[3]) || !PyType_Check(args[4]) || !PyType_IsSubtype((PyTypeObject *)args[4], &PyTuple_Type) ||
        !PyDict_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError, "steady_deltas(readings: list, read_at: list, states: dict, suspects: dict, "
                                         "state_type: a tuple type, defaults: dict, fallback: float)");
        return NULL;
    }
    double fallback = PyFloat_AsDouble(args[6]);
    if (fallback == -1.0 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(args[0]);
    if (PyList_GET_SIZE(args[1]) != n) {
        PyErr_SetString(PyExc_ValueError, "steady_deltas: one time per reading");
        return NULL;
    }
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    int stopped = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *got;
        if (stopped || i >= PyList_GET_SIZE(args[0]) || i >= PyList_GET_SIZE(args[1])) {
            got = Py_NewRef(Py_None);
        } else {
            PyObject *r = Py_NewRef(PyList_GET_ITEM(args[0], i)), *at = Py_NewRef(PyList_GET_ITEM(args[1], i));
            got = steady_one(r, at, args[2], args[3], (PyTypeObject *)args[4], args[5], fallback);
            Py_DECREF(r);
            Py_DECREF(at);
            if (got == NULL) {
                Py_DECREF(out);
                return NULL;
            }
        }
        stopped = stopped || got == Py_None;
        PyList_SET_ITEM(out, i, got);
    }
    return out;
}

/* The dict under `key` in `outer`, made empty there when missing (dict.setdefault(key, {})). */
static PyObject *inner_dict(PyObject *outer, PyObject *key) {
    PyObject *inner = PyDict_GetItemWithError(outer, key); /* borrowed */
    if (inner == NULL) {
        if (PyErr_Occurred()) return NULL;
        inner = PyDict_New();
        if (inner == NULL) return NULL;
        int failed = PyDict_SetItem(outer, key, inner);
        Py_DECREF(inner); /* the outer dict holds it */
        if (failed) return NULL;
    }
    if (!PyDict_Check(inner)) {
        PyErr_SetString(PyExc_TypeError, "apply_ops: a series is not a dict");
        return NULL;
    }
    return inner;
}

/* One (metric, labels, amount, wall) added (0 on success, -1 with an exception set). */
static int add_op(PyObject *totals, PyObject *created, PyObject *op) {
    PyObject *metric = PyTuple_GET_ITEM(op, 0), *labels = PyTuple_GET_ITEM(op, 1);
    PyObject *amount = PyTuple_GET_ITEM(op, 2), *wall = PyTuple_GET_ITEM(op, 3);
    PyObject *series = inner_dict(totals, metric);
    if (series == NULL) return -1;
    PyObject *old = PyDict_GetItemWithError(series, labels); /* borrowed */
    PyObject *total;
    if (old == NULL) {
        if (PyErr_Occurred()) return -1;
        PyObject *when = inner_dict(created, metric);
        if (when == NULL || PyDict_SetItem(when, labels, wall)) return -1;
        total = PyFloat_FromDouble(0.0 + PyFloat_AS_DOUBLE(amount));
    } else if (PyFloat_CheckExact(old)) {
        total = PyFloat_FromDouble(PyFloat_AS_DOUBLE(old) + PyFloat_AS_DOUBLE(amount));
    } else {
        total = PyNumber_Add(old, amount);
    }
    if (total == NULL) return -1;
    int failed = PyDict_SetItem(series, labels, total);
    Py_DECREF(total);
    return failed;
}

/* apply_ops(totals, created, ops) -> bool: every (metric, labels, amount, wall) of `ops` added, as
   Transaction.__exit__'s loop adds them (a new series starts at 0.0 and gets its created time), when
   every amount is a plain float that is finite and non-negative; otherwise nothing is touched and False
   says the Python path must do it (removals, other numbers, bad amounts: it logs and drops those). */
static PyObject *apply_ops(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyDict_Check(args[0]) || !PyDict_Check(args[1]) || !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "apply_ops(totals: dict, created: dict, ops: list)");
        return NULL;
    }
    PyObject *totals = args[0], *created = args[1], *ops = args[2];
    Py_ssize_t n = PyList_GET_SIZE(ops);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *op = PyList_GET_ITEM(ops, i);
        if (!PyTuple_CheckExact(op) || PyTuple_GET_SIZE(op) != 4) Py_RETURN_FALSE;
        PyObject *amount = PyTuple_GET_ITEM(op, 2);
        if (!PyFloat_CheckExact(amount)) Py_RETURN_FALSE;
        double v = PyFloat_AS_DOUBLE(amount);
        if (!(isfinite(v) && v >= 0)) Py_RETURN_FALSE;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ops); i++) { /* re-read: a __hash__ could change the list */
        PyObject *op = PyList_GET_ITEM(ops, i);
        Py_INCREF(op);
        int failed = add_op(totals, created, op);
        Py_DECREF(op);
        if (failed) return NULL;
    }
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"rule", (PyCFunction)(void (*)(void))rule, METH_FASTCALL,
     "rule(prev_raw, new_raw, elapsed_seconds, max_watts, wrap_joules, restarted) -> (joules or None, kind)"},
    {"steady_deltas", (PyCFunction)(void (*)(void))steady_deltas, METH_FASTCALL,
     "steady_deltas(readings, read_at, states, suspects, state_type, defaults, fallback) -> each steady reading's "
     "(joules, (), seconds), None from the first one the Python path must judge"},
    {"apply_ops", (PyCFunction)(void (*)(void))apply_ops, METH_FASTCALL,
     "apply_ops(totals, created, ops) -> True once added; False: nothing touched, the Python path must add them"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "footprint.accounting._fastledger", NULL, -1, methods,
                                     NULL, NULL, NULL, NULL};

static int intern(PyObject **slot, const char *text) {
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

static int add_float(PyObject *m, const char *name, double value) {
    PyObject *number = PyFloat_FromDouble(value);
    if (number == NULL) return -1;
    int failed = PyModule_AddObjectRef(m, name, number);
    Py_DECREF(number);
    return failed;
}

PyMODINIT_FUNC PyInit__fastledger(void) {
    if (intern(&kind_ok, "ok") || intern(&kind_wrap, "wrap") || intern(&kind_reset, "reset") ||
        intern(&kind_non_finite, "non_finite") || intern(&kind_out_of_range, "out_of_range") ||
        intern(&kind_backwards, "backwards") || intern(&kind_jump, "jump") ||
        intern(&kind_implausible_wrap, "implausible_wrap") || intern(&kind_ambiguous_wrap, "ambiguous_wrap") ||
        intern(&kind_implausible_reset, "implausible_reset") || intern(&attr_key, "key") ||
        intern(&attr_hardware_counter, "hardware_counter") || intern(&attr_counter_epoch, "counter_epoch") ||
        intern(&attr_energy_joules, "energy_joules") || intern(&attr_wrap_joules, "wrap_joules") ||
        intern(&attr_max_watts, "max_watts") || intern(&attr_component, "component") ||
        (empty_tuple = PyTuple_New(0)) == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL || add_float(m, "SLACK_RATIO", SLACK_RATIO) || add_float(m, "SLACK_SECONDS", SLACK_SECONDS)) {
        Py_XDECREF(m);
        return NULL;
    }
    return m;
}
