/* The exporter's hot reads: the per-sample counter reads of the NVML and RAPL meters and the readings
   made of them, all of a meter's devices in one call; the subdirectories of each cgroup an attribution
   pass walks, and the containers' CPU time it reads.

   Optional: setup.py builds it where a C compiler and Python's headers exist, and the meters fall back
   to their pure-Python reads (a ctypes call per GPU, os.pread per zone) where it is absent. It only
   ever reads: every decision about a value (range, plausibility, errors) stays in Python, and anything
   unusual is handed back for the Python path to judge, so both paths give the same readings.

   Why: at 1 Hz a sample runs with cold caches, and each ctypes call (argument conversion, libffi) and
   each os.pread wrapper touches far more memory than the read itself (bench/README.md). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy) */
typedef int (*energy_fn)(void *device, unsigned long long *millijoules);

#define MAX_DEVICES 4096
#define READ_BYTES 32 /* as the Python path: energy_uj is at most 20 digits and a newline */

static PyObject *nvml_energy(PyObject *Py_UNUSED(self), PyObject *args) {
    unsigned long long address;
    PyObject *handles;
    if (!PyArg_ParseTuple(args, "KO!:nvml_energy", &address, &PyTuple_Type, &handles)) return NULL;
    if (address == 0) {
        PyErr_SetString(PyExc_ValueError, "nvml_energy: the function address is NULL");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(handles);
    if (n > MAX_DEVICES) {
        PyErr_SetString(PyExc_ValueError, "nvml_energy: too many handles");
        return NULL;
    }
    void **device = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(void *));
    unsigned long long *value = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(unsigned long long));
    int *code = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(int));
    PyObject *out = NULL;
    if (device == NULL || value == NULL || code == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        device[i] = PyLong_AsVoidPtr(PyTuple_GET_ITEM(handles, i));
        if (device[i] == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "nvml_energy: a NULL device handle");
            goto done;
        }
    }
    energy_fn fn = (energy_fn)(uintptr_t)address;
    Py_BEGIN_ALLOW_THREADS /* a real driver call can take milliseconds: scrapes go on meanwhile */
    for (Py_ssize_t i = 0; i < n; i++) {
        value[i] = 0;
        code[i] = fn(device[i], &value[i]);
    }
    Py_END_ALLOW_THREADS
    out = PyTuple_New(n);
    if (out == NULL) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* the counter in mJ, or minus the NVML return code (codes are positive; SUCCESS is 0) */
        PyObject *item = code[i] == 0 ? PyLong_FromUnsignedLongLong(value[i]) : PyLong_FromLong(-(long)code[i]);
        if (item == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyTuple_SET_ITEM(out, i, item);
    }
done:
    PyMem_Free(device);
    PyMem_Free(value);
    PyMem_Free(code);
    return out;
}

/* A plain decimal: optional ASCII whitespace, 1-18 digits, optional whitespace, nothing else. Anything
   else (a sign, an underscore, more digits, garbage) is -1: Python's int() decides on its own path. */
static long long plain_decimal(const char *s, ssize_t len) {
    ssize_t i = 0;
    while (i < len && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))) i++;
    long long v = 0;
    int digits = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (++digits > 18) return -1;
        v = v * 10 + (s[i] - '0');
        i++;
    }
    if (digits == 0) return -1;
    while (i < len && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))) i++;
    return i == len ? v : -1;
}

/* The descriptors of a tuple of ints into fd[] (-1: not open, its read fails and the entry is None):
   0, or -1 with ValueError naming `who`. */
static int descriptors(PyObject *fds, int *fd, const char *who) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fds); i++) {
        long v = PyLong_AsLong(PyTuple_GET_ITEM(fds, i));
        if (v == -1 && PyErr_Occurred()) return -1;
        if (v < -1 || v > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: not a file descriptor", who);
            return -1;
        }
        fd[i] = (int)v;
    }
    return 0;
}

/* A tuple of the n values, None for each negative one (a new reference, NULL on error). */
static PyObject *values_or_none(const long long *value, Py_ssize_t n) {
    PyObject *out = PyTuple_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = value[i] < 0 ? Py_NewRef(Py_None) : PyLong_FromLongLong(value[i]);
        if (item == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, item);
    }
    return out;
}

static PyObject *read_decimals(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *fds;
    if (!PyArg_ParseTuple(args, "O!:read_decimals", &PyTuple_Type, &fds)) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(fds);
    if (n > MAX_DEVICES) {
        PyErr_SetString(PyExc_ValueError, "read_decimals: too many descriptors");
        return NULL;
    }
    int *fd = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(int));
    long long *value = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(long long));
    PyObject *out = NULL;
    if (fd == NULL || value == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (descriptors(fds, fd, "read_decimals")) goto done;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        char buf[READ_BYTES];
        ssize_t got = pread(fd[i], buf, sizeof buf, 0);
        value[i] = got <= 0 ? -1 : plain_decimal(buf, got);
    }
    Py_END_ALLOW_THREADS
    out = values_or_none(value, n);
done:
    PyMem_Free(fd);
    PyMem_Free(value);
    return out;
}

/* read_field(fds, key) -> each descriptor's number after `key` (its first occurrence, up to the end of its
   line) read at offset 0 in one pread of FIELD_BYTES, as cgroups.usage_usec reads cpu.stat's usage_usec;
   None where the Python path must look: a failed read (a removed cgroup's ENODEV, a -1 for a file that is
   not kept open), no key, no newline after it, or anything but 1-18 ASCII digits between (the Python path
   decides what those are). Why: an attribution pass reads 600 containers' cpu.stat, and a Python
   os.pread and parse per file was a fifth of the pass (bench/README.md). The GIL is released for the
   reads, as os.pread releases it. */
#define FIELD_BYTES 4096

static long long field_value(const char *buf, ssize_t got, const char *key, Py_ssize_t key_len) {
    for (ssize_t at = 0; at + key_len <= got; at++) {
        if (memcmp(buf + at, key, (size_t)key_len) != 0) continue;
        long long v = 0;
        int digits = 0;
        for (ssize_t i = at + key_len; i < got; i++) {
            if (buf[i] == '\n') return digits ? v : -1;
            if (buf[i] < '0' || buf[i] > '9' || ++digits > 18) return -1;
            v = v * 10 + (buf[i] - '0');
        }
        return -1; /* the line is cut short: the number may be too */
    }
    return -1;
}

static PyObject *read_field(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *fds;
    const char *key;
    Py_ssize_t key_len;
    if (!PyArg_ParseTuple(args, "O!y#:read_field", &PyTuple_Type, &fds, &key, &key_len)) return NULL;
    if (key_len == 0 || key_len > 64) {
        PyErr_SetString(PyExc_ValueError, "read_field: the key must be 1-64 bytes");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(fds);
    int *fd = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(int));
    long long *value = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(long long));
    char *buf = PyMem_Malloc(FIELD_BYTES);
    PyObject *out = NULL;
    if (fd == NULL || value == NULL || buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (descriptors(fds, fd, "read_field")) goto done;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        ssize_t got = fd[i] < 0 ? -1 : pread(fd[i], buf, FIELD_BYTES, 0);
        value[i] = got <= 0 ? -1 : field_value(buf, got, key, key_len);
    }
    Py_END_ALLOW_THREADS
    out = values_or_none(value, n);
done:
    PyMem_Free(fd);
    PyMem_Free(value);
    PyMem_Free(buf);
    return out;
}

/* subdirs(path) -> the names of the directory's subdirectories (symlinks and files left out), in the order
   the directory lists them; None when an entry's type is unknown (a filesystem without d_type), for the
   Python path (os.scandir's is_dir(follow_symlinks=False)) to decide. The GIL is released while the
   directory is read, as os.scandir releases it. Why: every attribution pass lists
   each pod's cgroup, ~60 interface files beside a few container directories, and os.listdir makes a
   string of each name. Raises OSError as os.scandir does when the directory cannot be opened. */
static PyObject *subdirs(PyObject *Py_UNUSED(self), PyObject *arg) {
    PyObject *encoded = NULL;
    if (!PyUnicode_FSConverter(arg, &encoded)) return NULL;
    /* The names are gathered with the GIL released (a scrape may render meanwhile), NUL after each. */
    char *names = NULL;
    size_t used = 0, size = 0;
    int unknown = 0, failed = 0, err = 0;
    Py_BEGIN_ALLOW_THREADS
    DIR *dir = opendir(PyBytes_AS_STRING(encoded));
    if (dir == NULL) {
        err = errno;
    } else {
        struct dirent *entry;
        while ((errno = 0, entry = readdir(dir)) != NULL) {
            const char *name = entry->d_name;
            if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
            if (entry->d_type == DT_UNKNOWN) {
                unknown = 1;
                break;
            }
            if (entry->d_type != DT_DIR) continue;
            size_t len = strlen(name) + 1;
            if (used + len > size) {
                size_t grown = (size ? size * 2 : 4096) + len;
                char *bigger = realloc(names, grown);
                if (bigger == NULL) {
                    failed = 1;
                    break;
                }
                names = bigger;
                size = grown;
            }
            memcpy(names + used, name, len);
            used += len;
        }
        if (entry == NULL && errno != 0 && !failed) err = errno;
        closedir(dir);
    }
    Py_END_ALLOW_THREADS
    PyObject *out = NULL;
    if (err != 0) {
        errno = err;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, arg);
    } else if (failed) {
        PyErr_NoMemory();
    } else if (unknown) {
        out = Py_NewRef(Py_None);
    } else if ((out = PyList_New(0)) != NULL) {
        for (size_t at = 0; at < used; at += strlen(names + at) + 1) {
            PyObject *item = PyUnicode_DecodeFSDefault(names + at);
            if (item == NULL || PyList_Append(out, item)) {
                Py_XDECREF(item);
                Py_CLEAR(out);
                break;
            }
            Py_DECREF(item);
        }
    }
    free(names);
    Py_DECREF(encoded);
    return out;
}

/* with_energy(templates, values, divisor) -> list: for each template reading (a tuple subclass) a new one
   of its type, the same fields but the energy (field ENERGY_FIELD) value / divisor, as the meters' steady
   paths would make it in Python: new_reading((*t[:3], value / divisor, *t[4:])). The readings of a
   steady sample in one call (a tuple of 13 fields a device was a tenth of a sample's bytecode). */
#define ENERGY_FIELD 3

/* A copy of template reading t with energy `joules` (a new reference; NULL with an exception): what
   tuple.__new__(type(t), fields) makes, allocated once, a subtype's own allocation filled in place. */
static PyObject *reading_with_energy(PyObject *t, double joules) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) <= ENERGY_FIELD) {
        PyErr_SetString(PyExc_TypeError, "a template is not a reading");
        return NULL;
    }
    Py_ssize_t size = PyTuple_GET_SIZE(t);
    PyTypeObject *type = Py_TYPE(t);
    PyObject *made = type == &PyTuple_Type ? PyTuple_New(size) : type->tp_alloc(type, size);
    if (made == NULL) return NULL;
    for (Py_ssize_t k = 0; k < size; k++) {
        PyObject *item = k == ENERGY_FIELD ? PyFloat_FromDouble(joules) : Py_NewRef(PyTuple_GET_ITEM(t, k));
        if (item == NULL) {
            Py_DECREF(made);
            return NULL;
        }
        PyTuple_SET_ITEM(made, k, item);
    }
    return made;
}

static PyObject *with_energy(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *templates, *values;
    double divisor;
    if (!PyArg_ParseTuple(args, "O!O!d", &PyTuple_Type, &templates, &PyTuple_Type, &values, &divisor)) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(templates);
    if (PyTuple_GET_SIZE(values) != n) {
        PyErr_SetString(PyExc_ValueError, "with_energy: one value per template");
        return NULL;
    }
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        double value = PyFloat_AsDouble(PyTuple_GET_ITEM(values, i)); /* an int as int / float converts it */
        if (value == -1.0 && PyErr_Occurred()) goto error;
        PyObject *made = reading_with_energy(PyTuple_GET_ITEM(templates, i), value / divisor);
        if (made == NULL) goto error;
        PyList_SET_ITEM(out, i, made);
    }
    return out;
error:
    Py_DECREF(out);
    return NULL;
}

/* read_steady(plans, clock) -> (readings, read_at) or None: every meter's SteadyPlan (meters/base.py)
   followed as its read() would go, in order: the meter's clock, checked against `until`; its sources
   read; `clock()` after them, the read time of its readings (as the sampler times each meter's read).
   None, with nothing changed, where any plan is due, any source fails (an NVML error, a failed read,
   not a plain decimal), a file's value did not move from `last`, or a clock raises: read() then reads that
   sample (the counters read here are read again: only later values are charged). Otherwise each file's
   value goes into `last`, and the readings are the templates with energy value / divisor. Why: in a 1 Hz
   sample each meter's read() was a handful of cold Python frames around its C call (bench/README.md). */
enum { PLAN_KIND, PLAN_CLOCK, PLAN_UNTIL, PLAN_ADDRESS, PLAN_SOURCES, PLAN_TEMPLATES, PLAN_DIVISOR, PLAN_LAST,
       PLAN_FIELDS };
enum { KIND_NVML_COUNTERS, KIND_DECIMAL_FILES, KIND_NOTHING };
#define MAX_STEADY 1024 /* devices in one steady sample */

/* A clock's time (-1 with the error cleared where it raised or gave no float: read() decides). */
static double clock_now(PyObject *clock) {
    PyObject *got = PyObject_CallNoArgs(clock);
    double now = got == NULL ? -1.0 : PyFloat_AsDouble(got);
    Py_XDECREF(got);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return -1.0;
    }
    return now;
}

/* The plan's n sources read into value[] (mJ or the file's number); 0, 1 where the plan is not followed,
   -1 with an exception for a plan that is not one. */
static int follow(PyObject *plan, long kind, Py_ssize_t n, long long *value) {
    PyObject *sources = PyTuple_GET_ITEM(plan, PLAN_SOURCES);
    int refused = 0;
    if (kind == KIND_NVML_COUNTERS) {
        void *device[64];
        unsigned long long address = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(plan, PLAN_ADDRESS));
        if (PyErr_Occurred()) return -1;
        if (address == 0 || n > 64) {
            PyErr_SetString(PyExc_ValueError, "read_steady: no function address, or more than 64 GPUs");
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            device[i] = PyLong_AsVoidPtr(PyTuple_GET_ITEM(sources, i));
            if (device[i] == NULL) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "read_steady: a NULL device handle");
                return -1;
            }
        }
        energy_fn fn = (energy_fn)(uintptr_t)address;
        Py_BEGIN_ALLOW_THREADS /* as nvml_energy: a driver call can take milliseconds */
        for (Py_ssize_t i = 0; i < n && !refused; i++) {
            unsigned long long mj = 0;
            refused = fn(device[i], &mj) != 0 || mj > (unsigned long long)LLONG_MAX;
            value[i] = (long long)mj;
        }
        Py_END_ALLOW_THREADS
        return refused;
    }
    int fd[64];
    if (n > 64) {
        PyErr_SetString(PyExc_ValueError, "read_steady: more than 64 files");
        return -1;
    }
    if (descriptors(sources, fd, "read_steady")) return -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n && !refused; i++) {
        char buf[READ_BYTES];
        ssize_t got = pread(fd[i], buf, sizeof buf, 0);
        value[i] = got <= 0 ? -1 : plain_decimal(buf, got);
        refused = value[i] < 0;
    }
    Py_END_ALLOW_THREADS
    return refused;
}

static PyObject *read_steady(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyTuple_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "read_steady(plans: tuple, clock)");
        return NULL;
    }
    PyObject *plans = args[0], *clock = args[1];
    Py_ssize_t count = PyTuple_GET_SIZE(plans), total = 0;
    if (count > 16) {
        PyErr_SetString(PyExc_ValueError, "read_steady: more than 16 plans");
        return NULL;
    }
    for (Py_ssize_t p = 0; p < count; p++) {
        PyObject *plan = PyTuple_GET_ITEM(plans, p);
        if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) != PLAN_FIELDS
                || !PyTuple_Check(PyTuple_GET_ITEM(plan, PLAN_SOURCES))
                || !PyTuple_Check(PyTuple_GET_ITEM(plan, PLAN_TEMPLATES))
                || PyTuple_GET_SIZE(PyTuple_GET_ITEM(plan, PLAN_SOURCES))
                   != PyTuple_GET_SIZE(PyTuple_GET_ITEM(plan, PLAN_TEMPLATES))) {
            PyErr_SetString(PyExc_TypeError, "read_steady: a plan is not a SteadyPlan with one source per template");
            return NULL;
        }
        total += PyTuple_GET_SIZE(PyTuple_GET_ITEM(plan, PLAN_SOURCES));
    }
    long long value[MAX_STEADY];
    double at[16];
    if (total > MAX_STEADY) {
        PyErr_SetString(PyExc_ValueError, "read_steady: more than 1024 devices");
        return NULL;
    }
    Py_ssize_t offset = 0;
    for (Py_ssize_t p = 0; p < count; p++) {
        PyObject *plan = PyTuple_GET_ITEM(plans, p);
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(plan, PLAN_KIND));
        double until = PyFloat_AsDouble(PyTuple_GET_ITEM(plan, PLAN_UNTIL));
        if (PyErr_Occurred()) return NULL;
        if (kind != KIND_NVML_COUNTERS && kind != KIND_DECIMAL_FILES && kind != KIND_NOTHING) {
            PyErr_SetString(PyExc_ValueError, "read_steady: an unknown plan kind");
            return NULL;
        }
        Py_ssize_t n = PyTuple_GET_SIZE(PyTuple_GET_ITEM(plan, PLAN_SOURCES));
        PyObject *last = PyTuple_GET_ITEM(plan, PLAN_LAST);
        if ((kind == KIND_NOTHING && n != 0)
                || (kind == KIND_DECIMAL_FILES && (!PyList_Check(last) || PyList_GET_SIZE(last) != n))) {
            PyErr_SetString(PyExc_ValueError, "read_steady: a plan's sources do not fit its kind");
            return NULL;
        }
        double now = clock_now(PyTuple_GET_ITEM(plan, PLAN_CLOCK));
        if (now < 0 || now >= until) Py_RETURN_NONE;
        int refused = kind == KIND_NOTHING ? 0 : follow(plan, kind, n, value + offset);
        if (refused < 0) return NULL;
        if (refused) Py_RETURN_NONE;
        if (kind == KIND_DECIMAL_FILES) {
            for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *was = PyList_GET_ITEM(last, i);
                long long before = PyLong_Check(was) ? PyLong_AsLongLong(was) : -1;
                if (before == -1 && PyErr_Occurred()) PyErr_Clear(); /* beyond 64 bits: not this value */
                if (before == value[offset + i]) Py_RETURN_NONE; /* unchanged: read() confirms it */
            }
        }
        at[p] = clock_now(clock);
        if (at[p] < 0) Py_RETURN_NONE;
        offset += n;
    }
    PyObject *readings = PyList_New(total), *read_at = PyList_New(total), *out = NULL;
    PyObject *numbers[MAX_STEADY]; /* the files' values for `last`, made before any is replaced */
    Py_ssize_t made_numbers = 0;
    if (readings == NULL || read_at == NULL) goto done;
    offset = 0;
    for (Py_ssize_t p = 0; p < count; p++) {
        PyObject *plan = PyTuple_GET_ITEM(plans, p);
        PyObject *templates = PyTuple_GET_ITEM(plan, PLAN_TEMPLATES);
        int files = PyLong_AsLong(PyTuple_GET_ITEM(plan, PLAN_KIND)) == KIND_DECIMAL_FILES;
        double divisor = PyFloat_AsDouble(PyTuple_GET_ITEM(plan, PLAN_DIVISOR));
        if (divisor == -1.0 && PyErr_Occurred()) goto done;
        PyObject *when = PyFloat_FromDouble(at[p]);
        if (when == NULL) goto done;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(templates); i++, offset++) {
            PyObject *made = reading_with_energy(PyTuple_GET_ITEM(templates, i), (double)value[offset] / divisor);
            PyObject *number = files ? PyLong_FromLongLong(value[offset]) : NULL;
            if (made == NULL || (files && number == NULL)) {
                Py_XDECREF(made);
                Py_DECREF(when);
                goto done;
            }
            if (files) numbers[made_numbers++] = number;
            PyList_SET_ITEM(readings, offset, made);
            PyList_SET_ITEM(read_at, offset, Py_NewRef(when));
        }
        Py_DECREF(when);
    }
    out = PyTuple_Pack(2, readings, read_at);
    if (out == NULL) goto done;
    /* Only now, with everything made: the files' values become the ones the next must move from. */
    made_numbers = 0;
    for (Py_ssize_t p = 0; p < count; p++) {
        PyObject *plan = PyTuple_GET_ITEM(plans, p);
        if (PyLong_AsLong(PyTuple_GET_ITEM(plan, PLAN_KIND)) != KIND_DECIMAL_FILES) continue;
        PyObject *last = PyTuple_GET_ITEM(plan, PLAN_LAST);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(last); i++) {
            PyObject *old = PyList_GET_ITEM(last, i);
            PyList_SET_ITEM(last, i, numbers[made_numbers++]); /* the list takes the number */
            Py_DECREF(old);
        }
    }
    made_numbers = 0;
done:
    for (Py_ssize_t i = 0; i < made_numbers; i++) Py_DECREF(numbers[i]); /* made but not placed */
    Py_XDECREF(readings);
    Py_XDECREF(read_at);
    return out;
}

static PyMethodDef methods[] = {
    {"nvml_energy", nvml_energy, METH_VARARGS,
     "nvml_energy(address, handles) -> each device's total energy in mJ, or minus its NVML return code"},
    {"read_decimals", read_decimals, METH_VARARGS,
     "read_decimals(fds) -> each descriptor's value read at offset 0, or None where the Python path must look"},
    {"read_field", read_field, METH_VARARGS,
     "read_field(fds, key) -> each descriptor's number after key at offset 0, or None where the Python path must look"},
    {"with_energy", with_energy, METH_VARARGS,
     "with_energy(templates, values, divisor) -> a copy of each template reading with energy value / divisor"},
    {"read_steady", (PyCFunction)(void (*)(void))read_steady, METH_FASTCALL,
     "read_steady(plans, clock) -> (readings, read_at) as the meters' reads would give them, or None"},
    {"subdirs", subdirs, METH_O,
     "subdirs(path) -> names of its subdirectories, or None where an entry's type is unknown"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "footprint.meters._fastread", NULL, -1, methods,
                                     NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fastread(void) { return PyModule_Create(&module); }
