/* QBLOCK kernels (src/kernels/cpu/qblock.h):
 *  - activation quantisation byte-exact against llama.cpp's x86 (AVX)
 *    quantize_row_q8_0 (id = 127/amax, ties to even), as emulated in numpy
 *    by tools/make_qblock_golden.py (tests/golden/qblock_q8_0.bin, which
 *    also holds gguf-py's portable-reference blocks: the count that differ
 *    from those is printed), and the Q8_1 properties: |q| <= 127, |d q - x| <= d/2, s = fp16(d sum q);
 *  - the reference dots vs an independent double-precision sum over the
 *    dequantised weights (dtype traits) and activations: within 1e-5 of
 *    sum |terms|, plus for Q4_1 the fp16 rounding of s in its m*s term;
 *  - AVX2 vs reference: integer sums exactly equal (scales of 1, where every
 *    float operation is exact), float results within 1e-5 relative to
 *    sum |terms|; the 4-row dot bit-identical to the one-row dot. */
#include "core/core.h"
#include "core/dtype.h"
#include "kernels/cpu/qblock.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NB = 48, N = NB * SLM_QK, NT = 4 };

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() & 0xFFFFFF) / 16777216.0f; }

static void put_half(uint8_t *p, float f) {
    uint16_t h = slm_fp32_to_fp16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* NB random blocks of type t; unit: d = 1 (and m = 0) so every float op is exact. */
static void random_weights(int t, uint8_t *w, bool unit) {
    const slm_dtype_traits *tr = slm_dtype_get(t);
    for (int i = 0; i < NB; i++) {
        uint8_t *b = w + (size_t)i * tr->type_size;
        for (size_t j = 0; j < tr->type_size; j++) b[j] = (uint8_t)next_u32();
        put_half(b, unit ? 1.0f : uniform(1e-3f, 2e-2f));
        if (t == SLM_DTYPE_Q4_1) put_half(b + 2, unit ? 0.0f : uniform(-0.1f, 0.1f));
    }
}

static void check_quantize_golden(const char *gold) {
    size_t len = 0;
    unsigned char *buf = (unsigned char *)slm_test_read_file(slm_test_path(gold, "qblock_q8_0.bin"), &len);
    if (!CHECK(buf != NULL && len >= 4, "read qblock_q8_0.bin")) return;
    uint32_t n;
    memcpy(&n, buf, 4);
    if (!CHECK(n % 32 == 0 && len == 4 + (size_t)n * 4 + 2 * ((size_t)n / 32 * 34), "golden size")) {
        free(buf);
        return;
    }
    float *x = malloc((size_t)n * sizeof *x);
    memcpy(x, buf + 4, (size_t)n * 4);
    const unsigned char *portable = buf + 4 + (size_t)n * 4, *ref = portable + (size_t)n / 32 * 34;
    slm_q8_block *y = malloc((size_t)n / 32 * sizeof *y);
    slm_q8_quantize_row(x, y, n);
    int bad_d = 0, bad_q = 0, bad_prop = 0, unlike_portable = 0;
    double worst_s = 0;
    for (uint32_t i = 0; i < n / 32; i++) {
        const unsigned char *r = ref + (size_t)i * 34;
        uint16_t h = (uint16_t)(r[0] | (r[1] << 8));
        bad_d += slm_fp32_to_fp16(y[i].d) != h;
        bad_q += memcmp(y[i].qs, r + 2, 32) != 0;
        unlike_portable += memcmp(y[i].qs, portable + (size_t)i * 34 + 2, 32) != 0;
        int sum = 0;
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[i * 32 + j]));
        const float d = amax / 127.0f; /* unrounded, as quantisation uses it */
        for (int j = 0; j < 32; j++) {
            sum += y[i].qs[j];
            bad_prop += abs(y[i].qs[j]) > 127 || fabs((double)d * y[i].qs[j] - x[i * 32 + j]) > 0.5 * d * (1 + 1e-6);
        }
        /* fp16 rounding: half an ulp, 2^-11 relative for normals, 2^-25 absolute for subnormals */
        double s_want = (double)d * sum, tol = fmax(fabs(s_want) * 0x1p-11, 0x1p-25) * (1 + 1e-6);
        double e = fabs(y[i].s - s_want) / tol;
        if (e > worst_s) worst_s = e;
    }
    printf("Q8_0 activations vs llama.cpp x86: %u blocks, %d d and %d qs mismatches (%d blocks differ from ggml's "
           "portable reference); Q8_1 properties: %d violations, max |s - d sum q| / (half an fp16 ulp) = %.3f "
           "(tol 1)\n",
           n / 32, bad_d, bad_q, unlike_portable, bad_prop, worst_s);
    CHECK(bad_d == 0 && bad_q == 0, "quantisation differs from llama.cpp's x86 quantize_row_q8_0");
    CHECK(bad_prop == 0, "Q8_1 property violated");
    CHECK(worst_s <= 1.0, "s is not fp16(d * sum q)");
    free(x);
    free(y);
    free(buf);
}

/* Independent: sum over dequantised weights x dequantised activations.
 * *mag = sum |terms|; *mbound: what Q4_1's use of s = fp16(d sum q) instead
 * of d sum q may cost, sum_b |m_b| |s_b| 2^-11 (0 for other types). */
static double dot_dequant(int t, const uint8_t *w, const slm_q8_block *a, double *mag, double *mbound) {
    float wf[N];
    slm_dtype_get(t)->to_float(w, wf, N);
    double s = 0;
    *mag = 0;
    *mbound = 0;
    for (int i = 0; i < N; i++) {
        double v = (double)wf[i] * a[i / 32].d * a[i / 32].qs[i % 32];
        s += v;
        *mag += fabs(v);
    }
    if (t == SLM_DTYPE_Q4_1)
        for (int b = 0; b < NB; b++) *mbound += fabs(slm_fp16_to_fp32((uint16_t)(w[20 * b + 2] | (w[20 * b + 3] << 8)))) *
                                                (fabs(a[b].s) * 0x1p-11 + 1e-30);
    return s;
}

static void check_dots(int t, const char *name) {
    const slm_dtype_traits *tr = slm_dtype_get(t);
    uint8_t *w = malloc((size_t)NB * tr->type_size);
    slm_q8_block a[NT][NB];
    float x[N];
    slm_qdot_fn ref = slm_qdot_get(t, false), fast = slm_qdot_get(t, true);
    slm_qdot4_fn fast4 = slm_qdot4_get(t, true);
    double worst_ind = 0, worst_fast = 0;
    bool int_equal = true, four_equal = true;
    for (int trial = 0; trial < 50; trial++) {
        bool unit = trial % 5 == 0;
        random_weights(t, w, unit);
        for (int k = 0; k < NT; k++) {
            for (int i = 0; i < N; i++) x[i] = uniform(-1, 1) * (i % 7 == 0 ? 8.0f : 1.0f);
            slm_q8_quantize_row(x, a[k], N);
            if (unit)
                for (int i = 0; i < NB; i++) a[k][i].d = 1.0f, a[k][i].s = 0.0f;
        }
        float r4[NT];
        if (fast4) fast4(w, a[0], NB, NB, r4);
        for (int k = 0; k < NT; k++) {
            float r = ref(w, a[k], NB), f = fast(w, a[k], NB);
            double mag, mbound, ind = dot_dequant(t, w, a[k], &mag, &mbound);
            double tol_ind = 1e-5 * mag + mbound;
            double e_ind = fabs(r - ind) / (tol_ind > 0 ? tol_ind : 1), e_fast = fabs(f - r) / (mag > 0 ? mag : 1);
            if (e_ind > worst_ind) worst_ind = e_ind;
            if (e_fast > worst_fast) worst_fast = e_fast;
            if (unit && f != r) int_equal = false;
            if (fast4 && r4[k] != f) four_equal = false;
        }
    }
    printf("%s: ref vs dequantised double: max err/tol = %.3f; AVX2 (%s) vs ref: max |d|/sum|terms| = %.2e "
           "(tol 1e-5); integer sums equal: %s; 4-row == 1-row: %s\n",
           name, worst_ind, slm_cpu_has_avx2() ? "used" : "not available, reference twice", worst_fast,
           int_equal ? "yes" : "NO", fast4 ? (four_equal ? "yes" : "NO") : "n/a");
    CHECK(worst_ind <= 1.0, "%s: reference dot vs dequantised sum", name);
    CHECK(worst_fast <= 1e-5, "%s: AVX2 vs reference", name);
    CHECK(int_equal, "%s: AVX2 integer sums differ from the reference", name);
    CHECK(four_equal, "%s: 4-row dot differs from the 1-row dot", name);
    free(w);
}

int main(void) {
    check_quantize_golden(slm_test_env("SLM_GOLDEN_DIR", "tests/golden"));
    check_dots(SLM_DTYPE_Q4_0, "Q4_0 x Q8_0");
    check_dots(SLM_DTYPE_Q4_1, "Q4_1 x Q8_1");
    check_dots(SLM_DTYPE_Q8_0, "Q8_0 x Q8_0");
    CHECK(slm_qdot_get(SLM_DTYPE_Q4_K, true) == NULL, "no dot for Q4_K");
    return slm_test_finish();
}
