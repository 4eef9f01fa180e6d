/*
 * What the fake NVML (nvml/fake_nvml.c) and the fake amdsmi (amdsmi/fake_amdsmi.c) share: the
 * scenario file re-read when it changes, the fake clock with its driver reloads, and the per-GPU
 * step power trace whose exact integral is the energy counter. Each fake documents the real
 * library it imitates; this file holds no behaviour of either. tests/fakes/power_trace.py mirrors
 * the same integer arithmetic in Python.
 *
 * The including file defines TEXT, MAX_GPUS, MAX_STEPS, MAX_WINDOWS and MAX_RELOADS first. Scenario lines
 * handled here (times in microseconds, power in milliwatts):
 *   clock manual <us> | clock monotonic <epoch_ns>     reload <us>      (scenario-wide)
 *   power <from_us> <mW> (repeat, ascending)           lost <from_us> <until_us>   (per GPU)
 */
#ifndef FAKE_COMMON_H
#define FAKE_COMMON_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct { int64_t from, until; } window_t;

/* A GPU's power: mW from each step's start on, and the windows in which the GPU is lost. */
typedef struct {
    int nsteps;
    int64_t step_from[MAX_STEPS];
    unsigned step_mw[MAX_STEPS];
    int nlost;
    window_t lost[MAX_WINDOWS];
} trace_t;

/* The fake's time: fixed (manual) or CLOCK_MONOTONIC from an epoch; driver loads restart counters. */
typedef struct {
    int manual;
    int64_t manual_us, epoch_ns;
    int nreloads;
    int64_t reloads[MAX_RELOADS];
} timeline_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Run `expr` (a do_* call) under the library lock and return its status. */
#define LOCKED(expr)                          \
    do {                                      \
        pthread_mutex_lock(&lock);            \
        __typeof__(expr) r_ = (expr);         \
        pthread_mutex_unlock(&lock);          \
        return r_;                            \
    } while (0)

static void copy_text(char *dst, const char *src) {
    size_t n = strcspn(src, "\r\n");
    if (n >= TEXT) n = TEXT - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void parse_window(window_t *w, const char *rest) {
    long long a = 0, b = 0;
    sscanf(rest, "%lld %lld", &a, &b);
    w->from = a;
    w->until = b;
}

static int in_window(window_t w, int64_t t) { return t >= w.from && t < w.until; }

static int in_any_window(const window_t *w, int n, int64_t t) {
    for (int i = 0; i < n; i++)
        if (in_window(w[i], t)) return 1;
    return 0;
}

/* The next scenario line that is not blank or a comment: its first word in `key`, what follows in *rest. */
static int next_line(FILE *f, char line[512], char key[64], const char **rest) {
    while (fgets(line, 512, f)) {
        int off = 0;
        if (sscanf(line, "%63s %n", key, &off) < 1 || key[0] == '#') continue;
        *rest = line + off;
        return 1;
    }
    return 0;
}

/* A `gpu <i>` line: the index, counted into *ngpus, or -1 outside [0, MAX_GPUS). */
static int gpu_index(const char *rest, int *ngpus) {
    int i = atoi(rest);
    if (i < 0 || i >= MAX_GPUS) return -1;
    if (i + 1 > *ngpus) *ngpus = i + 1;
    return i;
}

/* A scenario-wide `clock` or `reload` line: 1 if `key` is one of them (a reload past the table is dropped). */
static int parse_timeline(timeline_t *tl, const char *key, const char *rest) {
    if (!strcmp(key, "clock")) {
        char mode[16] = "";
        long long a = 0;
        sscanf(rest, "%15s %lld", mode, &a);
        tl->manual = strcmp(mode, "monotonic") != 0;
        if (tl->manual) tl->manual_us = a; else tl->epoch_ns = a;
        return 1;
    }
    if (!strcmp(key, "reload")) {
        if (tl->nreloads < MAX_RELOADS) tl->reloads[tl->nreloads++] = atoll(rest);
        return 1;
    }
    return 0;
}

/* A per-GPU `power` or `lost` line: 1 if `key` is one of them (a line past the table is dropped). */
static int parse_trace(trace_t *tr, const char *key, const char *rest) {
    if (!strcmp(key, "power")) {
        if (tr->nsteps < MAX_STEPS) {
            window_t w;
            parse_window(&w, rest);
            tr->step_from[tr->nsteps] = w.from;
            tr->step_mw[tr->nsteps++] = (unsigned)w.until;
        }
        return 1;
    }
    if (!strcmp(key, "lost")) {
        if (tr->nlost < MAX_WINDOWS) parse_window(&tr->lost[tr->nlost++], rest);
        return 1;
    }
    return 0;
}

/* Re-read the scenario named by $`env` with `parse` if its file changed (inode, size or mtime); keep
 * the last good one if it cannot be read now; no name at all unloads it (*loaded = 0). */
static void refresh_scenario(const char *env, int *loaded, void (*parse)(FILE *)) {
    static struct stat seen;
    const char *path = getenv(env);
    struct stat st;
    if (!path || !*path || stat(path, &st) != 0) {
        if (!path || !*path) *loaded = 0;
        return;
    }
    if (*loaded && st.st_ino == seen.st_ino && st.st_size == seen.st_size &&
        st.st_mtim.tv_sec == seen.st_mtim.tv_sec && st.st_mtim.tv_nsec == seen.st_mtim.tv_nsec)
        return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    parse(f);
    fclose(f);
    seen = st;
}

static int64_t timeline_now_us(const timeline_t *tl) {
    if (tl->manual) return tl->manual_us;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ((int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - tl->epoch_ns) / 1000;
}

static unsigned power_at(const trace_t *tr, int64_t t) {
    if (tr->nsteps == 0) return 0;
    unsigned mw = tr->step_mw[0];
    for (int i = 0; i < tr->nsteps && tr->step_from[i] <= t; i++) mw = tr->step_mw[i];
    return mw;
}

/* Exact integral of the step trace over [a, b), in nJ (mW x us); the first step reaches back forever. */
static unsigned __int128 integral_nj(const trace_t *tr, int64_t a, int64_t b) {
    unsigned __int128 sum = 0;
    for (int i = 0; i < tr->nsteps; i++) {
        int64_t lo = i == 0 ? INT64_MIN : tr->step_from[i];
        int64_t hi = i + 1 < tr->nsteps ? tr->step_from[i + 1] : INT64_MAX;
        if (lo < a) lo = a;
        if (hi > b) hi = b;
        if (hi > lo) sum += (unsigned __int128)(uint64_t)(hi - lo) * tr->step_mw[i];
    }
    return sum;
}

/* Energy (nJ) since the last driver load at or before t (time 0 if none; t clamped to >= 0);
 * *reloaded says whether a reload happened, after which the counter's offset no longer counts. */
static unsigned __int128 since_load_nj(const timeline_t *tl, const trace_t *tr, int64_t t, int *reloaded) {
    if (t < 0) t = 0;
    int64_t start = 0;
    *reloaded = 0;
    for (int i = 0; i < tl->nreloads; i++)
        if (tl->reloads[i] <= t && tl->reloads[i] >= start) { start = tl->reloads[i]; *reloaded = 1; }
    return integral_nj(tr, start, t);
}

#endif
