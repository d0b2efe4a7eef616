/* The INT8 linear kind (docs/int8.md): weights quantised per output
 * channel to symmetric int8 (absmax scales), activations quantised per
 * token on the fly, int8 x int8 -> int32 products (kernels/cpu/int8.h),
 * optionally with LLM.int8-style outlier input columns kept in fp32.
 *
 * One slm_i8_matrix is one quantised matrix W [rows][cols]:
 *   W[r][c] ~= scale[r] * q[r][c]      for every column c not an outlier,
 *   W[r][c]  = outl_w[r][j]            for c = outl_idx[j] (fp32, exact),
 * and q is 0 at outlier columns, so a product splits into an int8 part
 * (the activation's outlier columns excluded from its absmax too) and a
 * small fp32 GEMM over the n_outl columns (bitsandbytes' mixed
 * decomposition, with the columns fixed from calibration data).
 *
 * A linear of kind SLM_LINEAR_INT8 is
 *   rank 0:  y = W x         i8[0] = W [n_out][n_in]
 *   rank r:  y = A (B x)     i8[0] = B [r][n_in], i8[1] = A [n_out][r]
 *            (low-rank factors, e.g. LLM-ROM's, each quantised; the
 *            intermediate B x [T][r] is fp32 and is re-quantised per token)
 * and its qw points at i8[0]'s bytes (qw != NULL means quantised, for
 * every kind). A block's narrowed MLP (n_in or n_out below the matrix's
 * cols / rows) uses the first channels, as for dense weights.
 *
 * Legend: T tokens, K = cols rounded up to SLM_I8_KALIGN.
 */
#ifndef SLM_MODEL_LINEAR_INT8_H
#define SLM_MODEL_LINEAR_INT8_H

#include "model/model.h"

typedef struct slm_i8_matrix {
    int rows, cols;
    int64_t ld;               /* bytes between rows of q, >= cols rounded up to SLM_I8_KALIGN */
    const int8_t *q;          /* [rows][ld]: 0 at outlier columns and from cols to ld */
    const float *scale;       /* [rows], >= 0 */
    int n_outl;
    const int32_t *outl_idx;  /* [n_outl] ascending columns kept in fp32 */
    const float *outl_w;      /* [rows][n_outl] their weights */
    int act_group;            /* how the activations this matrix multiplies are quantised:
                                 0 one scale per token, G one per token and G columns
                                 (kernels/cpu/int8.h); the weights are the same either way */
} slm_i8_matrix;

/* ---- matrices ------------------------------------------------------------------ */

/* Quantises w [rows][ldw] (cols used) row by row: s = max |w[r][c]| / 127
 * over non-outlier columns, q = nearest(w / s) (so |w - s q| <= s / 2).
 * outl [n_outl] ascending, < cols (may be NULL when n_outl = 0). The matrix
 * is owned by m. */
slm_status slm_i8_matrix_quantize(slm_model *m, const float *w, int rows, int cols, int64_t ldw, const int32_t *outl,
                                  int n_outl, const char *name, const slm_i8_matrix **out);
/* A matrix over stored parts (loaders): q [rows][ldq] bytes, scale [rows],
 * outl_idx [n_outl], outl_w [rows][n_outl]. q is used in place when its
 * rows need no padding (ldq = cols, a multiple of SLM_I8_KALIGN), else
 * copied; the
 * parts must outlive m otherwise. Checks: scales finite and >= 0, indices
 * ascending and < cols, q zero at the outlier columns; errors name `name`. */
slm_status slm_i8_matrix_from_parts(slm_model *m, const int8_t *q, int64_t ldq, const float *scale, int rows, int cols,
                                    const int32_t *outl_idx, int n_outl, const float *outl_w, const char *name,
                                    const slm_i8_matrix **out);
/* w [rows][ldw] = the matrix's values (outlier columns exact). */
void slm_i8_matrix_dequantize(const slm_i8_matrix *q, float *w, int64_t ldw);
/* w [cols] = row r's values, scale[r] * q[r][c] (outlier columns exact):
 * the int8 token embedding's lookup (slm_model_embed_row). */
void slm_i8_matrix_dequantize_row(const slm_i8_matrix *q, int r, float *w);
/* Bytes held: int8 values (cols per row, unpadded), scales, outlier indices and weights. */
int64_t slm_i8_matrix_bytes(const slm_i8_matrix *q);

/* Sets the activation group G (0, or slm_i8_group_ok) of every int8 matrix
 * of m (block linears, low-rank factors, the lm head). The matrices are
 * m's own, so this is their one mutation after creation. */
slm_status slm_model_set_int8_act_group(slm_model *m, int G);
/* The activation group of m's int8 matrices (0 when per token or none). */
int slm_model_int8_act_group(const slm_model *m);

/* ---- the linear kind ------------------------------------------------------------- */

/* Makes l an INT8 linear of n_out x n_in: dense over w (a NULL), or low-rank
 * a (A [n_out][r]) times w (B [r][n_in]). Keeps l's bias. */
slm_status slm_linear_set_int8(slm_linear *l, const slm_i8_matrix *w, const slm_i8_matrix *a, int n_out, int n_in);
/* Whether l's matrices cover its shape (model validation). */
bool slm_linear_int8_valid(const slm_linear *l);
/* Bytes of l's matrices (slm_i8_matrix_bytes of each). */
int64_t slm_linear_int8_bytes(const slm_linear *l);
/* The kind's row of the linear-ops table (model/forward.h). */
void slm_linear_int8_apply(const slm_linear *l, int T, const float *x, int64_t ldx, float *y, int64_t ldy, float beta,
                           float *tmp);
int64_t slm_linear_int8_tmp_floats(const slm_linear *l, int T);
/* For writers: *out = l as a dense (or, rank > 0, low-rank) fp32 linear over
 * malloc'd copies *buf0 (W or B) and *buf1 (A, or NULL) that the caller
 * frees. */
slm_status slm_linear_int8_dequantized(const slm_linear *l, slm_linear *out, float **buf0, float **buf1);

#endif
