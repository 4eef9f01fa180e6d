/*
 * Section marks for bench/instructions.py: Python code calls these (ctypes) around what it measures,
 * and callgrind (valgrind's client requests, <valgrind/callgrind.h>) counts instructions only there,
 * writing one dump per section. Outside valgrind every request is a no-op of a few instructions.
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
