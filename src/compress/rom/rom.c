/* The streaming engine of rom / svd-llm / svd (rom.h).
 *
 * State: X [S][T][D], the residual stream of every calibration sequence at
 * the current block's input (S sequences of T tokens), and per input point
 * of the block one fp64 covariance C_X. Per block, through the forward pass
 * (slm_block_forward_rows) with a hook that gathers C_X:
 *   rom       four gathering passes, each ending the block at its point:
 *             attn-in -> factor q,k,v; o-in (now from the factored q,k,v)
 *             -> factor o; mlp-in -> factor gate, up; down-in -> factor
 *             down; then one full pass moves X to the next block through
 *             the factored block, so every later input sees earlier errors.
 *   svd-llm   one full pass of the ORIGINAL block gathers all four C_X and
 *             moves X; then all seven linears are factored.
 *   svd       no data.
 * Uncompressed blocks cost one full pass. q/k/v share one C_X, gate/up one.
 *
 * C_X accumulation: input rows are buffered (up to ROWS_PER_FLUSH) and
 * folded in with ssyrk, then added to the fp64 sum, so the sum over all
 * tokens is fp64 and the BLAS call is large enough to run at speed.
 */
#include "compress/rom/rom.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#define ROWS_PER_FLUSH 512

slm_rom_params slm_rom_default_params(void) {
    return (slm_rom_params){.method = SLM_ROM_METHOD_ROM,
                            .plan = {.first_block = 0, .module_budget = 0.5, .rank_override = 0}};
}

void slm_rom_report_free(slm_rom_report *r) {
    for (int i = 0; i < r->n_bufs; i++) free(r->bufs[i]);
    free(r->bufs);
    free(r->blocks);
    memset(r, 0, sizeof *r);
}

/* ---- covariance gathering ------------------------------------------------------------- */

typedef struct cov_acc {
    int n;       /* input dim at this point */
    double *c;   /* [n][n] sum of x x^T (upper, filled to full by cov_finish) */
    float *rows; /* [ROWS_PER_FLUSH][n] pending input rows */
    float *tmp;  /* [n][n] ssyrk of the pending rows */
    int pending;
} cov_acc;

typedef struct gather {
    cov_acc acc[SLM_FWD_POINT_COUNT];
    unsigned want; /* bit per slm_fwd_point gathered in this pass */
    int stop_at;   /* point that ends the block, -1: run it whole */
    const slm_rom_params *p;
} gather;

static void cov_flush(cov_acc *a) {
    if (!a->pending) return;
    int n = a->n;
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, a->pending, 1.0f, a->rows, n, 0.0f, a->tmp, n);
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++) a->c[(size_t)i * n + j] += a->tmp[(size_t)i * n + j];
    a->pending = 0;
}

static void cov_finish(cov_acc *a) {
    cov_flush(a);
    for (int i = 0; i < a->n; i++)
        for (int j = 0; j < i; j++) a->c[(size_t)i * a->n + j] = a->c[(size_t)j * a->n + i];
}

static bool gather_hook(void *user, int layer, slm_fwd_point pt, int T, const float *rows, int64_t ld) {
    gather *g = user;
    if (g->want & (1u << pt)) {
        cov_acc *a = &g->acc[pt];
        for (int t = 0; t < T; t++) {
            memcpy(a->rows + (size_t)a->pending * a->n, rows + t * ld, (size_t)a->n * sizeof(float));
            if (++a->pending == ROWS_PER_FLUSH) cov_flush(a);
        }
        if (g->p->observe) g->p->observe(g->p->observe_user, layer, pt, T, rows, ld);
    }
    return (int)pt == g->stop_at;
}

static void gather_free(gather *g) {
    for (int i = 0; i < SLM_FWD_POINT_COUNT; i++) {
        free(g->acc[i].c);
        free(g->acc[i].rows);
        free(g->acc[i].tmp);
        g->acc[i].c = NULL;
        g->acc[i].rows = g->acc[i].tmp = NULL;
    }
}

/* Sizes the accumulators for a block (dims differ when d_ff does). */
static slm_status gather_setup(gather *g, const slm_model *m, int layer) {
    gather_free(g);
    const slm_block *b = &m->blocks[layer];
    int dims[SLM_FWD_POINT_COUNT] = {m->cfg.d_model, b->lin[SLM_PROJ_O].n_in, m->cfg.d_model,
                                     b->lin[SLM_PROJ_DOWN].n_in};
    for (int i = 0; i < SLM_FWD_POINT_COUNT; i++) {
        size_t n = (size_t)dims[i];
        g->acc[i].n = dims[i];
        g->acc[i].pending = 0;
        g->acc[i].c = slm_calloc(n * n, sizeof(double), "C_X");
        g->acc[i].rows = slm_malloc(n * ROWS_PER_FLUSH * sizeof(float), "C_X rows");
        g->acc[i].tmp = slm_malloc(n * n * sizeof(float), "C_X chunk");
        if (!g->acc[i].c || !g->acc[i].rows || !g->acc[i].tmp) return SLM_ERR_NOMEM;
    }
    return SLM_OK;
}

/* One pass of block `layer` over every calibration sequence. With stop_at
 * >= 0 X is left as it was; else X becomes the block's output. */
static slm_status run_pass(slm_context *ctx, int layer, float *X, const slm_calib *cal, gather *g, unsigned want,
                           int stop_at, slm_progress *pr, int64_t *done) {
    int64_t D = ctx->m->cfg.d_model, T = cal->seq_len;
    g->want = want;
    g->stop_at = stop_at;
    ctx->hook = want || stop_at >= 0 ? gather_hook : NULL;
    ctx->hook_user = g;
    slm_status st = SLM_OK;
    for (int s = 0; s < cal->n_seqs && !st; s++) {
        st = slm_block_forward_rows(ctx, layer, X + (int64_t)s * T * D, (int)T, NULL);
        slm_progress_update(pr, ++*done);
    }
    ctx->hook = NULL;
    for (int i = 0; i < SLM_FWD_POINT_COUNT; i++)
        if (want & (1u << i)) cov_finish(&g->acc[i]);
    return st;
}

/* ---- factoring a block's linears ------------------------------------------------------ */

static float *factor_alloc(slm_model *m, const slm_rom_params *p, slm_rom_report *rep, size_t n) {
    if (!p->detached) return slm_model_alloc_f32(m, n, "low-rank factor");
    void **nb = realloc(rep->bufs, (size_t)(rep->n_bufs + 1) * sizeof *nb);
    if (!nb) return NULL;
    rep->bufs = nb;
    float *f = slm_aligned_alloc(n * sizeof(float), "low-rank factor");
    if (f) rep->bufs[rep->n_bufs++] = f;
    return f;
}

/* Which point feeds each projection. */
static const slm_fwd_point k_input_of[SLM_PROJ_COUNT] = {SLM_FWD_ATTN_IN, SLM_FWD_ATTN_IN, SLM_FWD_ATTN_IN,
                                                         SLM_FWD_O_IN,    SLM_FWD_MLP_IN,  SLM_FWD_MLP_IN,
                                                         SLM_FWD_DOWN_IN};

/* Factors the linears of block `layer` fed by point pt (every point when pt < 0). */
static slm_status factor_group(slm_model *m, int layer, int pt, const gather *g, const slm_rom_params *p,
                               slm_rom_report *rep) {
    slm_block *b = &m->blocks[layer];
    slm_rom_block_report *br = &rep->blocks[layer];
    for (int k = 0; k < SLM_PROJ_COUNT; k++) {
        if (pt >= 0 && (int)k_input_of[k] != pt) continue;
        slm_linear *l = &b->lin[k];
        slm_rom_linear_report *lr = &br->lin[k];
        lr->params_before = lr->params_after =
            l->kind == SLM_LINEAR_LOWRANK ? (int64_t)l->rank * (l->n_out + l->n_in) : (int64_t)l->n_out * l->n_in;
        int r = l->kind == SLM_LINEAR_LOWRANK ? 0 : slm_rom_plan_rank(&p->plan, l->n_out, l->n_in);
        if (r == 0) continue;
        float *fa = factor_alloc(m, p, rep, (size_t)l->n_out * r);
        float *fb = factor_alloc(m, p, rep, (size_t)r * l->n_in);
        if (!fa || !fb) return SLM_ERR_NOMEM;
        const double *cx = p->method == SLM_ROM_METHOD_SVD ? NULL : g->acc[k_input_of[k]].c;
        slm_status st = slm_rom_factor_linear(l, p->method, cx, r, fa, fb, lr);
        if (st) {
            char where[64];
            snprintf(where, sizeof where, "block %d %s", layer, slm_proj_gguf_name((slm_proj)k));
            slm_error_prefix(where);
            return st;
        }
        slm_linear nl = *l;
        nl.kind = SLM_LINEAR_LOWRANK;
        nl.w = NULL;
        nl.ld_w = 0;
        nl.qw = NULL;
        nl.q_row_bytes = 0;
        nl.rank = r;
        nl.a = fa;
        nl.b = fb;
        nl.ld_b = l->n_in;
        *l = nl; /* the bias (if any) stays: it is added after W1 W2 */
    }
    return SLM_OK;
}

/* ---- the driver ------------------------------------------------------------------------- */

static slm_status compress_block(slm_model *m, slm_context *ctx, int layer, float *X, const slm_calib *cal,
                                 gather *g, const slm_rom_params *p, slm_rom_report *rep) {
    bool compress = layer >= p->plan.first_block && m->blocks[layer].kept;
    bool data = cal && p->method != SLM_ROM_METHOD_SVD;
    slm_rom_block_report *br = &rep->blocks[layer];
    br->layer = layer;
    br->compressed = compress;
    double t0 = slm_time_now();
    if (!data) {
        br->seconds = 0;
        slm_status st = compress ? factor_group(m, layer, -1, g, p, rep) : SLM_OK;
        br->seconds = slm_time_now() - t0;
        return st;
    }
    if (!m->blocks[layer].kept) return SLM_OK; /* a dropped block passes the residual through */
    slm_status st = compress ? gather_setup(g, m, layer) : SLM_OK;
    if (st) return st;
    int passes = compress && p->method == SLM_ROM_METHOD_ROM ? SLM_FWD_POINT_COUNT + (layer + 1 < m->cfg.n_layers) : 1;
    char label[48];
    snprintf(label, sizeof label, "%s block %d", slm_rom_method_name(p->method), layer);
    slm_progress pr;
    pr.quiet = p->quiet;
    slm_progress_begin(&pr, label, "seq", (int64_t)cal->n_seqs * passes);
    int64_t done = 0;
    if (compress && p->method == SLM_ROM_METHOD_ROM) {
        for (int pt = 0; pt < SLM_FWD_POINT_COUNT && !st; pt++) {
            st = run_pass(ctx, layer, X, cal, g, 1u << pt, pt, &pr, &done);
            if (!st) st = factor_group(m, layer, pt, g, p, rep);
        }
        /* after the last block nothing reads X */
        if (!st && layer + 1 < m->cfg.n_layers) st = run_pass(ctx, layer, X, cal, g, 0, -1, &pr, &done);
    } else if (compress) { /* svd-llm: the original block's inputs, then factor */
        st = run_pass(ctx, layer, X, cal, g, (1u << SLM_FWD_POINT_COUNT) - 1, -1, &pr, &done);
        if (!st) st = factor_group(m, layer, -1, g, p, rep);
    } else {
        st = run_pass(ctx, layer, X, cal, g, 0, -1, &pr, &done);
    }
    slm_progress_end(&pr);
    br->seconds = slm_time_now() - t0;
    return st;
}

slm_status slm_rom_compress(slm_model *m, const slm_calib *cal, const slm_rom_params *p, slm_rom_report *out) {
    memset(out, 0, sizeof *out);
    const slm_config *cfg = &m->cfg;
    int L = cfg->n_layers;
    if (p->plan.first_block < 0 || p->plan.first_block > L)
        return slm_fail(SLM_ERR_ARG, "plan: first compressed block %d of %d", p->plan.first_block, L);
    if (p->method != SLM_ROM_METHOD_SVD && (!cal || cal->n_seqs < 1))
        return slm_fail(SLM_ERR_ARG, "%s needs calibration data", slm_rom_method_name(p->method));
    out->blocks = slm_calloc((size_t)L, sizeof *out->blocks, "block reports");
    if (!out->blocks) return SLM_ERR_NOMEM;
    out->n_blocks = L;
    out->params_before = slm_model_get_stats(m, 1).n_params;
    double t0 = slm_time_now();

    bool data = cal && p->method != SLM_ROM_METHOD_SVD;
    slm_context *ctx = NULL;
    float *X = NULL;
    gather g;
    memset(&g, 0, sizeof g);
    g.p = p;
    slm_status st = SLM_OK;
    if (data) {
        slm_context_params cp = {.n_ctx = cal->seq_len, .n_batch = cal->seq_len};
        st = slm_context_new(m, &cp, &ctx);
        int64_t D = cfg->d_model, n_tok = (int64_t)cal->n_seqs * cal->seq_len;
        if (!st) {
            X = slm_malloc((size_t)(n_tok * D) * sizeof(float), "calibration activations");
            if (!X) st = SLM_ERR_NOMEM;
        }
        for (int64_t t = 0; !st && t < n_tok; t++) {
            int32_t id = cal->tokens[t];
            if (id < 0 || id >= cfg->n_vocab) st = slm_fail(SLM_ERR_ARG, "calibration token %d out of range", id);
            else memcpy(X + t * D, m->tok_embd + (int64_t)id * D, (size_t)D * sizeof(float));
        }
    }
    /* Blocks before the first compressed one only move X; svd needs none. */
    for (int l = data ? 0 : p->plan.first_block; l < L && !st; l++) st = compress_block(m, ctx, l, X, cal, &g, p, out);
    gather_free(&g);
    free(X);
    slm_context_free(ctx);
    out->params_after = slm_model_get_stats(m, 1).n_params;
    out->seconds = slm_time_now() - t0;
    return st;
}
