/* Tensor types against gguf-py (tests/golden/dtype_golden.bin, made by
 * tools/make_gguf_golden.py): every type's to_float on random valid blocks
 * and from_float for the types slimlm writes must match bit for bit
 * (tolerance 0: the C code does ggml's operations in ggml's order, and
 * gguf-py's numpy code evaluates them in the same float32 order). Also the
 * traits table itself and Q8_0's quantisation error bound. */
#include "core/core.h"
#include "core/dtype.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Compares floats bit for bit (so -0 vs +0 counts) and prints max |d|. */
static void check_bits(const char *what, const float *got, const float *want, size_t n) {
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) diff += memcmp(&got[i], &want[i], 4) != 0;
    CHECK_CLOSE(what, got, want, n, 0.0);
    CHECK(diff == 0, "%s: %zu of %zu values differ in their bits", what, diff, n);
}

static void test_golden(void) {
    const char *path = slm_test_path(slm_test_env("SLM_GOLDEN_DIR", "tests/golden"), "dtype_golden.bin");
    size_t len = 0;
    uint8_t *buf = (uint8_t *)slm_test_read_file(path, &len);
    if (!CHECK(buf && len > 12 && !memcmp(buf, "SLMDTYP1", 8), "cannot read %s", path)) { free(buf); return; }
    uint32_t n_cases = rd32(buf + 8);
    size_t pos = 12;
    int seen[SLM_DTYPE_COUNT_][2] = {{0}};
    for (uint32_t c = 0; c < n_cases; c++) {
        if (!CHECK(pos + 16 <= len, "golden truncated")) break;
        uint32_t type = rd32(buf + pos), dir = rd32(buf + pos + 4), n = rd32(buf + pos + 8), nb = rd32(buf + pos + 12);
        pos += 16;
        if (!CHECK(pos + nb + (size_t)n * 4 <= len && type < SLM_DTYPE_COUNT_ && dir < 2, "golden case %u bad", c)) break;
        const uint8_t *raw = buf + pos;
        float *vals = malloc((size_t)n * 4), *got = malloc((size_t)n * 4);
        uint8_t *q = malloc(nb);
        memcpy(vals, buf + pos + nb, (size_t)n * 4);
        pos += nb + (size_t)n * 4;
        const slm_dtype_traits *tr = slm_dtype_get((int)type);
        size_t want_nb = 0;
        char what[64];
        snprintf(what, sizeof what, "%s %s", tr ? tr->name : "?", dir ? "from_float" : "to_float");
        if (CHECK(tr && slm_dtype_nbytes((slm_dtype)type, n, &want_nb) && want_nb == nb, "%s: size", what)) {
            seen[type][dir] = 1;
            if (dir == 0) {
                tr->to_float(raw, got, n);
                check_bits(what, got, vals, n);
            } else if (CHECK(tr->from_float != NULL, "%s: missing", what)) {
                tr->from_float(vals, q, n);
                size_t bad = 0;
                for (size_t i = 0; i < nb; i++) bad += q[i] != raw[i];
                printf("%s: %u values -> %u bytes, %zu bytes differ\n", what, n, nb, bad);
                CHECK(bad == 0, "%s: %zu of %u bytes differ from gguf-py", what, bad, nb);
            }
        }
        free(vals);
        free(got);
        free(q);
    }
    const int read_types[] = {SLM_DTYPE_F16, SLM_DTYPE_BF16, SLM_DTYPE_Q4_0, SLM_DTYPE_Q4_1,
                              SLM_DTYPE_Q8_0, SLM_DTYPE_Q4_K, SLM_DTYPE_Q5_K, SLM_DTYPE_Q6_K};
    for (size_t i = 0; i < sizeof read_types / sizeof *read_types; i++)
        CHECK(seen[read_types[i]][0], "no to_float golden for type %d", read_types[i]);
    CHECK(seen[SLM_DTYPE_F16][1] && seen[SLM_DTYPE_BF16][1] && seen[SLM_DTYPE_Q8_0][1], "from_float goldens missing");
    free(buf);
}

static void test_table(void) {
    static const struct { int id; const char *name; int bs; size_t ts; } want[] = {
        {0, "F32", 1, 4},       {1, "F16", 1, 2},       {2, "Q4_0", 32, 18},   {3, "Q4_1", 32, 20},
        {8, "Q8_0", 32, 34},    {12, "Q4_K", 256, 144}, {13, "Q5_K", 256, 176}, {14, "Q6_K", 256, 210},
        {30, "BF16", 1, 2}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const slm_dtype_traits *t = slm_dtype_get(want[i].id);
        CHECK(t && !strcmp(t->name, want[i].name) && t->block_size == want[i].bs && t->type_size == want[i].ts,
              "traits of %s", want[i].name);
    }
    CHECK(!slm_dtype_get(-1) && !slm_dtype_get(6) && !slm_dtype_get(SLM_DTYPE_COUNT_) && !slm_dtype_get(1 << 30),
          "unknown ids give NULL");
    size_t nb = 0;
    CHECK(slm_dtype_nbytes(SLM_DTYPE_Q4_K, 512, &nb) && nb == 288, "Q4_K nbytes");
    CHECK(!slm_dtype_nbytes(SLM_DTYPE_Q8_0, 33, &nb), "Q8_0 33 elements refused");
    CHECK(!slm_dtype_nbytes(SLM_DTYPE_F32, INT64_MAX, &nb), "size overflow refused");
}

/* Q8_0 quantise -> dequantise: each value within half a step (d/2) plus the
 * fp16 rounding of d itself (relative 2^-11 of max|x|). */
static void test_q8_roundtrip(void) {
    enum { N = 32 * 64 };
    float *x = malloc(N * 4), *y = malloc(N * 4);
    uint8_t *q = malloc(N / 32 * 34);
    uint64_t s = 12345;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = ((float)(s >> 40) / (float)(1 << 24) - 0.5f) * (float)(1 + i / 32);
    }
    const slm_dtype_traits *t = slm_dtype_get(SLM_DTYPE_Q8_0);
    t->from_float(x, q, N);
    t->to_float(q, y, N);
    double worst = 0;
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        double tol = amax / 127.0 * 0.5 + amax * (1.0 / 2048.0);
        for (int j = 0; j < 32; j++) worst = fmax(worst, fabs((double)x[b * 32 + j] - y[b * 32 + j]) / tol);
    }
    printf("Q8_0 round trip: worst error / bound = %.3f\n", worst);
    CHECK(worst <= 1.0, "Q8_0 round-trip error %.3f x the bound", worst);
    free(x);
    free(y);
    free(q);
}

int main(void) {
    test_table();
    test_golden();
    test_q8_roundtrip();
    return slm_test_finish();
}
