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
 * A packed decode (slm_decode_packed) runs the same step over rows that
 * belong to different sequences of a token tree: each row brings its own
 * RoPE position and the cache slots it attends to (attention.c masks the
 * rest), and logits are made for a chosen list of rows. With c->pack NULL
 * the step is the plain causal one above, unchanged.
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

/* q rows [T][Q] and the k rows just written to the cache, positions P+t
 * (a packed step's own positions instead). */
static void rope_rows(slm_context *c, int layer, int T) {
    const slm_config *cfg = &c->m->cfg;
    int Q = cfg->n_heads * cfg->head_dim, Dh = cfg->head_dim;
    slm_rope_mode mode = cfg->rope_layout == SLM_ROPE_ADJACENT ? SLM_ROPE_MODE_ADJACENT : SLM_ROPE_MODE_HALVES;
    float *k = slm_context_k(c, layer) + (int64_t)c->n_past * c->kv_dim;
#pragma omp parallel for if (T > 1) schedule(static)
    for (int t = 0; t < T; t++) {
        int pos = c->pack ? c->pack->pos[c->pack_row0 + t] : c->n_past + t;
        const float *cs = c->rope_cs + (int64_t)pos * Dh;
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

/* logits [n][V] = lm_head . xn rows; the QBLOCK lm head when the model has one. */
static void lm_head_forward(slm_context *c, int n, float *logits) {
    const slm_model *m = c->m;
    int D = m->cfg.d_model, V = m->cfg.n_vocab;
    if (m->lm_head_q.qw) slm_linear_forward(&m->lm_head_q, n, c->xn, D, logits, V, 0.0f, c->lin_tmp);
    else gemm_xwt(n, V, D, c->xn, D, m->lm_head, D, logits, V, 0.0f);
}

/* Which rows of a step get logits: row j of n is first + j, or first +
 * sel[j] when sel is given (sel counts rows of a whole packed call, first
 * is minus the step's offset in it). */
typedef struct out_rows {
    int first, n;
    const int32_t *sel;
} out_rows;

/* T tokens at cache slots n_past..; logits [out.n][V] of the rows out names
 * (none when logits is NULL). */
static slm_status decode_step(slm_context *c, const int32_t *tokens, int T, out_rows out, float *logits) {
    const slm_model *m = c->m;
    const slm_config *cfg = &m->cfg;
    int D = cfg->d_model, V = cfg->n_vocab;
    for (int t = 0; t < T; t++) slm_model_embed_row(m, tokens[t], c->x + (int64_t)t * D);
    for (int l = 0; l < cfg->n_layers; l++) {
        if (!m->blocks[l].kept) continue;
        if (block_forward(c, l, T))
            return slm_fail(SLM_ERR_STATE, "%s: block %d: stopped by the forward hook", model_name(m), l);
        if (!slm_all_finite(c->x, (int64_t)T * D))
            return slm_fail(SLM_ERR_NUMERIC, "%s: block %d: NaN or Inf in the activations", model_name(m), l);
    }
    c->n_past += T;
    if (!logits || out.n == 0) return SLM_OK;
    /* Only the rows asked for: the lm head is V x D, the largest matrix. */
#pragma omp parallel for if (out.n > 1) schedule(static)
    for (int j = 0; j < out.n; j++) {
        int r = out.first + (out.sel ? out.sel[j] : j);
        slm_rmsnorm(c->xn + (int64_t)j * D, c->x + (int64_t)r * D, m->out_norm, D, cfg->norm_eps);
    }
    lm_head_forward(c, out.n, logits);
    if (!slm_all_finite(logits, (int64_t)out.n * V))
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
        out_rows out = all_logits ? (out_rows){0, T, NULL} : (out_rows){T - 1, last ? 1 : 0, NULL};
        st = decode_step(c, tokens + i, T, out, lg);
        if (st) {
            c->n_past = start; /* the cache rows of this call are not trusted */
            return st;
        }
    }
    return SLM_OK;
}

/* ---- packed decode ------------------------------------------------------------------ */

/* Every row's spans ascending, disjoint, inside [0, own slot]; positions in
 * the RoPE table; output rows ascending. */
static slm_status packed_check(const slm_context *c, const slm_packed_rows *p) {
    const slm_model *m = c->m;
    if (p->n <= 0 || p->n_out < 0 || p->n_out > p->n || !p->tokens || !p->pos || !p->span_off || !p->span ||
        (p->n_out > 0 && !p->out_rows))
        return slm_fail(SLM_ERR_ARG, "packed decode: %d rows, %d output rows", p->n, p->n_out);
    if (p->n > c->n_ctx - c->n_past)
        return slm_fail(SLM_ERR_STATE, "packed decode: %d rows do not fit in the KV cache (%d of %d positions used)",
                        p->n, c->n_past, c->n_ctx);
    if (p->span_off[0] != 0) return slm_fail(SLM_ERR_ARG, "packed decode: span_off[0] = %d", p->span_off[0]);
    for (int t = 0; t < p->n; t++) {
        int slot = c->n_past + t, at = 0;
        if (p->tokens[t] < 0 || p->tokens[t] >= m->cfg.n_vocab)
            return slm_fail(SLM_ERR_ARG, "packed decode: token id %d at %d out of range (vocabulary %d)", p->tokens[t],
                            t, m->cfg.n_vocab);
        if (p->pos[t] < 0 || p->pos[t] >= c->n_ctx)
            return slm_fail(SLM_ERR_ARG, "packed decode: row %d: position %d outside the context (%d)", t, p->pos[t],
                            c->n_ctx);
        if (p->span_off[t + 1] <= p->span_off[t])
            return slm_fail(SLM_ERR_ARG, "packed decode: row %d has no span", t);
        for (int s = p->span_off[t]; s < p->span_off[t + 1]; s++) {
            int lo = p->span[2 * s], hi = p->span[2 * s + 1];
            if (lo < at || hi <= lo || hi > slot + 1)
                return slm_fail(SLM_ERR_ARG, "packed decode: row %d (slot %d): span [%d, %d) not ascending, empty "
                                "or past the row", t, slot, lo, hi);
            at = hi;
        }
    }
    for (int j = 0; j < p->n_out; j++)
        if (p->out_rows[j] < (j ? p->out_rows[j - 1] + 1 : 0) || p->out_rows[j] >= p->n)
            return slm_fail(SLM_ERR_ARG, "packed decode: output row %d (%d) not ascending or out of range", j,
                            p->out_rows[j]);
    return SLM_OK;
}

slm_status slm_decode_packed(slm_context *c, const slm_packed_rows *p, float *logits) {
    slm_status st = packed_check(c, p);
    if (!st) st = ensure_lin_tmp(c);
    if (st) return st;
    int start = c->n_past, j = 0;
    c->pack = p;
    /* Steps of at most n_batch rows, each with the output rows it holds; a
     * row's spans end at its own slot, so every key it needs is written by
     * the time its step runs. */
    for (int i = 0; i < p->n && !st; i += c->n_batch) {
        int T = p->n - i < c->n_batch ? p->n - i : c->n_batch, j0 = j;
        while (j < p->n_out && p->out_rows[j] < i + T) j++;
        c->pack_row0 = i;
        st = decode_step(c, p->tokens + i, T, (out_rows){-i, j - j0, p->out_rows + j0},
                         logits ? logits + (int64_t)j0 * c->m->cfg.n_vocab : NULL);
    }
    c->pack = NULL;
    if (st) c->n_past = start; /* the cache rows of this call are not trusted */
    return st;
}
