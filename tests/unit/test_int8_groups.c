/* Grouped activation quantisation (src/kernels/cpu/int8.h, docs/int8.md
 * "Grouped activations"): one scale per token and G columns.
 *  - quantisation: AVX2 byte-identical to the reference (values and every
 *    group's scale) for G = 32, 64, 128 with outlier columns skipped; the
 *    reference's own bounds: |q| <= 127, |x - s_j q| <= s_j / 2 in each
 *    group, s_j = the group's absmax / 127 over its kept columns, 0 in
 *    the padding and for groups of padding only;
 *  - what grouping buys: on rows with one large value, the mean
 *    dequantisation error of grouped scales is below the per-row one;
 *  - GEMM: the AVX2 and AVX-512 VNNI grouped kernels bit-identical to the
 *    reference (beta 0 and 1, every micro-kernel edge; AVX-512 VNNI hands
 *    G = 32 to AVX2, AVX-VNNI every G), where the CPU has them;
 *  - int32 exactness: with power-of-two scales and small operands every
 *    float step is exact, so y must equal the exact integer sum;
 *  - the reference against a double-precision product of the dequantised
 *    operands: |y - ref| <= (n_groups + 4) 2^-24 sum |terms|. */
#include "kernels/cpu/int8.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) { return slm_test_rand_u32(&rng); }
static float uniform(float lo, float hi) { return slm_test_uniform(&rng, lo, hi); }
static int8_t rand_q(int lim) { return (int8_t)((int)(next_u32() % (unsigned)(2 * lim + 1)) - lim); }
static int round_up(int x, int m) { return (x + m - 1) / m * m; }

static const int k_groups[] = {32, 64, 128};
enum { N_GROUPS = 3 };

/* ---- quantisation ----------------------------------------------------------------- */

static void check_quantize(void) {
    const int ns[] = {1, 31, 33, 95, 576, 1000, 1536};
    int mism = 0, bad_bound = 0, bad_scale = 0, bad_skip = 0, bad_pad = 0, rows = 0;
    for (int gi = 0; gi < N_GROUPS; gi++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            const int G = k_groups[gi], n = ns[ni], K = round_up(n, SLM_I8_KALIGN), T = 4, ng = (K + G - 1) / G;
            float *x = malloc(sizeof(float) * (size_t)T * n);
            int8_t *q0 = malloc((size_t)T * K), *q1 = malloc((size_t)T * K);
            float *s0 = malloc(sizeof(float) * (size_t)T * ng), *s1 = malloc(sizeof(float) * (size_t)T * ng);
            int32_t skip[3];
            const int n_skip = n >= 40 ? 3 : 0;
            for (int j = 0; j < n_skip; j++) skip[j] = j * (n / 3) + 1;
            for (int t = 0; t < T; t++)
                for (int k = 0; k < n; k++) x[(int64_t)t * n + k] = uniform(-2.0f, 2.0f) * (float)(k % 7 + 1);
            for (int j = 0; j < n_skip; j++) x[(int64_t)n + skip[j]] = 1000.0f * (j % 2 ? -1 : 1);
            memset(x + 2 * (int64_t)n, 0, sizeof(float) * (size_t)n); /* an all-zero row */
            memset(q0, 0x55, (size_t)T * K), memset(q1, 0x33, (size_t)T * K);
            slm_i8_quantize_groups_ref(T, x, n, n, n_skip ? skip : NULL, n_skip, K, G, q0, K, s0, ng);
            if (slm_i8_isa_runs(SLM_I8_ISA_AVX2))
                slm_i8_quantize_groups_avx2(T, x, n, n, n_skip ? skip : NULL, n_skip, K, G, q1, K, s1, ng);
            else slm_i8_quantize_groups_ref(T, x, n, n, n_skip ? skip : NULL, n_skip, K, G, q1, K, s1, ng);
            for (int t = 0; t < T; t++, rows++) {
                mism += memcmp(q0 + (int64_t)t * K, q1 + (int64_t)t * K, (size_t)K) != 0 ||
                        memcmp(s0 + (int64_t)t * ng, s1 + (int64_t)t * ng, sizeof(float) * (size_t)ng) != 0;
                for (int j = 0; j < ng; j++) {
                    const float s = s0[(int64_t)t * ng + j];
                    float amax = 0.0f;
                    for (int k = j * G, sk = 0; k < (j + 1) * G && k < K; k++) {
                        const int8_t v = q0[(int64_t)t * K + k];
                        while (sk < n_skip && skip[sk] < k) sk++;
                        if (k >= n) {
                            bad_pad += v != 0;
                        } else if (sk < n_skip && skip[sk] == k) {
                            bad_skip += v != 0;
                        } else {
                            const float xv = x[(int64_t)t * n + k];
                            amax = fabsf(xv) > amax ? fabsf(xv) : amax;
                            bad_bound += (int)v < -127 || fabs((double)xv - (double)s * v) > 0.5 * s * (1 + 1e-6) + 1e-30;
                        }
                    }
                    bad_scale += s != amax / 127.0f;
                }
            }
            free(x), free(q0), free(q1), free(s0), free(s1);
        }
    printf("quantize groups (G 32/64/128): %d rows, avx2 vs ref mismatching rows %d, |x - s q| > s/2: %d, "
           "scale != group amax/127: %d, skip not 0: %d, pad not 0: %d\n",
           rows, mism, bad_bound, bad_scale, bad_skip, bad_pad);
    CHECK(mism == 0 && bad_bound == 0 && bad_scale == 0 && bad_skip == 0 && bad_pad == 0, "grouped quantisation");
}

/* Mean |x - s q| over rows like a transformer's: N(0,1)-ish values with one
 * column 40x larger, per row (G = 0) and per group of 64. */
static void check_grouping_helps(void) {
    const int n = 576, K = 576, T = 16, G = 64, ng = K / G;
    float *x = malloc(sizeof(float) * (size_t)T * n), s_row[16], *s_g = malloc(sizeof(float) * (size_t)T * ng);
    int8_t *q = malloc((size_t)T * K);
    for (int t = 0; t < T; t++)
        for (int k = 0; k < n; k++) x[(int64_t)t * n + k] = uniform(-1.7f, 1.7f) * (k == 100 ? 40.0f : 1.0f);
    double err[2] = {0, 0};
    for (int mode = 0; mode < 2; mode++) {
        if (mode == 0) slm_i8_quantize_groups_ref(T, x, n, n, NULL, 0, K, 0, q, K, s_row, 1);
        else slm_i8_quantize_groups_ref(T, x, n, n, NULL, 0, K, G, q, K, s_g, ng);
        for (int t = 0; t < T; t++)
            for (int k = 0; k < n; k++) {
                const float s = mode == 0 ? s_row[t] : s_g[(int64_t)t * ng + k / G];
                err[mode] += fabs((double)x[(int64_t)t * n + k] - (double)s * q[(int64_t)t * K + k]);
            }
    }
    printf("one 40x column per row: mean |x - s q| per row %.4g, per group of 64 %.4g (%.1fx lower)\n",
           err[0] / (T * n), err[1] / (T * n), err[0] / err[1]);
    CHECK(err[1] * 4 < err[0], "groups of 64 cut the dequantisation error of such rows at least 4x");
    free(x), free(s_g), free(q);
}

/* ---- GEMM ----------------------------------------------------------------------------- */

typedef struct operands {
    int T, N, K, G, ng;
    int8_t *a, *w;
    float *as, *ws;
} operands;

/* lim: |a|, |w| <= lim; pow2: scales are powers of two (exact float steps). */
static operands make_ops(int T, int N, int K, int G, int lim, bool pow2) {
    const int ng = (K + G - 1) / G;
    operands o = {T, N, K, G, ng, malloc((size_t)T * K), malloc((size_t)N * K), malloc(4 * (size_t)T * ng),
                  malloc(4 * (size_t)N)};
    for (int64_t i = 0; i < (int64_t)T * K; i++) o.a[i] = rand_q(lim);
    for (int64_t i = 0; i < (int64_t)N * K; i++) o.w[i] = rand_q(lim);
    for (int64_t i = 0; i < (int64_t)T * ng; i++) o.as[i] = pow2 ? ldexpf(1.0f, (int)(next_u32() % 3)) : uniform(1e-3f, 5e-2f);
    for (int i = 0; i < N; i++) o.ws[i] = pow2 ? (next_u32() % 2 ? 0.5f : 1.0f) : uniform(1e-4f, 1e-2f);
    return o;
}
static void free_ops(operands *o) { free(o->a), free(o->w), free(o->as), free(o->ws); }

static void run(slm_i8_gemm_fn fn, const operands *o, float *y, const float *base, float beta) {
    const slm_i8_gemm g = {.T = o->T, .N = o->N, .K = o->K, .a = o->a, .lda = o->K, .a_scale = o->as, .w = o->w,
                           .ldw = o->K, .w_scale = o->ws, .y = y, .ldy = o->N, .beta = beta, .group = o->G,
                           .lds = o->ng};
    memcpy(y, base, sizeof(float) * (size_t)o->T * o->N);
    fn(&g);
}

static void check_kernels(void) {
    const int Ts[] = {1, 2, 3, 4, 5, 7, 8, 9, 64, 67}, Ns[] = {1, 2, 3, 4, 5, 20, 33, 47, 48, 97}, Ks[] = {64, 576, 1536};
    for (int isa = SLM_I8_ISA_AVX2; isa < SLM_I8_ISA_COUNT; isa++) {
        if (!slm_i8_isa_runs((slm_i8_isa)isa)) {
            printf("grouped %-10s skipped: this CPU does not have it\n", slm_i8_isa_name((slm_i8_isa)isa));
            continue;
        }
        const slm_i8_gemm_fn fn = slm_i8_gemm_get((slm_i8_isa)isa);
        int64_t compared = 0, diff = 0;
        for (int gi = 0; gi < N_GROUPS; gi++)
            for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
                for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++)
                    for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
                        operands o = make_ops(Ts[ti], Ns[ni], Ks[ki], k_groups[gi], 127, false);
                        const size_t n = (size_t)o.T * o.N;
                        float *y0 = malloc(4 * n), *y1 = malloc(4 * n), *base = malloc(4 * n);
                        for (size_t i = 0; i < n; i++) base[i] = uniform(-1, 1);
                        for (int b = 0; b < 2; b++) {
                            run(slm_i8_gemm_ref, &o, y0, base, (float)b);
                            run(fn, &o, y1, base, (float)b);
                            for (size_t i = 0; i < n; i++) diff += memcmp(&y0[i], &y1[i], 4) != 0;
                            compared += (int64_t)n;
                        }
                        free(y0), free(y1), free(base);
                        free_ops(&o);
                    }
        printf("grouped %-10s vs ref: %lld outputs (G 32/64/128, beta 0/1), float bit differences %lld\n",
               slm_i8_isa_name((slm_i8_isa)isa), (long long)compared, (long long)diff);
        CHECK(diff == 0, "grouped %s equals the reference bit for bit", slm_i8_isa_name((slm_i8_isa)isa));
    }
    CHECK(slm_i8_gemm_for(64) == slm_i8_gemm_get(slm_i8_isa_best() == SLM_I8_ISA_AVXVNNI ? SLM_I8_ISA_AVX2 : slm_i8_isa_best()),
          "grouped products: AVX-VNNI replaced by AVX2");
}

/* Power-of-two scales and |a|, |w| <= 15: c per lane and group <= 4 * 16 * 225,
 * times 4 * 1 in scales, summed over <= 48 groups and 8 lanes: < 2^24, so
 * every float step is exact and y is the exact integer sum. */
static void check_exact(void) {
    int64_t bad = 0, n_all = 0;
    const slm_i8_gemm_fn fn = slm_i8_gemm_for(64);
    for (int gi = 0; gi < N_GROUPS; gi++) {
        operands o = make_ops(9, 13, 1536, k_groups[gi], 15, true);
        const size_t n = (size_t)o.T * o.N;
        float *y0 = malloc(4 * n), *y1 = malloc(4 * n), *base = calloc(n, 4);
        run(slm_i8_gemm_ref, &o, y0, base, 0.0f);
        run(fn, &o, y1, base, 0.0f);
        for (int t = 0; t < o.T; t++)
            for (int j = 0; j < o.N; j++) {
                int64_t want4 = 0; /* 4 x the exact value: scales are multiples of 1/2 */
                for (int k = 0; k < o.K; k++)
                    want4 += (int64_t)(4.0f * o.as[(int64_t)t * o.ng + k / o.G] * o.ws[j]) * o.a[(int64_t)t * o.K + k] *
                             o.w[(int64_t)j * o.K + k];
                const size_t i = (size_t)t * o.N + j;
                bad += (int64_t)(4.0f * y0[i]) != want4 || (int64_t)(4.0f * y1[i]) != want4;
                n_all++;
            }
        free(y0), free(y1), free(base);
        free_ops(&o);
    }
    printf("grouped int32 sums, exact float steps: %lld of %lld outputs differ from the exact sum\n", (long long)bad,
           (long long)n_all);
    CHECK(bad == 0, "grouped products exact in int32");
}

static void check_vs_double(void) {
    double worst = 0; /* max of error / bound */
    for (int gi = 0; gi < N_GROUPS; gi++) {
        operands o = make_ops(37, 61, 576, k_groups[gi], 127, false);
        const size_t n = (size_t)o.T * o.N;
        float *y = malloc(4 * n), *base = calloc(n, 4);
        run(slm_i8_gemm_ref, &o, y, base, 0.0f);
        const double b = (o.ng + 4) / 16777216.0;
        for (int t = 0; t < o.T; t++)
            for (int j = 0; j < o.N; j++) {
                double ref = 0, mag = 0;
                for (int k = 0; k < o.K; k++) {
                    const double v = ((double)o.as[(int64_t)t * o.ng + k / o.G] * o.a[(int64_t)t * o.K + k]) *
                                     ((double)o.ws[j] * o.w[(int64_t)j * o.K + k]);
                    ref += v, mag += fabs(v);
                }
                const double d = fabs(y[(size_t)t * o.N + j] - ref) / (mag + 1e-30);
                if (d / b > worst) worst = d / b;
            }
        free(y), free(base);
        free_ops(&o);
    }
    printf("grouped ref GEMM vs double: worst error %.3g of the bound (groups + 4) 2^-24 sum |terms|\n", worst);
    CHECK(worst <= 1.0, "grouped GEMM within (groups + 4) 2^-24 of sum |terms|");
}

int main(void) {
    const slm_i8_isa best = slm_i8_isa_best();
    printf("this CPU: best int8 kernel %s; grouped products (G 64) use %s\n", slm_i8_isa_name(best),
           slm_i8_isa_name(best == SLM_I8_ISA_AVXVNNI ? SLM_I8_ISA_AVX2 : best));
    CHECK(slm_i8_group_ok(32) && slm_i8_group_ok(128) && !slm_i8_group_ok(0) && !slm_i8_group_ok(48) &&
              !slm_i8_group_ok(2048),
          "supported groups");
    check_quantize();
    check_grouping_helps();
    check_kernels();
    check_exact();
    check_vs_double();
    return slm_test_finish();
}
