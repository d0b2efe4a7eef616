/* Helpers the benchmark programs share (each bench program is built alone,
 * so these are static inline). */
#ifndef SLM_BENCH_UTIL_H
#define SLM_BENCH_UTIL_H

#include "core/core.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* The 1, 5 and 15 minute load averages (-1 each if unknown): the machine
 * may be shared, so every bench prints them next to its timings. */
static inline void slm_bench_load_avg(double la[3]) {
    la[0] = la[1] = la[2] = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return;
    if (fscanf(f, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = la[1] = la[2] = -1;
    fclose(f);
}

/* CPU seconds of the process, all threads (glibc's clock() is the process
 * CPU-time clock). */
static inline double slm_bench_cpu_now(void) { return (double)clock() / CLOCKS_PER_SEC; }

/* GFLOP/s of C[M][N] = op(A) op(B) (op: the transpose when ta / tb; A is
 * [M][K] or [K][M], B [K][N] or [N][K]), best of reps after one warm-up, by
 * the wall clock; *per_cpu (may be NULL) gets the GFLOP per CPU-second
 * (all threads) of the best repetition by CPU time. A repetition repeats
 * the product until it lasts about 50 ms: the CPU time of threads running
 * on other cores is only brought up to date at scheduler ticks, so shorter
 * intervals read up to a tick short. 0 when out of memory. */
static inline double slm_bench_sgemm_gflops(bool ta, bool tb, int M, int N, int K, int reps, double *per_cpu) {
    if (per_cpu) *per_cpu = 0;
    float *a = malloc(sizeof(float) * (size_t)M * K), *b = malloc(sizeof(float) * (size_t)N * K);
    float *c = malloc(sizeof(float) * (size_t)M * N);
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0;
    }
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 7) * 0.01f;
    double best = 1e30, best_cpu = 1e30;
    int inner = 1;
    for (int r = 0; r < reps + 1; r++) {
        double t = slm_time_now(), tc = slm_bench_cpu_now();
        for (int k = 0; k < inner; k++)
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f,
                        a, ta ? M : K, b, tb ? K : N, 0.0f, c, N);
        t = (slm_time_now() - t) / inner;
        tc = (slm_bench_cpu_now() - tc) / inner;
        if (r == 0) inner = t > 0 && t < 0.05 ? (int)(0.05 / t) + 1 : 1; /* the warm-up sets the count */
        else {
            if (t < best) best = t;
            if (tc < best_cpu) best_cpu = tc;
        }
    }
    free(a), free(b), free(c);
    if (per_cpu && best_cpu > 0) *per_cpu = 2.0 * M * N * K / best_cpu / 1e9;
    return 2.0 * M * N * K / best / 1e9;
}

#endif
