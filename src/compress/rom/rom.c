/* Drivers of rom / svd-llm / svd (rom.h) and the engines that need no cache.
 *
 * State: X [S][T][D], the residual stream of every calibration sequence at
 * the current block's input (S sequences of T tokens), and the one fp64
 * covariance C_X being gathered (cov.c). Per block:
 *   rom       the cached engine (stream.c) by default; the reference engine
 *             (SLM_ROM_ENGINE_PASSES) runs four gathering passes through the
 *             model's forward (slm_block_forward_rows), each ending the block
 *             at its point: attn-in -> factor q,k,v; o-in (now from the
 *             factored q,k,v) -> factor o; mlp-in -> factor gate, up;
 *             down-in -> factor down; then one full pass moves X through the
 *             factored block, so every later input sees earlier errors.
 *   svd-llm   one full pass of the ORIGINAL block gathers all four C_X and
 *             moves X; then all seven linears are factored.
 *   svd       no data; X (when given) is moved through the factored block.
 * Uncompressed blocks cost one full pass. q/k/v share one C_X, gate/up one.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "compress/rom/rom_engine.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef SLM_OPENMP
#include <omp.h>
#endif

slm_rom_params slm_rom_default_params(void) {
    return (slm_rom_params){.method = SLM_ROM_METHOD_ROM,
                            .engine = SLM_ROM_ENGINE_CACHED,
                            .plan = {.first_block = 0, .module_budget = 0.5, .rank_override = 0},
                            /* SmolLM2's default calibration (512 x 128 x 576 fp32, 151 MB) stays in
                               memory; LLaMA-7B's (1 GiB) would not fit the 4 GB goal otherwise */
                            .spill_min_bytes = (int64_t)256 << 20};
}

void slm_rom_report_free(slm_rom_report *r) {
    for (int i = 0; i < r->n_bufs; i++) free(r->bufs[i]);
    free(r->bufs);
    free(r->blocks);
    memset(r, 0, sizeof *r);
}

double slm_rom_cpu_now(void) {
    struct timespec ts;
    clockid_t clk = CLOCK_PROCESS_CPUTIME_ID;
#ifdef SLM_OPENMP
    /* inside a parallel region (linears factored at once, one per thread,
     * whose BLAS runs on that thread) the process clock would count the
     * other threads' work too */
    if (omp_in_parallel()) clk = CLOCK_THREAD_CPUTIME_ID;
#endif
    if (clock_gettime(clk, &ts) != 0) return 0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *slm_rom_part_name(slm_rom_part p) {
    static const char *const names[SLM_ROM_PART_COUNT] = {"attn-in", "attention", "o", "mlp-in",
                                                          "mlp", "down", "passes"};
    return (unsigned)p < SLM_ROM_PART_COUNT ? names[p] : "?";
}

const slm_fwd_point slm_rom_input_of[SLM_PROJ_COUNT] = {SLM_FWD_ATTN_IN, SLM_FWD_ATTN_IN, SLM_FWD_ATTN_IN,
                                                        SLM_FWD_O_IN,    SLM_FWD_MLP_IN,  SLM_FWD_MLP_IN,
                                                        SLM_FWD_DOWN_IN};

double slm_rom_linear_flop(const slm_linear *l, int64_t T) {
    if (l->kind == SLM_LINEAR_LOWRANK) return 2.0 * (double)T * l->rank * ((double)l->n_out + l->n_in);
    return 2.0 * (double)T * l->n_out * l->n_in;
}

double slm_rom_attention_flop(const slm_config *cfg, int64_t T) {
    /* q.k and p.v over the T(T+1)/2 causal pairs, 2 FLOP per multiply-add */
    return 2.0 * 2.0 * cfg->n_heads * (double)cfg->head_dim * (double)T * (double)(T + 1) / 2.0;
}

/* FLOP of one sequence through block `layer` up to the hook at stop_at
 * (SLM_FWD_POINT_COUNT: the whole block). */
static double block_flop_until(const slm_model *m, int layer, int64_t T, int stop_at) {
    const slm_block *b = &m->blocks[layer];
    double f = 0;
    for (int k = 0; k < SLM_PROJ_COUNT; k++)
        if ((int)slm_rom_input_of[k] < stop_at) f += slm_rom_linear_flop(&b->lin[k], T);
    if (stop_at > SLM_FWD_ATTN_IN) f += slm_rom_attention_flop(&m->cfg, T);
    return f;
}

/* ---- gathering through the forward hook (reference engine, svd-llm) ------------------- */

typedef struct gather {
    slm_rom_cov acc[SLM_FWD_POINT_COUNT]; /* only the wanted ones are allocated */
    unsigned want;                        /* bit per slm_fwd_point gathered in this pass */
    int stop_at;                          /* point that ends the block, -1: run it whole */
    const slm_rom_params *p;
} gather;

static bool gather_hook(void *user, int layer, slm_fwd_point pt, int T, const float *rows, int64_t ld) {
    gather *g = user;
    if (g->want & (1u << pt)) {
        slm_rom_cov_add(&g->acc[pt], rows, T, ld);
        if (g->p->observe) g->p->observe(g->p->observe_user, layer, pt, T, rows, ld);
    }
    return (int)pt == g->stop_at;
}

static void gather_free(gather *g) {
    for (int i = 0; i < SLM_FWD_POINT_COUNT; i++) slm_rom_cov_free(&g->acc[i]);
}

/* Width of the rows at each point of block `layer`. */
static int point_dim(const slm_model *m, int layer, int pt) {
    const slm_block *b = &m->blocks[layer];
    switch (pt) {
    case SLM_FWD_O_IN: return b->lin[SLM_PROJ_O].n_in;
    case SLM_FWD_DOWN_IN: return b->lin[SLM_PROJ_DOWN].n_in;
    default: return m->cfg.d_model;
    }
}

/* One pass of block `layer` over every sequence, gathering the points in
 * `want`. With stop_at >= 0 X is left as it was; else X becomes the
 * block's output. Accumulators of `want` are allocated here and finished. */
static slm_status run_pass(slm_rom_stream *s, int layer, gather *g, unsigned want, int stop_at) {
    slm_context *ctx = s->ctx;
    int64_t D = s->m->cfg.d_model, T = s->T;
    double t0 = slm_time_now();
    slm_status st = SLM_OK;
    double c0 = slm_rom_cpu_now();
    gather_free(g);
    for (int i = 0; i < SLM_FWD_POINT_COUNT && !st; i++)
        if (want & (1u << i)) st = slm_rom_cov_init(&g->acc[i], point_dim(s->m, layer, i));
    g->want = want;
    g->stop_at = stop_at;
    ctx->hook = want || stop_at >= 0 ? gather_hook : NULL;
    ctx->hook_user = g;
    for (int q = 0; q < s->S && !st; q++) {
        st = slm_block_forward_rows(ctx, layer, s->X + (int64_t)q * T * D, (int)T, NULL);
        slm_progress_update(&s->pr, ++s->done);
    }
    ctx->hook = NULL;
    slm_rom_block_report *br = &s->rep->blocks[layer];
    double f = s->S * block_flop_until(s->m, layer, T, stop_at >= 0 ? stop_at : SLM_FWD_POINT_COUNT);
    for (int i = 0; i < SLM_FWD_POINT_COUNT; i++)
        if (want & (1u << i)) {
            slm_rom_cov_finish(&g->acc[i]);
            f += g->acc[i].flop;
        }
    double dt = slm_time_now() - t0;
    br->pass_flop += f;
    br->pass_seconds += dt;
    br->part_flop[SLM_ROM_PART_PASSES] += f;
    br->part_seconds[SLM_ROM_PART_PASSES] += dt;
    br->part_cpu_seconds[SLM_ROM_PART_PASSES] += slm_rom_cpu_now() - c0;
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

static int64_t linear_params(const slm_linear *l) {
    return l->kind == SLM_LINEAR_LOWRANK ? (int64_t)l->rank * (l->n_out + l->n_in) : (int64_t)l->n_out * l->n_in;
}

int slm_rom_stream_rank(const slm_rom_stream *s, int layer, int k) {
    const slm_linear *l = &s->m->blocks[layer].lin[k];
    return l->kind == SLM_LINEAR_LOWRANK ? 0 : slm_rom_plan_rank(&s->p->plan, l->n_out, l->n_in);
}

slm_status slm_rom_factor_begin(slm_rom_stream *s, int layer, int k, int r, const double *cx, double *cy,
                                slm_rom_factor_job *job) {
    slm_model *m = s->m;
    slm_linear *l = &m->blocks[layer].lin[k];
    slm_rom_linear_report *lr = &s->rep->blocks[layer].lin[k];
    *job = (slm_rom_factor_job){.layer = layer, .k = k, .r = r, .cx = cx, .cy = cy};
    lr->params_before = lr->params_after = linear_params(l);
    if (r == 0) return SLM_OK;
    job->fa = factor_alloc(m, s->p, s->rep, (size_t)l->n_out * r);
    job->fb = factor_alloc(m, s->p, s->rep, (size_t)r * l->n_in);
    return job->fa && job->fb ? SLM_OK : SLM_ERR_NOMEM;
}

slm_status slm_rom_factor_run(slm_rom_stream *s, slm_rom_factor_job *job) {
    if (job->r == 0) return SLM_OK;
    const slm_rom_params *p = s->p;
    const slm_linear *l = &s->m->blocks[job->layer].lin[job->k];
    slm_rom_linear_report *lr = &s->rep->blocks[job->layer].lin[job->k];
    slm_status st = job->cy ? slm_rom_factor_linear_cy(l, job->cy, job->r, job->fa, job->fb, lr)
                            : slm_rom_factor_linear(l, p->method, p->method == SLM_ROM_METHOD_SVD ? NULL : job->cx,
                                                    job->r, job->fa, job->fb, lr);
    if (st) {
        char where[64];
        snprintf(where, sizeof where, "block %d %s", job->layer, slm_proj_gguf_name((slm_proj)job->k));
        slm_error_prefix(where);
    }
    return st;
}

void slm_rom_factor_end(slm_rom_stream *s, const slm_rom_factor_job *job) {
    if (job->r == 0) return;
    slm_linear *l = &s->m->blocks[job->layer].lin[job->k];
    slm_linear nl = *l;
    nl.kind = SLM_LINEAR_LOWRANK;
    nl.w = NULL;
    nl.ld_w = 0;
    nl.qw = NULL;
    nl.q_row_bytes = 0;
    nl.rank = job->r;
    nl.a = job->fa;
    nl.b = job->fb;
    nl.ld_b = l->n_in;
    *l = nl; /* the bias (if any) stays: it is added after W1 W2 */
}

slm_status slm_rom_stream_factor(slm_rom_stream *s, int layer, int k, int r, const double *cx, double *cy) {
    slm_rom_factor_job job;
    slm_status st = slm_rom_factor_begin(s, layer, k, r, cx, cy, &job);
    if (!st) st = slm_rom_factor_run(s, &job);
    if (!st) slm_rom_factor_end(s, &job);
    return st;
}

/* Factors the linears of block `layer` fed by point pt (every point when pt < 0). */
static slm_status factor_group(slm_rom_stream *s, int layer, int pt, const gather *g) {
    double t0 = slm_time_now();
    slm_status st = SLM_OK;
    for (int k = 0; k < SLM_PROJ_COUNT && !st; k++) {
        if (pt >= 0 && (int)slm_rom_input_of[k] != pt) continue;
        st = slm_rom_stream_factor(s, layer, k, slm_rom_stream_rank(s, layer, k), g->acc[slm_rom_input_of[k]].c, NULL);
    }
    s->rep->blocks[layer].factor_seconds += slm_time_now() - t0;
    return st;
}

/* ---- the driver ------------------------------------------------------------------------- */

/* One block; need_output false: nothing reads X after it. */
static slm_status compress_block(slm_rom_stream *s, int layer, bool need_output) {
    slm_model *m = s->m;
    const slm_rom_params *p = s->p;
    bool compress = layer >= p->plan.first_block && m->blocks[layer].kept;
    slm_rom_block_report *br = &s->rep->blocks[layer];
    br->layer = layer;
    br->compressed = compress;
    if (!m->blocks[layer].kept) return SLM_OK; /* a dropped block passes the residual through */
    double t0 = slm_time_now(), c0 = slm_rom_cpu_now();
    gather g;
    memset(&g, 0, sizeof g);
    g.p = p;
    bool rom = p->method == SLM_ROM_METHOD_ROM, cached = rom && p->engine == SLM_ROM_ENGINE_CACHED;
    int64_t units = !s->X ? 0
                    : !compress ? s->S * (int64_t)need_output
                    : cached ? slm_rom_stream_units(s)
                    : rom ? (int64_t)s->S * (SLM_FWD_POINT_COUNT + need_output)
                          : s->S * (int64_t)(p->method == SLM_ROM_METHOD_SVD_LLM || need_output);
    char label[48];
    snprintf(label, sizeof label, "%s block %d", slm_rom_method_name(p->method), layer);
    s->pr.quiet = p->quiet || units == 0;
    slm_progress_begin(&s->pr, label, "seq", units);
    s->done = 0;
    slm_status st = SLM_OK;
    if (!compress) {
        if (need_output) st = run_pass(s, layer, &g, 0, -1);
    } else if (cached) {
        st = slm_rom_stream_block(s, layer, need_output);
    } else if (rom) {
        for (int pt = 0; pt < SLM_FWD_POINT_COUNT && !st; pt++) {
            st = run_pass(s, layer, &g, 1u << pt, pt);
            if (!st) st = factor_group(s, layer, pt, &g);
        }
        if (!st && need_output) st = run_pass(s, layer, &g, 0, -1);
    } else if (p->method == SLM_ROM_METHOD_SVD_LLM) { /* the original block's inputs, then factor */
        st = run_pass(s, layer, &g, (1u << SLM_FWD_POINT_COUNT) - 1, -1);
        if (!st) st = factor_group(s, layer, -1, &g);
    } else { /* svd: no data needed; X (if any) moves through the factored block */
        st = factor_group(s, layer, -1, &g);
        if (!st && s->X && need_output) st = run_pass(s, layer, &g, 0, -1);
    }
    gather_free(&g);
    slm_progress_end(&s->pr);
    br->seconds = slm_time_now() - t0;
    br->cpu_seconds = slm_rom_cpu_now() - c0;
    return st;
}

static slm_status compress_rows(slm_model *m, float *X, int n_seqs, int seq_len, const slm_rom_params *p,
                                slm_rom_report *out, bool last_needed) {
    memset(out, 0, sizeof *out);
    const slm_config *cfg = &m->cfg;
    int L = cfg->n_layers;
    if (p->plan.first_block < 0 || p->plan.first_block > L)
        return slm_fail(SLM_ERR_ARG, "plan: first compressed block %d of %d", p->plan.first_block, L);
    if (p->method != SLM_ROM_METHOD_SVD && (!X || n_seqs < 1 || seq_len < 1))
        return slm_fail(SLM_ERR_ARG, "%s needs calibration data", slm_rom_method_name(p->method));
    if (X && (n_seqs < 1 || seq_len < 1))
        return slm_fail(SLM_ERR_ARG, "calibration rows: %d sequences of %d tokens", n_seqs, seq_len);
    out->blocks = slm_calloc((size_t)L, sizeof *out->blocks, "block reports");
    if (!out->blocks) return SLM_ERR_NOMEM;
    out->n_blocks = L;
    out->params_before = slm_model_get_stats(m, 1).n_params;
    double t0 = slm_time_now();
    slm_rom_stream s = {.m = m, .p = p, .rep = out, .X = X, .S = n_seqs, .T = seq_len};
    slm_status st = SLM_OK;
    if (X) {
        slm_context_params cp = {.n_ctx = seq_len, .n_batch = seq_len};
        st = slm_context_new(m, &cp, &s.ctx);
    }
    /* Blocks before the first compressed one only move X; svd without data needs none. */
    for (int l = X ? 0 : p->plan.first_block; l < L && !st; l++)
        st = compress_block(&s, l, X && (l + 1 < L || last_needed));
    free(s.cache);
    slm_context_free(s.ctx);
    out->params_after = slm_model_get_stats(m, 1).n_params;
    out->seconds = slm_time_now() - t0;
    return st;
}

slm_status slm_rom_compress_rows(slm_model *m, float *X, int n_seqs, int seq_len, const slm_rom_params *p,
                                 slm_rom_report *out) {
    return compress_rows(m, X, n_seqs, seq_len, p, out, true);
}

slm_status slm_rom_compress(slm_model *m, const slm_calib *cal, const slm_rom_params *p, slm_rom_report *out) {
    memset(out, 0, sizeof *out);
    const slm_config *cfg = &m->cfg;
    bool data = cal && p->method != SLM_ROM_METHOD_SVD;
    if (p->method != SLM_ROM_METHOD_SVD && (!cal || cal->n_seqs < 1))
        return slm_fail(SLM_ERR_ARG, "%s needs calibration data", slm_rom_method_name(p->method));
    if (!data) return compress_rows(m, NULL, 0, 0, p, out, false);
    int64_t D = cfg->d_model, n_tok = (int64_t)cal->n_seqs * cal->seq_len;
    float *X = slm_malloc((size_t)(n_tok * D) * sizeof(float), "calibration activations");
    if (!X) return SLM_ERR_NOMEM;
    slm_status st = SLM_OK;
    for (int64_t t = 0; !st && t < n_tok; t++) {
        int32_t id = cal->tokens[t];
        if (id < 0 || id >= cfg->n_vocab) st = slm_fail(SLM_ERR_ARG, "calibration token %d out of range", id);
        else slm_model_embed_row(m, id, X + t * D);
    }
    if (!st) st = compress_rows(m, X, cal->n_seqs, cal->seq_len, p, out, false);
    free(X);
    return st;
}
