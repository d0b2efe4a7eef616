/* The cached rom engine: one compressed block in about 0.8 dense forward
 * passes instead of the reference engine's 1.5 (rom_engine.h, docs/rom.md).
 *
 * The sequential rule of rom is that each linear's calibration inputs come
 * from the block with every earlier linear already factored. The reference
 * engine honours it by re-running the block's prefix once per input point.
 * Here every intermediate that is cheaper to keep than to recompute is kept:
 *
 *   1 attn-in   the model's forward (slm_block_forward_rows) up to the
 *               attention input of each sequence: C_X -> factor q, k, v
 *   2 o-in      the forward again up to the attention output, now through
 *               the factored q, k, v; the output is KEPT in the cache
 *               [N][Q]: C_X -> factor o
 *   3           X += cache . Wo'^T: X is the post-attention residual from
 *               here on; the cache is freed
 *   4 mlp-in    rmsnorm(X): C_X -> factor gate, up (at once; X waits on
 *               disk meanwhile when large: factor_point)
 *   5 down      h = silu(gate'(xn)) * up'(xn) in chunks of rows; down's
 *               OUTPUTS Y = h W^T (no bias) go to the cache [N][D] and
 *               C_Y = Y^T Y is gathered directly: D = 4096 wide instead of
 *               F = 11008 (a syrk 7x smaller, no F x F covariance, no
 *               W C_X W^T), and the [N][F] activation (2.9 GB at 7B) is
 *               never stored -> factor down from C_Y
 *   6           X += (Y V_r^T) V_r (+ bias): the factored down's output,
 *               since W1 W2 h = V_r^T V_r W h = V_r^T V_r Y
 * When down is not narrower than its input (never in the LLaMA family), 5
 * gathers C_X of h instead and 6 recomputes h. Rows for statistics and the
 * observe hook are exactly the rows the compressed model feeds each point
 * (tests/unit/test_rom_model.c); steps 3-6 use the model's own linear kinds
 * and row kernels, in chunks of CHUNK_ROWS rows so every GEMM is large.
 */
#include "compress/rom/rom_engine.h"
#include "kernels/cpu/kernels.h"

#include <cblas.h>
#include <stdio.h>
#ifdef SLM_OPENMP
#include <omp.h>
#endif
#include <stdlib.h>
#include <string.h>

/* Rows per GEMM in steps 3-6 (rounded to whole sequences): large enough for
 * OpenBLAS to run at its sgemm rate, small enough that the [rows][F]
 * buffers stay near the L3 size class (1024 x 11008 x 4 B = 45 MB). */
enum { CHUNK_ROWS = 1024 };

int64_t slm_rom_stream_units(const slm_rom_stream *s) { return 6 * (int64_t)s->S; }

/* ---- the attention half: the model's forward with a hook --------------------------------- */

typedef struct attn_hook {
    slm_rom_stream *s;
    int stop_at;     /* the point that ends the block */
    slm_rom_cov *cov; /* gather the rows there, or NULL */
    float *dst;      /* copy them there ([T][n]), or NULL */
    int n;
} attn_hook;

static bool attn_hook_fn(void *user, int layer, slm_fwd_point pt, int T, const float *rows, int64_t ld) {
    attn_hook *h = user;
    if ((int)pt != h->stop_at) return false;
    if (h->cov) slm_rom_cov_add(h->cov, rows, T, ld);
    if (h->dst)
        for (int t = 0; t < T; t++) memcpy(h->dst + (int64_t)t * h->n, rows + t * ld, (size_t)h->n * sizeof(float));
    const slm_rom_params *p = h->s->p;
    if (p->observe) p->observe(p->observe_user, layer, pt, T, rows, ld);
    return true;
}

/* Runs every sequence up to point stop_at (X unchanged). With dst, the
 * rows there are stored at dst [N][n]; with cov they are gathered (as they
 * come, or from dst in slabs once enough sequences are stored). */
static slm_status attn_stage(slm_rom_stream *s, int layer, int stop_at, slm_rom_cov *cov, float *dst, int n,
                             double *flop) {
    slm_context *ctx = s->ctx;
    int64_t D = s->m->cfg.d_model, T = s->T;
    attn_hook h = {.s = s, .stop_at = stop_at, .cov = dst ? NULL : cov, .dst = NULL, .n = n};
    ctx->hook = attn_hook_fn;
    ctx->hook_user = &h;
    slm_status st = SLM_OK;
    int64_t added = 0; /* rows of dst folded into cov so far */
    for (int q = 0; q < s->S && !st; q++) {
        if (dst) h.dst = dst + (int64_t)q * T * n;
        bool stopped = false;
        st = slm_block_forward_rows(ctx, layer, s->X + (int64_t)q * T * D, (int)T, &stopped);
        if (!st && !stopped) st = slm_fail(SLM_ERR_STATE, "block %d: the calibration hook was not reached", layer);
        int64_t have = (int64_t)(q + 1) * T;
        if (!st && dst && cov && (have - added >= SLM_ROM_COV_SLAB || q + 1 == s->S)) {
            slm_rom_cov_add(cov, dst + added * n, have - added, n); /* still warm in cache */
            added = have;
        }
        slm_progress_update(&s->pr, ++s->done);
    }
    ctx->hook = NULL;
    const slm_block *b = &s->m->blocks[layer];
    if (stop_at > SLM_FWD_ATTN_IN)
        *flop += s->S * (slm_rom_attention_flop(&s->m->cfg, T) + slm_rom_linear_flop(&b->lin[SLM_PROJ_Q], T) +
                         slm_rom_linear_flop(&b->lin[SLM_PROJ_K], T) + slm_rom_linear_flop(&b->lin[SLM_PROJ_V], T));
    return st;
}

/* ---- helpers of the row stages ------------------------------------------------------------- */

static void rmsnorm_rows(float *y, const float *x, const float *w, int64_t rows, int D, float eps) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < rows; t++) slm_rmsnorm(y + t * D, x + t * D, w, D, eps);
}

static void swiglu_rows(float *g, const float *u, int64_t rows, int F) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < rows; t++) slm_swiglu(g + t * F, u + t * F, F);
}

static void observe_rows(const slm_rom_stream *s, int layer, slm_fwd_point pt, const float *rows, int64_t n_rows,
                         int64_t ld) {
    const slm_rom_params *p = s->p;
    if (!p->observe) return;
    for (int64_t r0 = 0; r0 < n_rows; r0 += s->T)
        p->observe(p->observe_user, layer, pt, s->T, rows + r0 * ld, ld);
}

static slm_status check_rows(const float *x, int64_t n, int layer) {
    if (!slm_all_finite(x, n)) return slm_fail(SLM_ERR_NUMERIC, "block %d: NaN or Inf in the activations", layer);
    return SLM_OK;
}

/* Scratch floats linear l needs for `rows` rows. */
static int64_t tmp_need(const slm_linear *l, int64_t rows) {
    const slm_linear_ops *ops = slm_linear_ops_get(l->kind);
    return ops ? ops->tmp_floats(l, (int)rows) : 0;
}

/* X to disk while a factoring runs (the spill's time goes to the block
 * report), and back: nothing reads X between a point's covariance and the
 * next data pass. */
static slm_status x_to_disk(slm_rom_stream *s, int layer, slm_rom_spill *sp) {
    const double t = slm_time_now();
    slm_status st = slm_rom_spill_out(sp, s->X, (size_t)s->S * s->T * s->m->cfg.d_model * sizeof(float));
    s->rep->blocks[layer].spill_seconds += slm_time_now() - t;
    return st;
}

static slm_status x_from_disk(slm_rom_stream *s, int layer, slm_rom_spill *sp) {
    const double t = slm_time_now();
    slm_status st = slm_rom_spill_in(sp);
    s->rep->blocks[layer].spill_seconds += slm_time_now() - t;
    return st;
}

/* Whether X is large enough to be worth the spill (p->spill_min_bytes). */
static bool x_spills(const slm_rom_stream *s) {
    const int64_t x_bytes = (int64_t)s->S * s->T * s->m->cfg.d_model * (int64_t)sizeof(float);
    return s->p->spill_min_bytes > 0 && x_bytes >= s->p->spill_min_bytes;
}

#ifdef SLM_OPENMP
/* Linears ks[0] and ks[1] of one input at once, one thread each (BLAS
 * inside a parallel region runs on the calling thread). With spill, X
 * waits on disk meanwhile: nothing reads it until the next data pass, and
 * its room is what the second factoring's fp64 temporaries need. */
static slm_status factor_pair(slm_rom_stream *s, int layer, const int ks[2], const double *cx, bool spill) {
    slm_rom_factor_job job[2];
    slm_status st[2] = {SLM_OK, SLM_OK};
    char err[2][512] = {"", ""};
    for (int i = 0; i < 2; i++)
        if ((st[i] = slm_rom_factor_begin(s, layer, ks[i], slm_rom_stream_rank(s, layer, ks[i]), cx, NULL, &job[i])))
            return st[i];
    slm_rom_spill sp;
    if (spill) {
        slm_status e = x_to_disk(s, layer, &sp);
        if (e) return e;
    }
#pragma omp parallel for num_threads(2) schedule(static, 1)
    for (int i = 0; i < 2; i++) {
        st[i] = slm_rom_factor_run(s, &job[i]);
        if (st[i]) snprintf(err[i], sizeof err[i], "%s", slm_last_error()); /* the message is per thread */
    }
    slm_status back = SLM_OK;
    if (spill) back = x_from_disk(s, layer, &sp); /* even after a failed factoring: the caller's X stays whole */
    for (int i = 0; i < 2; i++)
        if (st[i]) return slm_fail(st[i], "%s", err[i]);
    if (back) return back;
    for (int i = 0; i < 2; i++) slm_rom_factor_end(s, &job[i]);
    return SLM_OK;
}
#endif

/* Factors the linears fed by point pt. The eigensolver's reduction to
 * tridiagonal form is memory-bound and mostly one core, so the first two
 * linears of one input (q/k of the attention input, gate/up of the MLP
 * input) are factored at once (factor_pair), and the rest (v) with every
 * thread. A paired linear's factors are those of the same linear factored
 * alone on one thread; on two they differ by rounding (OpenBLAS's dpotrf
 * and dsymv sum in another order), which a near-degenerate eigenvector's
 * sign can make look large in the factors but not in W1 W2. Two gate/up
 * factorings at once hold both their fp64 temporaries (about 1 GB each at
 * LLaMA-7B shapes, X's size), so X goes to disk meanwhile when it is at
 * least p->spill_min_bytes; so it does while o is factored (below). */
static slm_status factor_point(slm_rom_stream *s, int layer, slm_fwd_point pt, const double *cx) {
    double t0 = slm_time_now();
    int ks[SLM_PROJ_COUNT], n = 0;
    for (int k = 0; k < SLM_PROJ_COUNT; k++)
        if (slm_rom_input_of[k] == pt) ks[n++] = k;
    int first = 0;
    slm_status st = SLM_OK;
#ifdef SLM_OPENMP
    if (n >= 2 && omp_get_max_threads() >= 2 && slm_rom_stream_rank(s, layer, ks[0]) > 0 &&
        slm_rom_stream_rank(s, layer, ks[1]) > 0) {
        st = factor_pair(s, layer, ks, cx, pt == SLM_FWD_MLP_IN && x_spills(s));
        first = 2;
    }
#endif
    /* o alone: the run's memory peak (X and the attention-output cache both
     * live, plus o's fp64 temporaries), and X waits for step 3 anyway */
    const bool spill = !st && pt == SLM_FWD_O_IN && first < n && x_spills(s);
    slm_rom_spill sp;
    if (spill && (st = x_to_disk(s, layer, &sp))) return st;
    for (int i = first; i < n && !st; i++)
        st = slm_rom_stream_factor(s, layer, ks[i], slm_rom_stream_rank(s, layer, ks[i]), cx, NULL);
    if (spill) { /* even after a failed factoring: the caller's X stays whole */
        slm_status back = x_from_disk(s, layer, &sp);
        if (!st) st = back;
    }
    s->rep->blocks[layer].factor_seconds += slm_time_now() - t0;
    return st;
}

static bool point_factored(const slm_rom_stream *s, int layer, slm_fwd_point pt) {
    for (int k = 0; k < SLM_PROJ_COUNT; k++)
        if (slm_rom_input_of[k] == pt && slm_rom_stream_rank(s, layer, k) > 0) return true;
    return false;
}

/* ---- the block ---------------------------------------------------------------------------- */

typedef struct mlp_bufs {
    float *xn;  /* [C][D] */
    float *g;   /* [C][F] gate, then h */
    float *u;   /* [C][F] */
    float *tmp; /* linear-kind scratch */
    float *z;   /* [C][r] projection coefficients (step 6) */
} mlp_bufs;

static void mlp_free(mlp_bufs *b) {
    free(b->xn);
    free(b->g);
    free(b->u);
    free(b->tmp);
    free(b->z);
    memset(b, 0, sizeof *b);
}

/* h [rows][F] for X rows [r0, r0 + rows) through the (factored) gate and up. */
static void mlp_h(slm_rom_stream *s, const slm_block *b, mlp_bufs *mb, int64_t r0, int64_t rows) {
    const slm_config *cfg = &s->m->cfg;
    int D = cfg->d_model, F = b->lin[SLM_PROJ_GATE].n_out;
    rmsnorm_rows(mb->xn, s->X + r0 * D, b->ffn_norm, rows, D, cfg->norm_eps);
    slm_linear_forward(&b->lin[SLM_PROJ_GATE], (int)rows, mb->xn, D, mb->g, F, 0.0f, mb->tmp);
    slm_linear_forward(&b->lin[SLM_PROJ_UP], (int)rows, mb->xn, D, mb->u, F, 0.0f, mb->tmp);
    swiglu_rows(mb->g, mb->u, rows, F);
}

/* Wall and CPU time at the start of a part of the data passes; book()
 * adds the part's time and FLOP to the block's report. */
typedef struct part_clock {
    double wall, cpu;
} part_clock;

static part_clock part_begin(void) { return (part_clock){slm_time_now(), slm_rom_cpu_now()}; }

static void book(slm_rom_block_report *br, slm_rom_part part, part_clock t0, double flop) {
    double dt = slm_time_now() - t0.wall;
    br->part_cpu_seconds[part] += slm_rom_cpu_now() - t0.cpu;
    br->part_seconds[part] += dt;
    br->part_flop[part] += flop;
    br->pass_seconds += dt;
    br->pass_flop += flop;
}

static int64_t mlp_tmp_need(const slm_block *b, int64_t C) {
    int64_t need = tmp_need(&b->lin[SLM_PROJ_GATE], C);
    if (tmp_need(&b->lin[SLM_PROJ_UP], C) > need) need = tmp_need(&b->lin[SLM_PROJ_UP], C);
    if (tmp_need(&b->lin[SLM_PROJ_DOWN], C) > need) need = tmp_need(&b->lin[SLM_PROJ_DOWN], C);
    return need;
}

static slm_status mlp_alloc(mlp_bufs *mb, const slm_block *b, int64_t C, int D, int F) {
    if (!mb->xn) mb->xn = slm_aligned_alloc((size_t)C * D * sizeof(float), "normed rows");
    free(mb->tmp);
    mb->tmp = slm_aligned_alloc((size_t)(mlp_tmp_need(b, C) + 1) * sizeof(float), "linear scratch");
    mb->g = slm_aligned_alloc((size_t)C * F * sizeof(float), "MLP rows");
    mb->u = slm_aligned_alloc((size_t)C * F * sizeof(float), "MLP rows");
    return mb->xn && mb->tmp && mb->g && mb->u ? SLM_OK : SLM_ERR_NOMEM;
}

slm_status slm_rom_stream_block(slm_rom_stream *s, int layer, bool need_output) {
    slm_model *m = s->m;
    const slm_config *cfg = &m->cfg;
    slm_block *b = &m->blocks[layer];
    slm_rom_block_report *br = &s->rep->blocks[layer];
    const int64_t N = (int64_t)s->S * s->T, D = cfg->d_model;
    const int Q = b->lin[SLM_PROJ_O].n_in, F = b->lin[SLM_PROJ_DOWN].n_in;
    int64_t C = (CHUNK_ROWS / s->T > 1 ? CHUNK_ROWS / s->T : 1) * (int64_t)s->T; /* whole sequences */
    if (C > N) C = N;
    slm_rom_cov cov;
    memset(&cov, 0, sizeof cov);
    mlp_bufs mb;
    memset(&mb, 0, sizeof mb);
    float *cache = NULL;
    slm_status st = SLM_OK;
    part_clock t;
    double f;

    /* 1: attn-in -> q, k, v */
    if (point_factored(s, layer, SLM_FWD_ATTN_IN) || s->p->observe) {
        t = part_begin();
        f = 0;
        st = slm_rom_cov_init(&cov, (int)D);
        if (!st) st = attn_stage(s, layer, SLM_FWD_ATTN_IN, &cov, NULL, (int)D, &f);
        slm_rom_cov_finish(&cov);
        book(br, SLM_ROM_PART_ATTN_IN, t, f + cov.flop);
        if (!st) st = factor_point(s, layer, SLM_FWD_ATTN_IN, cov.c);
        slm_rom_cov_free(&cov);
    } else {
        s->done += s->S;
    }

    /* 2: o-in, kept -> o */
    bool fo = point_factored(s, layer, SLM_FWD_O_IN);
    t = part_begin();
    f = 0;
    if (!st) {
        cache = slm_malloc((size_t)N * Q * sizeof(float), "attention output cache");
        if (!cache) st = SLM_ERR_NOMEM;
    }
    if (!st && fo) st = slm_rom_cov_init(&cov, Q);
    if (!st) st = attn_stage(s, layer, SLM_FWD_O_IN, fo ? &cov : NULL, cache, Q, &f);
    if (!st && fo) slm_rom_cov_finish(&cov);
    book(br, SLM_ROM_PART_ATTENTION, t, f + cov.flop);
    if (!st && fo) st = factor_point(s, layer, SLM_FWD_O_IN, cov.c);
    slm_rom_cov_free(&cov);

    /* 3: X += cache . Wo'^T; X is the post-attention residual from here on */
    const slm_linear *lo = &b->lin[SLM_PROJ_O];
    t = part_begin();
    if (!st) {
        mb.tmp = slm_aligned_alloc((size_t)(tmp_need(lo, C) + 1) * sizeof(float), "linear scratch");
        if (!mb.tmp) st = SLM_ERR_NOMEM;
    }
    for (int64_t r0 = 0; r0 < N && !st; r0 += C) {
        int64_t rows = N - r0 < C ? N - r0 : C;
        slm_linear_forward(lo, (int)rows, cache + r0 * Q, Q, s->X + r0 * D, D, 1.0f, mb.tmp);
        st = check_rows(s->X + r0 * D, rows * D, layer);
        s->done += rows / s->T;
        slm_progress_update(&s->pr, s->done);
    }
    free(cache); /* the factoring of gate/up needs the room */
    cache = NULL;
    book(br, SLM_ROM_PART_O, t, st ? 0 : slm_rom_linear_flop(lo, N));

    /* 4: mlp-in -> gate, up */
    if (!st) {
        mb.xn = slm_aligned_alloc((size_t)C * D * sizeof(float), "normed rows");
        if (!mb.xn) st = SLM_ERR_NOMEM;
    }
    if (!st && (point_factored(s, layer, SLM_FWD_MLP_IN) || s->p->observe)) {
        t = part_begin();
        st = slm_rom_cov_init(&cov, (int)D);
        for (int64_t r0 = 0; r0 < N && !st; r0 += C) {
            int64_t rows = N - r0 < C ? N - r0 : C;
            rmsnorm_rows(mb.xn, s->X + r0 * D, b->ffn_norm, rows, (int)D, cfg->norm_eps);
            observe_rows(s, layer, SLM_FWD_MLP_IN, mb.xn, rows, D);
            slm_rom_cov_add(&cov, mb.xn, rows, D);
            s->done += rows / s->T;
            slm_progress_update(&s->pr, s->done);
        }
        if (!st) slm_rom_cov_finish(&cov);
        book(br, SLM_ROM_PART_MLP_IN, t, cov.flop);
        if (!st) st = factor_point(s, layer, SLM_FWD_MLP_IN, cov.c);
        slm_rom_cov_free(&cov);
    } else {
        s->done += s->S;
    }

    /* 5: h through the factored gate/up; down's outputs and C_Y */
    slm_linear *ld = &b->lin[SLM_PROJ_DOWN];
    int rd = slm_rom_stream_rank(s, layer, SLM_PROJ_DOWN);
    bool by_y = rd > 0 && ld->n_out < ld->n_in; /* gather C_Y from the outputs */
    bool by_x = rd > 0 && !by_y;                /* gather C_X of h, recompute h after */
    const slm_linear_ops *down_ops = slm_linear_ops_get(ld->kind);
    t = part_begin();
    if (!st && !down_ops) st = slm_fail(SLM_ERR_UNSUPPORTED, "block %d: down has an unknown kind", layer);
    if (!st) st = mlp_alloc(&mb, b, C, (int)D, F);
    if (!st && by_y) {
        cache = slm_malloc((size_t)N * ld->n_out * sizeof(float), "down output cache");
        if (!cache) st = SLM_ERR_NOMEM;
    }
    if (!st && (by_y || by_x)) st = slm_rom_cov_init(&cov, by_y ? ld->n_out : F);
    f = st ? 0
           : slm_rom_linear_flop(&b->lin[SLM_PROJ_GATE], N) + slm_rom_linear_flop(&b->lin[SLM_PROJ_UP], N) +
                 (by_x ? 0 : slm_rom_linear_flop(ld, N));
    for (int64_t r0 = 0; r0 < N && !st; r0 += C) {
        int64_t rows = N - r0 < C ? N - r0 : C;
        mlp_h(s, b, &mb, r0, rows);
        observe_rows(s, layer, SLM_FWD_DOWN_IN, mb.g, rows, F);
        if (by_y) { /* Y = h W^T without the bias */
            float *y = cache + r0 * ld->n_out;
            down_ops->apply(ld, (int)rows, mb.g, F, y, ld->n_out, 0.0f, mb.tmp);
            slm_rom_cov_add(&cov, y, rows, ld->n_out);
        } else if (by_x) {
            slm_rom_cov_add(&cov, mb.g, rows, F);
        } else {
            slm_linear_forward(ld, (int)rows, mb.g, F, s->X + r0 * D, D, 1.0f, mb.tmp);
            st = check_rows(s->X + r0 * D, rows * D, layer);
        }
        s->done += rows / s->T;
        slm_progress_update(&s->pr, s->done);
    }
    if (!st && (by_y || by_x)) slm_rom_cov_finish(&cov);
    mlp_free(&mb); /* the factoring of down needs the room */
    book(br, SLM_ROM_PART_MLP, t, st ? 0 : f + cov.flop);
    if (!st && (by_y || by_x)) {
        free(cov.tmp);
        free(cov.rows);
        cov.tmp = cov.rows = NULL;
        double t0 = slm_time_now();
        st = slm_rom_stream_factor(s, layer, SLM_PROJ_DOWN, rd, by_y ? NULL : cov.c, by_y ? cov.c : NULL);
        br->factor_seconds += slm_time_now() - t0;
    }
    slm_rom_cov_free(&cov);

    /* 6: X += the factored down's output */
    t = part_begin();
    f = 0;
    if (!st && need_output && by_y) { /* (Y a) a^T (+ bias), a = V_r^T [n_out][r] */
        int no = ld->n_out;
        mb.z = slm_aligned_alloc((size_t)C * rd * sizeof(float), "projection rows");
        if (!mb.z) st = SLM_ERR_NOMEM;
        for (int64_t r0 = 0; r0 < N && !st; r0 += C) {
            int64_t rows = N - r0 < C ? N - r0 : C;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, rd, no, 1.0f, cache + r0 * no, no, ld->a,
                        rd, 0.0f, mb.z, rd);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, no, rd, 1.0f, mb.z, rd, ld->a, rd, 1.0f,
                        s->X + r0 * D, (int)D);
            if (ld->bias)
                for (int64_t r = 0; r < rows; r++)
                    for (int o = 0; o < no; o++) s->X[(r0 + r) * D + o] += ld->bias[o];
            st = check_rows(s->X + r0 * D, rows * D, layer);
        }
        f = 4.0 * (double)N * no * rd;
    } else if (!st && need_output && by_x) { /* recompute h, then the factored down */
        st = mlp_alloc(&mb, b, C, (int)D, F);
        for (int64_t r0 = 0; r0 < N && !st; r0 += C) {
            int64_t rows = N - r0 < C ? N - r0 : C;
            mlp_h(s, b, &mb, r0, rows);
            slm_linear_forward(ld, (int)rows, mb.g, F, s->X + r0 * D, D, 1.0f, mb.tmp);
            st = check_rows(s->X + r0 * D, rows * D, layer);
        }
        f = slm_rom_linear_flop(&b->lin[SLM_PROJ_GATE], N) + slm_rom_linear_flop(&b->lin[SLM_PROJ_UP], N) +
            slm_rom_linear_flop(ld, N);
    }
    book(br, SLM_ROM_PART_DOWN, t, st ? 0 : f);
    s->done = slm_rom_stream_units(s);
    slm_progress_update(&s->pr, s->done);
    free(cache);
    mlp_free(&mb);
    return st;
}
