/* Progress display (bar with rate and ETA), timing, thread settings. */
#define _POSIX_C_SOURCE 200809L
#include "core/core.h"

#include <cblas.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#ifdef SLM_OPENMP
#include <omp.h>
#endif

double slm_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* OpenBLAS built with OpenMP follows omp_set_num_threads, but we set both so
 * a pthreads OpenBLAS behaves the same. */
void openblas_set_num_threads(int n);

static int g_threads = 0;

void slm_set_threads(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    g_threads = n;
#ifdef SLM_OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
}

int slm_get_threads(void) {
    if (g_threads <= 0) {
#ifdef SLM_OPENMP
        return omp_get_max_threads();
#else
        return 1;
#endif
    }
    return g_threads;
}

static void fmt_duration(double s, char *buf, size_t cap) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, cap, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, cap, "%02ld:%02ld", t / 60, t % 60);
}

static void progress_print(slm_progress *p, bool final) {
    double now = slm_time_now();
    double el = now - p->t_start;
    double rate = el > 0 ? (double)p->done / el : 0.0;
    double eta = (rate > 0 && p->total > 0) ? (double)(p->total - p->done) / rate : -1;
    char e1[32], e2[32];
    fmt_duration(el, e1, sizeof e1);
    fmt_duration(eta, e2, sizeof e2);
    if (p->tty) {
        int width = 30;
        int fill = p->total > 0 ? (int)((double)width * (double)p->done / (double)p->total) : 0;
        if (fill > width) fill = width;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r%s [%s] %lld/%lld %s  %.1f %s/s  elapsed %s  eta %s   ", p->label, bar,
                (long long)p->done, (long long)p->total, p->unit, rate, p->unit, e1, e2);
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: %lld/%lld %s  %.1f %s/s  elapsed %s  eta %s\n", p->label,
                (long long)p->done, (long long)p->total, p->unit, rate, p->unit, e1, e2);
    }
    fflush(stderr);
    p->t_last_print = now;
}

void slm_progress_begin(slm_progress *p, const char *label, const char *unit, int64_t total) {
    bool quiet = p->quiet;
    *p = (slm_progress){.label = label, .unit = unit, .total = total, .quiet = quiet};
    p->t_start = slm_time_now();
    p->t_last_print = p->t_start;
    p->tty = isatty(2);
}

void slm_progress_update(slm_progress *p, int64_t done) {
    p->done = done;
    if (p->quiet) return;
    double now = slm_time_now();
    /* A terminal redraws often; a log gets a line every 10 s. */
    double every = p->tty ? 0.25 : 10.0;
    if (now - p->t_last_print >= every) progress_print(p, false);
}

void slm_progress_end(slm_progress *p) {
    if (p->quiet) return;
    /* Short jobs that never printed stay silent in logs. */
    if (p->tty || slm_time_now() - p->t_start >= 10.0) progress_print(p, true);
}
