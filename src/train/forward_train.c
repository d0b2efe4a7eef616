/* The training forward pass: the model's forward over B sequences of T
 * tokens at once (no KV cache), keeping what the backward needs.
 *
 * Per kept block l, on x = hidden[l] (rows [N][D]):
 *   xn1 = rmsnorm(x) attn_norm;  q, k, v = linears(xn1);  rope(q), rope(k)
 *   att = causal attention per sequence (probabilities p kept)
 *   xmid = x + Wo att;  xn2 = rmsnorm(xmid) ffn_norm
 *   g, u = gate(xn2), up(xn2);  h = silu(g) u;  hidden[l+1] = xmid + Wdown h
 * Linears run through the model's table of linear kinds (slm_linear_forward),
 * so any plan the inference forward accepts is trained the same way.
 *
 * Memory: one allocation, carved into the buffers of train_ctx.h. Without
 * recompute each kept block keeps its own activations (~ N (4D + 2Q + 2KV
 * + 3F) + B H T^2 floats); with recompute (or forward only) one shared set
 * serves every block, and only the residual stream hidden[] is kept.
 */
#include "train/ops.h"
#include "train/train_ctx.h"

#include <stdlib.h>
#include <string.h>

slm_train_ctx_params slm_train_ctx_default_params(void) {
    return (slm_train_ctx_params){.n_seq = 1, .n_tok = 128, .recompute = false, .forward_only = false,
                                  .keep_attn_out = false};
}

/* ---- memory ------------------------------------------------------------------------- */

typedef struct carver {
    char *base; /* NULL while measuring */
    size_t used;
    bool overflow;
} carver;

static float *carve(carver *cv, int64_t n_floats) {
    size_t bytes, off = cv->used;
    if (n_floats < 0 || !slm_mul_ok((size_t)n_floats, sizeof(float), &bytes) || !slm_add_ok(bytes, 63, &bytes)) {
        cv->overflow = true;
        return NULL;
    }
    bytes &= ~(size_t)63;
    if (!slm_add_ok(cv->used, bytes, &cv->used)) cv->overflow = true;
    return cv->base && !cv->overflow ? (float *)(cv->base + off) : NULL;
}

static void carve_acts(carver *cv, const slm_train_ctx *tc, int F, slm_block_acts *a) {
    const slm_config *c = &tc->m->cfg;
    int64_t N = tc->N, D = c->d_model, Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim;
    a->xn1 = carve(cv, N * D);
    a->rms1 = carve(cv, N);
    a->q = carve(cv, N * Q);
    a->k = carve(cv, N * KV);
    a->v = carve(cv, N * KV);
    a->p = carve(cv, (int64_t)tc->B * c->n_heads * tc->T * tc->T);
    a->att = carve(cv, N * Q);
    a->xmid = carve(cv, N * D);
    a->xn2 = carve(cv, N * D);
    a->rms2 = carve(cv, N);
    a->g = carve(cv, N * F);
    a->u = carve(cv, N * F);
    a->h = carve(cv, N * F);
}

/* Largest rank of any low-rank linear of the plan (0 if none). */
static int max_rank(const slm_model *m) {
    int r = 0;
    for (int i = 0; i < m->cfg.n_layers; i++)
        for (int p = 0; m->blocks[i].kept && p < SLM_PROJ_COUNT; p++)
            if (m->blocks[i].lin[p].kind == SLM_LINEAR_LOWRANK && m->blocks[i].lin[p].rank > r)
                r = m->blocks[i].lin[p].rank;
    return r;
}

/* Blocks the context has room for, and their MLP width: the plan's, or for
 * an elastic view every block at full width (the plan changes per step). */
static bool has_room(const slm_train_ctx *tc, int i) {
    return tc->elastic ? tc->tv->blk[i].attn_norm >= 0 : tc->m->blocks[i].kept;
}
static int room_ff(const slm_train_ctx *tc, int i) { return tc->elastic ? tc->m->cfg.d_ff : tc->m->blocks[i].d_ff; }

/* hidden[] for the current plan: a dropped block's output is its input. */
static void alias_hidden(slm_train_ctx *tc) {
    const slm_model *m = tc->m;
    tc->hidden[0] = tc->hidden_own[0];
    tc->last_kept = -1;
    for (int i = 0; i < m->cfg.n_layers; i++) {
        bool run = m->blocks[i].kept && tc->hidden_own[i + 1];
        tc->hidden[i + 1] = run ? tc->hidden_own[i + 1] : tc->hidden[i];
        if (m->blocks[i].kept) tc->last_kept = i;
    }
}

static void carve_all(carver *cv, slm_train_ctx *tc) {
    const slm_model *m = tc->m;
    const slm_config *c = &m->cfg;
    int64_t N = tc->N, D = c->d_model, V = c->n_vocab, T = tc->T;
    int64_t Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim;
    int L = c->n_layers, Fmax = 0;
    for (int i = 0; i < L; i++)
        if (has_room(tc, i) && room_ff(tc, i) > Fmax) Fmax = room_ff(tc, i);
    tc->rope_fwd = carve(cv, T * c->head_dim);
    tc->rope_bwd = carve(cv, T * c->head_dim);
    tc->tokens = (int32_t *)carve(cv, N);
    /* the residual stream: the embeddings and each kept block's output */
    tc->hidden_own[0] = carve(cv, N * D);
    for (int i = 0; i < L; i++) tc->hidden_own[i + 1] = has_room(tc, i) ? carve(cv, N * D) : NULL;
    alias_hidden(tc);
    for (int i = 0; i < L; i++) tc->attn_out[i] = tc->keep_attn_out && has_room(tc, i) ? carve(cv, N * D) : NULL;
    bool shared = tc->recompute || tc->forward_only;
    slm_block_acts one;
    if (shared) carve_acts(cv, tc, Fmax, &one);
    for (int i = 0; i < L; i++) {
        if (!has_room(tc, i)) memset(&tc->acts[i], 0, sizeof tc->acts[i]);
        else if (shared) tc->acts[i] = one;
        else carve_acts(cv, tc, room_ff(tc, i), &tc->acts[i]);
    }
    tc->rms_f = carve(cv, N);
    tc->xn_f = carve(cv, N * D);
    int64_t rk = max_rank(m), lin_tmp = slm_plan_tmp_floats(m, tc->N);
    tc->lin_tmp = carve(cv, lin_tmp > N * rk ? lin_tmp : N * rk);
    tc->logits = carve(cv, T * V);
    tc->loss_scratch = carve(cv, (int64_t)tc->n_threads * 3 * V);
    if (tc->forward_only) return;
    tc->dx = carve(cv, N * D);
    tc->dxn = carve(cv, N * D);
    tc->dq = carve(cv, N * Q);
    tc->datt = carve(cv, N * Q);
    tc->dk = carve(cv, N * KV);
    tc->dv = carve(cv, N * KV);
    tc->dg = carve(cv, N * Fmax);
    tc->du = carve(cv, N * Fmax);
    tc->dh = carve(cv, N * Fmax);
    slm_attn_shape sh = {tc->B, tc->T, c->n_heads, c->n_kv_heads, c->head_dim, 0};
    tc->attn_scratch = carve(cv, slm_attn_bwd_scratch_floats(&sh, tc->n_threads));
    tc->lin_dtmp = carve(cv, N * rk);
}

/* cos/sin tables for positions 0..T-1 (the inference context's), and the
 * inverse rotation for the backward. */
static slm_status rope_tables(slm_train_ctx *tc) {
    slm_status st = slm_rope_table_fill(tc->m, tc->T, tc->rope_fwd);
    if (st) return st;
    const int half = tc->m->cfg.head_dim / 2;
    for (int64_t i = 0; i < (int64_t)tc->T * half; i++) {
        tc->rope_bwd[2 * i] = tc->rope_fwd[2 * i];
        tc->rope_bwd[2 * i + 1] = -tc->rope_fwd[2 * i + 1];
    }
    return SLM_OK;
}

/* ---- life cycle ---------------------------------------------------------------------- */

slm_status slm_train_ctx_new(slm_model *m, slm_trainable *tv, const slm_train_ctx_params *p,
                             slm_train_ctx **out) {
    *out = NULL;
    slm_train_ctx_params dp = slm_train_ctx_default_params();
    if (!p) p = &dp;
    slm_status st = slm_model_validate(m);
    if (st) return st;
    const char *who = m->path ? m->path : "model";
    if (tv && tv->m != m) return slm_fail(SLM_ERR_ARG, "%s: the trainable view belongs to another model", who);
    if (tv && (st = slm_trainable_check(tv))) return st;
    if (!tv && !p->forward_only)
        return slm_fail(SLM_ERR_ARG, "%s: a training context without a trainable view must be forward only", who);
    if (p->n_seq <= 0 || p->n_tok <= 0 || p->n_tok > m->cfg.max_ctx || (int64_t)p->n_seq * p->n_tok > (1 << 24))
        return slm_fail(SLM_ERR_ARG, "%s: %d sequences of %d tokens (context %d)", who, p->n_seq, p->n_tok,
                        m->cfg.max_ctx);
    for (int i = 0; i < m->cfg.n_layers; i++)
        for (int k = 0; m->blocks[i].kept && k < SLM_PROJ_COUNT; k++)
            if (m->blocks[i].lin[k].kind != SLM_LINEAR_DENSE && m->blocks[i].lin[k].kind != SLM_LINEAR_LOWRANK)
                return slm_fail(SLM_ERR_UNSUPPORTED, "%s: block %d: %s is quantised: the training forward needs fp32 "
                                "linears (dequantise first)", who, i, slm_proj_hf_name((slm_proj)k));
    if (m->lm_head_q.qw)
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: the lm head is quantised: the training forward needs fp32", who);

    slm_train_ctx *tc = slm_calloc(1, sizeof *tc, "training context");
    if (!tc) return SLM_ERR_NOMEM;
    tc->m = m;
    tc->tv = tv;
    tc->elastic = tv && tv->elastic;
    tc->B = p->n_seq;
    tc->T = p->n_tok;
    tc->N = p->n_seq * p->n_tok;
    tc->recompute = p->recompute;
    tc->forward_only = p->forward_only || !tv;
    tc->keep_attn_out = p->keep_attn_out;
    tc->n_threads = slm_attn_threads();
    tc->shared_layer = -1;
    tc->last_kept = -1;
    for (int i = 0; i < m->cfg.n_layers; i++)
        if (m->blocks[i].kept) tc->last_kept = i;
    int L = m->cfg.n_layers;
    tc->hidden = slm_calloc((size_t)L + 1, sizeof *tc->hidden, "hidden states");
    tc->hidden_own = slm_calloc((size_t)L + 1, sizeof *tc->hidden_own, "hidden states");
    tc->plan_ff = slm_calloc((size_t)L, sizeof *tc->plan_ff, "plan");
    tc->d_hidden = slm_calloc((size_t)L + 1, sizeof *tc->d_hidden, "hidden-state gradients");
    tc->acts = slm_calloc((size_t)L, sizeof *tc->acts, "block activations");
    tc->attn_out = slm_calloc((size_t)L, sizeof *tc->attn_out, "attention outputs");
    tc->d_attn_out = slm_calloc((size_t)L, sizeof *tc->d_attn_out, "attention-output gradients");
    if (!tc->hidden || !tc->hidden_own || !tc->plan_ff || !tc->d_hidden || !tc->acts || !tc->attn_out || !tc->d_attn_out) {
        slm_train_ctx_free(tc);
        return SLM_ERR_NOMEM;
    }
    carver cv = {0};
    carve_all(&cv, tc);
    if (cv.overflow) {
        slm_train_ctx_free(tc);
        return slm_fail(SLM_ERR_NOMEM, "%s: training buffers for %d x %d tokens overflow", who, p->n_seq, p->n_tok);
    }
    tc->mem = slm_aligned_alloc(cv.used, "training activations");
    if (!tc->mem) {
        slm_train_ctx_free(tc);
        return SLM_ERR_NOMEM;
    }
    cv = (carver){.base = tc->mem};
    carve_all(&cv, tc);
    st = rope_tables(tc);
    if (st) {
        slm_train_ctx_free(tc);
        return st;
    }
    *out = tc;
    return SLM_OK;
}

void slm_train_ctx_free(slm_train_ctx *tc) {
    if (!tc) return;
    if (tc->d_hidden)
        for (int i = 0; i <= tc->m->cfg.n_layers; i++) free(tc->d_hidden[i]);
    for (int k = 0; k < 3; k++) free(tc->d_qkv[k]);
    if (tc->d_attn_out)
        for (int i = 0; i < tc->m->cfg.n_layers; i++) free(tc->d_attn_out[i]);
    free(tc->d_attn_out);
    free(tc->attn_out);
    free(tc->d_hidden);
    free(tc->hidden);
    free(tc->hidden_own);
    free(tc->plan_ff);
    free(tc->acts);
    free(tc->mem);
    free(tc);
}

/* ---- forward --------------------------------------------------------------------------- */

void slm_train_block_forward(slm_train_ctx *tc, int l, const float *x_in, float *x_out, slm_block_acts *a) {
    const slm_config *c = &tc->m->cfg;
    const slm_block *b = &tc->m->blocks[l];
    const int N = tc->N, D = c->d_model, Q = c->n_heads * c->head_dim, KV = c->n_kv_heads * c->head_dim, F = b->d_ff;
    slm_rope_mode mode = c->rope_layout == SLM_ROPE_ADJACENT ? SLM_ROPE_MODE_ADJACENT : SLM_ROPE_MODE_HALVES;

    slm_rmsnorm_fwd_rows(a->xn1, a->rms1, x_in, b->attn_norm, N, D, c->norm_eps);
    slm_linear_forward(&b->lin[SLM_PROJ_Q], N, a->xn1, D, a->q, Q, 0.0f, tc->lin_tmp);
    slm_linear_forward(&b->lin[SLM_PROJ_K], N, a->xn1, D, a->k, KV, 0.0f, tc->lin_tmp);
    slm_linear_forward(&b->lin[SLM_PROJ_V], N, a->xn1, D, a->v, KV, 0.0f, tc->lin_tmp);
    slm_rope_rows(a->q, N, tc->T, c->n_heads, c->head_dim, Q, tc->rope_fwd, mode);
    slm_rope_rows(a->k, N, tc->T, c->n_kv_heads, c->head_dim, KV, tc->rope_fwd, mode);
    slm_attn_shape sh = {tc->B, tc->T, c->n_heads, c->n_kv_heads, c->head_dim, 0};
    slm_attn_fwd(&sh, a->q, a->k, a->v, a->p, a->att);
    float *ao = tc->attn_out[l];
    if (ao) { /* the attention output kept for a loss on it: xmid = x + ao */
        slm_linear_forward(&b->lin[SLM_PROJ_O], N, a->att, Q, ao, D, 0.0f, tc->lin_tmp);
        for (int64_t i = 0; i < (int64_t)N * D; i++) a->xmid[i] = x_in[i] + ao[i];
    } else {
        memcpy(a->xmid, x_in, (size_t)N * D * sizeof(float));
        slm_linear_forward(&b->lin[SLM_PROJ_O], N, a->att, Q, a->xmid, D, 1.0f, tc->lin_tmp);
    }

    slm_rmsnorm_fwd_rows(a->xn2, a->rms2, a->xmid, b->ffn_norm, N, D, c->norm_eps);
    slm_linear_forward(&b->lin[SLM_PROJ_GATE], N, a->xn2, D, a->g, F, 0.0f, tc->lin_tmp);
    slm_linear_forward(&b->lin[SLM_PROJ_UP], N, a->xn2, D, a->u, F, 0.0f, tc->lin_tmp);
    slm_swiglu_fwd_rows(a->h, a->g, a->u, N, F);
    memcpy(x_out, a->xmid, (size_t)N * D * sizeof(float));
    slm_linear_forward(&b->lin[SLM_PROJ_DOWN], N, a->h, F, x_out, D, 1.0f, tc->lin_tmp);
}

slm_status slm_train_forward(slm_train_ctx *tc, const int32_t *tokens) {
    slm_model *m = tc->m;
    const slm_config *c = &m->cfg;
    const char *who = m->path ? m->path : "model";
    const int N = tc->N, D = c->d_model, L = c->n_layers;
    tc->have_forward = false;
    tc->head_done = false;
    slm_status st = tc->tv ? slm_trainable_check(tc->tv) : SLM_OK;
    if (st) return st;
    for (int i = 0; i < L; i++) {
        bool room = tc->acts[i].xn1 != NULL;
        /* an elastic context has room for every block; a plain one is made for one plan */
        if (tc->elastic ? m->blocks[i].kept && !room : m->blocks[i].kept != room)
            return slm_fail(SLM_ERR_STATE, "%s: block %d kept/dropped changed since the training context was made", who,
                            i);
        tc->plan_ff[i] = m->blocks[i].kept ? m->blocks[i].d_ff : 0;
    }
    alias_hidden(tc);
    if (tc->tv) slm_trainable_mark_plan(tc->tv);
    for (int n = 0; n < N; n++) {
        if (tokens[n] < 0 || tokens[n] >= c->n_vocab)
            return slm_fail(SLM_ERR_ARG, "train: token id %d at %d out of range (vocabulary %d)", tokens[n], n,
                            c->n_vocab);
        tc->tokens[n] = tokens[n];
        slm_model_embed_row(m, tokens[n], tc->hidden[0] + (int64_t)n * D);
    }
    for (int l = 0; l < L; l++) {
        if (!m->blocks[l].kept) continue;
        slm_train_block_forward(tc, l, tc->hidden[l], tc->hidden[l + 1], &tc->acts[l]);
        if (tc->recompute || tc->forward_only) tc->shared_layer = l;
        if (!slm_all_finite(tc->hidden[l + 1], (int64_t)N * D))
            return slm_fail(SLM_ERR_NUMERIC, "%s: block %d: NaN or Inf in the activations", who, l);
    }
    slm_rmsnorm_fwd_rows(tc->xn_f, tc->rms_f, tc->hidden[L], m->out_norm, N, D, c->norm_eps);
    int64_t Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim;
    for (int i = 0; i <= L; i++)
        if (tc->d_hidden[i]) memset(tc->d_hidden[i], 0, (size_t)N * D * sizeof(float));
    for (int k = 0; k < 3; k++)
        if (tc->d_qkv[k]) memset(tc->d_qkv[k], 0, (size_t)N * (k ? KV : Q) * sizeof(float));
    for (int i = 0; i < L; i++)
        if (tc->d_attn_out[i]) memset(tc->d_attn_out[i], 0, (size_t)N * D * sizeof(float));
    tc->have_forward = true;
    tc->head_done = false;
    return SLM_OK;
}

/* ---- access to activations ---------------------------------------------------------------- */

const float *slm_train_hidden(const slm_train_ctx *tc, int i) {
    if (i < 0 || i > tc->m->cfg.n_layers) return NULL;
    return tc->hidden[i];
}

slm_status slm_train_last_qkv(const slm_train_ctx *tc, const float **q, const float **k, const float **v,
                              int *layer) {
    int l = tc->last_kept;
    if (!tc->have_forward || l < 0) return slm_fail(SLM_ERR_STATE, "train: no forward ran (or no block is kept)");
    if ((tc->recompute || tc->forward_only) && tc->shared_layer != l)
        return slm_fail(SLM_ERR_STATE, "train: the last block's q, k, v are gone (a backward ran since the forward)");
    *q = tc->acts[l].q;
    *k = tc->acts[l].k;
    *v = tc->acts[l].v;
    if (layer) *layer = l;
    return SLM_OK;
}

float *slm_train_hidden_grad(slm_train_ctx *tc, int i) {
    if (i < 0 || i > tc->m->cfg.n_layers) {
        slm_fail(SLM_ERR_ARG, "train: hidden state %d out of range (0..%d)", i, tc->m->cfg.n_layers);
        return NULL;
    }
    if (!tc->d_hidden[i]) {
        size_t n = (size_t)tc->N * tc->m->cfg.d_model;
        tc->d_hidden[i] = slm_calloc(n, sizeof(float), "hidden-state gradient");
    }
    return tc->d_hidden[i];
}

float *slm_train_qkv_grad(slm_train_ctx *tc, int which) {
    const slm_config *c = &tc->m->cfg;
    if (which < 0 || which > 2) {
        slm_fail(SLM_ERR_ARG, "train: q/k/v index %d (0 q, 1 k, 2 v)", which);
        return NULL;
    }
    if (!tc->d_qkv[which]) {
        size_t cols = (size_t)(which ? c->n_kv_heads : c->n_heads) * c->head_dim;
        tc->d_qkv[which] = slm_calloc((size_t)tc->N * cols, sizeof(float), "q/k/v gradient");
    }
    return tc->d_qkv[which];
}

const float *slm_train_attn_out(const slm_train_ctx *tc, int l) {
    if (l < 0 || l >= tc->m->cfg.n_layers || !tc->have_forward) return NULL;
    return tc->attn_out[l];
}

float *slm_train_attn_out_grad(slm_train_ctx *tc, int l) {
    const slm_config *c = &tc->m->cfg;
    if (l < 0 || l >= c->n_layers || !tc->m->blocks[l].kept) {
        slm_fail(SLM_ERR_ARG, "train: block %d is not a kept block (0..%d)", l, c->n_layers - 1);
        return NULL;
    }
    if (!tc->d_attn_out[l])
        tc->d_attn_out[l] = slm_calloc((size_t)tc->N * c->d_model, sizeof(float), "attention-output gradient");
    return tc->d_attn_out[l];
}
