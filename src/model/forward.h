/* Inference internals: the context (KV cache + scratch), the table of
 * linear kinds, attention. The public entry points are slm_context_* and
 * slm_decode in slimlm.h.
 *
 * Legend: T tokens in this call (<= n_batch), P positions already cached
 * (n_past), C n_ctx, D model dim, Q = H*Dh, KV = Hkv*Dh, F MLP width.
 */
#ifndef SLM_MODEL_FORWARD_H
#define SLM_MODEL_FORWARD_H

#include "model/model.h"

/* ---- linear kinds ------------------------------------------------------------ */

/* One row per slm_linear_kind. apply computes, for T rows of activations,
 *   Y[T][n_out] (row stride ldy) = beta * Y + X[T][n_in] (row stride ldx) . W^T
 * without the bias; tmp has tmp_floats(l, T) floats of scratch.
 * beta is 0 (overwrite) or 1 (accumulate: the residual add of o/down). */
typedef struct slm_linear_ops {
    const char *name;
    void (*apply)(const slm_linear *l, int T, const float *x, int64_t ldx, float *y, int64_t ldy,
                  float beta, float *tmp);
    int64_t (*tmp_floats)(const slm_linear *l, int T);
} slm_linear_ops;

/* The QBLOCK kind's row (model/linear_qblock.c): tmp holds the quantised activations. */
void slm_linear_qblock_apply(const slm_linear *l, int T, const float *x, int64_t ldx, float *y, int64_t ldy,
                             float beta, float *tmp);
int64_t slm_linear_qblock_tmp_floats(const slm_linear *l, int T);

/* NULL for a kind the forward pass does not know. */
const slm_linear_ops *slm_linear_ops_get(slm_linear_kind k);
/* apply + bias; tmp as the kind asks. */
void slm_linear_forward(const slm_linear *l, int T, const float *x, int64_t ldx, float *y, int64_t ldy,
                        float beta, float *tmp);

/* ---- forward hook ------------------------------------------------------------------ */

/* The four places inside a block where linears read their input rows
 * (compression methods gather calibration statistics there). */
typedef enum slm_fwd_point {
    SLM_FWD_ATTN_IN = 0, /* [T][D] normed attention input, read by q, k, v */
    SLM_FWD_O_IN,        /* [T][Q] attention output, read by o */
    SLM_FWD_MLP_IN,      /* [T][D] normed MLP input, read by gate, up */
    SLM_FWD_DOWN_IN,     /* [T][F] silu(gate) * up, read by down */
    SLM_FWD_POINT_COUNT
} slm_fwd_point;
/* Sees rows [T][n] (row stride ld) before the point's linears run.
 * Returning true ends the block there (slm_block_forward_rows reports it;
 * slm_decode fails with SLM_ERR_STATE), so a calibration pass that needs
 * one input does not pay for the rest of the block. */
typedef bool (*slm_fwd_hook)(void *user, int layer, slm_fwd_point pt, int T, const float *rows, int64_t ld);

/* ---- context --------------------------------------------------------------------- */

struct slm_context {
    const slm_model *m;
    int n_ctx;   /* C */
    int n_batch; /* most tokens per internal step */
    int n_past;  /* P */
    int n_threads; /* attention scratch is sized for this many threads */
    int kv_dim;  /* KV */
    /* KV cache [L][2][C][KV]: k then v of each layer; pages are touched only
     * as positions fill, so an unused long context costs address space only. */
    float *kv;
    float *rope_cs; /* [C][Dh/2][2] cos, sin */
    /* scratch, one allocation sized at creation (no malloc per call) */
    void *scratch;
    size_t scratch_bytes;
    float *x;      /* [n_batch][D] residual stream */
    float *xn;     /* [n_batch][D] normed input of a sub-layer */
    float *q;      /* [n_batch][Q] */
    float *att;    /* [n_batch][Q] attention output, heads concatenated */
    float *ffg;    /* [n_batch][F] gate, then silu(gate) * up */
    float *ffu;    /* [n_batch][F] up */
    float *scores; /* [n_threads][SLM_ATTN_TILE][C] attention probabilities */
    /* linear-kind scratch (low-rank intermediate); grown only when the plan
     * changes after creation to need more */
    float *lin_tmp;
    int64_t lin_tmp_floats;
    slm_fwd_hook hook; /* NULL, or called at each slm_fwd_point of every block */
    void *hook_user;
    /* NULL in a plain causal step; in a step of slm_decode_packed, its rows,
     * of which the step runs rows pack_row0 .. pack_row0 + T - 1 (RoPE
     * positions and attention spans come from there). */
    const slm_packed_rows *pack;
    int pack_row0;
};

/* Query rows per attention task: bounds the score scratch to TILE x C per
 * thread and lets causal tiles skip the keys no row in the tile can see. */
#define SLM_ATTN_TILE 64

static inline float *slm_context_k(const slm_context *c, int layer) {
    return c->kv + ((int64_t)layer * 2) * c->n_ctx * c->kv_dim;
}
static inline float *slm_context_v(const slm_context *c, int layer) {
    return c->kv + ((int64_t)layer * 2 + 1) * c->n_ctx * c->kv_dim;
}

/* Causal attention of T queries at positions P..P+T-1 over cached keys and
 * values 0..P+T-1 of one layer (already written, RoPE applied); in a packed
 * step (c->pack) each query sees only its spans' slots instead.
 * q [T][Q], out [T][Q]. OpenMP over (head, query tile). */
void slm_attention_forward(slm_context *c, int layer, int T, const float *q, float *out);

/* cs [n_pos][Dh/2][2]: RoPE (cos, sin) of positions 0..n_pos-1 with m's
 * frequencies (its scaling, or a GGUF rope_freqs tensor's divisors); the
 * inference context and the training forward share it. */
slm_status slm_rope_table_fill(const slm_model *m, int n_pos, float *cs);

/* Scratch floats the plan's linear kinds need for T rows (max over linears). */
int64_t slm_plan_tmp_floats(const slm_model *m, int T);

/* Runs block `layer` alone on x [T][D] (in: its input residual, out: its
 * output) as one sequence at positions 0..T-1 (overwrites that layer's KV
 * rows), T <= n_batch; leaves n_past at 0. *stopped (may be NULL) tells
 * whether the hook ended the block early (x is then left unchanged).
 * Compression methods stream calibration data block by block with it. */
slm_status slm_block_forward_rows(slm_context *c, int layer, float *x, int T, bool *stopped);

/* ---- test / bench helper ------------------------------------------------------------ */

/* A model of cfg's shape filled with reproducible random weights (uniform,
 * scaled by 1/sqrt(n_in) so activations stay O(1)); biases when
 * cfg->attn_bias, a separate lm head unless cfg->tied_embeddings. */
slm_status slm_model_new_random(const slm_config *cfg, uint64_t seed, slm_model **out);

#endif
