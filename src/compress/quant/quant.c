/* INT8 quantisation of a model (quant.h).
 *
 * Calibration (only with an outlier threshold): the calibration sequences
 * are streamed block by block through the fp32 model, as rom.c does
 * (slm_block_forward_rows with the forward hook), and the hook keeps the
 * per-column max |x| at each block input point; for low-rank linears it
 * also forms the intermediate z = x B^T and keeps its per-column max. After
 * the last block, the final RMSNorm gives the lm head's input. Memory: the
 * residual stream of the calibration set [S][T][D] fp32 plus the column
 * maxima. Then every linear is quantised with its input's columns above
 * the threshold kept in fp32.
 */
#include "compress/quant/quant.h"
#include "kernels/cpu/int8.h"
#include "kernels/cpu/kernels.h"
#include "model/linear_int8.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

slm_quant_params slm_quant_default_params(void) {
    return (slm_quant_params){
        .outlier_threshold = 6.0f, .max_outlier_frac = 0.02f, .lm_head = true, .embd = SLM_QUANT_EMBD_F16,
        .quiet = false};
}

const char *slm_quant_embd_name(slm_quant_embd e) {
    static const char *const names[SLM_QUANT_EMBD_COUNT] = {"f16", "f32", "int8"};
    return (unsigned)e < SLM_QUANT_EMBD_COUNT ? names[e] : NULL;
}

void slm_quant_report_free(slm_quant_report *r) {
    free(r->outliers);
    free(r->above);
    memset(r, 0, sizeof *r);
}

/* The block input point each projection reads. */
static const slm_fwd_point k_point_of[SLM_PROJ_COUNT] = {SLM_FWD_ATTN_IN, SLM_FWD_ATTN_IN, SLM_FWD_ATTN_IN,
                                                         SLM_FWD_O_IN,    SLM_FWD_MLP_IN,  SLM_FWD_MLP_IN,
                                                         SLM_FWD_DOWN_IN};

/* ---- calibration: per-column max |x| at every input ----------------------------------- */

typedef struct absmax_stats {
    const slm_model *m;
    float *pt[SLM_FWD_POINT_COUNT]; /* per layer: [L] arrays, see at() */
    int width[SLM_FWD_POINT_COUNT]; /* widest block's width of each point */
    float *z;                       /* [L][P][max_rank] low-rank intermediates */
    int max_rank;
    float *zrows; /* [T][max_rank] scratch */
    float *lm;    /* [D] final norm output */
} absmax_stats;

static float *at(const absmax_stats *s, int layer, slm_fwd_point pt) {
    return s->pt[pt] + (int64_t)layer * s->width[pt];
}
static float *z_at(const absmax_stats *s, int layer, int p) {
    return s->z + ((int64_t)layer * SLM_PROJ_COUNT + p) * s->max_rank;
}

static void update_max(float *mx, const float *rows, int T, int n, int64_t ld) {
    for (int t = 0; t < T; t++)
        for (int k = 0; k < n; k++) {
            float v = fabsf(rows[(int64_t)t * ld + k]);
            if (v > mx[k]) mx[k] = v;
        }
}

static bool absmax_hook(void *user, int layer, slm_fwd_point pt, int T, const float *rows, int64_t ld) {
    absmax_stats *s = user;
    const slm_block *b = &s->m->blocks[layer];
    int n = pt == SLM_FWD_O_IN ? b->lin[SLM_PROJ_O].n_in : pt == SLM_FWD_DOWN_IN ? b->lin[SLM_PROJ_DOWN].n_in
                                                                                 : s->m->cfg.d_model;
    update_max(at(s, layer, pt), rows, T, n, ld);
    for (int p = 0; p < SLM_PROJ_COUNT; p++) {
        const slm_linear *l = &b->lin[p];
        if (k_point_of[p] != pt || l->kind != SLM_LINEAR_LOWRANK) continue;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, l->rank, l->n_in, 1.0f, rows, (int)ld, l->b,
                    (int)l->ld_b, 0.0f, s->zrows, l->rank);
        update_max(z_at(s, layer, p), s->zrows, T, l->rank, l->rank);
    }
    return false;
}

static void stats_free(absmax_stats *s) {
    for (int i = 0; i < SLM_FWD_POINT_COUNT; i++) free(s->pt[i]);
    free(s->z), free(s->zrows), free(s->lm);
}

static slm_status stats_alloc(absmax_stats *s, const slm_model *m, int T) {
    const slm_config *c = &m->cfg;
    memset(s, 0, sizeof *s);
    s->m = m;
    int L = c->n_layers;
    s->width[SLM_FWD_ATTN_IN] = s->width[SLM_FWD_MLP_IN] = c->d_model;
    for (int l = 0; l < L; l++) {
        const slm_block *b = &m->blocks[l];
        if (b->lin[SLM_PROJ_O].n_in > s->width[SLM_FWD_O_IN]) s->width[SLM_FWD_O_IN] = b->lin[SLM_PROJ_O].n_in;
        if (b->lin[SLM_PROJ_DOWN].n_in > s->width[SLM_FWD_DOWN_IN]) s->width[SLM_FWD_DOWN_IN] = b->lin[SLM_PROJ_DOWN].n_in;
        for (int p = 0; p < SLM_PROJ_COUNT; p++)
            if (b->lin[p].kind == SLM_LINEAR_LOWRANK && b->lin[p].rank > s->max_rank) s->max_rank = b->lin[p].rank;
    }
    for (int i = 0; i < SLM_FWD_POINT_COUNT; i++)
        if (!(s->pt[i] = slm_calloc((size_t)L * s->width[i], sizeof(float), "calibration column maxima")))
            return SLM_ERR_NOMEM;
    s->lm = slm_calloc((size_t)c->d_model, sizeof(float), "calibration column maxima");
    if (!s->lm) return SLM_ERR_NOMEM;
    if (s->max_rank > 0) {
        s->z = slm_calloc((size_t)L * SLM_PROJ_COUNT * s->max_rank, sizeof(float), "calibration column maxima");
        s->zrows = slm_malloc((size_t)T * s->max_rank * sizeof(float), "low-rank intermediate");
        if (!s->z || !s->zrows) return SLM_ERR_NOMEM;
    }
    return SLM_OK;
}

/* Streams the calibration set through m, filling s. */
static slm_status collect(const slm_model *m, const slm_calib *cal, bool quiet, absmax_stats *s) {
    const slm_config *c = &m->cfg;
    const int64_t D = c->d_model, T = cal->seq_len, n_tok = (int64_t)cal->n_seqs * T;
    slm_context *ctx = NULL;
    slm_context_params cp = {.n_ctx = (int)T, .n_batch = (int)T};
    slm_status st = slm_context_new(m, &cp, &ctx);
    float *X = st ? NULL : slm_malloc((size_t)(n_tok * D) * sizeof(float), "calibration activations");
    if (!st && !X) st = SLM_ERR_NOMEM;
    for (int64_t t = 0; !st && t < n_tok; t++) {
        int32_t id = cal->tokens[t];
        if (id < 0 || id >= c->n_vocab) st = slm_fail(SLM_ERR_ARG, "calibration token %d out of range", id);
        else slm_model_embed_row(m, id, X + t * D);
    }
    slm_progress pr = {.quiet = quiet};
    slm_progress_begin(&pr, "calibration", "seq", (int64_t)c->n_layers * cal->n_seqs);
    int64_t done = 0;
    if (!st) {
        ctx->hook = absmax_hook;
        ctx->hook_user = s;
    }
    for (int l = 0; l < c->n_layers && !st; l++) {
        for (int q = 0; q < cal->n_seqs && !st; q++) {
            if (m->blocks[l].kept) st = slm_block_forward_rows(ctx, l, X + (int64_t)q * T * D, (int)T, NULL);
            slm_progress_update(&pr, ++done);
        }
    }
    slm_progress_end(&pr);
    if (!st) { /* the lm head reads the final norm's output */
        float *row = slm_malloc((size_t)D * sizeof(float), "normed row");
        if (!row) st = SLM_ERR_NOMEM;
        for (int64_t t = 0; !st && t < n_tok; t++) {
            slm_rmsnorm(row, X + t * D, m->out_norm, (int)D, c->norm_eps);
            update_max(s->lm, row, 1, (int)D, D);
        }
        free(row);
    }
    free(X);
    slm_context_free(ctx);
    return st;
}

/* ---- quantising the linears ------------------------------------------------------------ */

/* Columns of mx [n] above thr into idx (ascending), the largest cap of
 * them when there are more; returns the count kept, *above (may be NULL)
 * the count over thr. */
static int pick(const float *mx, int n, float thr, float frac, int32_t *idx, int *above) {
    int k = 0;
    for (int j = 0; mx && thr > 0.0f && j < n; j++)
        if (mx[j] > thr) idx[k++] = j;
    if (above) *above = k;
    const int cap = (int)(frac * (float)n);
    if (k <= cap) return k;
    /* the cap largest to the front (selection: cap is small), then ascending */
    for (int i = 0; i < cap; i++) {
        int best = i;
        for (int j = i + 1; j < k; j++)
            if (mx[idx[j]] > mx[idx[best]]) best = j;
        int32_t t = idx[i];
        idx[i] = idx[best], idx[best] = t;
    }
    for (int i = 1; i < cap; i++)
        for (int j = i; j > 0 && idx[j - 1] > idx[j]; j--) {
            int32_t t = idx[j];
            idx[j] = idx[j - 1], idx[j - 1] = t;
        }
    return cap;
}

/* Makes l INT8: in_max [n_in] the input's column maxima (NULL: none),
 * z_max [rank] those of a low-rank intermediate. */
static slm_status quantize_linear(slm_model *m, slm_linear *l, const char *name, const float *in_max,
                                  const float *z_max, float thr, float frac, int32_t *idx, int *n_outl) {
    slm_status st;
    const slm_i8_matrix *w = NULL, *a = NULL;
    char nm[160];
    int n_in_outl = pick(in_max, l->n_in, thr, frac, idx, NULL);
    *n_outl = n_in_outl;
    if (l->kind == SLM_LINEAR_LOWRANK) {
        snprintf(nm, sizeof nm, "%s.lr_b", name);
        if ((st = slm_i8_matrix_quantize(m, l->b, l->rank, l->n_in, l->ld_b, idx, n_in_outl, nm, &w))) return st;
        int nz = pick(z_max, l->rank, thr, frac, idx, NULL);
        *n_outl += nz;
        snprintf(nm, sizeof nm, "%s.lr_a", name);
        if ((st = slm_i8_matrix_quantize(m, l->a, l->n_out, l->rank, l->rank, idx, nz, nm, &a))) return st;
        return slm_linear_set_int8(l, w, a, l->n_out, l->n_in);
    }
    slm_linear d;
    float *buf = NULL;
    if ((st = slm_linear_dequantized(l, &d, &buf))) return st; /* QBLOCK: fp32 copy; dense: itself */
    if (d.kind != SLM_LINEAR_DENSE) {
        free(buf);
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: linear kind %d cannot be quantised to int8", name, (int)l->kind);
    }
    st = slm_i8_matrix_quantize(m, d.w, l->n_out, l->n_in, d.ld_w, idx, n_in_outl, name, &w);
    free(buf);
    return st ? st : slm_linear_set_int8(l, w, NULL, l->n_out, l->n_in);
}

/* An owned copy of x [n] with every value rounded to fp16. */
static const float *f16_copy(slm_model *m, const float *x, int64_t n) {
    float *y = slm_model_alloc_f32(m, (size_t)n, "fp16-rounded embedding");
    if (y)
        for (int64_t i = 0; i < n; i++) y[i] = slm_fp16_to_fp32(slm_fp32_to_fp16(x[i]));
    return y;
}

/* The token embedding as p->embd asks, after calibration (which ran on the
 * original values) and after the int8 lm head was made. int8: tied, the
 * lookup reads the head's rows (one matrix); untied, the embedding gets its
 * own per-row int8 matrix (no outlier columns: a lookup has no input); the
 * float embedding and head are dropped either way (lm_head_q is the head). */
static slm_status convert_embedding(slm_model *m, slm_quant_embd embd) {
    const slm_config *c = &m->cfg;
    const int64_t n = (int64_t)c->n_vocab * c->d_model;
    const bool tied = m->lm_head == m->tok_embd;
    if (embd == SLM_QUANT_EMBD_F16) {
        const float *e = f16_copy(m, m->tok_embd, n), *h = tied ? e : f16_copy(m, m->lm_head, n);
        if (!e || !h) return SLM_ERR_NOMEM;
        m->tok_embd = e, m->lm_head = h;
    } else if (embd == SLM_QUANT_EMBD_INT8) {
        const slm_i8_matrix *e = m->lm_head_q.i8[0];
        slm_status st = tied ? SLM_OK
                             : slm_i8_matrix_quantize(m, m->tok_embd, c->n_vocab, c->d_model, c->d_model, NULL, 0,
                                                      "token_embd", &e);
        if (st) return st;
        m->tok_embd_i8 = e;
        m->tok_embd = m->lm_head = NULL;
    }
    return SLM_OK;
}

slm_status slm_quant_int8(slm_model *m, const slm_quant_params *p, const slm_calib *cal, slm_quant_report *rep) {
    slm_quant_params def = slm_quant_default_params();
    if (!p) p = &def;
    memset(rep, 0, sizeof *rep);
    const slm_config *c = &m->cfg;
    const int L = c->n_layers;
    if (!(p->outlier_threshold >= 0.0f) || !isfinite(p->outlier_threshold))
        return slm_fail(SLM_ERR_ARG, "quantize: outlier threshold %g out of range (>= 0)", (double)p->outlier_threshold);
    for (int l = 0; l < L; l++)
        for (int q = 0; q < SLM_PROJ_COUNT; q++)
            if (m->blocks[l].kept && m->blocks[l].lin[q].kind == SLM_LINEAR_INT8)
                return slm_fail(SLM_ERR_ARG, "quantize: block %d: %s is already int8", l, slm_proj_gguf_name((slm_proj)q));
    if (m->tok_embd_i8) return slm_fail(SLM_ERR_ARG, "quantize: the token embedding is already int8");
    const bool outl = p->outlier_threshold > 0.0f;
    if (outl && (!cal || cal->n_seqs < 1))
        return slm_fail(SLM_ERR_ARG, "quantize: outlier columns need calibration data (or threshold 0)");
    double t0 = slm_time_now();
    rep->n_layers = L;
    rep->outliers = slm_calloc((size_t)L, sizeof *rep->outliers, "quantize report");
    rep->above = slm_calloc((size_t)L, sizeof *rep->above, "quantize report");
    if (!rep->outliers || !rep->above) return SLM_ERR_NOMEM;
    if (!(p->max_outlier_frac >= 0.0f && p->max_outlier_frac <= 1.0f))
        return slm_fail(SLM_ERR_ARG, "quantize: outlier fraction %g out of range [0, 1]", (double)p->max_outlier_frac);
    if (!slm_quant_embd_name(p->embd))
        return slm_fail(SLM_ERR_ARG, "quantize: embedding kind %d unknown", (int)p->embd);
    if (p->embd == SLM_QUANT_EMBD_INT8 && !p->lm_head)
        return slm_fail(SLM_ERR_ARG, "quantize: an int8 embedding is the int8 lm head's rows: it needs the lm head "
                        "quantised too");
    if (p->act_group != 0 && !slm_i8_group_ok(p->act_group))
        return slm_fail(SLM_ERR_ARG, "quantize: activation group %d: 0 or a multiple of 32 in [32, 1024] expected",
                        p->act_group);
    rep->bytes_before = slm_model_get_stats(m, 1).weight_bytes;

    absmax_stats s;
    slm_status st = stats_alloc(&s, m, outl ? cal->seq_len : 1);
    if (!st && outl) st = collect(m, cal, p->quiet, &s);
    int max_n = c->d_model;
    for (int l = 0; l < L; l++)
        for (int q = 0; q < SLM_PROJ_COUNT; q++) max_n = m->blocks[l].lin[q].n_in > max_n ? m->blocks[l].lin[q].n_in : max_n;
    int32_t *idx = st ? NULL : slm_malloc((size_t)max_n * sizeof *idx, "outlier columns");
    if (!st && !idx) st = SLM_ERR_NOMEM;
    for (int l = 0; l < L && !st; l++) {
        slm_block *b = &m->blocks[l];
        if (!b->kept) continue;
        for (int q = 0; q < SLM_PROJ_COUNT && !st; q++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s", l, slm_proj_gguf_name((slm_proj)q));
            const slm_fwd_point pt = k_point_of[q];
            int n_outl = 0, above = 0;
            int n_in_outl =
                outl ? pick(at(&s, l, pt), b->lin[q].n_in, p->outlier_threshold, p->max_outlier_frac, idx, &above) : 0;
            bool lowrank = b->lin[q].kind == SLM_LINEAR_LOWRANK;
            st = quantize_linear(m, &b->lin[q], name, outl ? at(&s, l, pt) : NULL, outl && lowrank ? z_at(&s, l, q) : NULL,
                                 p->outlier_threshold, p->max_outlier_frac, idx, &n_outl);
            rep->above[l][pt] = above;
            rep->outliers[l][pt] = n_in_outl;
            rep->lowrank_outliers += n_outl - n_in_outl;
            rep->n_linears++;
        }
    }
    if (!st && p->lm_head) {
        const slm_i8_matrix *w = NULL;
        int n = outl ? pick(s.lm, c->d_model, p->outlier_threshold, p->max_outlier_frac, idx, &rep->lm_head_above) : 0;
        st = slm_i8_matrix_quantize(m, m->lm_head, c->n_vocab, c->d_model, c->d_model, idx, n, "output", &w);
        if (!st) {
            memset(&m->lm_head_q, 0, sizeof m->lm_head_q);
            st = slm_linear_set_int8(&m->lm_head_q, w, NULL, c->n_vocab, c->d_model);
        }
        rep->lm_head_outliers = n;
        rep->n_linears++;
    }
    free(idx);
    stats_free(&s);
    if (!st) st = convert_embedding(m, p->embd);
    if (!st) st = slm_model_set_int8_act_group(m, p->act_group);
    if (!st) st = slm_model_validate(m);
    rep->bytes_after = slm_model_get_stats(m, 1).weight_bytes;
    rep->seconds = slm_time_now() - t0;
    return st;
}

/* ---- back to fp32 ------------------------------------------------------------------------ */

slm_status slm_quant_dequantize(slm_model *m) {
    const slm_config *c = &m->cfg;
    if (m->tok_embd_i8) {
        /* tied: the dequantised rows are the head too, so the model stays tied */
        float *e = slm_model_alloc_f32(m, (size_t)c->n_vocab * c->d_model, "dequantised token embedding");
        if (!e) return SLM_ERR_NOMEM;
        slm_i8_matrix_dequantize(m->tok_embd_i8, e, c->d_model);
        if (c->tied_embeddings) {
            m->lm_head = e;
            memset(&m->lm_head_q, 0, sizeof m->lm_head_q);
        }
        m->tok_embd = e;
        m->tok_embd_i8 = NULL;
    }
    for (int l = 0; l < c->n_layers; l++)
        for (int q = 0; q < SLM_PROJ_COUNT; q++) {
            slm_linear *lin = &m->blocks[l].lin[q], out;
            if (lin->kind != SLM_LINEAR_INT8) continue;
            float *b0, *b1;
            slm_status st = slm_linear_int8_dequantized(lin, &out, &b0, &b1);
            if (st) return st;
            if (!slm_model_own(m, b0) || (b1 && !slm_model_own(m, b1))) return SLM_ERR_NOMEM;
            *lin = out;
        }
    if (m->lm_head_q.kind == SLM_LINEAR_INT8 && m->lm_head_q.qw) {
        /* the dequantised head differs from the embedding: the model is untied now */
        float *w = slm_model_alloc_f32(m, (size_t)c->n_vocab * c->d_model, "dequantised lm head");
        if (!w) return SLM_ERR_NOMEM;
        slm_i8_matrix_dequantize(m->lm_head_q.i8[0], w, c->d_model);
        m->lm_head = w;
        m->cfg.tied_embeddings = false;
        memset(&m->lm_head_q, 0, sizeof m->lm_head_q);
    }
    return slm_model_validate(m);
}
