/* AVX2 int8 kernels (see int8.h), compiled for that target whatever the
 * build flags are and chosen at run time.
 *
 * Product: per 32 bytes of K, maddubs(|w|, sign(a, w)) multiplies the
 * unsigned |w| by a carrying w's sign and sums byte pairs into int16
 * (exact: |pair| <= 2 * 127 * 127), madd with ones sums int16 pairs into
 * 8 int32 lanes. A micro-kernel keeps R x NT such accumulators (R weight
 * rows, NT tokens): |w| of each row is computed once per 32 bytes and
 * reused for NT tokens, each activation vector is reused for R rows.
 * R = 2, NT = 3 in prefill: 6 accumulators, 2 |w|, the activation, the
 * temporaries and the ones stay in the 16 ymm registers. Measured on Zen 3,
 * one thread, 64-token x 48-row tiles (GMAC/s, N x K = 1536 x 576 and
 * 576 x 1536): 2 x 3 56 / 64, 2 x 4 51 / 59, 2 x 2 53 / 61, 3 x 2 54 / 59,
 * 3 x 3 50 / 59, 3 x 4 (accumulators spilled to the stack) slower still;
 * OpenBLAS sgemm 44 / 44. R = 4, NT = 1 in decode.
 */
#include "kernels/cpu/int8.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define SLM_AVX2 __attribute__((target("avx2,fma")))
#define SLM_INLINE __attribute__((always_inline)) inline
/* Decode prefetches the next micro-kernel's rows while it runs: measured
 * on SmolLM2 (Zen 3, 2 threads) 150 -> 180 tokens/s; 2, 4 or 8 groups
 * ahead were slower (175, 162, 159). The hardware prefetcher alone does
 * not follow 4 short row streams that restart every micro-kernel. */
enum { PF_GROUPS = 1 };

/* Sum of the 8 int32 lanes. */
SLM_AVX2 static SLM_INLINE int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* The lane sums of 4 accumulators: [sum a0, sum a1, sum a2, sum a3]. */
SLM_AVX2 static SLM_INLINE __m128i hsum4_i32(__m256i a0, __m256i a1, __m256i a2, __m256i a3) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* Rows o0..o0+R-1 x tokens t0..t0+NT-1 over all of K. R, NT and GR are
 * constants at every call site, so each instance is a straight loop with
 * its accumulators in registers. GR (grouped activations, int8.h): at the
 * end of each group of G columns the int32 lanes are summed (exact) and
 * folded into one float, f = fma(float(c_j), a_s[t][j], f); per-token
 * products run one span of K and sum the int32 lanes. */
SLM_AVX2 static SLM_INLINE void micro(const slm_i8_gemm *g, int t0, int o0, const int R, const int NT, const bool GR) {
    __m256i acc[4][4];
    float f[4][4];
    const int8_t *w[4], *a[4];
    const float *as[4];
    for (int r = 0; r < R; r++) w[r] = g->w + (int64_t)(o0 + r) * g->ldw;
    for (int t = 0; t < NT; t++) {
        a[t] = g->a + (int64_t)(t0 + t) * g->lda;
        as[t] = GR ? g->a_scale + (int64_t)(t0 + t) * g->lds : NULL;
        for (int r = 0; r < R; r++) f[r][t] = 0.0f, acc[r][t] = _mm256_setzero_si256(); /* K = 0 */
    }
    const __m256i ones = _mm256_set1_epi16(1);
    /* decode streams the weights from memory once: prefetch the rows
     * PF_GROUPS micro-kernels ahead (R rows of ldw bytes, R * 32 bytes a step) */
    const char *pf = (const char *)w[0] + (int64_t)PF_GROUPS * R * g->ldw;
    const char *pf_end = (const char *)g->w + (int64_t)g->N * g->ldw;
    const int span = GR ? g->group : g->K;
    for (int k0 = 0, j = 0; k0 < g->K; k0 += span, j++) {
        const int k1 = k0 + span < g->K ? k0 + span : g->K;
        for (int r = 0; r < R; r++)
            for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_si256();
        for (int k = k0; k < k1; k += 32) {
            if (NT == 1 && pf + (int64_t)R * k + 64 < pf_end) {
                _mm_prefetch(pf + (int64_t)R * k, _MM_HINT_T0);
                _mm_prefetch(pf + (int64_t)R * k + 64, _MM_HINT_T0);
            }
            __m256i aw[4];
            for (int r = 0; r < R; r++) aw[r] = _mm256_abs_epi8(_mm256_loadu_si256((const __m256i *)(w[r] + k)));
            for (int t = 0; t < NT; t++) {
                const __m256i x = _mm256_loadu_si256((const __m256i *)(a[t] + k));
                for (int r = 0; r < R; r++) {
                    /* w is re-read from L1 (a memory operand) rather than held: registers go to accumulators */
                    const __m256i sx = _mm256_sign_epi8(x, _mm256_loadu_si256((const __m256i *)(w[r] + k)));
                    acc[r][t] = _mm256_add_epi32(acc[r][t], _mm256_madd_epi16(_mm256_maddubs_epi16(aw[r], sx), ones));
                }
            }
        }
        if (GR)
            for (int t = 0; t < NT; t++)
                for (int r = 0; r < R; r++) f[r][t] = fmaf((float)hsum_i32(acc[r][t]), as[t][j], f[r][t]);
    }
    for (int r = 0; r < R; r++) {
        if (GR) {
            for (int t = 0; t < NT; t++) slm_i8_store_grouped(g, t0 + t, o0 + r, f[r][t]);
        } else if (NT == 4) {
            int32_t s[4];
            _mm_storeu_si128((__m128i *)s, hsum4_i32(acc[r][0], acc[r][1], acc[r][2], acc[r][3]));
            for (int t = 0; t < 4; t++) slm_i8_store(g, t0 + t, o0 + r, s[t]);
        } else {
            for (int t = 0; t < NT; t++) slm_i8_store(g, t0 + t, o0 + r, hsum_i32(acc[r][t]));
        }
    }
}

/* Any r in 1..4 rows x nt in 1..4 tokens (block edges). */
SLM_AVX2 static void micro_any(const slm_i8_gemm *g, int t0, int o0, int r, int nt, bool gr) {
#define CASE(R_, NT_) \
    case (R_) * 8 + (NT_): gr ? micro(g, t0, o0, R_, NT_, true) : micro(g, t0, o0, R_, NT_, false); break;
    switch (r * 8 + nt) {
        CASE(1, 1) CASE(1, 2) CASE(1, 3) CASE(1, 4)
        CASE(2, 1) CASE(2, 2) CASE(2, 3) CASE(2, 4)
        CASE(3, 1) CASE(3, 2) CASE(3, 3) CASE(3, 4)
        CASE(4, 1) CASE(4, 2) CASE(4, 3) CASE(4, 4)
    default: break;
    }
#undef CASE
}

SLM_AVX2 void slm_i8_gemm_avx2(const slm_i8_gemm *g) {
    const bool gr = g->group > 0;
    int o = 0;
    if (g->T >= 4) {
        /* prefill: rows in pairs x tokens in threes; grouped in twos (its 4
         * float accumulators would not fit beside 6 int32 ones) */
        for (; o + 2 <= g->N; o += 2) {
            int t = 0;
            if (gr)
                for (; t + 2 <= g->T; t += 2) micro(g, t, o, 2, 2, true);
            else
                for (; t + 3 <= g->T; t += 3) micro(g, t, o, 2, 3, false);
            if (t < g->T) micro_any(g, t, o, 2, g->T - t, gr);
        }
    } else { /* decode (and up to 3 tokens): rows in fours share each activation load */
        for (; o + 4 <= g->N; o += 4) micro_any(g, 0, o, 4, g->T, gr);
    }
    for (int t = 0; o < g->N && t < g->T; t += 4) micro_any(g, t, o, g->N - o, g->T - t < 4 ? g->T - t : 4, gr);
}

/* ---- activation quantisation ------------------------------------------------- */

/* max |x[k]| over k in [k0, k1). */
SLM_AVX2 static float amax_range(const float *x, int k0, int k1) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    int k = k0;
    for (; k + 8 <= k1; k += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; k < k1; k++) r = fabsf(x[k]) > r ? fabsf(x[k]) : r;
    return r;
}

/* Quantises columns [k0, k1) of one row (k1 <= n) with the absmax of
 * those outside skip (the reference's quantize_span_ref, same bytes). */
SLM_AVX2 static void quantize_span(const float *xt, int8_t *qt, int k0, int k1, const int32_t *skip, int n_skip,
                                   float *scale) {
    /* packs_epi32 / packs_epi16 interleave the 128-bit lanes; this puts the
     * 8 dwords back in order */
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    /* amax over the segments between skipped (outlier) columns */
    float amax = 0.0f;
    int s = 0;
    while (s < n_skip && skip[s] < k0) s++;
    int a0 = k0;
    for (; s <= n_skip; s++) {
        const int a1 = s < n_skip && skip[s] < k1 ? skip[s] : k1;
        if (a1 > a0) {
            float m = amax_range(xt, a0, a1);
            if (m > amax) amax = m;
        }
        a0 = a1 + 1;
        if (a1 == k1) break;
    }
    const float id = amax >= 1e-30f ? 127.0f / amax : 0.0f; /* 127/amax stays finite */
    *scale = amax / 127.0f;
    const __m256 vid = _mm256_set1_ps(id);
    int k = k0;
    for (; k + 32 <= k1; k += 32) {
        /* cvtps2dq rounds to nearest even, as nearbyintf; outliers may
         * exceed 127 and saturate in the packs, then become 0 in the caller */
        const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xt + k), vid));
        const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xt + k + 8), vid));
        const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xt + k + 16), vid));
        const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xt + k + 24), vid));
        __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        b = _mm256_permutevar8x32_epi32(b, perm);
        /* the saturating packs map 128 and beyond to 127, -128 to -128: clamp to -127 */
        b = _mm256_max_epi8(b, _mm256_set1_epi8(-127));
        _mm256_storeu_si256((__m256i *)(qt + k), b);
    }
    for (; k < k1; k++) {
        float v = nearbyintf(xt[k] * id);
        qt[k] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v == v ? v : 0.0f);
    }
}

SLM_AVX2 void slm_i8_quantize_groups_avx2(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip,
                                          int K, int G, int8_t *q, int64_t ldq, float *scale, int64_t lds) {
    const int span = G > 0 ? G : K;
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * ldx;
        int8_t *qt = q + (int64_t)t * ldq;
        float *st = G > 0 ? scale + (int64_t)t * lds : scale + t;
        for (int k0 = 0, j = 0; k0 < K; k0 += span, j++) {
            const int k1 = k0 + span < n ? k0 + span : n;
            if (k1 > k0) quantize_span(xt, qt, k0, k1, skip, n_skip, &st[j]);
            else st[j] = 0.0f; /* padding only */
        }
        for (int s = 0; s < n_skip; s++) qt[skip[s]] = 0;
        if (K > n) memset(qt + n, 0, (size_t)(K - n));
    }
}

SLM_AVX2 void slm_i8_quantize_rows_avx2(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip,
                                        int K, int8_t *q, int64_t ldq, float *scale) {
    slm_i8_quantize_groups_avx2(T, x, ldx, n, skip, n_skip, K, 0, q, ldq, scale, 1);
}

#else /* not x86: slm_i8_isa_runs(AVX2) is false and these are never chosen */

void slm_i8_gemm_avx2(const slm_i8_gemm *g) { slm_i8_gemm_ref(g); }
void slm_i8_quantize_rows_avx2(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip, int K,
                               int8_t *q, int64_t ldq, float *scale) {
    slm_i8_quantize_rows_ref(T, x, ldx, n, skip, n_skip, K, q, ldq, scale);
}
void slm_i8_quantize_groups_avx2(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip, int K,
                                 int G, int8_t *q, int64_t ldq, float *scale, int64_t lds) {
    slm_i8_quantize_groups_ref(T, x, ldx, n, skip, n_skip, K, G, q, ldq, scale, lds);
}

#endif
