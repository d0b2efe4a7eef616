/* Activation quantisation and the reference block dots (see qblock.h);
 * the operations and their order are ggml's generic C code, so the
 * reference is what llama.cpp computes up to float summation order. */
#include "kernels/cpu/qblock.h"
#include "core/core.h"
#include "core/dtype.h"

#include <math.h>

/* The references stay scalar: GCC 12 with -march=native on a CPU with
 * AVX-VNNI (Zen 4, Sapphire Rapids) vectorises the signed int8 x int8 sum
 * of the Q8_0 dot into vpdpbusd, which multiplies one operand as unsigned,
 * and returns wrong sums (test_qblock_kernels caught it: 97559 instead of
 * -83433). Turning the vectoriser off for these loops avoids the bad code
 * on every such compiler. */
#if defined(__GNUC__) && !defined(__clang__)
#define SLM_SCALAR_REF __attribute__((optimize("no-tree-vectorize")))
#else
#define SLM_SCALAR_REF
#endif

static inline float half_at(const uint8_t *p) { return slm_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8))); }
/* The value ggml stores when it writes f as fp16 and reads it back. */
static inline float round_half(float f) { return slm_fp16_to_fp32(slm_fp32_to_fp16(f)); }

void slm_q8_quantize_row(const float *x, slm_q8_block *y, int64_t n) {
    for (int64_t i = 0; i < n / SLM_QK; i++, x += SLM_QK, y++) {
        float amax = 0.0f;
        for (int j = 0; j < SLM_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < SLM_QK; j++) {
            y->qs[j] = (int8_t)nearbyintf(x[j] * id); /* default rounding mode: ties to even */
            sum += y->qs[j];
        }
        y->d = round_half(d);
        y->s = round_half((float)sum * d); /* ggml: sum*d with the unrounded d */
    }
}

/* ---- references: ggml_vec_dot_*_generic -------------------------------- */

SLM_SCALAR_REF float slm_qdot_q4_0_ref(const void *w, const slm_q8_block *a, int nb) {
    const uint8_t *b = w;
    float sumf = 0.0f;
    for (int i = 0; i < nb; i++, b += 18, a++) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < SLM_QK / 2; j++) {
            const int v0 = (b[2 + j] & 0x0F) - 8;
            const int v1 = (b[2 + j] >> 4) - 8;
            sumi0 += v0 * a->qs[j];
            sumi1 += v1 * a->qs[j + SLM_QK / 2];
        }
        sumf += (float)(sumi0 + sumi1) * half_at(b) * a->d;
    }
    return sumf;
}

SLM_SCALAR_REF float slm_qdot_q4_1_ref(const void *w, const slm_q8_block *a, int nb) {
    const uint8_t *b = w;
    float sumf = 0.0f;
    for (int i = 0; i < nb; i++, b += 20, a++) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < SLM_QK / 2; j++) {
            sumi0 += (b[4 + j] & 0x0F) * a->qs[j];
            sumi1 += (b[4 + j] >> 4) * a->qs[j + SLM_QK / 2];
        }
        sumf += (half_at(b) * a->d) * (float)(sumi0 + sumi1) + half_at(b + 2) * a->s;
    }
    return sumf;
}

SLM_SCALAR_REF float slm_qdot_q8_0_ref(const void *w, const slm_q8_block *a, int nb) {
    const uint8_t *b = w;
    float sumf = 0.0f;
    for (int i = 0; i < nb; i++, b += 34, a++) {
        int sumi = 0;
        for (int j = 0; j < SLM_QK; j++) sumi += (int8_t)b[2 + j] * a->qs[j];
        sumf += (float)sumi * (half_at(b) * a->d);
    }
    return sumf;
}

/* ---- dispatch ------------------------------------------------------------ */

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

bool slm_cpu_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    static int has = -1; /* a benign race: every thread computes the same value */
    if (has < 0) {
        __builtin_cpu_init();
        /* F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports
         * does not know "f16c", and the fuzz build uses clang. */
        unsigned a = 0, b = 0, c = 0, d = 0;
        bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
        has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    }
    return has == 1;
#else
    return false;
#endif
}

slm_qdot_fn slm_qdot_get(int qtype, bool simd) {
    bool v = simd && slm_cpu_has_avx2();
    switch (qtype) {
    case SLM_DTYPE_Q4_0: return v ? slm_qdot_q4_0_avx2 : slm_qdot_q4_0_ref;
    case SLM_DTYPE_Q4_1: return v ? slm_qdot_q4_1_avx2 : slm_qdot_q4_1_ref;
    case SLM_DTYPE_Q8_0: return v ? slm_qdot_q8_0_avx2 : slm_qdot_q8_0_ref;
    default: return NULL;
    }
}

slm_qdot4_fn slm_qdot4_get(int qtype, bool simd) {
    if (!simd || !slm_cpu_has_avx2()) return NULL;
    switch (qtype) {
    case SLM_DTYPE_Q4_0: return slm_qdot4_q4_0_avx2;
    case SLM_DTYPE_Q4_1: return slm_qdot4_q4_1_avx2;
    case SLM_DTYPE_Q8_0: return slm_qdot4_q8_0_avx2;
    default: return NULL;
    }
}
