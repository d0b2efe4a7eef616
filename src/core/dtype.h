/* Tensor element types: the numbering is GGML's, so a GGUF type id is an
 * slm_dtype. Each type is a row in a traits table (block size, bytes per
 * block, dequantise, quantise) in dtype.c: a new type is one row plus its
 * kernels (see STYLE.md, "tables instead of forks").
 *
 * Block layouts (all little-endian, fp16 = IEEE half):
 *   Q4_0 32 w / 18 B: d fp16, 16 B nibbles; w = d*(q-8); byte j: lo=elem j, hi=elem j+16
 *   Q4_1 32 w / 20 B: d fp16, m fp16, 16 B nibbles; w = d*q + m
 *   Q8_0 32 w / 34 B: d fp16, 32 int8; w = d*q
 *   Q4_K/Q5_K/Q6_K 256 w super-blocks, as in ggml-quants.c (documented in dtype.c)
 *   I8, I32  plain integers (ggml's GGML_TYPE_I8 / I32): the INT8 linear
 *            kind's weights and outlier column indices (docs/int8.md)
 */
#ifndef SLM_DTYPE_H
#define SLM_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum slm_dtype {
    SLM_DTYPE_F32 = 0,
    SLM_DTYPE_F16 = 1,
    SLM_DTYPE_Q4_0 = 2,
    SLM_DTYPE_Q4_1 = 3,
    SLM_DTYPE_Q8_0 = 8,
    SLM_DTYPE_Q4_K = 12,
    SLM_DTYPE_Q5_K = 13,
    SLM_DTYPE_Q6_K = 14,
    SLM_DTYPE_I8 = 24,
    SLM_DTYPE_I32 = 26,
    SLM_DTYPE_BF16 = 30,
    SLM_DTYPE_COUNT_ = 40 /* upper bound of ids, for tables */
} slm_dtype;

typedef struct slm_dtype_traits {
    const char *name;     /* "F32", "Q4_K", ... as GGUF tools print them */
    int block_size;       /* elements per block */
    size_t type_size;     /* bytes per block */
    /* Dequantise n elements (n a multiple of block_size). */
    void (*to_float)(const void *src, float *dst, int64_t n);
    /* Quantise n elements (NULL when slimlm does not write this type). */
    void (*from_float)(const float *src, void *dst, int64_t n);
} slm_dtype_traits;

/* NULL for an id slimlm does not know. */
const slm_dtype_traits *slm_dtype_get(int id);
/* Bytes for n elements, false if n is not a multiple of the block size or overflows. */
bool slm_dtype_nbytes(slm_dtype t, int64_t n, size_t *out);

#endif
