/* VNNI int8 kernels (see int8.h): vpdpbusd multiplies 4 unsigned bytes by
 * 4 signed bytes and adds the 4 products to an int32 lane, without the
 * int16 step of AVX2. Its first operand must be unsigned, so activations
 * enter biased, u = a + 128 (a xor 0x80), and
 *   sum_k a[k] w[k] = sum_k u[k] w[k] - 128 * sum_k w[k];
 * the weight row sum comes from one more vpdpbusd of a vector of ones
 * against the same weight vector, shared by the NT tokens of a
 * micro-kernel. Both sums are exact in int32 for K <= SLM_I8_MAX_K.
 *
 * avx512vnni: 64 bytes of K per instruction, R = 4 rows x NT = 4 tokens
 * (16 accumulators + 4 row sums of the 32 zmm registers); also grouped
 * activations (int8.h) for G a multiple of 64.
 * avxvnni:    32 bytes per instruction, R = 2 x NT = 4 (16 ymm registers).
 *
 * These run only on CPUs that have the instructions (slm_i8_isa_runs);
 * tests/unit/test_int8_kernels.c compares them with the reference where
 * the CPU allows.
 */
#include "kernels/cpu/int8.h"
#include "kernels/cpu/int8_x86.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define SLM_INLINE __attribute__((always_inline)) inline

/* ---- AVX-512 VNNI ------------------------------------------------------------ */

#define SLM_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))

/* Rows o0..o0+R-1 x tokens t0..t0+NT-1 (R, NT, GR constants at each call
 * site). GR, grouped (int8.h): per group, the biased lane sums minus 128 x
 * the weight lane sums give each lane's exact int32; lanes l and l + 8 of
 * the zmm together are the reference's lane l (bytes 4l..4l+3 of each 32),
 * so their int32 sum, converted and fma'd with the group's scale in 8
 * float lanes, rounds exactly as the reference. Needs G a multiple of 64
 * (one zmm step). Per token: one span of K, int32 lanes summed. */
SLM_AVX512VNNI static SLM_INLINE void micro512(const slm_i8_gemm *g, int t0, int o0, const int R, const int NT,
                                               const bool GR, const int32_t *sums) {
    __m512i acc[4][4], rs[4];
    __m256 f[4][4];
    const int8_t *w[4], *a[4];
    const float *as[4];
    for (int r = 0; r < R; r++) w[r] = g->w + (int64_t)(o0 + r) * g->ldw;
    for (int t = 0; t < NT; t++) {
        a[t] = g->a + (int64_t)(t0 + t) * g->lda;
        as[t] = GR ? g->a_scale + (int64_t)(t0 + t) * g->lds : NULL;
        for (int r = 0; r < R; r++) f[r][t] = _mm256_setzero_ps(), acc[r][t] = _mm512_setzero_si512(); /* K = 0 */
    }
    for (int r = 0; r < R; r++) rs[r] = _mm512_setzero_si512();
    const __m512i ones = _mm512_set1_epi8(1), bias = _mm512_set1_epi8((char)0x80);
    const int span = GR ? g->group : g->K;
    for (int k0 = 0, j = 0; k0 < g->K; k0 += span, j++) {
        const int k1 = k0 + span < g->K ? k0 + span : g->K;
        for (int r = 0; r < R; r++) {
            rs[r] = _mm512_setzero_si512();
            for (int t = 0; t < NT; t++) acc[r][t] = _mm512_setzero_si512();
        }
        for (int k = k0; k < k1; k += 64) {
            __m512i wv[4];
            for (int r = 0; r < R; r++) {
                wv[r] = _mm512_loadu_si512((const void *)(w[r] + k));
                if (!sums) rs[r] = _mm512_dpbusd_epi32(rs[r], ones, wv[r]);
            }
            for (int t = 0; t < NT; t++) {
                const __m512i u = _mm512_xor_si512(_mm512_loadu_si512((const void *)(a[t] + k)), bias);
                for (int r = 0; r < R; r++) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], u, wv[r]);
            }
        }
        if (GR)
            for (int r = 0; r < R; r++) {
                const __m512i corr = _mm512_slli_epi32(rs[r], 7); /* 128 x the weight lane sums */
                for (int t = 0; t < NT; t++) {
                    const __m512i c = _mm512_sub_epi32(acc[r][t], corr);
                    const __m256i c8 = _mm256_add_epi32(_mm512_castsi512_si256(c), _mm512_extracti64x4_epi64(c, 1));
                    f[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c8), _mm256_broadcast_ss(as[t] + j), f[r][t]);
                }
            }
    }
    for (int r = 0; r < R; r++) {
        if (GR) {
            for (int t = 0; t < NT; t++) slm_i8_store_grouped(g, t0 + t, o0 + r, slm_i8_lanes_sum_avx(f[r][t]));
            continue;
        }
        const int32_t sum_w = sums ? sums[r] : _mm512_reduce_add_epi32(rs[r]);
        for (int t = 0; t < NT; t++)
            slm_i8_store(g, t0 + t, o0 + r, _mm512_reduce_add_epi32(acc[r][t]) - 128 * sum_w);
    }
}

/* sums[r] = sum_k w[o0 + r][k] over the product's K, exact in int32. */
SLM_AVX512VNNI static void row_sums512(const slm_i8_gemm *g, int o0, int R, int32_t *sums) {
    const __m512i ones = _mm512_set1_epi8(1);
    for (int r = 0; r < R; r++) {
        const int8_t *w = g->w + (int64_t)(o0 + r) * g->ldw;
        __m512i rs = _mm512_setzero_si512();
        for (int k = 0; k < g->K; k += 64) rs = _mm512_dpbusd_epi32(rs, ones, _mm512_loadu_si512((const void *)(w + k)));
        sums[r] = _mm512_reduce_add_epi32(rs);
    }
}

SLM_AVX512VNNI static void micro512_any(const slm_i8_gemm *g, int t0, int o0, int r, int nt, bool gr) {
#define CASE(R_, NT_) \
    case (R_) * 8 + (NT_): \
        gr ? micro512(g, t0, o0, R_, NT_, true, NULL) : micro512(g, t0, o0, R_, NT_, false, NULL); \
        break;
    switch (r * 8 + nt) {
        CASE(1, 1) CASE(1, 2) CASE(1, 3) CASE(1, 4)
        CASE(2, 1) CASE(2, 2) CASE(2, 3) CASE(2, 4)
        CASE(3, 1) CASE(3, 2) CASE(3, 3) CASE(3, 4)
        CASE(4, 1) CASE(4, 2) CASE(4, 3) CASE(4, 4)
    default: break;
    }
#undef CASE
}

SLM_AVX512VNNI void slm_i8_gemm_avx512vnni(const slm_i8_gemm *g) {
    if (g->group > 0 && g->group % 64) { /* one zmm step per 64 bytes: other groups by AVX2 */
        slm_i8_gemm_avx2(g);
        return;
    }
    /* 4 rows x 4 tokens (16 accumulators + 4 row sums of the 32 zmm);
     * grouped prefill 2 x 4, its 8 float accumulators beside 8 int32
     * ones; decode (T < 4) 4 rows, whose loads the memory bus bounds */
    const bool gr = g->group > 0;
    const int R = gr && g->T >= 4 ? 2 : 4;
    int o = 0;
    for (; o + R <= g->N; o += R) {
        int t = 0;
        if (gr)
            for (; t + 4 <= g->T; t += 4) micro512(g, t, o, 2, 4, true, NULL);
        else if (g->T >= 8) {
            /* the 4 rows' weight sums once for all their tokens, not once
             * per micro-kernel: a fifth of its vpdpbusd */
            int32_t sums[4];
            row_sums512(g, o, 4, sums);
            for (; t + 4 <= g->T; t += 4) micro512(g, t, o, 4, 4, false, sums);
        } else
            for (; t + 4 <= g->T; t += 4) micro512(g, t, o, 4, 4, false, NULL);
        if (t < g->T) micro512_any(g, t, o, R, g->T - t, gr);
    }
    for (int t = 0; o < g->N && t < g->T; t += 4) micro512_any(g, t, o, g->N - o, g->T - t < 4 ? g->T - t : 4, gr);
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
