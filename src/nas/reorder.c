/* MLP channel importance on calibration data and the permutation of gate/up
 * rows and down columns that puts important channels first (space.h). */
#include "model/forward.h"
#include "nas/space.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct acc {
    double *sum_abs; /* [L][F] sum over tokens of |h_j| */
    int64_t *tokens; /* [L] */
    int F;
} acc;

/* Forward hook: h = silu(gate) * up rows [T][F_b] before the down projection. */
static bool hook(void *user, int layer, slm_fwd_point pt, int T, const float *rows, int64_t ld) {
    (void)ld;
    if (pt != SLM_FWD_DOWN_IN) return false;
    acc *a = user;
    double *s = a->sum_abs + (size_t)layer * a->F;
    for (int t = 0; t < T; t++) {
        const float *r = rows + (size_t)t * ld;
        for (int j = 0; j < a->F; j++) s[j] += fabs((double)r[j]);
    }
    a->tokens[layer] += T;
    return false;
}

slm_status slm_nas_channel_importance(slm_model *m, const slm_calib *cal, bool quiet, double *score) {
    const slm_config *c = &m->cfg;
    int L = c->n_layers, F = c->d_ff, D = c->d_model;
    int *full = slm_malloc((size_t)L * sizeof *full, "widths");
    acc a = {slm_calloc((size_t)L * (size_t)F, sizeof(double), "channel importance"),
             slm_calloc((size_t)L, sizeof(int64_t), "channel importance"), F};
    slm_status st = full && a.sum_abs && a.tokens ? SLM_OK : SLM_ERR_NOMEM;
    if (!st) {
        slm_nas_full_widths(m, full);
        st = slm_nas_apply(m, full);
    }
    slm_context *ctx = NULL;
    if (!st) {
        slm_context_params cp = {.n_ctx = cal->seq_len, .n_batch = cal->seq_len};
        st = slm_context_new(m, &cp, &ctx);
    }
    slm_progress pg;
    if (!st) {
        ctx->hook = hook;
        ctx->hook_user = &a;
        pg.quiet = quiet;
        slm_progress_begin(&pg, "channel importance", "seq", cal->n_seqs);
    }
    for (int s = 0; !st && s < cal->n_seqs; s++) {
        slm_context_truncate(ctx, 0);
        st = slm_decode(ctx, cal->tokens + (size_t)s * cal->seq_len, cal->seq_len, false, NULL);
        slm_progress_update(&pg, s + 1);
    }
    if (ctx) {
        slm_progress_end(&pg);
        slm_context_free(ctx);
    }
    /* score = mean |h_j| * ||W_down[:, j]|| */
    for (int b = 0; !st && b < L; b++) {
        slm_linear dn;
        float *buf = NULL;
        st = slm_linear_dequantized(&m->blocks[b].lin[SLM_PROJ_DOWN], &dn, &buf);
        if (!st && dn.kind != SLM_LINEAR_DENSE)
            st = slm_fail(SLM_ERR_UNSUPPORTED, "channel importance: block %d down projection is not dense", b);
        for (int j = 0; !st && j < F; j++) {
            double n2 = 0;
            for (int r = 0; r < D; r++) {
                double w = dn.w[(size_t)r * dn.ld_w + j];
                n2 += w * w;
            }
            double mean = a.tokens[b] ? a.sum_abs[(size_t)b * F + j] / (double)a.tokens[b] : 0;
            score[(size_t)b * F + j] = mean * sqrt(n2);
            if (!isfinite(score[(size_t)b * F + j]))
                st = slm_fail(SLM_ERR_NUMERIC, "channel importance: block %d channel %d is not finite", b, j);
        }
        free(buf);
    }
    free(full);
    free(a.sum_abs);
    free(a.tokens);
    return st;
}

typedef struct ranked {
    double s;
    int j;
} ranked;

static int cmp_desc(const void *x, const void *y) {
    const ranked *a = x, *b = y;
    if (a->s != b->s) return a->s > b->s ? -1 : 1;
    return a->j - b->j;
}

void slm_nas_importance_order(const double *score, int L, int F, int32_t *perm) {
    ranked *r = malloc((size_t)F * sizeof *r);
    for (int b = 0; b < L; b++) {
        int32_t *p = perm + (size_t)b * F;
        if (!r) { /* identity when out of memory: the order is an optimisation only */
            for (int j = 0; j < F; j++) p[j] = j;
            continue;
        }
        for (int j = 0; j < F; j++) r[j] = (ranked){score[(size_t)b * F + j], j};
        qsort(r, (size_t)F, sizeof *r, cmp_desc);
        for (int j = 0; j < F; j++) p[j] = r[j].j;
    }
    free(r);
}

/* gate/up: rows p[k] -> row k. */
static slm_status permute_rows(slm_model *m, slm_linear *l, const int32_t *p, int F, const char *name) {
    if (l->kind == SLM_LINEAR_DENSE) {
        float *w = slm_model_alloc_f32(m, (size_t)F * (size_t)l->n_in, name);
        if (!w) return SLM_ERR_NOMEM;
        for (int k = 0; k < F; k++) memcpy(w + (size_t)k * l->n_in, l->w + (size_t)p[k] * l->ld_w, (size_t)l->n_in * sizeof *w);
        l->w = w;
        l->ld_w = l->n_in;
        return SLM_OK;
    }
    if (l->kind == SLM_LINEAR_QBLOCK) {
        size_t rb = l->q_row_bytes, bytes;
        if (!slm_mul_ok(rb, (size_t)F, &bytes)) return slm_fail(SLM_ERR_NOMEM, "%s: size overflow", name);
        unsigned char *q = slm_model_own(m, slm_aligned_alloc(bytes, name));
        if (!q) return SLM_ERR_NOMEM;
        for (int k = 0; k < F; k++) memcpy(q + (size_t)k * rb, (const unsigned char *)l->qw + (size_t)p[k] * rb, rb);
        l->qw = q;
        return SLM_OK;
    }
    return slm_fail(SLM_ERR_UNSUPPORTED, "%s: only dense or quantised MLP linears can be reordered", name);
}

/* down: column p[k] -> column k (a QBLOCK down becomes dense). */
static slm_status permute_cols(slm_model *m, slm_linear *l, const int32_t *p, int F, const char *name) {
    if (l->kind != SLM_LINEAR_DENSE && l->kind != SLM_LINEAR_QBLOCK)
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: only dense or quantised MLP linears can be reordered", name);
    slm_linear dn;
    float *buf = NULL;
    slm_status st = slm_linear_dequantized(l, &dn, &buf);
    if (st) return st;
    float *w = slm_model_alloc_f32(m, (size_t)dn.n_out * (size_t)F, name);
    if (!w) {
        free(buf);
        return SLM_ERR_NOMEM;
    }
    for (int r = 0; r < dn.n_out; r++)
        for (int k = 0; k < F; k++) w[(size_t)r * F + k] = dn.w[(size_t)r * dn.ld_w + p[k]];
    free(buf);
    l->kind = SLM_LINEAR_DENSE;
    l->w = w;
    l->ld_w = F;
    l->qw = NULL;
    l->q_row_bytes = 0;
    return SLM_OK;
}

slm_status slm_nas_reorder_channels(slm_model *m, const int32_t *perm) {
    int L = m->cfg.n_layers, F = m->cfg.d_ff;
    for (int b = 0; b < L; b++) {
        slm_block *blk = &m->blocks[b];
        if (!blk->kept) continue;
        if (blk->d_ff != F)
            return slm_fail(SLM_ERR_STATE, "reorder: block %d has MLP width %d, not the full %d", b, blk->d_ff, F);
        /* a permutation: every channel exactly once */
        const int32_t *p = perm + (size_t)b * F;
        unsigned char *seen = slm_calloc((size_t)F, 1, "permutation check");
        if (!seen) return SLM_ERR_NOMEM;
        bool ok = true;
        for (int k = 0; k < F && ok; k++) {
            ok = p[k] >= 0 && p[k] < F && !seen[p[k]];
            if (ok) seen[p[k]] = 1;
        }
        free(seen);
        if (!ok) return slm_fail(SLM_ERR_ARG, "reorder: block %d: channel order is not a permutation of 0..%d", b, F - 1);
        char name[64];
        snprintf(name, sizeof name, "blk.%d.ffn_gate (reordered)", b);
        slm_status st = permute_rows(m, &blk->lin[SLM_PROJ_GATE], p, F, name);
        snprintf(name, sizeof name, "blk.%d.ffn_up (reordered)", b);
        if (!st) st = permute_rows(m, &blk->lin[SLM_PROJ_UP], p, F, name);
        snprintf(name, sizeof name, "blk.%d.ffn_down (reordered)", b);
        if (!st) st = permute_cols(m, &blk->lin[SLM_PROJ_DOWN], p, F, name);
        if (st) return st;
    }
    return SLM_OK;
}
