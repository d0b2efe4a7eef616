/* Helpers shared by the x86 int8 kernels (int8_avx2.c, int8_vnni.c); only
 * those files include it, each compiling these for its own target. Inline
 * because they run once per output in the micro-kernels' epilogues. */
#ifndef SLM_KERNELS_INT8_X86_H
#define SLM_KERNELS_INT8_X86_H

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* The sum of 8 float lanes in slm_i8_lanes_sum's tree (int8.h): halves,
 * then pairs, then the last two, so grouped products round as the
 * reference does. */
__attribute__((target("avx2"), always_inline)) static inline float slm_i8_lanes_sum_avx(__m256 f) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}
#endif

#endif
