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
 * Grouped activations (group = G > 0, docs/int8.md "Grouped activations"):
 * each token row has one scale per G columns, a_s[t][j] for columns
 * [jG, jG + G) (the last group may be shorter), so one large activation
 * coarsens only its own group, as in llama.cpp's Q8_0 blocks. The sum
 * splits by group, each group's c_j[t][o] exact in int32, and the groups
 * meet in float, one fma per group in group order from 0:
 *   f = 0; f = fma(float(c_j), a_s[t][j], f) for j = 0, 1, ...;
 *   y[t][o] = beta * y[t][o] + f * w_s[o].
 * Every kernel computes the same exact c_j, so that order makes them agree
 * bit for bit whatever their lane layout: the reference and AVX2 reduce
 * their lanes in int32 at the end of each group; the AVX-512 VNNI prefill
 * kernel holds 16 output channels in the lanes of a register (packed
 * weights), so c_j is there without any reduction; its decode form sums
 * 16 rows' lanes at once with a transposing add tree. The AVX-VNNI kernel
 * has no grouped form and forwards such calls to AVX2, as AVX-512 VNNI
 * decode does for G not a multiple of 64. G is a multiple of 32 (one AVX2
 * step); K a multiple of 64, so the last group is a multiple of 32 too.
 *
 * Activation sums (a_sum, optional): the AVX-512 VNNI prefill kernel feeds
 * the weights as unsigned bytes w + 128, so it subtracts 128 * sum_k a[t][k]
 * over each group (or the whole row); slm_i8_act_sums computes those once
 * per product for all the kernel calls that share the activations, and a
 * kernel given NULL computes its own.
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
    int32_t *c;           /* tests: when non-NULL, c [T][ldc] gets the int32 sums and y is untouched
                             (per-token products only: group must be 0) */
    int64_t ldc;
    int group;            /* 0: a_scale [T], one scale per token; G > 0: a_scale [T][lds], one per G columns */
    int64_t lds;          /* grouped: scales per token row (>= ceil(K / G)) */
    const int32_t *a_sum; /* optional: slm_i8_act_sums of a, laid out as a_scale ([T] or [T][lds]) */
} slm_i8_gemm;

typedef void (*slm_i8_gemm_fn)(const slm_i8_gemm *g);
void slm_i8_gemm_ref(const slm_i8_gemm *g);
void slm_i8_gemm_avx2(const slm_i8_gemm *g);       /* call only when slm_i8_isa_runs(AVX2) */
void slm_i8_gemm_avxvnni(const slm_i8_gemm *g);    /* ... AVXVNNI */
void slm_i8_gemm_avx512vnni(const slm_i8_gemm *g); /* ... AVX512VNNI */
/* The kernel of isa (whether or not this CPU runs it). */
slm_i8_gemm_fn slm_i8_gemm_get(slm_i8_isa isa);
/* The kernel for products of this kind on this CPU: slm_i8_isa_best's,
 * except that grouped products (group > 0) use AVX2 rather than AVX-VNNI
 * (which has no grouped form). */
slm_i8_gemm_fn slm_i8_gemm_for(int group);
/* Whether G is a supported activation group: a multiple of 32 in [32, 1024]. */
bool slm_i8_group_ok(int G);

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
/* Grouped form (G > 0, slm_i8_group_ok): the same per group of G columns
 * [jG, min(jG + G, K)) instead of per row; scale [T][lds] (lds >= ceil(K / G)),
 * a group with no used column, or amax < 1e-30, gets scale 0 and q = 0.
 * G = 0 is the per-row form above (scale [T], lds ignored). */
void slm_i8_quantize_groups_ref(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip, int K,
                                int G, int8_t *q, int64_t ldq, float *scale, int64_t lds);
void slm_i8_quantize_groups_avx2(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip, int K,
                                 int G, int8_t *q, int64_t ldq, float *scale, int64_t lds);
void slm_i8_quantize_groups(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip, int K, int G,
                            int8_t *q, int64_t ldq, float *scale, int64_t lds);

/* sums [T] (G = 0: over each row's K columns) or [T][lds] (G > 0: over
 * each group of G columns, the last one shorter) of the int8 rows a [T][lda]. */
void slm_i8_act_sums(int T, const int8_t *a, int64_t lda, int K, int G, int32_t *sums, int64_t lds);

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

/* Stores a grouped product's value: y = beta y + f * w_s[o], f the groups' fma chain. */
static inline void slm_i8_store_grouped(const slm_i8_gemm *g, int t, int o, float sum) {
    float v = sum * g->w_scale[o];
    float *y = &g->y[(int64_t)t * g->ldy + o];
    *y = g->beta == 0.0f ? v : g->beta * *y + v;
}

#endif
