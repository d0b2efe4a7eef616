#include "test_util.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_failures;
static int g_checks;

bool slm_test_check(bool cond, const char *file, int line, const char *fmt, ...) {
    g_checks++;
    if (cond) return true;
    g_failures++;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return false;
}

bool slm_test_close(const char *name, const float *a, const float *b, size_t n,
                    double tol, const char *file, int line) {
    double maxd = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= maxd)) { maxd = d; at = i; } /* NaN propagates as a failure */
        if (isnan(d)) { maxd = INFINITY; at = i; break; }
    }
    printf("%s: n=%zu max|d|=%.3g at %zu (tol %.3g)\n", name, n, maxd, at, tol);
    return slm_test_check(maxd <= tol, file, line, "%s: max|d|=%.6g at %zu > tol %.3g (a=%g b=%g)",
                          name, maxd, at, tol, n ? a[at] : 0.0f, n ? b[at] : 0.0f);
}

const char *slm_test_env(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return (v && *v) ? v : fallback;
}

const char *slm_test_path(const char *dir, const char *rel) {
    static char bufs[8][4096];
    static int slot;
    char *b = bufs[slot++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, rel);
    return b;
}

char *slm_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) { buf[n] = 0; if (len) *len = (size_t)n; }
    return buf;
}

int slm_test_finish(void) {
    printf("%d checks, %d failed\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}

uint32_t slm_test_rand_u32(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return (uint32_t)(x >> 16);
}

float slm_test_uniform(uint64_t *state, float lo, float hi) {
    return lo + (hi - lo) * (float)(slm_test_rand_u32(state) & 0xFFFFFF) / 16777216.0f;
}
