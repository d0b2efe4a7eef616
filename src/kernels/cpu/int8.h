/* Int8 x int8 -> int32 matrix products for the INT8 linear kind
 * (model/linear_int8.c, docs/int8.md).
 *
 * Both operands are symmetric int8 in [-127, 127]: weights per output
 * channel (scale w_s[o]), activations per token (scale a_s[t], quantised
 * on the fly by slm_i8_quantize_rows). A product is
 *   y[t][o] = beta * y[t][o] + (float)c[t][o] * (a_s[t] * w_s[o]),
 *   c[t][o] = sum_{k < K} a[t][k] * w[o][k]   (exact in int32)
 * and every kernel computes the same c, so the float results of all
 * kernels are identical bit for bit (the epilogue below is shared).
 *
 * Kernels (chosen at run time, slm_i8_isa_best):
 *   ref         plain C, the reference.
 *   avx2        ggml's sign trick: maddubs(|w|, sign(a, w)) sums byte pairs
 *               into int16 (|.| <= 2*127*127 = 32258: never saturates),
 *               madd with ones sums those into 8 int32 lanes.
 *   avxvnni     vpdpbusd on 256 bits (Alder Lake+, Zen 5).
 *   avx512vnni  vpdpbusd on 512 bits (Cascade Lake+, Zen 4+).
 *               vpdpbusd multiplies unsigned by signed bytes, so the
 *               activations go in as a + 128 (u8) and the kernel subtracts
 *               128 * sum_k w[o][k], a row sum it accumulates alongside.
 * Each prefill kernel is register-blocked: R weight rows x NT tokens of
 * accumulators walk K together, so every weight vector loaded is used NT
 * times and every activation vector R times; the caller tiles T x N so the
 * tile's weights and activations stay in L1/L2 (linear_int8.c).
 *
 * Bounds: int32 cannot overflow for K <= SLM_I8_MAX_K (VNNI's biased sum
 * is at most 255 * 127 * K < 2^31).
 *
 * Legend: T tokens (activation rows), N output channels (weight rows),
 * K inner length, a multiple of SLM_I8_KALIGN; rows are zero-padded to it.
 */
#ifndef SLM_KERNELS_INT8_H
#define SLM_KERNELS_INT8_H

#include <stdbool.h>
#include <stdint.h>

enum {
    SLM_I8_KALIGN = 64,   /* K granularity: one zmm, two ymm */
    SLM_I8_MAX_K = 65536, /* 255 * 127 * 65536 < 2^31 */
};

typedef enum slm_i8_isa {
    SLM_I8_ISA_REF = 0,
    SLM_I8_ISA_AVX2,
    SLM_I8_ISA_AVXVNNI,
    SLM_I8_ISA_AVX512VNNI,
    SLM_I8_ISA_COUNT
} slm_i8_isa;

/* "ref", "avx2", "avxvnni", "avx512vnni". */
const char *slm_i8_isa_name(slm_i8_isa isa);
/* Whether this CPU (and OS) runs the kernel. */
bool slm_i8_isa_runs(slm_i8_isa isa);
/* The fastest kernel this CPU runs; the environment variable SLM_INT8_ISA
 * (a name above) picks a slower one for benchmarks and comparisons. */
slm_i8_isa slm_i8_isa_best(void);

/* One product over a T x N block (single-threaded; callers tile and
 * thread). a [T][lda], w [N][ldw] int8, lda, ldw >= K. */
typedef struct slm_i8_gemm {
    int T, N, K;
    const int8_t *a;
    int64_t lda;
    const float *a_scale; /* [T] */
    const int8_t *w;
    int64_t ldw;
    const float *w_scale; /* [N] */
    float *y;             /* [T][ldy] */
    int64_t ldy;
    float beta;           /* 0: overwrite, else y = beta * y + ... */
    int32_t *c;           /* tests: when non-NULL, c [T][ldc] gets the int32 sums and y is untouched */
    int64_t ldc;
} slm_i8_gemm;

typedef void (*slm_i8_gemm_fn)(const slm_i8_gemm *g);
void slm_i8_gemm_ref(const slm_i8_gemm *g);
void slm_i8_gemm_avx2(const slm_i8_gemm *g);       /* call only when slm_i8_isa_runs(AVX2) */
void slm_i8_gemm_avxvnni(const slm_i8_gemm *g);    /* ... AVXVNNI */
void slm_i8_gemm_avx512vnni(const slm_i8_gemm *g); /* ... AVX512VNNI */
/* The kernel of isa (whether or not this CPU runs it). */
slm_i8_gemm_fn slm_i8_gemm_get(slm_i8_isa isa);

/* ---- activations ---------------------------------------------------------- */

/* Quantises T rows x [T][ldx] (n used columns) to q [T][ldq] (ldq >= K =
 * the padded length; columns n..K-1 become 0) with one scale per row:
 *   amax = max |x[k]| over k < n not in skip, s = amax / 127,
 *   q[k] = nearbyint(x[k] * (127 / amax)) (ties to even), 0 at skip columns;
 * a row with amax < 1e-30 gets q = 0. Inputs are finite (the forward
 * pass checks for NaN/Inf after every block). skip [n_skip] (ascending, < n) are
 * the outlier columns the fp32 side multiplies; NULL when none. */
void slm_i8_quantize_rows_ref(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip, int K,
                              int8_t *q, int64_t ldq, float *scale);
void slm_i8_quantize_rows_avx2(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip, int K,
                               int8_t *q, int64_t ldq, float *scale);
/* The AVX2 version when the CPU has it, else the reference (same bytes). */
void slm_i8_quantize_rows(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip, int K,
                          int8_t *q, int64_t ldq, float *scale);

/* ---- shared by the kernels ---------------------------------------------------- */

/* Stores one accumulated value: the int32 itself in test mode, else the
 * scaled float (the same expression in every kernel). */
static inline void slm_i8_store(const slm_i8_gemm *g, int t, int o, int32_t acc) {
    if (g->c) {
        g->c[(int64_t)t * g->ldc + o] = acc;
        return;
    }
    float v = (float)acc * (g->a_scale[t] * g->w_scale[o]);
    float *y = &g->y[(int64_t)t * g->ldy + o];
    *y = g->beta == 0.0f ? v : g->beta * *y + v;
}

#endif
