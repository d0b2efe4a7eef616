/* Int8 kernels (src/kernels/cpu/int8.h):
 *  - activation quantisation: AVX2 byte-identical to the reference (values,
 *    scales, zeros at skipped columns and in the padding), and the
 *    reference's own properties: |q| <= 127, |x - s q| <= s/2 on the
 *    columns kept, the row's absmax ignores skipped (outlier) columns;
 *  - every GEMM kernel this CPU runs (avx2, avxvnni, avx512vnni) equal to
 *    the reference exactly in int32, on random operands, on the extreme
 *    values (+-127 everywhere, K = SLM_I8_MAX_K: no int16 saturation, no
 *    int32 overflow) and on every block edge (T, N not multiples of the
 *    micro-kernel), and bit-identical in the scaled float output (beta 0
 *    and 1); kernels the CPU lacks are reported as skipped;
 *  - the reference GEMM's float output against an independent
 *    double-precision product of the dequantised operands:
 *    |y - ref| <= 4 * 2^-24 * |ref| (the epilogue's three float roundings). */
#include "kernels/cpu/int8.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() & 0xFFFFFF) / 16777216.0f; }
static int8_t rand_q(void) { return (int8_t)((int)(next_u32() % 255) - 127); }

/* ---- activation quantisation ------------------------------------------------------ */

static void check_quantize(void) {
    const int ns[] = {1, 7, 31, 32, 33, 95, 576, 1000, 1536};
    int mism = 0, bad_bound = 0, bad_skip = 0, bad_pad = 0, rows = 0;
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const int n = ns[ni], K = (n + SLM_I8_KALIGN - 1) / SLM_I8_KALIGN * SLM_I8_KALIGN, T = 5;
        float *x = malloc(sizeof(float) * (size_t)T * n);
        int8_t *q0 = malloc((size_t)T * K), *q1 = malloc((size_t)T * K);
        float s0[5], s1[5];
        int32_t skip[3];
        int n_skip = n >= 40 ? 3 : 0;
        for (int j = 0; j < n_skip; j++) skip[j] = j * (n / 3) + 1;
        for (int t = 0; t < T; t++)
            for (int k = 0; k < n; k++) x[(int64_t)t * n + k] = uniform(-2.0f, 2.0f) * (t + 1);
        /* exact ties (x * 127/amax = .5) and outliers far above the rest */
        if (n >= 8) {
            x[0] = 4.0f, x[1] = 4.0f * 0.5f / 127.0f, x[2] = -4.0f * 2.5f / 127.0f;
            for (int k = 3; k < n; k++) x[k] = fmaxf(fminf(x[k], 3.9f), -3.9f);
        }
        for (int j = 0; j < n_skip; j++) x[(int64_t)n + skip[j]] = 1000.0f * (j % 2 ? -1 : 1);
        if (T > 2) memset(x + 2 * (int64_t)n, 0, sizeof(float) * (size_t)n); /* an all-zero row */
        memset(q0, 0x55, (size_t)T * K), memset(q1, 0x33, (size_t)T * K);
        slm_i8_quantize_rows_ref(T, x, n, n, n_skip ? skip : NULL, n_skip, K, q0, K, s0);
        if (slm_i8_isa_runs(SLM_I8_ISA_AVX2)) slm_i8_quantize_rows_avx2(T, x, n, n, n_skip ? skip : NULL, n_skip, K, q1, K, s1);
        else slm_i8_quantize_rows_ref(T, x, n, n, n_skip ? skip : NULL, n_skip, K, q1, K, s1);
        for (int t = 0; t < T; t++, rows++) {
            mism += memcmp(q0 + (int64_t)t * K, q1 + (int64_t)t * K, (size_t)K) != 0 || s0[t] != s1[t];
            for (int k = 0, j = 0; k < K; k++) {
                int8_t v = q0[(int64_t)t * K + k];
                if (k >= n) {
                    bad_pad += v != 0;
                } else if (j < n_skip && skip[j] == k) {
                    bad_skip += v != 0;
                    j++;
                } else {
                    double err = fabs((double)x[(int64_t)t * n + k] - (double)s0[t] * v);
                    bad_bound += (int)v < -127 || err > 0.5 * s0[t] * (1 + 1e-6) + 1e-30;
                }
            }
        }
        if (n_skip) CHECK(s0[1] < 1000.0f / 127.0f, "n=%d: outlier columns left out of the absmax (s=%g)", n, (double)s0[1]);
        free(x), free(q0), free(q1);
    }
    printf("quantize rows: %d rows, avx2 vs ref mismatching rows %d, |x - s q| > s/2: %d, skip not 0: %d, pad not 0: %d\n",
           rows, mism, bad_bound, bad_skip, bad_pad);
    CHECK(mism == 0 && bad_bound == 0 && bad_skip == 0 && bad_pad == 0, "activation quantisation");
}

/* ---- GEMM kernels vs the reference ------------------------------------------------ */

typedef struct operands {
    int T, N, K;
    int8_t *a, *w;
    float *as, *ws;
} operands;

static operands make_ops(int T, int N, int K, int fill) {
    operands o = {T, N, K, malloc((size_t)T * K), malloc((size_t)N * K), malloc(4 * (size_t)T), malloc(4 * (size_t)N)};
    for (int64_t i = 0; i < (int64_t)T * K; i++) o.a[i] = fill ? (int8_t)(fill > 0 ? 127 : (i % 3 ? -127 : 127)) : rand_q();
    for (int64_t i = 0; i < (int64_t)N * K; i++) o.w[i] = fill ? (int8_t)(fill > 0 ? 127 : -127) : rand_q();
    for (int t = 0; t < T; t++) o.as[t] = uniform(1e-3f, 5e-2f);
    for (int n = 0; n < N; n++) o.ws[n] = uniform(1e-4f, 1e-2f);
    return o;
}
static void free_ops(operands *o) { free(o->a), free(o->w), free(o->as), free(o->ws); }

/* Runs kernel fn on o: int32 into c [T][N], floats into y (pre-filled with base, beta). */
static void run(slm_i8_gemm_fn fn, const operands *o, int32_t *c, float *y, const float *base, float beta) {
    slm_i8_gemm g = {.T = o->T, .N = o->N, .K = o->K, .a = o->a, .lda = o->K, .a_scale = o->as, .w = o->w,
                     .ldw = o->K, .w_scale = o->ws, .y = y, .ldy = o->N, .beta = beta, .c = c, .ldc = o->N};
    fn(&g);
    g.c = NULL;
    memcpy(y, base, sizeof(float) * (size_t)o->T * o->N);
    fn(&g);
}

static void check_kernels(void) {
    const int Ts[] = {1, 2, 3, 4, 5, 7, 8, 9, 64, 67}, Ns[] = {1, 2, 3, 4, 5, 20, 33, 47, 48, 97}, Ks[] = {64, 128, 576, 1536};
    for (int isa = SLM_I8_ISA_AVX2; isa < SLM_I8_ISA_COUNT; isa++) {
        if (!slm_i8_isa_runs((slm_i8_isa)isa)) {
            printf("kernel %-10s skipped: this CPU does not have it\n", slm_i8_isa_name((slm_i8_isa)isa));
            continue;
        }
        const slm_i8_gemm_fn fn = slm_i8_gemm_get((slm_i8_isa)isa);
        int64_t compared = 0, int_diff = 0, float_diff = 0;
        for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
            for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++)
                for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
                    operands o = make_ops(Ts[ti], Ns[ni], Ks[ki], 0);
                    size_t n = (size_t)o.T * o.N;
                    int32_t *c0 = malloc(4 * n), *c1 = malloc(4 * n);
                    float *y0 = malloc(4 * n), *y1 = malloc(4 * n), *base = malloc(4 * n);
                    for (size_t i = 0; i < n; i++) base[i] = uniform(-1, 1);
                    for (int b = 0; b < 2; b++) {
                        run(slm_i8_gemm_ref, &o, c0, y0, base, (float)b);
                        run(fn, &o, c1, y1, base, (float)b);
                        for (size_t i = 0; i < n; i++) {
                            int_diff += c0[i] != c1[i];
                            float_diff += memcmp(&y0[i], &y1[i], 4) != 0;
                        }
                        compared += (int64_t)n;
                    }
                    free(c0), free(c1), free(y0), free(y1), free(base);
                    free_ops(&o);
                }
        printf("kernel %-10s vs ref: %lld outputs over %zu shapes, int32 differences %lld, float bit differences %lld\n",
               slm_i8_isa_name((slm_i8_isa)isa), (long long)compared, sizeof Ts / sizeof Ts[0] * (sizeof Ns / sizeof Ns[0]) * (sizeof Ks / sizeof Ks[0]),
               (long long)int_diff, (long long)float_diff);
        CHECK(int_diff == 0 && float_diff == 0, "%s equals the reference", slm_i8_isa_name((slm_i8_isa)isa));

        /* extremes: +127 x +127 and mixed signs over the largest K */
        for (int fill = 1; fill >= -1; fill -= 2) {
            operands o = make_ops(5, 5, SLM_I8_MAX_K, fill);
            int32_t c0[25], c1[25];
            float y[25], base[25] = {0};
            run(slm_i8_gemm_ref, &o, c0, y, base, 0.0f);
            run(fn, &o, c1, y, base, 0.0f);
            int64_t want = fill > 0 ? (int64_t)127 * 127 * SLM_I8_MAX_K : 0;
            if (fill < 0) /* a: +127 every third, else -127; w all -127 */
                for (int k = 0; k < SLM_I8_MAX_K; k++) want += (int64_t)(k % 3 ? -127 : 127) * -127;
            CHECK(memcmp(c0, c1, sizeof c0) == 0 && c0[0] == want, "%s extremes fill %d: %d %d (want %lld)",
                  slm_i8_isa_name((slm_i8_isa)isa), fill, c0[0], c1[0], (long long)want);
            free_ops(&o);
        }
    }
}

/* ---- reference GEMM vs double --------------------------------------------------------- */

static void check_vs_double(void) {
    operands o = make_ops(37, 61, 576, 0);
    size_t n = (size_t)o.T * o.N;
    int32_t *c = malloc(4 * n);
    float *y = malloc(4 * n), *base = calloc(n, 4);
    run(slm_i8_gemm_ref, &o, c, y, base, 0.0f);
    double worst = 0;
    for (int t = 0; t < o.T; t++)
        for (int j = 0; j < o.N; j++) {
            double ref = 0;
            for (int k = 0; k < o.K; k++)
                ref += ((double)o.as[t] * o.a[(int64_t)t * o.K + k]) * ((double)o.ws[j] * o.w[(int64_t)j * o.K + k]);
            double d = fabs(y[(size_t)t * o.N + j] - ref) / (fabs(ref) + 1e-30);
            if (d > worst) worst = d;
        }
    printf("ref GEMM vs double product of the dequantised operands: max relative error %.3g (bound %.3g)\n", worst,
           4.0 / 16777216.0);
    CHECK(worst <= 4.0 / 16777216.0, "GEMM within 4 * 2^-24 relative of the double product");
    free(c), free(y), free(base);
    free_ops(&o);
}

int main(void) {
    printf("this CPU: avx2 %s, avxvnni %s, avx512vnni %s; forward pass uses %s\n",
           slm_i8_isa_runs(SLM_I8_ISA_AVX2) ? "yes" : "no", slm_i8_isa_runs(SLM_I8_ISA_AVXVNNI) ? "yes" : "no",
           slm_i8_isa_runs(SLM_I8_ISA_AVX512VNNI) ? "yes" : "no", slm_i8_isa_name(slm_i8_isa_best()));
    check_quantize();
    check_kernels();
    check_vs_double();
    return slm_test_finish();
}
