/* VNNI int8 kernels (see int8.h): vpdpbusd multiplies 4 unsigned bytes by
 * 4 signed bytes and adds the 4 products to an int32 lane, without the
 * int16 step of AVX2. One operand must be unsigned, so one side enters
 * biased by 128 (x xor 0x80) and the kernel subtracts 128 x the other
 * side's sum; every sum stays exact in int32 for K <= SLM_I8_MAX_K.
 *
 * avx512vnni, prefill (T >= 4): the weights of a strip of 48 output
 * channels are packed once per call, 4 bytes of K of 16 channels per zmm
 * (pk[k / 4][48][4], as w + 128), and a micro-kernel walks K with NT
 * tokens x 3 such vectors of accumulators: each step loads 3 weight
 * vectors and, per token, broadcasts 4 activation bytes (an embedded
 * broadcast of vpdpbusd's signed operand), so 16 output channels sit in
 * the 16 lanes and each group's exact sum c_j needs no horizontal
 * reduction: grouped products cost one sub, cvt and fma per 16 outputs
 * and group. The correction is 128 x the tokens' activation sums
 * (slm_i8_act_sums). Packing reads the strip once and is amortised over
 * all the call's tokens (linear_int8.c hands it long token tiles).
 * avx512vnni, decode (T < 4): row-major, activations biased (a + 128) and
 * 64 bytes of K per instruction; per token, 4 rows share each activation
 * load and the weight row sums come from one more vpdpbusd against ones;
 * grouped, 16 rows at a time, whose per-row lanes a transposing add tree
 * sums into one vector of 16 exact c_j.
 * avxvnni: 32 bytes per instruction, R = 2 x NT = 4 (16 ymm registers).
 *
 * These run only on CPUs that have the instructions (slm_i8_isa_runs);
 * tests/unit/test_int8_kernels.c and test_int8_groups.c compare them with
 * the reference where the CPU allows.
 */
#include "kernels/cpu/int8.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define SLM_INLINE __attribute__((always_inline)) inline

/* ---- AVX-512 VNNI ------------------------------------------------------------ */

#define SLM_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))

enum { STRIP_V = 3, STRIP_ROWS = 16 * STRIP_V };

/* Packs rows [o0, o0 + rows) (rows <= 16 V) for the strip kernel: the 4
 * bytes of row r at k = 4i (+128, as unsigned) go to pk[(i * 16 V + r) * 4];
 * rows past the end are zero weights (128), their outputs never stored. */
static void pack_strip(const slm_i8_gemm *g, int o0, int rows, int V, uint8_t *pk) {
    const int nr = 16 * V, steps = g->K / 4;
    uint32_t *dst = (uint32_t *)(void *)pk;
    for (int r = 0; r < nr; r++) {
        const int8_t *src = g->w + (int64_t)(o0 + r) * g->ldw;
        for (int i = 0; i < steps; i++) {
            uint32_t v = 0;
            if (r < rows) memcpy(&v, src + 4 * i, 4);
            dst[(int64_t)i * nr + r] = v ^ 0x80808080u;
        }
    }
}

/* Tokens t0..t0+NT-1 x the packed strip's V vectors (outputs o0 + 16v + lane,
 * the first `rows` of them stored). V, NT, GR constants at each call site. */
SLM_AVX512VNNI static SLM_INLINE void strip_micro(const slm_i8_gemm *g, const uint8_t *pk, const int32_t *asum,
                                                  int o0, int rows, int t0, const int V, const int NT, const bool GR) {
    __m512i acc[4][STRIP_V];
    __m512 f[4][STRIP_V];
    const int8_t *a[4];
    const int nr = 16 * V, span = GR ? g->group : g->K;
    const int64_t ls = GR ? g->lds : 1; /* scales and sums per token row */
    for (int t = 0; t < NT; t++) {
        a[t] = g->a + (int64_t)(t0 + t) * g->lda;
        for (int v = 0; v < V; v++) f[t][v] = _mm512_setzero_ps(), acc[t][v] = _mm512_setzero_si512(); /* K = 0 */
    }
    for (int k0 = 0, j = 0; k0 < g->K; k0 += span, j++) {
        const int k1 = k0 + span < g->K ? k0 + span : g->K;
        for (int t = 0; t < NT; t++)
            for (int v = 0; v < V; v++) acc[t][v] = _mm512_setzero_si512();
        const uint8_t *p = pk + (int64_t)k0 * nr;
        for (int k = k0; k < k1; k += 4, p += 4 * nr) {
            __m512i wv[STRIP_V];
            for (int v = 0; v < V; v++) wv[v] = _mm512_load_si512((const void *)(p + 64 * v));
            for (int t = 0; t < NT; t++) {
                int32_t x;
                memcpy(&x, a[t] + k, 4);
                const __m512i b = _mm512_set1_epi32(x);
                for (int v = 0; v < V; v++) acc[t][v] = _mm512_dpbusd_epi32(acc[t][v], wv[v], b);
            }
        }
        for (int t = 0; t < NT; t++) {
            const int64_t i = (int64_t)(t0 + t) * ls + j;
            const __m512i corr = _mm512_set1_epi32(asum[i] * 128);
            for (int v = 0; v < V; v++) {
                acc[t][v] = _mm512_sub_epi32(acc[t][v], corr); /* c_j, exact */
                if (GR) f[t][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][v]), _mm512_set1_ps(g->a_scale[i]), f[t][v]);
            }
        }
    }
    const __m512 beta = _mm512_set1_ps(g->beta);
    for (int v = 0; v < V; v++) {
        const int o = o0 + 16 * v, n = rows - 16 * v < 16 ? rows - 16 * v : 16;
        const __mmask16 m = (__mmask16)((1u << n) - 1u);
        const __m512 ws = _mm512_maskz_loadu_ps(m, g->w_scale + o);
        for (int t = 0; t < NT; t++) {
            if (g->c) { /* tests: the int32 sums */
                _mm512_mask_storeu_epi32(g->c + (int64_t)(t0 + t) * g->ldc + o, m, acc[t][v]);
                continue;
            }
            /* the scalar epilogues of int8.h, lane by lane: (float)c * (a_s * w_s), or f * w_s */
            const __m512 val = GR ? _mm512_mul_ps(f[t][v], ws)
                                  : _mm512_mul_ps(_mm512_cvtepi32_ps(acc[t][v]),
                                                  _mm512_mul_ps(_mm512_set1_ps(g->a_scale[t0 + t]), ws));
            float *y = g->y + (int64_t)(t0 + t) * g->ldy + o;
            if (g->beta == 0.0f) _mm512_mask_storeu_ps(y, m, val);
            else _mm512_mask_storeu_ps(y, m, _mm512_add_ps(_mm512_mul_ps(beta, _mm512_maskz_loadu_ps(m, y)), val));
        }
    }
}

SLM_AVX512VNNI static void strip_micro_any(const slm_i8_gemm *g, const uint8_t *pk, const int32_t *asum, int o0,
                                           int rows, int t0, int V, int nt, bool gr) {
#define CASE(V_, NT_) \
    case (V_) * 16 + (NT_): \
        gr ? strip_micro(g, pk, asum, o0, rows, t0, V_, NT_, true) : strip_micro(g, pk, asum, o0, rows, t0, V_, NT_, false); \
        break;
    switch (V * 16 + nt) {
        CASE(1, 1) CASE(1, 2) CASE(1, 3) CASE(1, 4)
        CASE(2, 1) CASE(2, 2) CASE(2, 3) CASE(2, 4)
        CASE(3, 1) CASE(3, 2) CASE(3, 3) CASE(3, 4)
    default: break;
    }
#undef CASE
}

/* slm_i8_act_sums of g's activations, malloc'd (NULL when out of memory). */
static int32_t *own_act_sums(const slm_i8_gemm *g) {
    const int64_t ls = g->group > 0 ? g->lds : 1;
    int32_t *s = malloc((size_t)g->T * (size_t)ls * sizeof(int32_t));
    if (s) slm_i8_act_sums(g->T, g->a, g->lda, g->K, g->group, s, ls);
    return s;
}

/* Prefill: strips of 48 rows, each packed once and run over all T tokens
 * in micro-kernels of NT = 4 tokens: 12 int32 accumulators (+ 12 float
 * ones grouped). Measured on Zen 4 (SmolLM2 prefill, 2 threads, per token):
 * NT = 4 2632 tok/s, 6 1837, 8 2138. */
SLM_AVX512VNNI static void gemm_strips512(const slm_i8_gemm *g) {
    const bool gr = g->group > 0;
    enum { NT = 4 };
    int32_t *own = NULL;
    const int32_t *asum = g->a_sum ? g->a_sum : (own = own_act_sums(g));
    uint8_t *pk = asum ? aligned_alloc(64, ((size_t)STRIP_ROWS * (size_t)g->K + 63) / 64 * 64) : NULL;
    if (!pk) { /* out of memory: the same results from the row-major AVX2 kernel */
        free(own);
        slm_i8_gemm_avx2(g);
        return;
    }
    for (int o0 = 0; o0 < g->N; o0 += STRIP_ROWS) {
        const int rows = g->N - o0 < STRIP_ROWS ? g->N - o0 : STRIP_ROWS, V = (rows + 15) / 16;
        pack_strip(g, o0, rows, V, pk);
        int t = 0;
        if (V == STRIP_V) {
            if (gr)
                for (; t + NT <= g->T; t += NT) strip_micro(g, pk, asum, o0, rows, t, STRIP_V, NT, true);
            else
                for (; t + NT <= g->T; t += NT) strip_micro(g, pk, asum, o0, rows, t, STRIP_V, NT, false);
        }
        for (; t < g->T; t += NT) strip_micro_any(g, pk, asum, o0, rows, t, V, g->T - t < NT ? g->T - t : NT, gr);
    }
    free(pk);
    free(own);
}

/* Decode, per token: rows o0..o0+R-1 x tokens t0..t0+NT-1 over all of K,
 * activations biased, the weight row sums by vpdpbusd against ones. */
SLM_AVX512VNNI static SLM_INLINE void micro512(const slm_i8_gemm *g, int t0, int o0, const int R, const int NT) {
    __m512i acc[4][4], rs[4];
    const int8_t *w[4], *a[4];
    for (int r = 0; r < R; r++) {
        rs[r] = _mm512_setzero_si512();
        w[r] = g->w + (int64_t)(o0 + r) * g->ldw;
        for (int t = 0; t < NT; t++) acc[r][t] = _mm512_setzero_si512();
    }
    for (int t = 0; t < NT; t++) a[t] = g->a + (int64_t)(t0 + t) * g->lda;
    const __m512i ones = _mm512_set1_epi8(1), bias = _mm512_set1_epi8((char)0x80);
    /* the next micro-kernel's R rows (contiguous: R * ldw bytes), R lines
     * per step, as the AVX2 decode does: SmolLM2 per-token decode, 2
     * threads, Zen 4, three rounds, 167-171 -> 221-225 tok/s */
    const char *pf = (const char *)w[0] + (int64_t)R * g->ldw;
    const char *pf_end = (const char *)g->w + (int64_t)g->N * g->ldw;
    for (int k = 0; k < g->K; k += 64) {
        __m512i wv[4];
        for (int r = 0; r < R; r++) {
            if (pf + (int64_t)R * k + 64 * r < pf_end) _mm_prefetch(pf + (int64_t)R * k + 64 * r, _MM_HINT_T0);
            wv[r] = _mm512_loadu_si512((const void *)(w[r] + k));
            rs[r] = _mm512_dpbusd_epi32(rs[r], ones, wv[r]);
        }
        for (int t = 0; t < NT; t++) {
            const __m512i u = _mm512_xor_si512(_mm512_loadu_si512((const void *)(a[t] + k)), bias);
            for (int r = 0; r < R; r++) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], u, wv[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        const int32_t sum_w = _mm512_reduce_add_epi32(rs[r]);
        for (int t = 0; t < NT; t++)
            slm_i8_store(g, t0 + t, o0 + r, _mm512_reduce_add_epi32(acc[r][t]) - 128 * sum_w);
    }
}

SLM_AVX512VNNI static void micro512_any(const slm_i8_gemm *g, int t0, int o0, int r, int nt) {
#define CASE(R_, NT_) \
    case (R_) * 8 + (NT_): micro512(g, t0, o0, R_, NT_); break;
    switch (r * 8 + nt) {
        CASE(1, 1) CASE(1, 2) CASE(1, 3) CASE(1, 4)
        CASE(2, 1) CASE(2, 2) CASE(2, 3) CASE(2, 4)
        CASE(3, 1) CASE(3, 2) CASE(3, 3) CASE(3, 4)
        CASE(4, 1) CASE(4, 2) CASE(4, 3) CASE(4, 4)
    default: break;
    }
#undef CASE
}

/* [sum of a[0]'s lanes, ..., sum of a[15]'s lanes]: four levels of
 * interleave-and-add (exact in int32, so their order does not matter). */
SLM_AVX512VNNI static SLM_INLINE __m512i lane_sums16(__m512i a[16]) {
    __m512i x[8], y[4], z[2];
    for (int i = 0; i < 8; i++)
        x[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; i++) /* per 128-bit lane: rows 4i..4i+3 */
        y[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(x[2 * i], x[2 * i + 1]), _mm512_unpackhi_epi64(x[2 * i], x[2 * i + 1]));
    for (int i = 0; i < 2; i++)
        z[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(y[2 * i], y[2 * i + 1], 0x88),
                                _mm512_shuffle_i32x4(y[2 * i], y[2 * i + 1], 0xdd));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(z[0], z[1], 0x88), _mm512_shuffle_i32x4(z[0], z[1], 0xdd));
}

/* Grouped decode prefetches the rows PF_AHEAD 16-row blocks ahead: 16
 * row streams at once are more than the hardware prefetcher follows.
 * Measured (SmolLM2 g64 + int8 embedding, decode, 2 threads, Zen 4, three
 * rounds at one moment): 1 block ahead 238-250 tok/s, 2 227-237, 4
 * 215-221; at another moment no prefetch 177-193, 1 ahead 200-220. */
enum { PF_AHEAD = 1 };

/* Decode, grouped (G a multiple of 64): token t x rows o0..o0+n-1 (n <= 16),
 * the weights biased (w + 128) against the signed activations, so the
 * correction is 128 x the token's group sum, one scalar for all rows. */
SLM_AVX512VNNI static void gemv16_grouped(const slm_i8_gemm *g, int t, int o0, int n, const int32_t *asum) {
    const int8_t *a = g->a + (int64_t)t * g->lda;
    const int8_t *w[16];
    for (int r = 0; r < 16; r++) w[r] = g->w + (int64_t)(o0 + (r < n ? r : 0)) * g->ldw;
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    const int64_t pf_off = PF_AHEAD * 16 * g->ldw;
    const bool pf = o0 + 16 * (PF_AHEAD + 1) <= g->N;
    __m512 f = _mm512_setzero_ps();
    for (int k0 = 0, j = 0; k0 < g->K; k0 += g->group, j++) {
        const int k1 = k0 + g->group < g->K ? k0 + g->group : g->K;
        __m512i acc[16];
        for (int r = 0; r < 16; r++) acc[r] = _mm512_setzero_si512();
        for (int k = k0; k < k1; k += 64) {
            const __m512i x = _mm512_loadu_si512((const void *)(a + k));
            for (int r = 0; r < 16; r++) {
                if (pf) _mm_prefetch((const char *)(w[r] + pf_off + k), _MM_HINT_T0);
                acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_xor_si512(_mm512_loadu_si512((const void *)(w[r] + k)), bias), x);
            }
        }
        const int64_t i = (int64_t)t * g->lds + j;
        const __m512i c = _mm512_sub_epi32(lane_sums16(acc), _mm512_set1_epi32(asum[i] * 128));
        f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), _mm512_set1_ps(g->a_scale[i]), f);
    }
    const __mmask16 m = (__mmask16)((1u << n) - 1u);
    const __m512 val = _mm512_mul_ps(f, _mm512_maskz_loadu_ps(m, g->w_scale + o0));
    float *y = g->y + (int64_t)t * g->ldy + o0;
    if (g->beta == 0.0f) _mm512_mask_storeu_ps(y, m, val);
    else _mm512_mask_storeu_ps(y, m, _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(g->beta), _mm512_maskz_loadu_ps(m, y)), val));
}

SLM_AVX512VNNI void slm_i8_gemm_avx512vnni(const slm_i8_gemm *g) {
    if (g->T >= 4) {
        gemm_strips512(g);
        return;
    }
    if (g->group > 0) {
        if (g->group % 64) { /* one zmm step per 64 bytes: other groups by AVX2 */
            slm_i8_gemm_avx2(g);
            return;
        }
        int32_t *own = NULL;
        const int32_t *asum = g->a_sum ? g->a_sum : (own = own_act_sums(g));
        if (!asum) { /* out of memory: the same results without the sums */
            slm_i8_gemm_avx2(g);
            return;
        }
        for (int t = 0; t < g->T; t++)
            for (int o = 0; o < g->N; o += 16) gemv16_grouped(g, t, o, g->N - o < 16 ? g->N - o : 16, asum);
        free(own);
        return;
    }
    /* per token, decode: rows in fours share each activation load */
    int o = 0;
    for (; o + 4 <= g->N; o += 4) micro512_any(g, 0, o, 4, g->T);
    if (o < g->N) micro512_any(g, 0, o, g->N - o, g->T);
}

/* ---- AVX-VNNI (256-bit, VEX) --------------------------------------------------- */

#define SLM_AVXVNNI __attribute__((target("avx2,avxvnni")))

SLM_AVXVNNI static SLM_INLINE int32_t hsum256(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

SLM_AVXVNNI static SLM_INLINE void micro256(const slm_i8_gemm *g, int t0, int o0, const int R, const int NT) {
    __m256i acc[4][4], rs[4];
    const int8_t *w[4], *a[4];
    for (int r = 0; r < R; r++) {
        rs[r] = _mm256_setzero_si256();
        w[r] = g->w + (int64_t)(o0 + r) * g->ldw;
        for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_si256();
    }
    for (int t = 0; t < NT; t++) a[t] = g->a + (int64_t)(t0 + t) * g->lda;
    const __m256i ones = _mm256_set1_epi8(1), bias = _mm256_set1_epi8((char)0x80);
    for (int k = 0; k < g->K; k += 32) {
        __m256i wv[4];
        for (int r = 0; r < R; r++) {
            wv[r] = _mm256_loadu_si256((const __m256i *)(w[r] + k));
            rs[r] = _mm256_dpbusd_avx_epi32(rs[r], ones, wv[r]);
        }
        for (int t = 0; t < NT; t++) {
            const __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(a[t] + k)), bias);
            for (int r = 0; r < R; r++) acc[r][t] = _mm256_dpbusd_avx_epi32(acc[r][t], u, wv[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        const int32_t sum_w = hsum256(rs[r]);
        for (int t = 0; t < NT; t++) slm_i8_store(g, t0 + t, o0 + r, hsum256(acc[r][t]) - 128 * sum_w);
    }
}

SLM_AVXVNNI static void micro256_any(const slm_i8_gemm *g, int t0, int o0, int r, int nt) {
#define CASE(R_, NT_) \
    case (R_) * 8 + (NT_): micro256(g, t0, o0, R_, NT_); break;
    switch (r * 8 + nt) {
        CASE(1, 1) CASE(1, 2) CASE(1, 3) CASE(1, 4)
        CASE(2, 1) CASE(2, 2) CASE(2, 3) CASE(2, 4)
        CASE(3, 1) CASE(3, 2) CASE(3, 3) CASE(3, 4)
        CASE(4, 1) CASE(4, 2) CASE(4, 3) CASE(4, 4)
    default: break;
    }
#undef CASE
}

SLM_AVXVNNI void slm_i8_gemm_avxvnni(const slm_i8_gemm *g) {
    if (g->group > 0) { /* as above */
        slm_i8_gemm_avx2(g);
        return;
    }
    int o = 0;
    if (g->T >= 4) {
        for (; o + 2 <= g->N; o += 2) {
            int t = 0;
            for (; t + 4 <= g->T; t += 4) micro256(g, t, o, 2, 4);
            if (t < g->T) micro256_any(g, t, o, 2, g->T - t);
        }
    } else {
        for (; o + 4 <= g->N; o += 4) micro256_any(g, 0, o, 4, g->T);
    }
    for (int t = 0; o < g->N && t < g->T; t += 4) micro256_any(g, t, o, g->N - o, g->T - t < 4 ? g->T - t : 4);
}

#else /* not x86: never chosen */

void slm_i8_gemm_avx512vnni(const slm_i8_gemm *g) { slm_i8_gemm_ref(g); }
void slm_i8_gemm_avxvnni(const slm_i8_gemm *g) { slm_i8_gemm_ref(g); }

#endif
