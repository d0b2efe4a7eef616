/* Dot products of ggml 32-weight blocks (Q4_0, Q4_1, Q8_0) against
 * activations quantised to 8 bits on the fly, computed as llama.cpp's CPU
 * backend does (ggml-quants.c / ggml-cpu quants.c):
 *
 *   activations: per 32-block, amax = max|x|, d = amax/127, id = 127/amax,
 *     q = nearest(x*id) with ties to even, stored d = fp16(d) and, for
 *     Q8_1, s = fp16(d * sum q)  (the x86 AVX quantize_row_q8_0 / _q8_1 of
 *     ggml-cpu/arch/x86/quants.c, which llama.cpp runs on any AVX machine;
 *     ggml's portable _ref differs: id = 1/d and ties away from zero);
 *   Q4_0 . Q8_0: sum_b  isum_b * (d_w*d_a),   w_q = nibble - 8
 *   Q4_1 . Q8_1: sum_b (d_w*d_a) * isum_b + m_w * s_a
 *   Q8_0 . Q8_0: sum_b  isum_b * (d_w*d_a)
 * where isum_b is the exact integer dot of the block's quants.
 *
 * Each dot has a plain C reference (ggml's *_generic order of operations)
 * and an AVX2 version (maddubs / madd like ggml's x86 code) picked at run
 * time; the integer sums are identical, the float sums differ only in
 * summation order (tests/unit/test_qblock_kernels.c).
 *
 * Legend: nb blocks of 32 per row; a weight row is nb consecutive ggml
 * blocks as stored in the GGUF file.
 */
#ifndef SLM_KERNELS_QBLOCK_H
#define SLM_KERNELS_QBLOCK_H

#include <stdbool.h>
#include <stdint.h>

enum { SLM_QK = 32 }; /* elements per block of every type here */

/* One quantised activation block. d and s hold the fp16-rounded values
 * ggml stores (as floats, so the dot needs no conversion); s is the Q8_1
 * sum term, unused against Q4_0 / Q8_0 weights (their Q8_0 blocks have the
 * same d and qs). */
typedef struct slm_q8_block {
    float d;
    float s;
    int8_t qs[SLM_QK];
} slm_q8_block;

/* x[n] (n a multiple of 32) -> y[n/32], as llama.cpp's x86 quantize_row_q8_1. */
void slm_q8_quantize_row(const float *x, slm_q8_block *y, int64_t n);

/* w: nb weight blocks of the type; a: nb activation blocks. */
typedef float (*slm_qdot_fn)(const void *w, const slm_q8_block *a, int nb);

float slm_qdot_q4_0_ref(const void *w, const slm_q8_block *a, int nb);
float slm_qdot_q4_1_ref(const void *w, const slm_q8_block *a, int nb);
float slm_qdot_q8_0_ref(const void *w, const slm_q8_block *a, int nb);
/* AVX2+FMA+F16C versions: call only when slm_cpu_has_avx2(). */
float slm_qdot_q4_0_avx2(const void *w, const slm_q8_block *a, int nb);
float slm_qdot_q4_1_avx2(const void *w, const slm_q8_block *a, int nb);
float slm_qdot_q8_0_avx2(const void *w, const slm_q8_block *a, int nb);

/* One weight row against 4 activation rows a, a + lda, a + 2 lda, a + 3 lda
 * (lda in blocks): out[k] is exactly the one-row dot of row k (prefill). */
typedef void (*slm_qdot4_fn)(const void *w, const slm_q8_block *a, int64_t lda, int nb, float *out);
void slm_qdot4_q4_0_avx2(const void *w, const slm_q8_block *a, int64_t lda, int nb, float *out);
void slm_qdot4_q4_1_avx2(const void *w, const slm_q8_block *a, int64_t lda, int nb, float *out);
void slm_qdot4_q8_0_avx2(const void *w, const slm_q8_block *a, int64_t lda, int nb, float *out);
/* The 4-row dot for qtype: the AVX2 one when simd and the CPU has it, else
 * NULL (callers then loop over the one-row dot). */
slm_qdot4_fn slm_qdot4_get(int qtype, bool simd);

/* Whether this CPU runs the AVX2+FMA+F16C kernels (checked once). */
bool slm_cpu_has_avx2(void);

/* The dot for weight type qtype (slm_dtype): the AVX2 one when simd and the
 * CPU has it, else the reference; NULL for a type without one. */
slm_qdot_fn slm_qdot_get(int qtype, bool simd);

#endif
