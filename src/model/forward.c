/* The forward pass (LLaMA family) over any plan, fp32.
 *
 * Per kept block, for T tokens at positions P..P+T-1:
 *   xn = rmsnorm(x) * attn_norm
 *   q = Wq xn (+bq), k = Wk xn (+bk) -> cache, v = Wv xn (+bv) -> cache
 *   rope(q), rope(k) in the model's pair layout
 *   x += Wo attention(q, K[0..P+T), V[0..P+T))        (causal, GQA)
 *   xn = rmsnorm(x) * ffn_norm
 *   x += Wdown (silu(Wgate xn) * Wup xn)              (first d_ff channels)
 * then logits = lm_head rmsnorm(x) for every row or only the last.
 * Dropped blocks are skipped (the residual passes through).
 *
 * Every linear runs as one GEMM over the T rows (sgemv when T = 1) through
 * the table of linear kinds; o and down accumulate straight into the
 * residual (beta = 1) and k/v are written straight into the KV cache, so
 * nothing is copied. OpenBLAS (OpenMP flavour) threads the GEMMs; our own
 * OpenMP loops cover the row-wise kernels and attention, and OpenBLAS runs
 * single-threaded inside them, so the two never oversubscribe.
 */
#include "model/forward.h"
#include "kernels/cpu/kernels.h"
#include "model/linear_int8.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* ---- linear kinds ------------------------------------------------------------ */

/* Y = beta Y + X W^T for W [n_out][ldw]. */
static void gemm_xwt(int T, int n_out, int n_in, const float *x, int64_t ldx, const float *w, int64_t ldw,
                     float *y, int64_t ldy, float beta) {
    if (T == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n_out, n_in, 1.0f, w, (int)ldw, x, 1, beta, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, n_out, n_in, 1.0f, x, (int)ldx, w, (int)ldw,
                    beta, y, (int)ldy);
}

static void dense_apply(const slm_linear *l, int T, const float *x, int64_t ldx, float *y, int64_t ldy,
                        float beta, float *tmp) {
    (void)tmp;
    gemm_xwt(T, l->n_out, l->n_in, x, ldx, l->w, l->ld_w, y, ldy, beta);
}

static int64_t dense_tmp(const slm_linear *l, int T) {
    (void)l;
    (void)T;
    return 0;
}

/* W ~= A B: tmp[T][rank] = X B^T, then Y = beta Y + tmp A^T. */
static void lowrank_apply(const slm_linear *l, int T, const float *x, int64_t ldx, float *y, int64_t ldy,
                          float beta, float *tmp) {
    gemm_xwt(T, l->rank, l->n_in, x, ldx, l->b, l->ld_b, tmp, l->rank, 0.0f);
    gemm_xwt(T, l->n_out, l->rank, tmp, l->rank, l->a, l->rank, y, ldy, beta);
}

static int64_t lowrank_tmp(const slm_linear *l, int T) { return (int64_t)T * l->rank; }

static const slm_linear_ops k_linear_ops[SLM_LINEAR_KIND_COUNT] = {
    [SLM_LINEAR_DENSE] = {"dense", dense_apply, dense_tmp},
    [SLM_LINEAR_LOWRANK] = {"lowrank", lowrank_apply, lowrank_tmp},
    [SLM_LINEAR_QBLOCK] = {"qblock", slm_linear_qblock_apply, slm_linear_qblock_tmp_floats},
    [SLM_LINEAR_INT8] = {"int8", slm_linear_int8_apply, slm_linear_int8_tmp_floats},
};

const slm_linear_ops *slm_linear_ops_get(slm_linear_kind k) {
    if ((unsigned)k >= SLM_LINEAR_KIND_COUNT || !k_linear_ops[k].apply) return NULL;
    return &k_linear_ops[k];
}

void slm_linear_forward(const slm_linear *l, int T, const float *x, int64_t ldx, float *y, int64_t ldy,
                        float beta, float *tmp) {
    k_linear_ops[l->kind].apply(l, T, x, ldx, y, ldy, beta, tmp);
    if (l->bias)
        for (int t = 0; t < T; t++) {
            float *yt = y + (int64_t)t * ldy;
            for (int o = 0; o < l->n_out; o++) yt[o] += l->bias[o];
        }
}

int64_t slm_plan_tmp_floats(const slm_model *m, int T) {
    int64_t need = 0;
    for (int i = 0; i < m->cfg.n_layers; i++) {
        const slm_block *b = &m->blocks[i];
        if (!b->kept) continue;
        for (int p = 0; p < SLM_PROJ_COUNT; p++) {
            const slm_linear_ops *ops = slm_linear_ops_get(b->lin[p].kind);
            int64_t n = ops ? ops->tmp_floats(&b->lin[p], T) : 0;
            if (n > need) need = n;
        }
    }
    if (m->lm_head_q.qw) { /* the quantised lm head runs through the same scratch */
        int64_t n = slm_linear_ops_get(m->lm_head_q.kind)->tmp_floats(&m->lm_head_q, T);
        if (n > need) need = n;
    }
    return need;
}

/* ---- row-wise kernels over T rows ------------------------------------------------- */

static void rmsnorm_rows(float *y, const float *x, const float *w, int T, int D, float eps) {
#pragma omp parallel for if (T > 1) schedule(static)
    for (int t = 0; t < T; t++) slm_rmsnorm(y + (int64_t)t * D, x + (int64_t)t * D, w, D, eps);
}

/* q rows [T][Q] and the k rows just written to the cache, positions P+t. */
static void rope_rows(slm_context *c, int layer, int T) {
    const slm_config *cfg = &c->m->cfg;
    int Q = cfg->n_heads * cfg->head_dim, Dh = cfg->head_dim;
    slm_rope_mode mode = cfg->rope_layout == SLM_ROPE_ADJACENT ? SLM_ROPE_MODE_ADJACENT : SLM_ROPE_MODE_HALVES;
    float *k = slm_context_k(c, layer) + (int64_t)c->n_past * c->kv_dim;
#pragma omp parallel for if (T > 1) schedule(static)
    for (int t = 0; t < T; t++) {
        const float *cs = c->rope_cs + (int64_t)(c->n_past + t) * Dh;
        slm_rope_apply(c->q + (int64_t)t * Q, cfg->n_heads, Dh, cs, mode);
        slm_rope_apply(k + (int64_t)t * c->kv_dim, cfg->n_kv_heads, Dh, cs, mode);
    }
}

static void swiglu_rows(float *g, const float *u, int T, int F) {
#pragma omp parallel for if (T > 1) schedule(static)
    for (int t = 0; t < T; t++) slm_swiglu(g + (int64_t)t * F, u + (int64_t)t * F, F);
}

/* ---- one block ------------------------------------------------------------------- */

static bool hook_stops(slm_context *c, int layer, slm_fwd_point pt, int T, const float *rows, int64_t ld) {
    return c->hook && c->hook(c->hook_user, layer, pt, T, rows, ld);
}

/* Returns true when the hook ended the block early. */
static bool block_forward(slm_context *c, int layer, int T) {
    const slm_config *cfg = &c->m->cfg;
    const slm_block *b = &c->m->blocks[layer];
    int D = cfg->d_model, Q = cfg->n_heads * cfg->head_dim, KV = c->kv_dim, F = b->d_ff;
    float *kc = slm_context_k(c, layer) + (int64_t)c->n_past * KV;
    float *vc = slm_context_v(c, layer) + (int64_t)c->n_past * KV;

    rmsnorm_rows(c->xn, c->x, b->attn_norm, T, D, cfg->norm_eps);
    if (hook_stops(c, layer, SLM_FWD_ATTN_IN, T, c->xn, D)) return true;
    slm_linear_forward(&b->lin[SLM_PROJ_Q], T, c->xn, D, c->q, Q, 0.0f, c->lin_tmp);
    slm_linear_forward(&b->lin[SLM_PROJ_K], T, c->xn, D, kc, KV, 0.0f, c->lin_tmp);
    slm_linear_forward(&b->lin[SLM_PROJ_V], T, c->xn, D, vc, KV, 0.0f, c->lin_tmp);
    rope_rows(c, layer, T);
    slm_attention_forward(c, layer, T, c->q, c->att);
    if (hook_stops(c, layer, SLM_FWD_O_IN, T, c->att, Q)) return true;
    slm_linear_forward(&b->lin[SLM_PROJ_O], T, c->att, Q, c->x, D, 1.0f, c->lin_tmp);

    rmsnorm_rows(c->xn, c->x, b->ffn_norm, T, D, cfg->norm_eps);
    if (hook_stops(c, layer, SLM_FWD_MLP_IN, T, c->xn, D)) return true;
    slm_linear_forward(&b->lin[SLM_PROJ_GATE], T, c->xn, D, c->ffg, F, 0.0f, c->lin_tmp);
    slm_linear_forward(&b->lin[SLM_PROJ_UP], T, c->xn, D, c->ffu, F, 0.0f, c->lin_tmp);
    swiglu_rows(c->ffg, c->ffu, T, F);
    if (hook_stops(c, layer, SLM_FWD_DOWN_IN, T, c->ffg, F)) return true;
    slm_linear_forward(&b->lin[SLM_PROJ_DOWN], T, c->ffg, F, c->x, D, 1.0f, c->lin_tmp);
    return false;
}

/* ---- decode ------------------------------------------------------------------------ */

static const char *model_name(const slm_model *m) { return m->path ? m->path : "model"; }

/* The plan may have changed since the context was made (a compression step
 * between decodes): grow the low-rank scratch if it needs more now. */
static slm_status ensure_lin_tmp(slm_context *c) {
    int64_t need = slm_plan_tmp_floats(c->m, c->n_batch);
    if (need <= c->lin_tmp_floats) return SLM_OK;
    float *n = slm_aligned_alloc((size_t)need * sizeof(float), "low-rank scratch");
    if (!n) return SLM_ERR_NOMEM;
    free(c->lin_tmp);
    c->lin_tmp = n;
    c->lin_tmp_floats = need;
    return SLM_OK;
}

/* logits [T][V] = lm_head . xn rows; the QBLOCK lm head when the model has one. */
static void lm_head_forward(slm_context *c, int T, float *logits) {
    const slm_model *m = c->m;
    int D = m->cfg.d_model, V = m->cfg.n_vocab;
    if (m->lm_head_q.qw) slm_linear_forward(&m->lm_head_q, T, c->xn, D, logits, V, 0.0f, c->lin_tmp);
    else gemm_xwt(T, V, D, c->xn, D, m->lm_head, D, logits, V, 0.0f);
}

/* T tokens at positions n_past..; logits as slm_decode describes, for this step. */
static slm_status decode_step(slm_context *c, const int32_t *tokens, int T, bool all_logits, float *logits) {
    const slm_model *m = c->m;
    const slm_config *cfg = &m->cfg;
    int D = cfg->d_model, V = cfg->n_vocab;
    for (int t = 0; t < T; t++)
        memcpy(c->x + (int64_t)t * D, m->tok_embd + (int64_t)tokens[t] * D, (size_t)D * sizeof(float));
    for (int l = 0; l < cfg->n_layers; l++) {
        if (!m->blocks[l].kept) continue;
        if (block_forward(c, l, T))
            return slm_fail(SLM_ERR_STATE, "%s: block %d: stopped by the forward hook", model_name(m), l);
        if (!slm_all_finite(c->x, (int64_t)T * D))
            return slm_fail(SLM_ERR_NUMERIC, "%s: block %d: NaN or Inf in the activations", model_name(m), l);
    }
    c->n_past += T;
    if (!logits) return SLM_OK;
    if (all_logits) {
        rmsnorm_rows(c->xn, c->x, m->out_norm, T, D, cfg->norm_eps);
        lm_head_forward(c, T, logits);
    } else {
        /* Only the last row: the lm head is V x D, the largest matrix. */
        slm_rmsnorm(c->xn, c->x + (int64_t)(T - 1) * D, m->out_norm, D, cfg->norm_eps);
        lm_head_forward(c, 1, logits);
    }
    if (!slm_all_finite(logits, (int64_t)(all_logits ? T : 1) * V))
        return slm_fail(SLM_ERR_NUMERIC, "%s: output: NaN or Inf in the logits", model_name(m));
    return SLM_OK;
}

slm_status slm_block_forward_rows(slm_context *c, int layer, float *x, int T, bool *stopped) {
    const slm_model *m = c->m;
    int64_t D = m->cfg.d_model;
    if (layer < 0 || layer >= m->cfg.n_layers || T <= 0 || T > c->n_batch)
        return slm_fail(SLM_ERR_ARG, "block forward: layer %d, %d rows (batch %d)", layer, T, c->n_batch);
    slm_status st = ensure_lin_tmp(c);
    if (st) return st;
    c->n_past = 0;
    memcpy(c->x, x, (size_t)(T * D) * sizeof(float));
    bool stop = m->blocks[layer].kept && block_forward(c, layer, T);
    if (stopped) *stopped = stop;
    if (stop) return SLM_OK; /* x keeps the block's input */
    if (!slm_all_finite(c->x, T * D))
        return slm_fail(SLM_ERR_NUMERIC, "%s: block %d: NaN or Inf in the activations", model_name(m), layer);
    memcpy(x, c->x, (size_t)(T * D) * sizeof(float));
    return SLM_OK;
}

slm_status slm_decode(slm_context *c, const int32_t *tokens, int n, bool all_logits, float *logits) {
    const slm_model *m = c->m;
    if (n <= 0) return slm_fail(SLM_ERR_ARG, "decode: %d tokens", n);
    if (n > c->n_ctx - c->n_past)
        return slm_fail(SLM_ERR_STATE, "decode: %d tokens do not fit in the KV cache (%d of %d positions used)", n,
                        c->n_past, c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.n_vocab)
            return slm_fail(SLM_ERR_ARG, "decode: token id %d at %d out of range (vocabulary %d)", tokens[i], i,
                            m->cfg.n_vocab);
    slm_status st = ensure_lin_tmp(c);
    if (st) return st;
    int start = c->n_past;
    /* Steps of at most n_batch tokens; only the last step's last row gives
     * logits unless all are wanted. */
    for (int i = 0; i < n; i += c->n_batch) {
        int T = n - i < c->n_batch ? n - i : c->n_batch;
        bool last = i + T == n;
        float *lg = NULL;
        if (logits && all_logits) lg = logits + (int64_t)i * m->cfg.n_vocab;
        else if (logits && last) lg = logits;
        st = decode_step(c, tokens + i, T, all_logits, lg);
        if (st) {
            c->n_past = start; /* the cache rows of this call are not trusted */
            return st;
        }
    }
    return SLM_OK;
}
