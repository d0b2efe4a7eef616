/* The QBLOCK linear kind: weights kept in their ggml blocks (Q4_0, Q4_1,
 * Q8_0), usually zero-copy from the GGUF mapping, multiplied as llama.cpp
 * multiplies them (kernels/cpu/qblock.h): each activation row is quantised
 * to 8 bits per 32-block, then every output is a sum of integer block dots
 * scaled by the two blocks' factors.
 *
 * Why: llama.cpp's numbers on a quantised GGUF (perplexity, logits) include
 * the activation quantisation, and users compare against those; and 4-5
 * bits per weight instead of 32 cut the memory traffic of decode ~6x.
 *
 * Layout of the work (legend: T tokens, nb = n_in/32 blocks per row):
 *   tmp [T][nb] slm_q8_block   activations, quantised once per call
 *   decode (T = 1): OpenMP over output rows;
 *   prefill: OpenMP over tiles of QB_ROWS weight rows x QB_TOKS tokens; each
 *   weight row is unpacked once per 4 tokens (slm_qdot4), the tile's
 *   activations (QB_TOKS x n_in bytes) stay in L2 across its rows.
 */
#include "model/forward.h"
#include "kernels/cpu/qblock.h"

#include <stdlib.h>
#include <string.h>

/* 32 rows of the widest SmolLM2/LLaMA-7B rows (Q8_0, n_in 11008: 11.7 KB
 * each) would not fit L1; 16 rows of n_in <= 1536 Q4_1 (960 B) take 15 KB. */
enum { QB_ROWS = 16, QB_TOKS = 64 };

static const uint8_t *row_at(const slm_linear *l, int o) { return (const uint8_t *)l->qw + (size_t)o * l->q_row_bytes; }

static inline void store(float *y, float v, float beta) { *y = beta == 0.0f ? v : beta * *y + v; }

void slm_linear_qblock_apply(const slm_linear *l, int T, const float *x, int64_t ldx, float *y, int64_t ldy,
                             float beta, float *tmp) {
    const int nb = l->n_in / SLM_QK, n_out = l->n_out;
    slm_q8_block *qa = (slm_q8_block *)tmp;
    const slm_qdot_fn dot = slm_qdot_get(l->qtype, true);
    const slm_qdot4_fn dot4 = slm_qdot4_get(l->qtype, true); /* NULL: one token at a time */
#pragma omp parallel for if (T > 1) schedule(static)
    for (int t = 0; t < T; t++) slm_q8_quantize_row(x + (int64_t)t * ldx, qa + (int64_t)t * nb, l->n_in);
    if (T == 1) {
#pragma omp parallel for if (n_out >= 64) schedule(static)
        for (int o = 0; o < n_out; o++) store(&y[o], dot(row_at(l, o), qa, nb), beta);
        return;
    }
    const int n_rt = (n_out + QB_ROWS - 1) / QB_ROWS, n_tt = (T + QB_TOKS - 1) / QB_TOKS;
#pragma omp parallel for schedule(static)
    for (int task = 0; task < n_rt * n_tt; task++) {
        const int o0 = (task % n_rt) * QB_ROWS, t0 = (task / n_rt) * QB_TOKS;
        const int o1 = o0 + QB_ROWS < n_out ? o0 + QB_ROWS : n_out, t1 = t0 + QB_TOKS < T ? t0 + QB_TOKS : T;
        for (int o = o0; o < o1; o++) {
            int t = t0;
            float r[4];
            for (; dot4 && t + 4 <= t1; t += 4) {
                dot4(row_at(l, o), qa + (int64_t)t * nb, nb, nb, r);
                for (int k = 0; k < 4; k++) store(&y[(int64_t)(t + k) * ldy + o], r[k], beta);
            }
            for (; t < t1; t++) store(&y[(int64_t)t * ldy + o], dot(row_at(l, o), qa + (int64_t)t * nb, nb), beta);
        }
    }
}

int64_t slm_linear_qblock_tmp_floats(const slm_linear *l, int T) {
    return (int64_t)T * (l->n_in / SLM_QK) * (int64_t)(sizeof(slm_q8_block) / sizeof(float));
}

bool slm_linear_qblock_supports(int qtype) { return slm_qdot_get(qtype, false) != NULL; }

slm_status slm_linear_set_qblock(slm_linear *l, const void *data, int qtype, int n_out, int n_in, const char *name) {
    const slm_dtype_traits *tr = slm_dtype_get(qtype);
    if (!tr || !slm_linear_qblock_supports(qtype))
        return slm_fail(SLM_ERR_UNSUPPORTED, "tensor '%s': type %s cannot be multiplied quantised (Q4_0, Q4_1, Q8_0)",
                        name, tr ? tr->name : "?");
    if (n_out <= 0 || n_in <= 0 || n_in % SLM_QK != 0)
        return slm_fail(SLM_ERR_FORMAT, "tensor '%s': shape [%d x %d] is not rows of %d-blocks", name, n_out, n_in,
                        SLM_QK);
    memset(l, 0, sizeof *l);
    l->kind = SLM_LINEAR_QBLOCK;
    l->n_out = n_out;
    l->n_in = n_in;
    l->qw = data;
    l->qtype = qtype;
    l->q_row_bytes = (size_t)(n_in / SLM_QK) * tr->type_size;
    return SLM_OK;
}

int64_t slm_linear_qblock_bytes(const slm_linear *l) {
    const slm_dtype_traits *tr = slm_dtype_get(l->qtype);
    return tr ? (int64_t)l->n_out * (l->n_in / SLM_QK) * (int64_t)tr->type_size : 0;
}

slm_status slm_linear_dequantized(const slm_linear *l, slm_linear *out, float **buf) {
    *out = *l;
    *buf = NULL;
    if (l->kind != SLM_LINEAR_QBLOCK) return SLM_OK;
    size_t n;
    if (!slm_mul_ok((size_t)l->n_out, (size_t)l->n_in, &n) || !slm_mul_ok(n, sizeof(float), &n))
        return slm_fail(SLM_ERR_NOMEM, "size overflow dequantising a %d x %d linear", l->n_out, l->n_in);
    float *w = slm_malloc(n, "dequantised weight");
    if (!w) return SLM_ERR_NOMEM;
    const slm_dtype_traits *tr = slm_dtype_get(l->qtype);
    for (int o = 0; o < l->n_out; o++) tr->to_float(row_at(l, o), w + (int64_t)o * l->n_in, l->n_in);
    out->kind = SLM_LINEAR_DENSE;
    out->w = w;
    out->ld_w = l->n_in;
    out->qw = NULL;
    *buf = w;
    return SLM_OK;
}
