/* Tensor element types: the traits table (block size, bytes per block,
 * dequantise, quantise). Plain scalar references that reproduce ggml's
 * ggml-quants.c bit for bit: the same operations in the same order, and no
 * fused multiply-add (the project builds with -std=c11, where gcc keeps
 * -ffp-contract=off), so a golden test can demand exact equality.
 *
 * Block layouts (little-endian; fp16 = IEEE half; QK_K = 256):
 *
 *   F32 / F16 / BF16   1 element per "block".
 *   Q4_0  32 w / 18 B  d fp16 | qs[16]           w = d * ((q & 15) - 8)
 *   Q4_1  32 w / 20 B  d fp16 | m fp16 | qs[16]  w = d * q + m
 *         byte j holds element j in its low nibble and j+16 in its high one.
 *   Q8_0  32 w / 34 B  d fp16 | int8 qs[32]      w = d * q
 *
 *   Q4_K 256 w / 144 B  d fp16 | dmin fp16 | scales[12] | qs[128]
 *   Q5_K 256 w / 176 B  d fp16 | dmin fp16 | scales[12] | qh[32] | qs[128]
 *         8 sub-blocks of 32, each with a 6-bit scale sc and 6-bit min mn
 *         packed in scales[12] (see scale_min_k4); w = d*sc * q - dmin*mn.
 *         The 256 weights go in 4 chunks of 64: chunk c uses qs[32c..32c+32),
 *         low nibbles for its first 32 weights (sub-block 2c), high nibbles
 *         for the next 32 (sub-block 2c+1). Q5_K adds a fifth bit from qh:
 *         bit 2c of qh[l] for the low half, bit 2c+1 for the high half.
 *   Q6_K 256 w / 210 B  ql[128] | qh[64] | int8 scales[16] | d fp16
 *         two halves of 128; in half n, for l < 32:
 *           q1 = ql[l] lo | (qh[l] bits 0-1) << 4      -> y[l]
 *           q2 = ql[l+32] lo | (qh[l] bits 2-3) << 4   -> y[l+32]
 *           q3 = ql[l] hi | (qh[l] bits 4-5) << 4      -> y[l+64]
 *           q4 = ql[l+32] hi | (qh[l] bits 6-7) << 4   -> y[l+96]
 *         w = d * scales[l/16 + 2k] * (q - 32) for the k-th of those four.
 */
#include "core/dtype.h"
#include "core/core.h"

#include <math.h>
#include <string.h>

#define QK 32
#define QK_K 256

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline float rd_half(const uint8_t *p) { return slm_fp16_to_fp32(rd16(p)); }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* ---- plain floats ------------------------------------------------------ */

static void f32_to_float(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }
static void f32_from_float(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

static void f16_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = rd_half(s + 2 * i);
}
static void f16_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i++) wr16(d + 2 * i, slm_fp32_to_fp16(src[i]));
}
static void bf16_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = slm_bf16_to_fp32(rd16(s + 2 * i));
}
static void bf16_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i++) wr16(d + 2 * i, slm_fp32_to_bf16(src[i]));
}

/* ---- 32-element blocks ------------------------------------------------- */

static void q4_0_to_float(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += 18, y += QK) {
        const float d = rd_half(b);
        for (int j = 0; j < QK / 2; j++) {
            const int x0 = (b[2 + j] & 0x0F) - 8;
            const int x1 = (b[2 + j] >> 4) - 8;
            y[j] = (float)x0 * d;
            y[j + QK / 2] = (float)x1 * d;
        }
    }
}

static void q4_1_to_float(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += 20, y += QK) {
        const float d = rd_half(b), m = rd_half(b + 2);
        for (int j = 0; j < QK / 2; j++) {
            const int x0 = b[4 + j] & 0x0F;
            const int x1 = b[4 + j] >> 4;
            y[j] = (float)x0 * d + m;
            y[j + QK / 2] = (float)x1 * d + m;
        }
    }
}

static void q8_0_to_float(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += 34, y += QK) {
        const float d = rd_half(b);
        for (int j = 0; j < QK; j++) y[j] = (float)(int8_t)b[2 + j] * d;
    }
}

/* ggml's quantize_row_q8_0_ref: d = max|x| / 127, q = roundf(x / d) (half
 * away from zero), computed as x * (1/d) exactly as ggml does. */
static void q8_0_from_float(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += 34, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(b, slm_fp32_to_fp16(d));
        for (int j = 0; j < QK; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

/* ---- k-quants (256-element super-blocks) ------------------------------- */

/* The 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes:
 * j < 4: low 6 bits of q[j] (scale) and q[j+4] (min); j >= 4: the low /
 * high nibble of q[j+4] plus the top 2 bits of q[j-4] / q[j]. */
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q4_K and Q5_K share everything but the fifth bit: qh == NULL for Q4_K. */
static void k4_5_block(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *y) {
    const float d = rd_half(b), dmin = rd_half(b + 2);
    const uint8_t *scales = b + 4;
    for (int c = 0; c < 4; c++, qs += 32) {
        uint8_t sc, mn;
        scale_min_k4(2 * c, scales, &sc, &mn);
        const float d1 = d * sc, m1 = dmin * mn;
        scale_min_k4(2 * c + 1, scales, &sc, &mn);
        const float d2 = d * sc, m2 = dmin * mn;
        const uint8_t u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (float)((qs[l] & 0xF) + (qh && (qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (float)((qs[l] >> 4) + (qh && (qh[l] & u2) ? 16 : 0)) - m2;
    }
}

static void q4_k_to_float(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 144, y += QK_K) k4_5_block(b, NULL, b + 16, y);
}

static void q5_k_to_float(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 176, y += QK_K) k4_5_block(b, b + 16, b + 48, y);
}

static void q6_k_to_float(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 210) {
        const float d = rd_half(b + 208);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                /* ggml: d * sc * q, evaluated left to right */
                y[l + 0] = d * (float)sc[is + 0] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

/* ---- integers (I8, I32): values as they are; writing rounds to nearest
 * (ties to even) and saturates ---------------------------------------- */

static void i8_to_float(const void *src, float *dst, int64_t n) {
    const int8_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
}

static void i8_from_float(const float *src, void *dst, int64_t n) {
    int8_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        float v = nearbyintf(src[i]);
        d[i] = (int8_t)(v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v);
    }
}

static void i32_to_float(const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        int32_t v;
        memcpy(&v, (const uint8_t *)src + 4 * i, 4);
        dst[i] = (float)v;
    }
}

static void i32_from_float(const float *src, void *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double v = nearbyint((double)src[i]);
        int32_t x = (int32_t)(v > 2147483647.0 ? 2147483647.0 : v < -2147483648.0 ? -2147483648.0 : v);
        memcpy((uint8_t *)dst + 4 * i, &x, 4);
    }
}

/* ---- the table --------------------------------------------------------- */

static const slm_dtype_traits k_traits[SLM_DTYPE_COUNT_] = {
    [SLM_DTYPE_F32] = {"F32", 1, 4, f32_to_float, f32_from_float},
    [SLM_DTYPE_F16] = {"F16", 1, 2, f16_to_float, f16_from_float},
    [SLM_DTYPE_BF16] = {"BF16", 1, 2, bf16_to_float, bf16_from_float},
    [SLM_DTYPE_Q4_0] = {"Q4_0", QK, 18, q4_0_to_float, NULL},
    [SLM_DTYPE_Q4_1] = {"Q4_1", QK, 20, q4_1_to_float, NULL},
    [SLM_DTYPE_Q8_0] = {"Q8_0", QK, 34, q8_0_to_float, q8_0_from_float},
    [SLM_DTYPE_Q4_K] = {"Q4_K", QK_K, 144, q4_k_to_float, NULL},
    [SLM_DTYPE_Q5_K] = {"Q5_K", QK_K, 176, q5_k_to_float, NULL},
    [SLM_DTYPE_Q6_K] = {"Q6_K", QK_K, 210, q6_k_to_float, NULL},
    [SLM_DTYPE_I8] = {"I8", 1, 1, i8_to_float, i8_from_float},
    [SLM_DTYPE_I32] = {"I32", 1, 4, i32_to_float, i32_from_float},
};

const slm_dtype_traits *slm_dtype_get(int id) {
    if (id < 0 || id >= SLM_DTYPE_COUNT_ || !k_traits[id].name) return NULL;
    return &k_traits[id];
}

bool slm_dtype_nbytes(slm_dtype t, int64_t n, size_t *out) {
    const slm_dtype_traits *tr = slm_dtype_get((int)t);
    if (!tr || n < 0 || n % tr->block_size != 0) return false;
    return slm_mul_ok((size_t)(n / tr->block_size), tr->type_size, out);
}
