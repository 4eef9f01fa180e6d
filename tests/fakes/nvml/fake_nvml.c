/*
 * A fake libnvidia-ml.so.1 for tests: the real pynvml loads it and calls it like the real library.
 *
 * Behaviour comes from a scenario file named by $FAKE_NVML_SCENARIO, re-read whenever the file
 * changes (inode, size or mtime), so a test can change what the "hardware" does while a process runs.
 * Without a readable scenario the fake acts as if NVML were absent (init answers
 * NVML_ERROR_LIBRARY_NOT_FOUND), so a process that loaded it for one test shows no GPUs to others.
 *
 * Time: the scenario either fixes the time ("clock manual <us>") or follows CLOCK_MONOTONIC from an
 * epoch ("clock monotonic <epoch_ns>"). Power is a step trace per GPU; the energy counter is the exact
 * integral of that trace (integer nJ, reported in mJ, rounded down), restarting from 0 at each driver
 * reload. tests/fakes/nvml/__init__.py writes scenarios and computes the same integral in Python.
 *
 * The real counter (nvmlDeviceGetTotalEnergyConsumption, Volta and newer) is in mJ since the driver
 * was last loaded (NVML API reference, "Device Queries"), so it restarts at each driver load, and a
 * month after load it holds ~10^9 mJ per GPU. Drivers have been seen to return a value a few mJ
 * below the previous one, 0, or garbage near 2^64 for one read (Zeus, ml-energy/zeus issues on
 * NVML energy; NVIDIA forum threads on nvmlDeviceGetTotalEnergyConsumption): `energy_glitch`
 * answers such a value in a time window. A driver call can also hang for seconds (a GPU falling off
 * the bus, a busy driver): `hang` blocks a call while a file exists.
 * nvmlDeviceGetPowerManagementLimitConstraints answers the settable range of the limit (min, max mW).
 * nvmlDeviceGetArchitecture answers the GPU's nvmlDeviceArchitecture_t (nvml.h: KEPLER 2, MAXWELL 3,
 * PASCAL 4, VOLTA 5, TURING 6, AMPERE 7, ADA 8, HOPPER 9, BLACKWELL 10; NVML_DEVICE_ARCH_UNKNOWN
 * 0xffffffff where the driver does not know the part): peers gate the energy counter on it (Zeus
 * reads the counter only from VOLTA on, and polls power in a separate process before), so the
 * default is HOPPER, the H100 the scenarios name; an `error nvmlDeviceGetArchitecture` rule makes
 * it fail like an old driver without the call.
 *
 * Scenario lines (times in microseconds, power in milliwatts); "gpu <i>" starts a GPU's block:
 *   driver_version <text>        nvml_version <text>          init_error <code>
 *   clock manual <us> | clock monotonic <epoch_ns>           reload <us>
 *   error <function> <code> [<from_us> <until_us>]   (outside a block: every call of that name;
 *                                function "*" matches every call, nvmlInitWithFlags included)
 *   hang <function> <path>       the call blocks while <path> exists, after creating <path>.entered
 *   gpu <index>
 *     name <text>  uuid <text>  power_limit_mw <n>  power_limit_max_mw <n>  energy_offset_mj <n>
 *     util <gpu%> <mem%>  energy_glitch <from_us> <until_us> <mJ> (the counter answers <mJ> then)
 *     mig <-1|0|1> (1: no utilisation, as on real MIG GPUs)  power <from_us> <mW> (repeat, ascending)  lost <from_us> <until_us>
     arch <nvmlDeviceArchitecture_t> (default 9, HOPPER)
 *     error <function|field:ID> <code> [<from_us> <until_us>]
 *     process <pid> <sm%> <mem%> <used_bytes> <gpu_instance> <compute_instance>
 */
#define _GNU_SOURCE

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_LIBRARY_NOT_FOUND = 12,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_UNKNOWN = 999,
};

#define MAX_GPUS 8
#define MAX_STEPS 1024
#define MAX_WINDOWS 16
#define MAX_ERRORS 64
#define MAX_PROCS 32
#define MAX_RELOADS 16
#define TEXT 96
#include "../fake_common.h" /* the scenario file, the clock, the power trace: shared with fake_amdsmi.c */

typedef struct { char fn[64]; int code; int always; window_t w; } err_rule_t;
typedef struct { unsigned pid, sm, mem, gi, ci; unsigned long long used; } proc_t;
typedef struct { window_t w; unsigned long long mj; } glitch_t;
typedef struct { char fn[64]; char path[256]; } hang_t;
#define MAX_HANGS 4

typedef struct {
    char name[TEXT], uuid[TEXT];
    unsigned power_limit_mw, power_limit_max_mw, util_gpu, util_mem, arch;
    int nglitches;
    glitch_t glitches[MAX_WINDOWS];
    unsigned long long energy_offset_mj;
    int mig;
    trace_t tr;
    int nerrors;
    err_rule_t errors[MAX_ERRORS];
    int nprocs;
    proc_t procs[MAX_PROCS];
} gpu_t;

typedef struct {
    int loaded;
    char driver_version[TEXT], nvml_version[TEXT];
    int init_error;
    timeline_t tl;
    int nerrors;
    err_rule_t errors[MAX_ERRORS];
    int nhangs;
    hang_t hangs[MAX_HANGS];
    int ngpus;
    gpu_t gpus[MAX_GPUS];
} scenario_t;

typedef struct nvmlDevice_st { unsigned index; } *nvmlDevice_t;

typedef union {
    double dVal; unsigned int uiVal; unsigned long ulVal; unsigned long long ullVal;
    long long sllVal; int siVal; unsigned short usVal;
} nvmlValue_t;

typedef struct {
    unsigned int fieldId, scopeId;
    long long timestamp, latencyUsec;
    int valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

typedef struct {
    unsigned int pid;
    unsigned long long timeStamp;
    unsigned int smUtil, memUtil, encUtil, decUtil;
} nvmlProcessUtilizationSample_t;

static scenario_t sc;
static int init_count;
static struct nvmlDevice_st handles[MAX_GPUS] = {{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}};

/* ---- scenario file ------------------------------------------------------------------------ */

static void parse_error(err_rule_t *e, const char *rest) {
    long long a = 0, b = 0;
    int n = sscanf(rest, "%63s %d %lld %lld", e->fn, &e->code, &a, &b);
    e->always = n < 4;
    e->w.from = a;
    e->w.until = b;
}

static void parse(FILE *f) {
    memset(&sc, 0, sizeof sc);
    sc.loaded = 1;
    strcpy(sc.driver_version, "550.54.15");
    strcpy(sc.nvml_version, "12.550.54.15");
    sc.tl.manual = 1;
    gpu_t *g = NULL;
    char line[512], key[64];
    const char *rest;
    while (next_line(f, line, key, &rest)) {
        long long a = 0, b = 0;
        if (parse_timeline(&sc.tl, key, rest)) continue;
        if (!strcmp(key, "driver_version")) copy_text(sc.driver_version, rest);
        else if (!strcmp(key, "nvml_version")) copy_text(sc.nvml_version, rest);
        else if (!strcmp(key, "init_error")) sc.init_error = atoi(rest);
        else if (!strcmp(key, "hang") && sc.nhangs < MAX_HANGS) {
            hang_t *h = &sc.hangs[sc.nhangs++];
            if (sscanf(rest, "%63s %255s", h->fn, h->path) != 2) sc.nhangs--;
        } else if (!strcmp(key, "gpu")) {
            int i = gpu_index(rest, &sc.ngpus);
            g = i < 0 ? NULL : &sc.gpus[i];
            if (!g) continue;
            g->mig = -1;
            snprintf(g->name, TEXT, "NVIDIA H100 80GB HBM3");
            snprintf(g->uuid, TEXT, "GPU-fa4e0000-0000-4000-8000-00000000000%d", i);
            g->power_limit_mw = 700000;
            g->arch = 9; /* NVML_DEVICE_ARCH_HOPPER */
        } else if (!strcmp(key, "error")) {
            if (g && g->nerrors < MAX_ERRORS) parse_error(&g->errors[g->nerrors++], rest);
            else if (!g && sc.nerrors < MAX_ERRORS) parse_error(&sc.errors[sc.nerrors++], rest);
        } else if (!g || parse_trace(&g->tr, key, rest)) {
            continue;
        } else if (!strcmp(key, "name")) copy_text(g->name, rest);
        else if (!strcmp(key, "uuid")) copy_text(g->uuid, rest);
        else if (!strcmp(key, "power_limit_mw")) g->power_limit_mw = (unsigned)atoll(rest);
        else if (!strcmp(key, "power_limit_max_mw")) g->power_limit_max_mw = (unsigned)atoll(rest);
        else if (!strcmp(key, "energy_glitch") && g->nglitches < MAX_WINDOWS) {
            glitch_t *e = &g->glitches[g->nglitches++];
            sscanf(rest, "%lld %lld %llu", &a, &b, &e->mj);
            e->w.from = a;
            e->w.until = b;
        }
        else if (!strcmp(key, "energy_offset_mj")) g->energy_offset_mj = strtoull(rest, NULL, 10);
        else if (!strcmp(key, "util")) sscanf(rest, "%u %u", &g->util_gpu, &g->util_mem);
        else if (!strcmp(key, "mig")) g->mig = atoi(rest);
        else if (!strcmp(key, "arch")) g->arch = (unsigned)strtoul(rest, NULL, 10);
        else if (!strcmp(key, "process") && g->nprocs < MAX_PROCS) {
            proc_t *p = &g->procs[g->nprocs++];
            sscanf(rest, "%u %u %u %llu %u %u", &p->pid, &p->sm, &p->mem, &p->used, &p->gi, &p->ci);
        }
    }
}

static void refresh(void) { refresh_scenario("FAKE_NVML_SCENARIO", &sc.loaded, parse); }

/* ---- time, power and energy ---------------------------------------------------------------- */

static int64_t now_us(void) { return timeline_now_us(&sc.tl); }

/* Counter since the last driver load: the offset (energy before t=0) until the first reload. */
static unsigned long long energy_mj(const gpu_t *g, int64_t t) {
    int reloaded;
    unsigned __int128 nj = since_load_nj(&sc.tl, &g->tr, t, &reloaded);
    return (unsigned long long)(nj / 1000000u) + (reloaded ? 0 : g->energy_offset_mj);
}

static nvmlReturn_t rule(const err_rule_t *errs, int n, const char *fn, int64_t t) {
    for (int i = 0; i < n; i++)
        if ((!strcmp(errs[i].fn, fn) || !strcmp(errs[i].fn, "*")) && (errs[i].always || in_window(errs[i].w, t))) return errs[i].code;
    return NVML_SUCCESS;
}

/* Common entry for a library-wide call: refresh, then initialised? then a global error rule. */
static nvmlReturn_t enter(const char *fn) {
    refresh();
    if (!sc.loaded || init_count == 0) return NVML_ERROR_UNINITIALIZED;
    return rule(sc.errors, sc.nerrors, fn, now_us());
}

/* Entry for a per-device call: also a valid handle, the GPU not lost, no per-GPU error rule. */
static nvmlReturn_t enter_dev(const char *fn, nvmlDevice_t h, gpu_t **out) {
    nvmlReturn_t r = enter(fn);
    if (r) return r;
    if (h < handles || h >= handles + MAX_GPUS || (int)h->index >= sc.ngpus) return NVML_ERROR_INVALID_ARGUMENT;
    gpu_t *g = &sc.gpus[h->index];
    int64_t t = now_us();
    if (in_any_window(g->tr.lost, g->tr.nlost, t)) return NVML_ERROR_GPU_IS_LOST;
    *out = g;
    return rule(g->errors, g->nerrors, fn, t);
}

#define DEV_ENTER(fn)                            \
    gpu_t *g = NULL;                             \
    nvmlReturn_t r = enter_dev(fn, device, &g);  \
    if (r) return r

static void put_text(char *dst, unsigned len, const char *src) {
    if (!dst || !len) return;
    snprintf(dst, len, "%s", src);
}

/* ---- library ------------------------------------------------------------------------------ */

static nvmlReturn_t do_init(void) {
    refresh();
    if (!sc.loaded) return NVML_ERROR_LIBRARY_NOT_FOUND;
    if (sc.init_error) return sc.init_error;
    nvmlReturn_t r = rule(sc.errors, sc.nerrors, "nvmlInitWithFlags", now_us());
    if (r) return r;
    init_count++;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; LOCKED(do_init()); }
nvmlReturn_t nvmlInit_v2(void) { LOCKED(do_init()); }
nvmlReturn_t nvmlInit(void) { LOCKED(do_init()); }

static nvmlReturn_t do_shutdown(void) {
    refresh();
    if (init_count == 0) return NVML_ERROR_UNINITIALIZED;
    init_count--;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) { LOCKED(do_shutdown()); }

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Fake NVML error";
    }
}

/* A system-wide string (driver or NVML version); `text` is read under the lock, after enter(). */
static nvmlReturn_t do_system_text(const char *fn, char *out, unsigned int length, const char *text) {
    nvmlReturn_t r = enter(fn);
    if (!r) put_text(out, length, text);
    return r;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    LOCKED(do_system_text("nvmlSystemGetDriverVersion", version, length, sc.driver_version));
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    LOCKED(do_system_text("nvmlSystemGetNVMLVersion", version, length, sc.nvml_version));
}

static nvmlReturn_t do_count(unsigned int *count) {
    nvmlReturn_t r = enter("nvmlDeviceGetCount_v2");
    if (!r) *count = (unsigned)sc.ngpus;
    return r;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) { LOCKED(do_count(count)); }

static nvmlReturn_t do_handle(unsigned int index, nvmlDevice_t *device) {
    nvmlReturn_t r = enter("nvmlDeviceGetHandleByIndex_v2");
    if (r) return r;
    if (index >= (unsigned)sc.ngpus) return NVML_ERROR_INVALID_ARGUMENT;
    gpu_t *g = NULL;
    r = enter_dev("nvmlDeviceGetHandleByIndex_v2", &handles[index], &g);
    if (!r) *device = &handles[index];
    return r;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    LOCKED(do_handle(index, device));
}

/* ---- per device --------------------------------------------------------------------------- */

static nvmlReturn_t do_index(nvmlDevice_t device, unsigned int *index) {
    DEV_ENTER("nvmlDeviceGetIndex");
    *index = device->index;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) { LOCKED(do_index(device, index)); }

static nvmlReturn_t do_name(nvmlDevice_t device, char *name, unsigned int length) {
    DEV_ENTER("nvmlDeviceGetName");
    put_text(name, length, g->name);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    LOCKED(do_name(device, name, length));
}

static nvmlReturn_t do_uuid(nvmlDevice_t device, char *uuid, unsigned int length) {
    DEV_ENTER("nvmlDeviceGetUUID");
    put_text(uuid, length, g->uuid);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    LOCKED(do_uuid(device, uuid, length));
}

/* A hung driver call: block (outside the lock, as a real call blocks its caller only) while the file
 * named by a matching `hang` rule exists, after creating <path>.entered so a test knows it hangs. */
static void maybe_hang(const char *fn) {
    char path[256] = "";
    pthread_mutex_lock(&lock);
    refresh();
    for (int i = 0; i < sc.nhangs; i++)
        if (!strcmp(sc.hangs[i].fn, fn)) { memcpy(path, sc.hangs[i].path, sizeof path); break; }
    pthread_mutex_unlock(&lock);
    struct stat st;
    if (!path[0] || stat(path, &st) != 0) return;
    char entered[300];
    snprintf(entered, sizeof entered, "%s.entered", path);
    FILE *f = fopen(entered, "w");
    if (f) fclose(f);
    struct timespec pause = {0, 2000000};
    while (stat(path, &st) == 0) nanosleep(&pause, NULL);
}

static nvmlReturn_t do_arch(nvmlDevice_t device, unsigned int *arch) {
    DEV_ENTER("nvmlDeviceGetArchitecture");
    if (!arch) return NVML_ERROR_INVALID_ARGUMENT;
    *arch = g->arch;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t device, unsigned int *arch) { LOCKED(do_arch(device, arch)); }

static nvmlReturn_t do_limit(const char *fn, nvmlDevice_t device, unsigned int *limit) {
    DEV_ENTER(fn);
    *limit = g->power_limit_mw;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) {
    LOCKED(do_limit("nvmlDeviceGetEnforcedPowerLimit", device, limit));
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit) {
    LOCKED(do_limit("nvmlDeviceGetPowerManagementLimit", device, limit));
}

static nvmlReturn_t do_constraints(nvmlDevice_t device, unsigned int *min, unsigned int *max) {
    DEV_ENTER("nvmlDeviceGetPowerManagementLimitConstraints");
    if (!min || !max) return NVML_ERROR_INVALID_ARGUMENT;
    *max = g->power_limit_max_mw ? g->power_limit_max_mw : g->power_limit_mw;
    *min = *max / 2;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t device, unsigned int *minLimit,
                                                          unsigned int *maxLimit) {
    LOCKED(do_constraints(device, minLimit, maxLimit));
}

static nvmlReturn_t do_power(nvmlDevice_t device, unsigned int *power) {
    DEV_ENTER("nvmlDeviceGetPowerUsage");
    *power = power_at(&g->tr, now_us());
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) { LOCKED(do_power(device, power)); }

static nvmlReturn_t do_energy(nvmlDevice_t device, unsigned long long *energy) {
    DEV_ENTER("nvmlDeviceGetTotalEnergyConsumption");
    int64_t t = now_us();
    *energy = energy_mj(g, t);
    for (int i = 0; i < g->nglitches; i++)
        if (in_window(g->glitches[i].w, t)) *energy = g->glitches[i].mj;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy) {
    maybe_hang("nvmlDeviceGetTotalEnergyConsumption");
    LOCKED(do_energy(device, energy));
}

static nvmlReturn_t do_fields(nvmlDevice_t device, int count, nvmlFieldValue_t *values) {
    DEV_ENTER("nvmlDeviceGetFieldValues");
    if (count < 0 || (count > 0 && !values)) return NVML_ERROR_INVALID_ARGUMENT;
    int64_t t = now_us();
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *v = &values[i];
        char name[32];
        snprintf(name, sizeof name, "field:%u", v->fieldId);
        v->timestamp = t;
        v->latencyUsec = 0;
        v->nvmlReturn = rule(g->errors, g->nerrors, name, t);
        if (v->nvmlReturn) continue;
        switch (v->fieldId) {
        case 83: v->valueType = 3; v->value.ullVal = energy_mj(g, t); break;
        case 185: case 186: v->valueType = 1; v->value.uiVal = power_at(&g->tr, t); break;
        default: v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        }
    }
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int valuesCount, nvmlFieldValue_t *values) {
    LOCKED(do_fields(device, valuesCount, values));
}

static nvmlReturn_t do_util(nvmlDevice_t device, nvmlUtilization_t *util) {
    DEV_ENTER("nvmlDeviceGetUtilizationRates");
    if (g->mig == 1) return NVML_ERROR_NOT_SUPPORTED; /* as on real GPUs in MIG mode */
    util->gpu = g->util_gpu;
    util->memory = g->util_mem;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    LOCKED(do_util(device, utilization));
}

static nvmlReturn_t do_mig(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
    DEV_ENTER("nvmlDeviceGetMigMode");
    if (g->mig < 0) return NVML_ERROR_NOT_SUPPORTED;
    *current = *pending = (unsigned)g->mig;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode, unsigned int *pendingMode) {
    LOCKED(do_mig(device, currentMode, pendingMode));
}

static nvmlReturn_t do_procs(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos) {
    DEV_ENTER("nvmlDeviceGetComputeRunningProcesses_v3");
    unsigned n = (unsigned)g->nprocs;
    if (n == 0) { *count = 0; return NVML_SUCCESS; }
    if (!infos || *count < n) { *count = n; return NVML_ERROR_INSUFFICIENT_SIZE; }
    for (unsigned i = 0; i < n; i++) {
        infos[i].pid = g->procs[i].pid;
        infos[i].usedGpuMemory = g->procs[i].used;
        infos[i].gpuInstanceId = g->procs[i].gi;
        infos[i].computeInstanceId = g->procs[i].ci;
    }
    *count = n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                     nvmlProcessInfo_t *infos) {
    LOCKED(do_procs(device, infoCount, infos));
}

/* One sample per process, stamped with the current time; none newer than lastSeen -> NOT_FOUND. */
static nvmlReturn_t do_proc_util(nvmlDevice_t device, nvmlProcessUtilizationSample_t *samples,
                                 unsigned int *count, unsigned long long last_seen) {
    DEV_ENTER("nvmlDeviceGetProcessUtilization");
    if (g->mig == 1) return NVML_ERROR_NOT_SUPPORTED;
    int64_t t = now_us();
    unsigned n = (unsigned)g->nprocs;
    if (n == 0 || t <= 0 || (unsigned long long)t <= last_seen) return NVML_ERROR_NOT_FOUND;
    if (!samples || *count < n) { *count = n; return NVML_ERROR_INSUFFICIENT_SIZE; }
    for (unsigned i = 0; i < n; i++) {
        samples[i].pid = g->procs[i].pid;
        samples[i].timeStamp = (unsigned long long)t;
        samples[i].smUtil = g->procs[i].sm;
        samples[i].memUtil = g->procs[i].mem;
        samples[i].encUtil = samples[i].decUtil = 0;
    }
    *count = n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *utilization,
                                             unsigned int *processSamplesCount,
                                             unsigned long long lastSeenTimeStamp) {
    LOCKED(do_proc_util(device, utilization, processSamplesCount, lastSeenTimeStamp));
}
