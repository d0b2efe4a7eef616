/* AVX2+FMA+F16C block dots (see qblock.h), compiled for that target whatever
 * the build flags are and chosen at run time (slm_qdot_get). The scheme is
 * ggml's x86 code: unpack 32 nibbles into bytes, multiply unsigned x
 * signed bytes with maddubs (pairs summed into int16, which cannot
 * saturate: 2*15*127 and 2*128*127 fit), sum pairs again with madd into
 * 8 int32 lanes (the exact integer dot of the block), convert to float and
 * fma by the block's d_w*d_a into 8 float accumulators. */
#include "kernels/cpu/qblock.h"
#include "core/core.h"
#include "core/dtype.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define SLM_AVX2 __attribute__((target("avx2,fma,f16c")))

/* fp16 -> fp32 in hardware (exact, as the scalar slm_fp16_to_fp32) */
SLM_AVX2 static inline float half_at(const uint8_t *p) { return _cvtsh_ss((unsigned short)(p[0] | (p[1] << 8))); }

/* 16 bytes of nibble pairs -> 32 bytes: low nibbles (elements 0..15) in
 * the low lane, high nibbles (elements 16..31) in the high lane. */
SLM_AVX2 static inline __m256i nibbles_32(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i b = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* 8 int32 partial sums of unsigned ux[i] * signed sy[i] as floats. */
SLM_AVX2 static inline __m256 dot_us(__m256i ux, __m256i sy) {
    const __m256i p16 = _mm256_maddubs_epi16(ux, sy);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

/* signed x signed: |x| times y carrying x's sign (ggml's mul_sum_i8_pairs). */
SLM_AVX2 static inline __m256 dot_ss(__m256i x, __m256i y) {
    return dot_us(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

SLM_AVX2 static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One weight row against NT activation rows (a, a + lda, ...), so the
 * weight blocks are unpacked once per NT tokens; qtype and NT are constants
 * at every call site, so each instance compiles to a straight loop. Per
 * token the operations are those of the one-token dot, in the same order. */
SLM_AVX2 static inline __attribute__((always_inline)) void dot_rows(const uint8_t *b, const slm_q8_block *a,
                                                                    int64_t lda, int nb, int qtype, int NT,
                                                                    float *out) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float summs[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    const size_t bytes = qtype == SLM_DTYPE_Q4_0 ? 18 : qtype == SLM_DTYPE_Q4_1 ? 20 : 34;
    for (int i = 0; i < nb; i++, b += bytes) {
        const float dw = half_at(b);
        __m256i qx;
        float mw = 0.0f;
        if (qtype == SLM_DTYPE_Q4_0) qx = _mm256_sub_epi8(nibbles_32(b + 2), _mm256_set1_epi8(8));
        else if (qtype == SLM_DTYPE_Q4_1) qx = nibbles_32(b + 4), mw = half_at(b + 2);
        else qx = _mm256_loadu_si256((const __m256i *)(b + 2));
        for (int k = 0; k < NT; k++) {
            const slm_q8_block *ak = a + k * lda + i;
            const __m256 d = _mm256_set1_ps(dw * ak->d);
            const __m256i qy = _mm256_loadu_si256((const __m256i *)ak->qs);
            if (qtype == SLM_DTYPE_Q4_1) {
                summs[k] += mw * ak->s;
                acc[k] = _mm256_fmadd_ps(d, dot_us(qx, qy), acc[k]);
            } else {
                acc[k] = _mm256_fmadd_ps(d, dot_ss(qx, qy), acc[k]);
            }
        }
    }
    for (int k = 0; k < NT; k++) out[k] = hsum(acc[k]) + summs[k];
}

SLM_AVX2 float slm_qdot_q4_0_avx2(const void *w, const slm_q8_block *a, int nb) {
    float r;
    dot_rows(w, a, 0, nb, SLM_DTYPE_Q4_0, 1, &r);
    return r;
}
SLM_AVX2 float slm_qdot_q4_1_avx2(const void *w, const slm_q8_block *a, int nb) {
    float r;
    dot_rows(w, a, 0, nb, SLM_DTYPE_Q4_1, 1, &r);
    return r;
}
SLM_AVX2 float slm_qdot_q8_0_avx2(const void *w, const slm_q8_block *a, int nb) {
    float r;
    dot_rows(w, a, 0, nb, SLM_DTYPE_Q8_0, 1, &r);
    return r;
}
SLM_AVX2 void slm_qdot4_q4_0_avx2(const void *w, const slm_q8_block *a, int64_t lda, int nb, float *out) {
    dot_rows(w, a, lda, nb, SLM_DTYPE_Q4_0, 4, out);
}
SLM_AVX2 void slm_qdot4_q4_1_avx2(const void *w, const slm_q8_block *a, int64_t lda, int nb, float *out) {
    dot_rows(w, a, lda, nb, SLM_DTYPE_Q4_1, 4, out);
}
SLM_AVX2 void slm_qdot4_q8_0_avx2(const void *w, const slm_q8_block *a, int64_t lda, int nb, float *out) {
    dot_rows(w, a, lda, nb, SLM_DTYPE_Q8_0, 4, out);
}

#else /* not x86: slm_cpu_has_avx2() is false and these are never chosen */

float slm_qdot_q4_0_avx2(const void *w, const slm_q8_block *a, int nb) { return slm_qdot_q4_0_ref(w, a, nb); }
float slm_qdot_q4_1_avx2(const void *w, const slm_q8_block *a, int nb) { return slm_qdot_q4_1_ref(w, a, nb); }
float slm_qdot_q8_0_avx2(const void *w, const slm_q8_block *a, int nb) { return slm_qdot_q8_0_ref(w, a, nb); }
void slm_qdot4_q4_0_avx2(const void *w, const slm_q8_block *a, int64_t lda, int nb, float *out) {
    for (int k = 0; k < 4; k++) out[k] = slm_qdot_q4_0_ref(w, a + k * lda, nb);
}
void slm_qdot4_q4_1_avx2(const void *w, const slm_q8_block *a, int64_t lda, int nb, float *out) {
    for (int k = 0; k < 4; k++) out[k] = slm_qdot_q4_1_ref(w, a + k * lda, nb);
}
void slm_qdot4_q8_0_avx2(const void *w, const slm_q8_block *a, int64_t lda, int nb, float *out) {
    for (int k = 0; k < 4; k++) out[k] = slm_qdot_q8_0_ref(w, a + k * lda, nb);
}

#endif
