/* The backward pass: the lm head and losses (loss.c), the final norm, then
 * every kept block from the last to the first, then the embedding rows.
 *
 * The residual gradient dx [N][D] flows down the stream; at each block
 *   dh = dx Wdown^T-backward;  dg, du = swiglu'(dh);  dxn2 = gate/up backward
 *   dx += rmsnorm'(dxn2)                       (now the gradient at xmid)
 *   datt = dx Wo-backward;  dq, dk, dv = attention'(datt)
 *   dq, dk rotated back (RoPE^T);  dxn1 = q/k/v backward
 *   dx += rmsnorm'(dxn1)                       (now the gradient at the block input)
 * Every parameter gradient is added into the view's buffers (beta = 1), so
 * calls between two zero_grads sum, which is gradient accumulation.
 * Frozen tensors get no weight-gradient GEMM, and blocks below the lowest
 * one with a trainable tensor are not visited at all (unless the embedding
 * trains). Gradients injected by losses on hidden states (d_hidden), on
 * attention outputs (d_attn_out: they reach the o projection, not the
 * residual path around it) and on the last block's q, k, v are added where
 * those activations were made.
 *
 * Two halves (slm_train_backward_head, slm_train_backward_blocks) so a
 * caller can inject gradients scaled by the cross-entropy the head just
 * measured (the distillation normalisation, kd.c).
 */
#include "train/ops.h"
#include "train/train_ctx.h"

#include <string.h>

static float *grad_of(const slm_trainable *tv, int ix) {
    return ix >= 0 && !tv->t[ix].frozen ? tv->t[ix].g : NULL;
}

/* Row strides are the tensors' own widths: an elastic view's down
 * projection may use fewer columns than it has. */
static slm_linear_grads linear_grads(const slm_trainable *tv, const slm_train_linear_ix *ix) {
    return (slm_linear_grads){grad_of(tv, ix->w), grad_of(tv, ix->a), grad_of(tv, ix->b), grad_of(tv, ix->bias),
                              ix->w >= 0 ? tv->t[ix->w].cols : 0, ix->b >= 0 ? tv->t[ix->b].cols : 0};
}

/* The activations were made for the plan of the last forward. */
static slm_status same_plan(const slm_train_ctx *tc, const char *who) {
    for (int i = 0; i < tc->m->cfg.n_layers; i++) {
        const slm_block *b = &tc->m->blocks[i];
        if (tc->plan_ff[i] != (b->kept ? b->d_ff : 0))
            return slm_fail(SLM_ERR_STATE, "%s: block %d: the plan changed between the forward and the backward", who,
                            i);
    }
    return SLM_OK;
}

static bool block_trains(const slm_trainable *tv, int l) {
    const slm_train_block_ix *bx = &tv->blk[l];
    if (grad_of(tv, bx->attn_norm) || grad_of(tv, bx->ffn_norm)) return true;
    for (int p = 0; p < SLM_PROJ_COUNT; p++) {
        slm_linear_grads g = linear_grads(tv, &bx->lin[p]);
        if (g.w || g.a || g.b || g.bias) return true;
    }
    return false;
}

static void add_rows(float *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

/* dx: in, the gradient at the block's output; out, at its input. */
static void block_backward(slm_train_ctx *tc, int l, const float *x_in, const slm_block_acts *a) {
    const slm_config *c = &tc->m->cfg;
    const slm_block *b = &tc->m->blocks[l];
    const slm_trainable *tv = tc->tv;
    const slm_train_block_ix *bx = &tv->blk[l];
    const int N = tc->N, D = c->d_model, Q = c->n_heads * c->head_dim, KV = c->n_kv_heads * c->head_dim, F = b->d_ff;
    slm_rope_mode mode = c->rope_layout == SLM_ROPE_ADJACENT ? SLM_ROPE_MODE_ADJACENT : SLM_ROPE_MODE_HALVES;
    slm_linear_grads g;

    /* MLP */
    g = linear_grads(tv, &bx->lin[SLM_PROJ_DOWN]);
    slm_linear_backward(&b->lin[SLM_PROJ_DOWN], &g, N, a->h, F, tc->dx, D, tc->dh, F, 0.0f, tc->lin_tmp, tc->lin_dtmp);
    slm_swiglu_bwd_rows(tc->dg, tc->du, tc->dh, a->g, a->u, N, F);
    g = linear_grads(tv, &bx->lin[SLM_PROJ_GATE]);
    slm_linear_backward(&b->lin[SLM_PROJ_GATE], &g, N, a->xn2, D, tc->dg, F, tc->dxn, D, 0.0f, tc->lin_tmp,
                        tc->lin_dtmp);
    g = linear_grads(tv, &bx->lin[SLM_PROJ_UP]);
    slm_linear_backward(&b->lin[SLM_PROJ_UP], &g, N, a->xn2, D, tc->du, F, tc->dxn, D, 1.0f, tc->lin_tmp, tc->lin_dtmp);
    slm_rmsnorm_bwd_rows(tc->dx, grad_of(tv, bx->ffn_norm), tc->dxn, a->xmid, a->rms2, b->ffn_norm, N, D, true);

    /* attention; a gradient injected at the attention output joins the
     * residual's only on the o projection's side (dxn is free until q's backward) */
    const float *dy_o = tc->dx;
    if (tc->d_attn_out[l]) {
        for (int64_t i = 0; i < (int64_t)N * D; i++) tc->dxn[i] = tc->dx[i] + tc->d_attn_out[l][i];
        dy_o = tc->dxn;
    }
    g = linear_grads(tv, &bx->lin[SLM_PROJ_O]);
    slm_linear_backward(&b->lin[SLM_PROJ_O], &g, N, a->att, Q, dy_o, D, tc->datt, Q, 0.0f, tc->lin_tmp, tc->lin_dtmp);
    slm_attn_shape sh = {tc->B, tc->T, c->n_heads, c->n_kv_heads, c->head_dim, 0};
    slm_attn_bwd(&sh, a->q, a->k, a->v, a->p, tc->datt, tc->dq, tc->dk, tc->dv, tc->attn_scratch, tc->n_threads);
    if (l == tc->last_kept) {
        if (tc->d_qkv[0]) add_rows(tc->dq, tc->d_qkv[0], (int64_t)N * Q);
        if (tc->d_qkv[1]) add_rows(tc->dk, tc->d_qkv[1], (int64_t)N * KV);
        if (tc->d_qkv[2]) add_rows(tc->dv, tc->d_qkv[2], (int64_t)N * KV);
    }
    slm_rope_rows(tc->dq, N, tc->T, c->n_heads, c->head_dim, Q, tc->rope_bwd, mode);
    slm_rope_rows(tc->dk, N, tc->T, c->n_kv_heads, c->head_dim, KV, tc->rope_bwd, mode);
    g = linear_grads(tv, &bx->lin[SLM_PROJ_Q]);
    slm_linear_backward(&b->lin[SLM_PROJ_Q], &g, N, a->xn1, D, tc->dq, Q, tc->dxn, D, 0.0f, tc->lin_tmp, tc->lin_dtmp);
    g = linear_grads(tv, &bx->lin[SLM_PROJ_K]);
    slm_linear_backward(&b->lin[SLM_PROJ_K], &g, N, a->xn1, D, tc->dk, KV, tc->dxn, D, 1.0f, tc->lin_tmp, tc->lin_dtmp);
    g = linear_grads(tv, &bx->lin[SLM_PROJ_V]);
    slm_linear_backward(&b->lin[SLM_PROJ_V], &g, N, a->xn1, D, tc->dv, KV, tc->dxn, D, 1.0f, tc->lin_tmp, tc->lin_dtmp);
    slm_rmsnorm_bwd_rows(tc->dx, grad_of(tv, bx->attn_norm), tc->dxn, x_in, a->rms1, b->attn_norm, N, D, true);
}

slm_status slm_train_backward_head(slm_train_ctx *tc, const int32_t *targets, slm_train_ctx *teacher,
                                   const slm_loss_params *lp, slm_loss_result *res) {
    slm_model *m = tc->m;
    const char *who = m->path ? m->path : "model";
    if (tc->forward_only) return slm_fail(SLM_ERR_STATE, "%s: backward on a forward-only training context", who);
    if (!tc->have_forward || tc->head_done) return slm_fail(SLM_ERR_STATE, "%s: backward before a forward", who);
    slm_status st = slm_trainable_check(tc->tv);
    if (!st) st = same_plan(tc, who);
    if (st) return st;
    st = slm_train_head_loss(tc, targets, teacher, lp, true, res);
    if (st) return st;
    tc->head_done = true;
    return SLM_OK;
}

slm_status slm_train_backward_blocks(slm_train_ctx *tc) {
    slm_model *m = tc->m;
    const slm_config *c = &m->cfg;
    const char *who = m->path ? m->path : "model";
    if (!tc->head_done) return slm_fail(SLM_ERR_STATE, "%s: the blocks' backward needs the head's first", who);
    slm_status st = slm_trainable_check(tc->tv);
    if (!st) st = same_plan(tc, who);
    if (st) return st;
    const slm_trainable *tv = tc->tv;
    const int N = tc->N, D = c->d_model, L = c->n_layers;
    tc->head_done = false;
    tc->have_forward = false; /* the recompute below overwrites shared activations */

    /* Lowest block the pass must reach: below it nothing trains. */
    int stop = L;
    bool embd_trains = grad_of(tv, tv->tok_embd) != NULL;
    for (int l = 0; l < L && stop == L; l++)
        if (m->blocks[l].kept && block_trains(tv, l)) stop = l;
    if (embd_trains) stop = 0;

    slm_rmsnorm_bwd_rows(tc->dx, grad_of(tv, tv->out_norm), tc->dxn, tc->hidden[L], tc->rms_f, m->out_norm, N, D,
                         false);
    if (tc->d_hidden[L]) add_rows(tc->dx, tc->d_hidden[L], (int64_t)N * D);
    for (int l = L - 1; l >= stop; l--) {
        if (m->blocks[l].kept) {
            slm_block_acts *a = &tc->acts[l];
            if ((tc->recompute) && tc->shared_layer != l) {
                /* The block's output goes to dxn, free until the block's backward needs it. */
                slm_train_block_forward(tc, l, tc->hidden[l], tc->dxn, a);
                tc->shared_layer = l;
            }
            block_backward(tc, l, tc->hidden[l], a);
            if (!slm_all_finite(tc->dx, (int64_t)N * D))
                return slm_fail(SLM_ERR_NUMERIC, "%s: block %d: NaN or Inf in the gradient", who, l);
        }
        if (tc->d_hidden[l]) add_rows(tc->dx, tc->d_hidden[l], (int64_t)N * D);
    }
    if (embd_trains) {
        /* Serial: several rows may add into the same token's embedding. */
        float *ge = tv->t[tv->tok_embd].g;
        for (int n = 0; n < N; n++) add_rows(ge + (int64_t)tc->tokens[n] * D, tc->dx + (int64_t)n * D, D);
    }
    return SLM_OK;
}

slm_status slm_train_backward(slm_train_ctx *tc, const int32_t *targets, slm_train_ctx *teacher,
                              const slm_loss_params *lp, slm_loss_result *res) {
    slm_status st = slm_train_backward_head(tc, targets, teacher, lp, res);
    return st ? st : slm_train_backward_blocks(tc);
}
