/* The ledger's hot arithmetic and text, in C: the counter rule, a sample's judging, power and additions,
   and the counters' lines on a scrape.

   Optional, like the meters' C reader: setup.py builds it where a C compiler and Python's headers
   exist, and the Python code it stands in for runs where it is absent. Every function is an exact twin
   of Python code kept beside its caller (ledger.py: `_rule`, `CounterTracker.delta`, the addition loop
   of `Transaction.__exit__`; sampler.power_of; accountant.stage_devices and stage_shares; exposition/metrics.py:
   `_python_lines`), checked against it by hypothesis properties (tests/unit/test_fastledger.py), and
   hands anything unusual (a removal, a number that is not a plain float, a first sight) back to it.

   Why: at 1 Hz every sample runs with cold caches, and the rule, the per-device loops and the ~40
   additions of a sample were most of the sampler's Python bytecode; on a scrape, formatting each value
   in Python was most of a render; with 200 pods, staging ~4,800 additions a fifth of an attribution
   pass (bench/README.md). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <string.h>

/* As ledger.py: SLACK_RATIO and SLACK_SECONDS (a test compares them). */
#define SLACK_RATIO 0.05
#define SLACK_SECONDS 0.01

/* Dict lookups and stores with the key's hash found once: a steady sample looks each device's key and labels
   up five or six times (its baseline, its figure, its series), and a tuple does not keep its hash
   (bench/README.md, twelfth pass). CPython 3.13 made the known-hash calls internal: there the hash is found
   again. */
static PyObject *get_hashed(PyObject *dict, PyObject *key, Py_hash_t hash) { /* borrowed; NULL: missing or error */
#if PY_VERSION_HEX < 0x030D0000
    return _PyDict_GetItem_KnownHash(dict, key, hash);
#else
    (void)hash;
    return PyDict_GetItemWithError(dict, key);
#endif
}

static int set_hashed(PyObject *dict, PyObject *key, Py_hash_t hash, PyObject *value) {
#if PY_VERSION_HEX < 0x030D0000
    return _PyDict_SetItem_KnownHash(dict, key, value, hash);
#else
    (void)hash;
    return PyDict_SetItem(dict, key, value);
#endif
}

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
    *attr_max_watts, *attr_component, *attr_device, *attr_source, *attr_power_watts, *attr_in_node_total, *empty_tuple;

/* The reading type whose fields are read by position (use_reading_type), and each field's position (-1:
   by name). A reading of exactly that type is a tuple whose field descriptors are collections' tuple
   getters, so item i is what the attribute gives; anything else (a subclass, a stand-in) goes by name.
   Why: PyObject_GetAttr walks the type's MRO and calls the descriptor, ~8 of them a reading in each of three
   C loops, a sample's 11 readings: 26.7 k instructions a sample (bench/README.md, ninth pass). */
static PyTypeObject *reading_type;
static struct {
    PyObject **name;
    Py_ssize_t index;
} reading_fields[] = {{&attr_key, -1},         {&attr_hardware_counter, -1}, {&attr_counter_epoch, -1},
                      {&attr_energy_joules, -1}, {&attr_wrap_joules, -1},     {&attr_max_watts, -1},
                      {&attr_component, -1},   {&attr_device, -1},          {&attr_source, -1},
                      {&attr_power_watts, -1}, {&attr_in_node_total, -1}};
enum { F_KEY, F_HARDWARE, F_EPOCH, F_ENERGY, F_WRAP, F_MAX_WATTS, F_COMPONENT, F_DEVICE, F_SOURCE, F_POWER, F_IN_TOTAL,
       F_COUNT };

/* A reading's field `which` (a new reference; NULL with an exception set). */
static PyObject *field(PyObject *r, int which) {
    Py_ssize_t index = reading_fields[which].index;
    if (index >= 0 && Py_TYPE(r) == reading_type && index < PyTuple_GET_SIZE(r))
        return Py_NewRef(PyTuple_GET_ITEM(r, index));
    return PyObject_GetAttr(r, *reading_fields[which].name);
}

/* use_reading_type(cls, positions): read the fields named in `positions` (name -> item index, each checked
   by the caller to be a plain tuple getter of cls) by position on readings of exactly type cls. */
static PyObject *use_reading_type(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyType_Check(args[0]) || !PyType_IsSubtype((PyTypeObject *)args[0], &PyTuple_Type) ||
        !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "use_reading_type(cls: a tuple type, positions: dict[str, int])");
        return NULL;
    }
    Py_ssize_t found[F_COUNT];
    for (int i = 0; i < F_COUNT; i++) {
        PyObject *at = PyDict_GetItemWithError(args[1], *reading_fields[i].name); /* borrowed */
        if (at == NULL && PyErr_Occurred()) return NULL;
        found[i] = at == NULL ? -1 : PyLong_AsSsize_t(at);
        if (found[i] == -1 && PyErr_Occurred()) return NULL;
        if (found[i] < -1) {
            PyErr_SetString(PyExc_ValueError, "use_reading_type: a negative position");
            return NULL;
        }
    }
    Py_XSETREF(reading_type, (PyTypeObject *)Py_NewRef(args[0]));
    for (int i = 0; i < F_COUNT; i++) reading_fields[i].index = found[i];
    Py_RETURN_NONE;
}

/* One reading's steady delta, judged as CounterTracker.delta judges it, nothing changed: 1 with the joules
   and the seconds since the baseline, where it is steady (a hardware counter with a baseline of this
   process, the same epoch, no suspect, a verdict "ok" or "wrap"); 0 where the Python path must judge it;
   -1 on a real error. */
static int steady_judge(PyObject *r, PyObject *key, Py_hash_t key_hash, PyObject *at_obj, PyObject *states,
                        PyObject *suspects, PyTypeObject *state_type, PyObject *defaults, double fallback,
                        double *joules_out, double *span_out) {
    PyObject *hardware = NULL, *epoch = NULL, *energy = NULL, *wrap = NULL, *bound = NULL,
             *component = NULL;
    int out = 0;
    double at, prev_at, now, limit, wrap_value = 0.0;
    if (as_double(at_obj, &at)) goto python;
    if ((hardware = field(r, F_HARDWARE)) == NULL) goto error;
    if (hardware != Py_True) goto python; /* integrated by the meter: its own rule */
    int suspect = PyDict_GET_SIZE(suspects) ? PyDict_Contains(suspects, key) : 0; /* nearly always none */
    if (suspect < 0) goto error;
    if (suspect) goto python;
    PyObject *prev = get_hashed(states, key, key_hash); /* borrowed */
    if (prev == NULL) {
        if (PyErr_Occurred()) goto error;
        goto python; /* first sight: a baseline */
    }
    if (Py_TYPE(prev) != state_type || PyTuple_GET_SIZE(prev) != 4) goto python;
    /* CounterState: (raw, epoch, hardware, at) */
    if (PyTuple_GET_ITEM(prev, 2) != Py_True || as_double(PyTuple_GET_ITEM(prev, 3), &prev_at)) goto python;
    if ((epoch = field(r, F_EPOCH)) == NULL) goto error;
    int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(prev, 1), epoch, Py_EQ);
    if (same < 0) goto error;
    if (!same) goto python; /* restarted */
    if ((energy = field(r, F_ENERGY)) == NULL || (wrap = field(r, F_WRAP)) == NULL || (bound = field(r, F_MAX_WATTS)) == NULL)
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
        if ((component = field(r, F_COMPONENT)) == NULL) goto error;
        PyObject *fixed = PyDict_GetItemWithError(defaults, component); /* borrowed */
        if (fixed == NULL && PyErr_Occurred()) goto error;
        if (fixed == NULL) limit = fallback;
        else if (as_double(fixed, &limit)) goto python;
    }
    int accepted;
    double joules = 0.0;
    PyObject *kind = judge(prev_raw, now, at - prev_at, limit, wrap != Py_None, wrap_value, 0, &accepted, &joules);
    if (!accepted || (kind != kind_ok && kind != kind_wrap)) goto python; /* a glitch or an unconfirmed reset */
    *joules_out = joules;
    *span_out = at - prev_at;
    out = 1;
    goto done;
python:
    out = 0;
    goto done;
error:
    out = -1;
done:
    Py_XDECREF(hardware);
    Py_XDECREF(epoch);
    Py_XDECREF(energy);
    Py_XDECREF(wrap);
    Py_XDECREF(bound);
    Py_XDECREF(component);
    return out;
}

/* The baseline of a steadily judged reading (its key and the key's hash) moved to it: states[key] =
   CounterState(r.energy_joules, r.counter_epoch, True, at). Where the dict holds the only reference to the
   old baseline, it takes the new values in place (no one can see it change: a mark holds its own reference);
   else one is made as tuple.__new__(CounterState, ...) fills a subtype's own allocation (0; -1 with an
   exception set). */
static int move_baseline(PyObject *r, PyObject *key, Py_hash_t key_hash, PyObject *at_obj, PyObject *states,
                         PyTypeObject *state_type) {
    PyObject *energy = field(r, F_ENERGY), *epoch = energy ? field(r, F_EPOCH) : NULL;
    if (epoch == NULL) {
        Py_XDECREF(energy);
        return -1;
    }
    PyObject *prev = get_hashed(states, key, key_hash); /* borrowed */
    int failed = prev == NULL && PyErr_Occurred();
    if (!failed && prev != NULL && Py_TYPE(prev) == state_type && Py_REFCNT(prev) == 1 && PyTuple_GET_SIZE(prev) == 4) {
        PyObject *fresh[4] = {energy, epoch, Py_True, at_obj};
        for (int i = 0; i < 4; i++) Py_SETREF(PyTuple_GET_ITEM(prev, i), Py_NewRef(fresh[i]));
    } else if (!failed) {
        PyObject *state = state_type == &PyTuple_Type ? PyTuple_New(4) : state_type->tp_alloc(state_type, 4);
        failed = state == NULL;
        if (!failed) {
            PyTuple_SET_ITEM(state, 0, Py_NewRef(energy));
            PyTuple_SET_ITEM(state, 1, Py_NewRef(epoch));
            PyTuple_SET_ITEM(state, 2, Py_NewRef(Py_True));
            PyTuple_SET_ITEM(state, 3, Py_NewRef(at_obj));
            failed = set_hashed(states, key, key_hash, state);
            Py_DECREF(state);
        }
    }
    Py_DECREF(energy);
    Py_DECREF(epoch);
    return failed ? -1 : 0;
}

/* One reading's steady delta as CounterTracker.delta's (joules, (), seconds), the baseline moved on;
   Py_None (a new reference) where the Python path must judge it; NULL on a real error. */
static PyObject *steady_one(PyObject *r, PyObject *at_obj, PyObject *states, PyObject *suspects,
                            PyTypeObject *state_type, PyObject *defaults, double fallback) {
    double joules = 0.0, span = 0.0;
    PyObject *key = field(r, F_KEY);
    Py_hash_t key_hash = key == NULL ? -1 : PyObject_Hash(key);
    int got = key_hash == -1 ? -1 : steady_judge(r, key, key_hash, at_obj, states, suspects, state_type, defaults,
                                                  fallback, &joules, &span);
    if (got > 0 && move_baseline(r, key, key_hash, at_obj, states, state_type)) got = -1;
    Py_XDECREF(key);
    if (got <= 0) return got < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *delta = PyFloat_FromDouble(joules), *seconds = PyFloat_FromDouble(span), *out = NULL;
    if (delta != NULL && seconds != NULL) out = PyTuple_Pack(3, delta, empty_tuple, seconds);
    Py_XDECREF(delta);
    Py_XDECREF(seconds);
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

/* `amount` added to the series (metric, labels), made at 0.0 with its created time `wall` where it is
   new (0 on success, -1 with an exception set); *made counts the series it created. */
static int add_amount(PyObject *totals, PyObject *created, PyObject *metric, PyObject *labels, Py_hash_t hash,
                      double amount, PyObject *wall, Py_ssize_t *made) {
    PyObject *series = inner_dict(totals, metric);
    if (series == NULL) return -1;
    PyObject *old = get_hashed(series, labels, hash); /* borrowed */
    PyObject *total;
    if (old == NULL) {
        if (PyErr_Occurred()) return -1;
        PyObject *when = inner_dict(created, metric);
        if (when == NULL || set_hashed(when, labels, hash, wall)) return -1;
        (*made)++;
        total = PyFloat_FromDouble(0.0 + amount);
    } else if (PyFloat_CheckExact(old)) {
        double sum = PyFloat_AS_DOUBLE(old) + amount;
        if (Py_REFCNT(old) == 1) { /* the series dict holds the only reference: no one can see it change, */
            ((PyFloatObject *)old)->ob_fval = sum; /* so it takes the sum in place (no float made, no set) */
            return 0;
        }
        total = PyFloat_FromDouble(sum);
    } else {
        PyObject *added = PyFloat_FromDouble(amount);
        total = added == NULL ? NULL : PyNumber_Add(old, added);
        Py_XDECREF(added);
    }
    if (total == NULL) return -1;
    int failed = set_hashed(series, labels, hash, total);
    Py_DECREF(total);
    return failed;
}

/* One (metric, labels, amount, wall) op added, its amount a plain float (checked by the caller). */
static int add_op(PyObject *totals, PyObject *created, PyObject *op, Py_ssize_t *made) {
    Py_hash_t hash = PyObject_Hash(PyTuple_GET_ITEM(op, 1));
    return hash == -1 ? -1
                      : add_amount(totals, created, PyTuple_GET_ITEM(op, 0), PyTuple_GET_ITEM(op, 1), hash,
                                   PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(op, 2)), PyTuple_GET_ITEM(op, 3), made);
}

/* apply_ops(totals, created, ops) -> int | None: every (metric, labels, amount, wall) of `ops` added, as
   Transaction.__exit__'s loop adds them (a new series starts at 0.0 and gets its created time), when
   every amount is a plain float that is finite and non-negative, and the number of series it created;
   otherwise nothing is touched and None says the Python path must do it (removals, other numbers, bad
   amounts: it logs and drops those). */
static PyObject *apply_ops(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyDict_Check(args[0]) || !PyDict_Check(args[1]) || !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "apply_ops(totals: dict, created: dict, ops: list)");
        return NULL;
    }
    PyObject *totals = args[0], *created = args[1], *ops = args[2];
    Py_ssize_t n = PyList_GET_SIZE(ops);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *op = PyList_GET_ITEM(ops, i);
        if (!PyTuple_CheckExact(op) || PyTuple_GET_SIZE(op) != 4) Py_RETURN_NONE;
        PyObject *amount = PyTuple_GET_ITEM(op, 2);
        if (!PyFloat_CheckExact(amount)) Py_RETURN_NONE;
        double v = PyFloat_AS_DOUBLE(amount);
        if (!(isfinite(v) && v >= 0)) Py_RETURN_NONE;
    }
    Py_ssize_t made = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ops); i++) { /* re-read: a __hash__ could change the list */
        PyObject *op = PyList_GET_ITEM(ops, i);
        Py_INCREF(op);
        int failed = add_op(totals, created, op, &made);
        Py_DECREF(op);
        if (failed) return NULL;
    }
    return PyLong_FromSsize_t(made);
}

static PyObject *attr_kgco2e;

/* A reading's field as a truth value (1, 0; -1 with an exception set). */
static int field_true(PyObject *r, int which) {
    PyObject *value = field(r, which);
    if (value == NULL) return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* (component, device, source) of a reading: a new reference, NULL on error. */
static PyObject *series_labels(PyObject *r) {
    PyObject *c = field(r, F_COMPONENT), *d = c ? field(r, F_DEVICE) : NULL, *s = d ? field(r, F_SOURCE) : NULL;
    PyObject *out = s ? PyTuple_Pack(3, c, d, s) : NULL;
    Py_XDECREF(c);
    Py_XDECREF(d);
    Py_XDECREF(s);
    return out;
}

/* judge_power(readings, judged, seconds) -> (energy, rejected, power, node_watts) | None: the loop of
   sampler.power_of, line for line: each reading paired with its judged joules, the reasons of the
   rejected ones by key, each device's power by (component, device, source) and the sum over the node
   total (None while no device has power). None: a number that is not a plain float, which the Python
   loop takes (its arithmetic on other numbers is its own). */
static PyObject *judge_power(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "judge_power(readings: list, judged: list, seconds: float)");
        return NULL;
    }
    PyObject *readings = args[0], *judged = args[1], *seconds = args[2];
    Py_ssize_t n = PyList_GET_SIZE(readings);
    if (PyList_GET_SIZE(judged) != n || !PyFloat_CheckExact(seconds)) Py_RETURN_NONE; /* the Python loop's */
    PyObject *energy = PyList_New(0), *rejected = PyDict_New(), *power = PyDict_New(), *out = NULL;
    double node = 0.0;
    if (energy == NULL || rejected == NULL || power == NULL) goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i >= PyList_GET_SIZE(readings) || i >= PyList_GET_SIZE(judged)) goto python;
        PyObject *r = PyList_GET_ITEM(readings, i), *j = PyList_GET_ITEM(judged, i);
        if (!PyTuple_CheckExact(j) || PyTuple_GET_SIZE(j) != 3) goto python;
        PyObject *joules = PyTuple_GET_ITEM(j, 0), *reasons = PyTuple_GET_ITEM(j, 1), *span_obj = PyTuple_GET_ITEM(j, 2);
        if (!PyFloat_CheckExact(joules) || !PyFloat_CheckExact(span_obj)) goto python;
        PyObject *pair = PyTuple_Pack(2, r, joules);
        if (pair == NULL) goto error;
        int failed = PyList_Append(energy, pair);
        Py_DECREF(pair);
        if (failed) goto error;
        int rejected_now = PyObject_IsTrue(reasons);
        if (rejected_now < 0) goto error;
        if (rejected_now) {
            PyObject *key = field(r, F_KEY);
            if (key == NULL) goto error;
            failed = PyDict_SetItem(rejected, key, reasons);
            Py_DECREF(key);
            if (failed) goto error;
        }
        double span = PyFloat_AS_DOUBLE(span_obj);
        if (span == 0.0) span = PyFloat_AS_DOUBLE(seconds); /* span or seconds */
        PyObject *own = field(r, F_POWER), *watts = NULL;
        if (own == NULL) goto error;
        int hardware = field_true(r, F_HARDWARE);
        if (hardware < 0) {
            Py_DECREF(own);
            goto error;
        }
        if (own != Py_None && !hardware) {
            watts = own; /* the meter's own figure */
            if (!PyFloat_CheckExact(watts)) {
                Py_DECREF(watts);
                goto python;
            }
        } else {
            Py_DECREF(own);
            if (!(span > 0) || rejected_now) continue; /* a rejected reading says nothing about power */
            watts = PyFloat_FromDouble(PyFloat_AS_DOUBLE(joules) / span);
            if (watts == NULL) goto error;
        }
        PyObject *labels = series_labels(r);
        failed = labels == NULL || PyDict_SetItem(power, labels, watts);
        Py_XDECREF(labels);
        int in_total = failed ? -1 : field_true(r, F_IN_TOTAL);
        if (in_total > 0) node += PyFloat_AS_DOUBLE(watts);
        Py_DECREF(watts);
        if (in_total < 0) goto error;
    }
    if (PyDict_GET_SIZE(power)) {
        PyObject *total = PyFloat_FromDouble(node);
        if (total == NULL) goto error;
        out = PyTuple_Pack(4, energy, rejected, power, total);
        Py_DECREF(total);
    } else {
        out = PyTuple_Pack(4, energy, rejected, power, Py_None);
    }
    goto done;
python:
    out = Py_NewRef(Py_None);
    goto done;
error:
    out = NULL;
done:
    Py_XDECREF(energy);
    Py_XDECREF(rejected);
    Py_XDECREF(power);
    return out;
}

/* One (metric, labels, amount, wall) staged onto `ops`, the amount made here (0, or -1 with an exception). */
static int stage(PyObject *ops, PyObject *metric, PyObject *labels, double amount, PyObject *wall) {
    PyObject *value = PyFloat_FromDouble(amount);
    if (value == NULL) return -1;
    PyObject *op = PyTuple_Pack(4, metric, labels, value, wall);
    Py_DECREF(value);
    if (op == NULL) return -1;
    int failed = PyList_Append(ops, op);
    Py_DECREF(op);
    return failed;
}

/* What a staging loop made, handed over whole: ops.extend(staged), then `result` as a float (a new
   reference; NULL with an exception set). */
static PyObject *staged_then(PyObject *ops, PyObject *staged, double result) {
    Py_ssize_t at = PyList_GET_SIZE(ops);
    if (PyList_SetSlice(ops, at, at, staged)) return NULL;
    return PyFloat_FromDouble(result);
}

/* A sample's additions before they are added: each series' metric and labels (new references) and its
   amount, in order. Where `staged` is set they go straight onto it as (metric, labels, amount, wall) ops
   instead (stage_energy), and `items` stays empty. */
typedef struct {
    PyObject *metric, *labels;
    Py_hash_t hash; /* the labels' */
    double amount;
} addition;

typedef struct {
    addition *items;
    Py_ssize_t n, cap;
    PyObject *staged, *wall; /* borrowed */
} additions;

static int push(additions *a, PyObject *metric, PyObject *labels, Py_hash_t hash, double amount) {
    if (a->staged != NULL) return stage(a->staged, metric, labels, amount, a->wall);
    if (a->n == a->cap) {
        Py_ssize_t cap = a->cap ? 2 * a->cap : 64;
        addition *grown = PyMem_Realloc(a->items, (size_t)cap * sizeof(addition));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        a->items = grown, a->cap = cap;
    }
    a->items[a->n++] = (addition){Py_NewRef(metric), Py_NewRef(labels), hash, amount};
    return 0;
}

static void release(additions *a) {
    for (Py_ssize_t i = 0; i < a->n; i++) {
        Py_DECREF(a->items[i].metric);
        Py_DECREF(a->items[i].labels);
    }
    PyMem_Free(a->items);
}

/* One device of the device loop of Accountant.account (accountant.stage_devices, line for line) into `out`:
   reading r's `joules` as the energy of its series `labels` (series_labels(r), made by the caller), and for a
   reading in the node total its emissions, its marginal emissions (`marginal`) and its embodied grams (figure
   known and seconds > 0), its joules added to *node;
   `names` = (ENERGY, EMISSIONS, MARGINAL_EMISSIONS, EMBODIED). 0 done; 1: a device whose embodied figure is
   not looked up yet, or a number that is not a plain float (the Python loop's); -1: an exception is set. */
static int device_addition(additions *out, PyObject *r, PyObject *labels, Py_hash_t labels_hash, PyObject *key,
                           Py_hash_t key_hash, double joules, PyObject *figures, double lifetime, double g_per_j,
                           int marginal, double m_per_j, double seconds, PyObject *names, double *node) {
    if (push(out, PyTuple_GET_ITEM(names, 0), labels, labels_hash, joules)) return -1;
    int in_total = field_true(r, F_IN_TOTAL);
    if (in_total <= 0) return in_total;
    PyObject *figure = get_hashed(figures, key, key_hash); /* borrowed */
    double kg = 0.0;
    int embodied = 0;
    if (figure == NULL) return PyErr_Occurred() ? -1 : 1; /* first sight of this device: looked up in Python */
    if (figure != Py_None) {
        PyObject *kg_obj = PyObject_GetAttr(figure, attr_kgco2e);
        if (kg_obj == NULL) return -1;
        int plain = PyFloat_CheckExact(kg_obj);
        kg = plain ? PyFloat_AS_DOUBLE(kg_obj) : 0.0;
        Py_DECREF(kg_obj);
        if (!plain) return 1;
        embodied = seconds > 0;
    }
    *node += joules;
    int failed = push(out, PyTuple_GET_ITEM(names, 1), key, key_hash, joules * g_per_j) ||
             (marginal && push(out, PyTuple_GET_ITEM(names, 2), key, key_hash, joules * m_per_j)) ||
             (embodied && push(out, PyTuple_GET_ITEM(names, 3), key, key_hash, kg * 1000.0 * seconds / lifetime));
    return failed ? -1 : 0;
}

/* device_addition for each (reading, joules) of `energy`, *node the joules of the node total (its codes). */
static int device_additions(additions *out, PyObject *energy, PyObject *figures, double lifetime, double g_per_j,
                            int marginal, double m_per_j, double seconds, PyObject *names, double *node) {
    *node = 0.0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(energy); i++) {
        PyObject *pair = PyList_GET_ITEM(energy, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyFloat_CheckExact(PyTuple_GET_ITEM(pair, 1)))
            return 1;
        PyObject *labels = series_labels(PyTuple_GET_ITEM(pair, 0));
        PyObject *key = labels == NULL ? NULL : field(PyTuple_GET_ITEM(pair, 0), F_KEY);
        Py_hash_t labels_hash = key == NULL ? -1 : PyObject_Hash(labels);
        Py_hash_t key_hash = labels_hash == -1 ? -1 : PyObject_Hash(key);
        int got = key_hash == -1 ? -1
                                 : device_addition(out, PyTuple_GET_ITEM(pair, 0), labels, labels_hash, key, key_hash,
                                                   PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(pair, 1)), figures, lifetime,
                                                   g_per_j, marginal, m_per_j, seconds, names, node);
        Py_XDECREF(labels);
        Py_XDECREF(key);
        if (got) return got;
    }
    return 0;
}

/* stage_energy(ops, energy, figures, lifetime, g_per_j, m_per_j, seconds, now_wall, names) -> node joules | None:
   device_additions staged onto `ops` as (metric, labels, amount, now_wall). None, with nothing staged:
   what device_additions hands back; the Python loop takes the sample. */
static PyObject *stage_energy(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[1]) || !PyDict_Check(args[2]) ||
        !PyTuple_CheckExact(args[8]) || PyTuple_GET_SIZE(args[8]) != 4) {
        PyErr_SetString(PyExc_TypeError, "stage_energy(ops: list, energy: list, figures: dict, lifetime, g_per_j, "
                                         "m_per_j, seconds, now_wall, names: 4-tuple)");
        return NULL;
    }
    PyObject *ops = args[0], *wall = args[7];
    for (int i = 3; i < 7; i++)
        if (!PyFloat_CheckExact(args[i]) && !(i == 5 && args[i] == Py_None)) Py_RETURN_NONE;
    int marginal = args[5] != Py_None;
    PyObject *staged = PyList_New(0), *out = NULL;
    if (staged == NULL) return NULL;
    additions onto = {NULL, 0, 0, staged, wall};
    double node;
    int got = device_additions(&onto, args[1], args[2], PyFloat_AS_DOUBLE(args[3]), PyFloat_AS_DOUBLE(args[4]),
                               marginal, marginal ? PyFloat_AS_DOUBLE(args[5]) : 0.0, PyFloat_AS_DOUBLE(args[6]),
                               args[8], &node);
    if (got == 0) out = staged_then(ops, staged, node);
    if (got == 1) out = Py_NewRef(Py_None);
    Py_DECREF(staged);
    return out;
}

#define JOULES_PER_KWH 3.6e6 /* accountant.JOULES_PER_KWH */

/* A node-level addition of charge_sample, the series (metric, labels) from its `node` plan. */
enum { N_SERVER_EMBODIED, N_NODE_ENERGY, N_NODE_EMISSIONS, N_UNCHARGED, N_FACILITY, N_WATER_SITE, N_WATER_GRID, N_COST,
       N_COUNT };

static int push_node(additions *a, PyObject *plan, int which, double amount) {
    PyObject *series = PyTuple_GET_ITEM(plan, which), *labels = PyTuple_GET_ITEM(series, 1);
    Py_hash_t hash = PyObject_Hash(labels);
    return hash == -1 ? -1 : push(a, PyTuple_GET_ITEM(series, 0), labels, hash, amount);
}

/* An optional number of charge_sample: 0 absent (None), 1 a plain float (in *out), -1 anything else. */
static int optional(PyObject *value, double *out) {
    if (value == Py_None) return 0;
    if (!PyFloat_CheckExact(value)) return -1;
    *out = PyFloat_AS_DOUBLE(value);
    return 1;
}

/* The numbers of a sample's charge after its devices': lifetime, g_per_j, m_per_j (None: no marginal),
   seconds, server_grams, uncharged, pue, wue, grid_water, price, as charge_sample takes them. */
typedef struct {
    double lifetime, g_per_j, m_per_j, seconds, server, pue, wue, grid_water, price;
    int marginal, has_server, uncharged, has_wue, has_grid, has_price;
} rates;

/* The rates from their objects: 1 all plain (an optional one None or a plain float), 0 not (the Python
   path's), -1 with an exception set. */
static int read_rates(rates *r, PyObject *lifetime, PyObject *g_per_j, PyObject *m_per_j, PyObject *seconds,
                      PyObject *server, PyObject *uncharged, PyObject *pue, PyObject *wue, PyObject *grid_water,
                      PyObject *price) {
    *r = (rates){0};
    r->marginal = optional(m_per_j, &r->m_per_j), r->has_server = optional(server, &r->server);
    r->has_wue = optional(wue, &r->wue), r->has_grid = optional(grid_water, &r->grid_water);
    r->has_price = optional(price, &r->price);
    if (optional(lifetime, &r->lifetime) != 1 || optional(g_per_j, &r->g_per_j) != 1 ||
        optional(seconds, &r->seconds) != 1 || optional(pue, &r->pue) != 1 || r->marginal < 0 ||
        r->has_server < 0 || r->has_wue < 0 || r->has_grid < 0 || r->has_price < 0)
        return 0;
    r->uncharged = PyObject_IsTrue(uncharged);
    return r->uncharged < 0 ? -1 : 1;
}

/* The node's additions of Accountant.account after its devices', in its order and arithmetic (0; -1 with an
   exception set): server embodied where given, node energy, emissions, uncharged energy, the facility
   overhead, site and grid water, cost; `plan` = the 8 (metric, labels) of those series. */
static int node_additions(additions *found, PyObject *plan, const rates *r, double node) {
    double facility = node * r->pue;
    if ((r->has_server && push_node(found, plan, N_SERVER_EMBODIED, r->server)) ||
        push_node(found, plan, N_NODE_ENERGY, node) || push_node(found, plan, N_NODE_EMISSIONS, node * r->g_per_j) ||
        (r->uncharged && push_node(found, plan, N_UNCHARGED, node)) ||
        push_node(found, plan, N_FACILITY, facility - node) ||
        (r->has_wue && push_node(found, plan, N_WATER_SITE, node / JOULES_PER_KWH * r->wue)) ||
        (r->has_grid && push_node(found, plan, N_WATER_GRID, facility / JOULES_PER_KWH * r->grid_water)) ||
        (r->has_price && push_node(found, plan, N_COST, facility / JOULES_PER_KWH * r->price)))
        return -1;
    return 0;
}

/* 1 where every amount is finite and non-negative (what the transaction adds), else 0. */
static int all_addable(const additions *found) {
    for (Py_ssize_t i = 0; i < found->n; i++)
        if (!(isfinite(found->items[i].amount) && found->items[i].amount >= 0)) return 0;
    return 1;
}

/* Every addition added into the ledger's dicts (the series created, or -1 with an exception set). */
static Py_ssize_t add_all(PyObject *totals, PyObject *created, const additions *found, PyObject *wall) {
    Py_ssize_t made = 0;
    for (Py_ssize_t i = 0; i < found->n; i++)
        if (add_amount(totals, created, found->items[i].metric, found->items[i].labels, found->items[i].hash,
                       found->items[i].amount, wall, &made))
            return -1;
    return made;
}

static int node_plan_ok(PyObject *plan) {
    if (!PyTuple_CheckExact(plan) || PyTuple_GET_SIZE(plan) != N_COUNT) return 0;
    for (int i = 0; i < N_COUNT; i++) {
        PyObject *series = PyTuple_GET_ITEM(plan, i);
        if (!PyTuple_CheckExact(series) || PyTuple_GET_SIZE(series) != 2) return 0;
    }
    return 1;
}

/* charge_sample(totals, created, energy, figures, lifetime, g_per_j, m_per_j, seconds, now_wall, names, node,
                 server_grams, uncharged, pue, wue, grid_water, price) -> series created | None:
   Accountant.account for a sample charged alone (no attribution window, nothing else in its transaction),
   added into the ledger's dicts at once: device_additions, then node_additions (`node` = the 8 (metric,
   labels) of the node's series). All or nothing, as the transaction: None, with nothing touched, where
   device_additions hands back or an amount is not a finite, non-negative number; the Python path then
   stages the sample (and drops it, logged). */
static PyObject *charge_sample(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 17 || !PyDict_Check(args[0]) || !PyDict_Check(args[1]) || !PyList_CheckExact(args[2]) ||
        !PyDict_Check(args[3]) || !PyTuple_CheckExact(args[9]) || PyTuple_GET_SIZE(args[9]) != 4 ||
        !node_plan_ok(args[10])) {
        PyErr_SetString(PyExc_TypeError, "charge_sample(totals: dict, created: dict, energy: list, figures: dict, "
                                         "lifetime, g_per_j, m_per_j, seconds, now_wall, names: 4-tuple, "
                                         "node: 8 (metric, labels) pairs, server_grams, uncharged, pue, wue, "
                                         "grid_water, price)");
        return NULL;
    }
    rates r;
    int plain = read_rates(&r, args[4], args[5], args[6], args[7], args[11], args[12], args[13], args[14], args[15],
                           args[16]);
    if (plain <= 0) return plain < 0 ? NULL : Py_NewRef(Py_None);
    additions found = {NULL, 0, 0, NULL, NULL};
    double node;
    int got = device_additions(&found, args[2], args[3], r.lifetime, r.g_per_j, r.marginal, r.m_per_j, r.seconds,
                               args[9], &node);
    if (got == 0 && node_additions(&found, args[10], &r, node)) got = -1;
    if (got == 0 && !all_addable(&found)) got = 1;
    PyObject *out = NULL;
    if (got == 1) out = Py_NewRef(Py_None);
    if (got == 0) {
        Py_ssize_t made = add_all(args[0], args[1], &found, args[8]);
        out = made < 0 ? NULL : PyLong_FromSsize_t(made);
    }
    release(&found);
    return out;
}

/* charge_steady(readings, read_at, seconds, judging, charging, g_per_j, m_per_j, server_grams, uncharged,
                 price, now_wall) -> (power, node_watts, series created) | None:
   a steady sample judged, its power found and charged in one call, as the sampler's path would: every
   reading steady (steady_judge), so nothing is rejected; its power by (component,
   device, source) and the node's, as judge_power makes them; then charge_sample's additions and the
   baselines moved. judging = (states, suspects, state_type, defaults, fallback), as steady_deltas takes
   them; charging = (totals, created, figures, lifetime, names, node, pue, wue, grid_water), as
   charge_sample. None, with nothing changed, where any reading is not steady, a number is not plain, a
   device is seen first or an amount cannot be added: the sampler then judges and charges it step by step.
   Why: the judged deltas, the (reading, joules) pairs and the Python frames between the steps were a
   sixth of a cold 1 Hz sample (bench/README.md). */
static PyObject *charge_steady(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 11 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[1]) || !PyTuple_CheckExact(args[3]) || PyTuple_GET_SIZE(args[3]) != 5 || !PyTuple_CheckExact(args[4]) ||
        PyTuple_GET_SIZE(args[4]) != 9) {
        PyErr_SetString(PyExc_TypeError, "charge_steady(readings: list, read_at: list, seconds, judging: "
                                         "5-tuple, charging: 9-tuple, g_per_j, m_per_j, server_grams, uncharged, "
                                         "price, now_wall)");
        return NULL;
    }
    PyObject *readings = args[0], *read_at = args[1], *judging = args[3], *charging = args[4], *wall = args[10];
    PyObject *states = PyTuple_GET_ITEM(judging, 0), *suspects = PyTuple_GET_ITEM(judging, 1),
             *state_type = PyTuple_GET_ITEM(judging, 2), *defaults = PyTuple_GET_ITEM(judging, 3);
    PyObject *totals = PyTuple_GET_ITEM(charging, 0), *created = PyTuple_GET_ITEM(charging, 1),
             *figures = PyTuple_GET_ITEM(charging, 2), *names = PyTuple_GET_ITEM(charging, 4),
             *plan = PyTuple_GET_ITEM(charging, 5);
    if (!PyDict_Check(states) || !PyDict_Check(suspects) || !PyType_Check(state_type) ||
        !PyType_IsSubtype((PyTypeObject *)state_type, &PyTuple_Type) || !PyDict_Check(defaults) ||
        !PyDict_Check(totals) || !PyDict_Check(created) || !PyDict_Check(figures) || !PyTuple_CheckExact(names) ||
        PyTuple_GET_SIZE(names) != 4 || !node_plan_ok(plan)) {
        PyErr_SetString(PyExc_TypeError, "charge_steady: judging or charging is not what it takes");
        return NULL;
    }
    double fallback = PyFloat_AsDouble(PyTuple_GET_ITEM(judging, 4));
    if (fallback == -1.0 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(readings);
    if (PyList_GET_SIZE(read_at) != n || n > 4096) {
        PyErr_SetString(PyExc_ValueError, "charge_steady: one time per reading, at most 4096");
        return NULL;
    }
    rates r;
    int plain = read_rates(&r, PyTuple_GET_ITEM(charging, 3), args[5], args[6], args[2], args[7], args[8],
                           PyTuple_GET_ITEM(charging, 6), PyTuple_GET_ITEM(charging, 7), PyTuple_GET_ITEM(charging, 8),
                           args[9]);
    if (plain <= 0) return plain < 0 ? NULL : Py_NewRef(Py_None);
    /* each reading's joules and span, and its key (a new reference) with the key's hash */
    typedef struct {
        double joules, span;
        PyObject *key;
        Py_hash_t hash;
    } judged;
    judged *each = PyMem_Calloc((size_t)(n ? n : 1), sizeof(judged));
    if (each == NULL) return PyErr_NoMemory();
    PyObject *power = NULL, *out = NULL;
    additions found = {NULL, 0, 0, NULL, NULL};
    int got = 1; /* as device_additions' codes: 1 hands the sample back */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *reading = PyList_GET_ITEM(readings, i);
        if ((each[i].key = field(reading, F_KEY)) == NULL || (each[i].hash = PyObject_Hash(each[i].key)) == -1)
            goto error;
        int steady = steady_judge(reading, each[i].key, each[i].hash, PyList_GET_ITEM(read_at, i), states, suspects,
                                  (PyTypeObject *)state_type, defaults, fallback, &each[i].joules, &each[i].span);
        if (steady <= 0) {
            got = steady < 0 ? -1 : 1;
            goto done;
        }
    }
    /* sampler.power_of for readings none of which is rejected, each a hardware counter: joules over its span
       (the sample's seconds where the span is 0), where that is positive */
    if ((power = PyDict_New()) == NULL) goto error;
    double node_watts = 0.0, node = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *reading = PyList_GET_ITEM(readings, i);
        PyObject *labels = series_labels(reading); /* the power's key and the energy series', made once */
        Py_hash_t labels_hash = labels == NULL ? -1 : PyObject_Hash(labels);
        if (labels_hash == -1) {
            Py_XDECREF(labels);
            goto error;
        }
        double seconds = each[i].span == 0.0 ? r.seconds : each[i].span;
        if (seconds > 0) {
            PyObject *watts = PyFloat_FromDouble(each[i].joules / seconds);
            int failed = watts == NULL || set_hashed(power, labels, labels_hash, watts);
            int in_total = failed ? -1 : field_true(reading, F_IN_TOTAL);
            if (in_total > 0) node_watts += PyFloat_AS_DOUBLE(watts);
            Py_XDECREF(watts);
            if (in_total < 0) {
                Py_DECREF(labels);
                goto error;
            }
        }
        got = device_addition(&found, reading, labels, labels_hash, each[i].key, each[i].hash, each[i].joules, figures,
                              r.lifetime, r.g_per_j, r.marginal, r.m_per_j, r.seconds, names, &node);
        Py_DECREF(labels);
        if (got) goto done;
    }
    if (node_additions(&found, plan, &r, node)) goto error;
    if (!all_addable(&found)) {
        got = 1;
        goto done;
    }
    /* Everything judged and made: the baselines move and the amounts are added (as the sampler's path moves
       them while judging and adds at the charge, in one hold of the ledger lock). */
    for (Py_ssize_t i = 0; i < n; i++)
        if (move_baseline(PyList_GET_ITEM(readings, i), each[i].key, each[i].hash, PyList_GET_ITEM(read_at, i), states,
                          (PyTypeObject *)state_type))
            goto error;
    Py_ssize_t made = add_all(totals, created, &found, wall);
    if (made < 0) goto error;
    PyObject *watts_obj = PyDict_GET_SIZE(power) ? PyFloat_FromDouble(node_watts) : Py_NewRef(Py_None);
    PyObject *made_obj = watts_obj ? PyLong_FromSsize_t(made) : NULL;
    if (made_obj != NULL) out = PyTuple_Pack(3, power, watts_obj, made_obj);
    Py_XDECREF(watts_obj);
    Py_XDECREF(made_obj);
    got = 0;
    goto done;
error:
    got = -1;
done:
    if (got == 1) out = Py_NewRef(Py_None);
    if (got == -1) Py_CLEAR(out);
    Py_XDECREF(power);
    release(&found);
    for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(each[i].key);
    PyMem_Free(each);
    return out;
}

static PyObject *attr_energy_series, *attr_energy_labels, *attr_energy_metric, *attr_emissions_metric, *attr_labels;

/* The labels of a consumer's energy series for `component`: consumer.energy_series.get(component) or
   consumer.energy_labels(component), as the Python loop says it (a new reference, NULL on error). */
static PyObject *energy_labels_of(PyObject *consumer, PyObject *component) {
    PyObject *made = PyObject_GetAttr(consumer, attr_energy_series);
    if (made == NULL) return NULL;
    PyObject *found = PyDict_Check(made) ? PyDict_GetItemWithError(made, component) : NULL; /* borrowed */
    Py_DECREF(made);
    if (found != NULL) {
        int truth = PyObject_IsTrue(found);
        if (truth < 0) return NULL;
        if (truth) return Py_NewRef(found);
    } else if (PyErr_Occurred()) {
        return NULL;
    }
    return PyObject_CallMethodOneArg(consumer, attr_energy_labels, component);
}

/* stage_shares(ops, shares, scale, g_per_j, now_wall) -> joules handed out | None: accountant.stage_shares
   line for line, onto `ops`: for each (consumer, component, device, joules) share, j = joules * scale
   added to the sum, then (consumer.energy_metric, its energy labels, j, now_wall) and
   (consumer.emissions_metric, consumer.labels, j * g_per_j, now_wall). None, with nothing staged: a
   share or number that is not a plain 4-tuple or float; the Python loop stages that device. */
static PyObject *stage_shares(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "stage_shares(ops: list, shares: list, scale, g_per_j, now_wall)");
        return NULL;
    }
    if (!PyFloat_CheckExact(args[2]) || !PyFloat_CheckExact(args[3])) Py_RETURN_NONE;
    PyObject *ops = args[0], *shares = args[1], *wall = args[4];
    double scale = PyFloat_AS_DOUBLE(args[2]), g_per_j = PyFloat_AS_DOUBLE(args[3]), attributed = 0.0;
    PyObject *staged = PyList_New(0), *out = NULL;
    if (staged == NULL) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(shares); i++) {
        PyObject *share = PyList_GET_ITEM(shares, i);
        if (!PyTuple_Check(share) || PyTuple_GET_SIZE(share) != 4 || !PyFloat_CheckExact(PyTuple_GET_ITEM(share, 3)))
            goto python;
        PyObject *consumer = PyTuple_GET_ITEM(share, 0), *component = PyTuple_GET_ITEM(share, 1);
        double j = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(share, 3)) * scale;
        attributed += j;
        PyObject *labels = energy_labels_of(consumer, component);
        if (labels == NULL) goto error;
        PyObject *energy_metric = PyObject_GetAttr(consumer, attr_energy_metric);
        int failed = energy_metric == NULL || stage(staged, energy_metric, labels, j, wall);
        Py_DECREF(labels);
        Py_XDECREF(energy_metric);
        if (failed) goto error;
        PyObject *emissions_metric = PyObject_GetAttr(consumer, attr_emissions_metric);
        PyObject *own = emissions_metric == NULL ? NULL : PyObject_GetAttr(consumer, attr_labels);
        failed = own == NULL || stage(staged, emissions_metric, own, j * g_per_j, wall);
        Py_XDECREF(emissions_metric);
        Py_XDECREF(own);
        if (failed) goto error;
    }
    out = staged_then(ops, staged, attributed);
    goto done;
python:
    out = Py_NewRef(Py_None);
    goto done;
error:
    out = NULL;
done:
    Py_DECREF(staged);
    return out;
}

/* A growing byte buffer for render_lines. */
typedef struct {
    char *data;
    size_t used, size;
} buffer;

static int put(buffer *b, const char *bytes, size_t n) {
    if (b->used + n > b->size) {
        size_t size = b->size ? b->size : 4096;
        while (size < b->used + n) size *= 2;
        char *grown = PyMem_Realloc(b->data, size);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->data = grown;
        b->size = size;
    }
    memcpy(b->data + b->used, bytes, n);
    b->used += n;
    return 0;
}

/* The shortest decimal digits that read back as v (finite, v > 0), the nearest of those to v and, at a tie,
   the one ending in an even digit: what David Gay's dtoa mode 0 gives, so `repr` (PyOS_double_to_string
   'r'). dtoa does it in big integers, ~6.7 k instructions a value and most of a render. Here the exact
   integer method of Steele & White and Burger & Dybvig ("Printing floating-point numbers quickly and
   accurately", 1996: v, the half gaps to its neighbours m- and m+, all over one denominator s, digits by
   multiplying by 10) runs in 128 bits, which hold every number it scales for binary exponents -115 to 60
   (about 1.1e-19 to 1.3e34: every figure an exporter writes). Elsewhere, and for subnormals, 0 is
   returned and the caller asks dtoa. The bounds: s <= 2^117 (e < 0) or 4e35 (e >= 0), times 10 at most
   once by the estimate's fix-up, and the loop's r + m+ stays under 11 s: below 2^125. */
typedef unsigned __int128 u128;
static u128 powers_of_ten[39];

static int shortest_digits(double v, char digits[24], int *point) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int biased = (int)(bits >> 52 & 0x7ff);
    if (biased == 0 || biased == 0x7ff) return 0;
    uint64_t f = (bits & ((UINT64_C(1) << 52) - 1)) | UINT64_C(1) << 52;
    int e = biased - 1075;
    if (e < -115 || e > 60) return 0;
    /* A mantissa that is even reads back from its exact midpoints (round half to even), so the interval's
       ends count; at a power of two the gap below is half the gap above. */
    int even = (f & 1) == 0, lower_closer = f == UINT64_C(1) << 52 && biased > 1;
    u128 r, s, up, down;
    if (e >= 0) {
        u128 unit = (u128)1 << e;
        r = (u128)f * unit * (lower_closer ? 4 : 2), s = lower_closer ? 4 : 2;
        up = lower_closer ? unit * 2 : unit, down = unit;
    } else {
        r = (u128)f * (lower_closer ? 4 : 2), s = (u128)1 << (lower_closer ? 2 - e : 1 - e);
        up = lower_closer ? 2 : 1, down = 1;
    }
    /* v lies in [2^(e+52), 2^(e+53)), so this k is at most the point of the high end, and at most one
       below it (log10 2 < 1): one fix-up. */
    int k = (int)ceil((e + 52) * 0.30102999566398119521);
    if (k >= 0) {
        s *= powers_of_ten[k];
    } else {
        u128 scale = powers_of_ten[-k];
        r *= scale, up *= scale, down *= scale;
    }
    if (even ? r + up >= s : r + up > s) s *= 10, k++;
    *point = k;
    int n = 0;
    for (;;) {
        r *= 10, up *= 10, down *= 10;
        int digit = 0;
        while (r >= s) r -= s, digit++;
        int low = even ? r <= down : r < down, high = even ? r + up >= s : r + up > s;
        if (!low && !high) {
            digits[n++] = (char)('0' + digit);
            continue;
        }
        if (low && high) {
            u128 twice = r * 2;
            if (twice > s || (twice == s && digit & 1)) digit++;
        } else if (high) {
            digit++;
        }
        digits[n++] = (char)('0' + digit);
        return n;
    }
}

/* A float as prometheus_client's floatToGoString writes it: +Inf, -Inf and NaN by name, otherwise `repr`
   (fixed point from 1e-4 up to 1e16, an exponent of at least two digits outside), except that a positive
   value from 1e6 up to 1e16 is written as Go does, with an exponent where repr has none (1234567.5 ->
   1.2345675e+06). Energy counters pass 1e6 J within hours, so this is most values of a long-running
   exporter. */
static int put_go_float(buffer *b, double v) {
    if (isnan(v)) return put(b, "NaN", 3);
    if (v == INFINITY) return put(b, "+Inf", 4);
    if (v == -INFINITY) return put(b, "-Inf", 4);
    if (v == 0) return signbit(v) ? put(b, "-0.0", 4) : put(b, "0.0", 3);
    char digits[24], text[64];
    int point, n = shortest_digits(fabs(v), digits, &point), used = 0;
    if (n == 0) {
        char *written = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (written == NULL) return -1;
        int failed = put(b, written, strlen(written));
        PyMem_Free(written);
        return failed;
    }
    if (v < 0) text[used++] = '-';
    if (point > 16 || point <= -4 || (v > 0 && point > 6)) {
        /* d.ddd and the exponent (a single digit has no point) */
        text[used++] = digits[0];
        if (n > 1) {
            text[used++] = '.';
            memcpy(text + used, digits + 1, (size_t)n - 1);
            used += n - 1;
        }
        /* two digits, as repr's %02d: shortest_digits' range ends at 1e34 (snprintf was a tenth of a render) */
        int exponent = abs(point - 1);
        text[used++] = 'e', text[used++] = point - 1 < 0 ? '-' : '+';
        text[used++] = (char)('0' + exponent / 10), text[used++] = (char)('0' + exponent % 10);
    } else if (point <= 0) {
        text[used++] = '0', text[used++] = '.';
        memset(text + used, '0', (size_t)-point);
        used += -point;
        memcpy(text + used, digits, (size_t)n);
        used += n;
    } else if (point < n) {
        memcpy(text + used, digits, (size_t)point);
        used += point;
        text[used++] = '.';
        memcpy(text + used, digits + point, (size_t)(n - point));
        used += n - point;
    } else {
        memcpy(text + used, digits, (size_t)n);
        used += n;
        memset(text + used, '0', (size_t)(point - n));
        used += point - n;
        text[used++] = '.', text[used++] = '0';
    }
    return put(b, text, (size_t)used);
}

/* render_lines(prefixes, series, order, go_float) -> str: for each labels of `order`, prefixes[labels],
   the value series[labels] as prometheus_client's floatToGoString writes it, and a newline; the twin of
   exposition.metrics._lines joined. A float is written here (put_go_float); any other value by `go_float`. */
static PyObject *render_lines(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyDict_Check(args[0]) || !PyDict_Check(args[1]) || !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "render_lines(prefixes: dict, series: dict, order: list, go_float)");
        return NULL;
    }
    PyObject *prefixes = args[0], *series = args[1], *order = args[2], *go_float = args[3];
    buffer b = {NULL, 0, 0};
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(order); i++) {
        PyObject *labels = PyList_GET_ITEM(order, i);
        Py_INCREF(labels);
        PyObject *prefix = PyDict_GetItemWithError(prefixes, labels), *value = NULL; /* borrowed */
        if (prefix != NULL) value = PyDict_GetItemWithError(series, labels);
        if (value == NULL) {
            if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, labels);
            Py_DECREF(labels);
            goto error;
        }
        Py_DECREF(labels);
        Py_INCREF(prefix);
        Py_INCREF(value);
        Py_ssize_t n;
        const char *text = PyUnicode_Check(prefix) ? PyUnicode_AsUTF8AndSize(prefix, &n) : NULL;
        int failed = text == NULL || put(&b, text, (size_t)n);
        Py_DECREF(prefix);
        if (!failed) {
            if (PyFloat_CheckExact(value)) {
                failed = put_go_float(&b, PyFloat_AS_DOUBLE(value));
            } else {
                PyObject *formatted = PyObject_CallOneArg(go_float, value);
                text = formatted != NULL && PyUnicode_Check(formatted) ? PyUnicode_AsUTF8AndSize(formatted, &n) : NULL;
                if (formatted != NULL && text == NULL && !PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "render_lines: go_float gave no str");
                failed = text == NULL || put(&b, text, (size_t)n);
                Py_XDECREF(formatted);
            }
        }
        Py_DECREF(value);
        if (failed || put(&b, "\n", 1)) goto error;
    }
    PyObject *out = PyUnicode_DecodeUTF8(b.data ? b.data : "", (Py_ssize_t)b.used, "strict");
    PyMem_Free(b.data);
    return out;
error:
    PyMem_Free(b.data);
    return NULL;
}

static PyMethodDef methods[] = {
    {"rule", (PyCFunction)(void (*)(void))rule, METH_FASTCALL,
     "rule(prev_raw, new_raw, elapsed_seconds, max_watts, wrap_joules, restarted) -> (joules or None, kind)"},
    {"steady_deltas", (PyCFunction)(void (*)(void))steady_deltas, METH_FASTCALL,
     "steady_deltas(readings, read_at, states, suspects, state_type, defaults, fallback) -> each steady reading's "
     "(joules, (), seconds), None from the first one the Python path must judge"},
    {"apply_ops", (PyCFunction)(void (*)(void))apply_ops, METH_FASTCALL,
     "apply_ops(totals, created, ops) -> the number of series created once added; None: nothing touched, the "
     "Python path must add them"},
    {"judge_power", (PyCFunction)(void (*)(void))judge_power, METH_FASTCALL,
     "judge_power(readings, judged, seconds) -> (energy, rejected, power, node_watts), None: the Python loop's"},
    {"render_lines", (PyCFunction)(void (*)(void))render_lines, METH_FASTCALL,
     "render_lines(prefixes, series, order, go_float) -> the `prefix value` lines of `order`, joined"},
    {"stage_shares", (PyCFunction)(void (*)(void))stage_shares, METH_FASTCALL,
     "stage_shares(ops, shares, scale, g_per_j, now_wall) -> joules handed out, or None for the Python loop"},
    {"use_reading_type", (PyCFunction)(void (*)(void))use_reading_type, METH_FASTCALL,
     "use_reading_type(cls, positions) -> None: read those fields of readings of exactly type cls by position"},
    {"charge_sample", (PyCFunction)(void (*)(void))charge_sample, METH_FASTCALL,
     "charge_sample(totals, created, energy, figures, lifetime, g_per_j, m_per_j, seconds, now_wall, names, node, "
     "server_grams, uncharged, pue, wue, grid_water, price) -> series created, None: nothing touched"},
    {"charge_steady", (PyCFunction)(void (*)(void))charge_steady, METH_FASTCALL,
     "charge_steady(readings, read_at, seconds, judging, charging, g_per_j, m_per_j, server_grams, uncharged, "
     "price, now_wall) -> (power, node_watts, series created) | None"},
    {"stage_energy", (PyCFunction)(void (*)(void))stage_energy, METH_FASTCALL,
     "stage_energy(ops, energy, figures, lifetime, g_per_j, m_per_j, seconds, now_wall, names) -> node joules, "
     "None: nothing staged, the Python loop's"},
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
        intern(&attr_device, "device") || intern(&attr_source, "source") || intern(&attr_power_watts, "power_watts") ||
        intern(&attr_in_node_total, "in_node_total") || intern(&attr_kgco2e, "kgco2e") ||
        intern(&attr_energy_series, "energy_series") || intern(&attr_energy_labels, "energy_labels") ||
        intern(&attr_energy_metric, "energy_metric") || intern(&attr_emissions_metric, "emissions_metric") ||
        intern(&attr_labels, "labels") ||
        (empty_tuple = PyTuple_New(0)) == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    powers_of_ten[0] = 1;
    for (int i = 1; i < 39; i++) powers_of_ten[i] = powers_of_ten[i - 1] * 10;
    if (m == NULL || add_float(m, "SLACK_RATIO", SLACK_RATIO) || add_float(m, "SLACK_SECONDS", SLACK_SECONDS)) {
        Py_XDECREF(m);
        return NULL;
    }
    return m;
}
