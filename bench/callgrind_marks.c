/*
 * Section marks for bench/instructions.py: Python code calls these (ctypes) around what it measures,
 * and callgrind (valgrind's client requests, <valgrind/callgrind.h>) counts instructions only there,
 * writing one dump per section (or per step of one: fp_zero, then fp_dump). Outside valgrind every request is a no-op of a few instructions.
 */
#include <valgrind/callgrind.h>

void fp_section_begin(void) {
    CALLGRIND_START_INSTRUMENTATION;
    CALLGRIND_ZERO_STATS;
}

void fp_section_end(const char *label) {
    CALLGRIND_DUMP_STATS_AT(label);
    CALLGRIND_STOP_INSTRUMENTATION;
}

/* Within a section: count from here (what ran since the begin or the last dump is dropped)... */
void fp_zero(void) { CALLGRIND_ZERO_STATS; }

/* ...to here, one dump under `label`, counting on. */
void fp_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
