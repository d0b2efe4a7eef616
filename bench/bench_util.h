/* Helpers the benchmark programs share (each bench program is built alone,
 * so these are static inline). */
#ifndef SLM_BENCH_UTIL_H
#define SLM_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Peak resident set (VmHWM) of this process in KiB, -1 if unknown. */
static inline long slm_bench_vm_hwm_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

#endif
