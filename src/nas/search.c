/* The LINAS-style search loop and its results (search.h). */
#include "nas/search.h"
#include "core/core.h"
#include "nas/nsga2.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *slm_nas_objective_name(slm_nas_objective o) {
    return o == SLM_NAS_OBJ_THROUGHPUT ? "throughput,accuracy" : "params,accuracy";
}

slm_status slm_nas_objective_parse(const char *s, slm_nas_objective *out) {
    if (s && (!strcmp(s, "params,accuracy") || !strcmp(s, "accuracy,params") || !strcmp(s, "size,accuracy"))) {
        *out = SLM_NAS_OBJ_PARAMS;
        return SLM_OK;
    }
    if (s && (!strcmp(s, "throughput,accuracy") || !strcmp(s, "accuracy,throughput"))) {
        *out = SLM_NAS_OBJ_THROUGHPUT;
        return SLM_OK;
    }
    return slm_fail(SLM_ERR_ARG, "unknown objectives '%s'; known: params,accuracy and throughput,accuracy", s ? s : "");
}

slm_nas_params slm_nas_default_params(void) {
    return (slm_nas_params){.objective = SLM_NAS_OBJ_PARAMS,
                            .evals = 250,
                            .population = 50,
                            .generations = 100,
                            .folds = 5,
                            .seed = 1,
                            .tput_tokens = 128,
                            .tput_reps = 3};
}

/* ---- state ---------------------------------------------------------------------------- */

static void eval_free(slm_nas_eval *e) {
    free(e->genes);
    free(e->widths);
    e->genes = NULL;
    e->widths = NULL;
}

slm_status slm_nas_state_init(slm_nas_state *s, slm_nas_space *space, const slm_nas_params *p) {
    memset(s, 0, sizeof *s);
    s->space = *space;
    memset(space, 0, sizeof *space);
    s->params = *p;
    if (s->params.n_init <= 0) s->params.n_init = p->evals / 5;
    if (s->params.n_init < 3) s->params.n_init = 3; /* the predictors' cross-validation needs 3 points */
    if (s->params.per_round <= 0) s->params.per_round = p->evals / 10 > 1 ? p->evals / 10 : 1;
    if (p->evals < 1) return slm_fail(SLM_ERR_ARG, "search: --evals %d must be positive", p->evals);
    if (p->population < 4 || p->population % 2)
        return slm_fail(SLM_ERR_ARG, "search: --population %d must be even and at least 4", p->population);
    if (p->generations < 1) return slm_fail(SLM_ERR_ARG, "search: --generations %d must be positive", p->generations);
    if (p->objective == SLM_NAS_OBJ_THROUGHPUT && p->tput_tokens < 1)
        return slm_fail(SLM_ERR_ARG, "search: the throughput objective needs throughput measurements");
    s->rng = p->seed;
    return SLM_OK;
}

void slm_nas_state_free(slm_nas_state *s) {
    slm_nas_space_free(&s->space);
    eval_free(&s->ref);
    for (int i = 0; i < s->n_ev; i++) eval_free(&s->ev[i]);
    free(s->ev);
    for (int i = 0; i < s->n_pend; i++) free(s->pend[i].genes);
    free(s->pend);
    free(s->fits);
    memset(s, 0, sizeof *s);
}

slm_status slm_nas_grow(void **v, int *cap, int need, size_t elem) {
    if (need <= *cap) return SLM_OK;
    int c = *cap ? *cap * 2 : 16;
    while (c < need) c *= 2;
    void *n = realloc(*v, (size_t)c * elem);
    if (!n) return slm_fail(SLM_ERR_NOMEM, "search state: out of memory");
    *v = n;
    *cap = c;
    return SLM_OK;
}

/* ---- one real evaluation -------------------------------------------------------------- */

slm_status slm_nas_throughput(const slm_model *m, int n, int reps, double *tps) {
    slm_context_params cp = {.n_ctx = n, .n_batch = n};
    slm_context *c = NULL;
    int32_t *tok = slm_malloc((size_t)n * sizeof *tok, "throughput tokens");
    slm_status st = tok ? slm_context_new(m, &cp, &c) : SLM_ERR_NOMEM;
    double best = INFINITY;
    for (int i = 0; tok && i < n; i++) tok[i] = (int32_t)(((int64_t)i * 7919 + 1) % m->cfg.n_vocab);
    for (int r = 0; !st && r < (reps > 0 ? reps : 1); r++) {
        slm_context_truncate(c, 0);
        double t0 = slm_time_now();
        st = slm_decode(c, tok, n, false, NULL);
        double dt = slm_time_now() - t0;
        best = dt < best ? dt : best;
    }
    slm_context_free(c);
    free(tok);
    *tps = st ? NAN : n / best;
    return st;
}

slm_status slm_nas_evaluate(slm_model *m, const int *widths, const slm_nas_params *p, slm_nas_accuracy_fn acc,
                            void *acc_user, slm_nas_eval *out) {
    int L = m->cfg.n_layers;
    double t0 = slm_time_now();
    out->widths = slm_malloc((size_t)L * sizeof *out->widths, "sub-network");
    if (!out->widths) return SLM_ERR_NOMEM;
    memcpy(out->widths, widths, (size_t)L * sizeof *widths);
    slm_status st = slm_nas_apply(m, widths);
    if (!st) {
        slm_model_stats ms = slm_model_get_stats(m, 1);
        out->params = ms.n_params;
        out->bytes = ms.weight_bytes;
        out->macs = ms.macs_per_token;
        out->n_blocks = ms.n_layers_kept;
        out->tokens_per_s = NAN;
        if (p->tput_tokens > 0) st = slm_nas_throughput(m, p->tput_tokens, p->tput_reps, &out->tokens_per_s);
    }
    out->loss = NAN;
    if (!st) st = acc(acc_user, m, &out->accuracy, &out->loss);
    if (!st && !isfinite(out->accuracy)) st = slm_fail(SLM_ERR_NUMERIC, "search: accuracy is not finite");
    int *full = slm_malloc((size_t)L * sizeof *full, "widths");
    if (full) {
        slm_nas_full_widths(m, full);
        slm_status st2 = slm_nas_apply(m, full);
        if (!st) st = st2;
        free(full);
    } else if (!st) {
        st = SLM_ERR_NOMEM;
    }
    out->seconds = slm_time_now() - t0;
    return st;
}

/* ---- helpers over the evaluated set ------------------------------------------------------ */

static bool genes_equal(const slm_nas_space *sp, const int *a, const int *b) {
    return memcmp(a, b, (size_t)slm_nas_n_genes(sp) * sizeof *a) == 0;
}

/* genes (canonical) already evaluated or pending */
static bool known(const slm_nas_state *s, const int *canon) {
    for (int i = 0; i < s->n_ev; i++)
        if (genes_equal(&s->space, s->ev[i].genes, canon)) return true;
    for (int i = 0; i < s->n_pend; i++)
        if (genes_equal(&s->space, s->pend[i].genes, canon)) return true;
    return false;
}

void slm_nas_objectives(const slm_nas_state *s, const slm_nas_eval *e, double f[2]) {
    if (s->params.objective == SLM_NAS_OBJ_THROUGHPUT)
        f[0] = e->tokens_per_s > 0 ? s->ref.tokens_per_s / e->tokens_per_s : INFINITY;
    else
        f[0] = (double)e->params / (double)s->ref.params;
    f[1] = 1.0 - e->accuracy;
}

int slm_nas_front(const slm_nas_state *s, int *idx) {
    if (!s->n_ev) return 0;
    double *f = malloc((size_t)s->n_ev * 2 * sizeof *f);
    if (!f) return -1;
    for (int i = 0; i < s->n_ev; i++) slm_nas_objectives(s, &s->ev[i], f + 2 * i);
    int k = slm_nas_pareto_front(f, s->n_ev, 2, idx);
    free(f);
    return k;
}

double slm_nas_state_hypervolume(const slm_nas_state *s) {
    if (!s->n_ev) return 0;
    double *f = malloc((size_t)s->n_ev * 2 * sizeof *f);
    if (!f) return NAN;
    for (int i = 0; i < s->n_ev; i++) slm_nas_objectives(s, &s->ev[i], f + 2 * i);
    const double ref[2] = {1, 1};
    double hv = slm_nas_hypervolume2(f, s->n_ev, ref);
    free(f);
    return hv;
}

void slm_nas_width_probability(const slm_nas_state *s, const int *front, int n_front, double *prob) {
    int L = s->space.n_layers, W = s->space.n_widths;
    memset(prob, 0, (size_t)L * (W + 1) * sizeof *prob);
    for (int k = 0; k < n_front; k++) {
        const slm_nas_eval *e = &s->ev[front[k]];
        for (int i = 0; i < L; i++) {
            int col = W;
            for (int w = 0; w < W; w++)
                if (e->widths[i] == s->space.widths[w]) col = w;
            prob[(size_t)i * (W + 1) + col] += 1.0 / n_front;
        }
    }
}

/* ---- the inner problem on predicted objectives --------------------------------------------- */

typedef struct inner {
    slm_nas_state *s;
    slm_model *m;
    slm_predictor acc, tps;
    int *genes, *widths, *canon; /* scratch: [1 + L], [L], [1 + L] */
    double *feat;
} inner;

static void to_genes(const slm_nas_space *sp, const double *x, int *g) {
    for (int j = 0; j < slm_nas_n_genes(sp); j++) g[j] = (int)x[j];
}

static slm_status inner_eval(void *user, const double *x, int n, double *f) {
    inner *in = user;
    const slm_nas_space *sp = &in->s->space;
    int ng = slm_nas_n_genes(sp);
    for (int i = 0; i < n; i++) {
        to_genes(sp, x + (size_t)i * ng, in->genes);
        slm_status st = slm_nas_decode(sp, in->genes, in->widths);
        if (st) return st;
        slm_nas_features(sp, in->genes, in->feat);
        double acc = slm_predictor_predict(&in->acc, in->feat);
        if (in->s->params.objective == SLM_NAS_OBJ_THROUGHPUT) {
            double tps = slm_predictor_predict(&in->tps, in->feat);
            f[2 * i] = tps > 0 ? in->s->ref.tokens_per_s / tps : INFINITY;
        } else {
            if ((st = slm_nas_apply(in->m, in->widths))) return st;
            f[2 * i] = (double)slm_model_get_stats(in->m, 1).n_params / (double)in->s->ref.params;
        }
        f[2 * i + 1] = 1.0 - acc;
    }
    return SLM_OK;
}

static void inner_canon(void *user, const double *x, double *out) {
    inner *in = user;
    const slm_nas_space *sp = &in->s->space;
    to_genes(sp, x, in->genes);
    slm_nas_canon(sp, in->genes, in->canon);
    for (int j = 0; j < slm_nas_n_genes(sp); j++) out[j] = in->canon[j];
}

/* already evaluated for real, or queued */
static bool inner_excluded(void *user, const double *x) {
    inner *in = user;
    to_genes(&in->s->space, x, in->genes);
    slm_nas_canon(&in->s->space, in->genes, in->canon);
    return known(in->s, in->canon);
}

/* Fits the predictors on everything evaluated (features -> accuracy, tps). */
static slm_status fit_predictors(slm_nas_state *s, inner *in) {
    const slm_nas_space *sp = &s->space;
    int n = s->n_ev, d = slm_nas_n_genes(sp);
    double *X = slm_malloc((size_t)n * d * sizeof *X, "predictor data"), *y = slm_malloc((size_t)n * sizeof *y, "predictor data");
    slm_status st = X && y ? SLM_OK : SLM_ERR_NOMEM;
    slm_nas_fit fit = {.round = s->round, .n_points = n};
    for (int i = 0; !st && i < n; i++) {
        slm_nas_features(sp, s->ev[i].genes, X + (size_t)i * d);
        y[i] = s->ev[i].accuracy;
    }
    uint64_t seed = s->rng ^ 0x5eed;
    if (!st) st = slm_pred_select(X, y, n, d, s->params.folds, seed, &in->acc, &fit.acc);
    fit.acc_kind = in->acc.kind;
    if (!st && s->params.objective == SLM_NAS_OBJ_THROUGHPUT) {
        for (int i = 0; i < n; i++) y[i] = s->ev[i].tokens_per_s;
        st = slm_pred_select(X, y, n, d, s->params.folds, seed, &in->tps, &fit.tps);
        fit.tps_kind = in->tps.kind;
    }
    if (!st) st = slm_nas_grow((void **)&s->fits, &s->cap_fits, s->n_fits + 1, sizeof *s->fits);
    if (!st) s->fits[s->n_fits++] = fit;
    free(X);
    free(y);
    return st;
}

static slm_status add_pending(slm_nas_state *s, const int *canon, double pa, double pt) {
    int ng = slm_nas_n_genes(&s->space);
    slm_status st = slm_nas_grow((void **)&s->pend, &s->cap_pend, s->n_pend + 1, sizeof *s->pend);
    int *g = st ? NULL : slm_malloc((size_t)ng * sizeof *g, "candidate");
    if (!g) return st ? st : SLM_ERR_NOMEM;
    memcpy(g, canon, (size_t)ng * sizeof *g);
    s->pend[s->n_pend++] = (slm_nas_pending){g, pa, pt};
    return SLM_OK;
}

/* Up to `want` random sub-networks never seen, into the pending list. */
static slm_status add_random(slm_nas_state *s, int want) {
    int ng = slm_nas_n_genes(&s->space);
    int *g = slm_malloc((size_t)ng * 2 * sizeof *g, "candidate");
    if (!g) return SLM_ERR_NOMEM;
    slm_status st = SLM_OK;
    for (int k = 0; k < want && !st; k++) {
        for (int tries = 0; tries < 10000; tries++) {
            slm_nas_random(&s->space, &s->rng, g);
            slm_nas_canon(&s->space, g, g + ng);
            if (!known(s, g + ng)) {
                st = add_pending(s, g + ng, NAN, NAN);
                break;
            }
        }
    }
    free(g);
    return st;
}

/* One predictor round: fit, run the inner NSGA-II, queue the best new points. */
static slm_status plan_round(slm_nas_state *s, slm_model *m) {
    const slm_nas_space *sp = &s->space;
    int ng = slm_nas_n_genes(sp), L = sp->n_layers;
    s->round++;
    inner in = {.s = s, .m = m};
    in.genes = slm_malloc((size_t)ng * sizeof *in.genes, "inner search");
    in.widths = slm_malloc((size_t)L * sizeof *in.widths, "inner search");
    in.canon = slm_malloc((size_t)ng * sizeof *in.canon, "inner search");
    in.feat = slm_malloc((size_t)ng * sizeof *in.feat, "inner search");
    double *lo = slm_calloc((size_t)ng, sizeof *lo, "inner search"), *hi = slm_malloc((size_t)ng * sizeof *hi, "inner search");
    int *front = slm_malloc(((size_t)s->n_ev + 1) * sizeof *front, "inner search");
    double *init = slm_malloc(((size_t)s->n_ev + 1) * ng * sizeof *init, "inner search");
    slm_status st = in.genes && in.widths && in.canon && in.feat && lo && hi && front && init ? SLM_OK : SLM_ERR_NOMEM;
    if (!st) st = fit_predictors(s, &in);
    slm_nsga2_result r = {0};
    if (!st) {
        hi[0] = sp->n_depths - 1;
        for (int j = 1; j < ng; j++) hi[j] = sp->n_widths - 1;
        /* seeds: the evaluated Pareto set */
        int nf = slm_nas_front(s, front), n_init = 0;
        for (int k = 0; k < nf && n_init < s->params.population; k++, n_init++)
            for (int j = 0; j < ng; j++) init[(size_t)n_init * ng + j] = s->ev[front[k]].genes[j];
        slm_nsga2_problem p = {.n_var = ng, .n_obj = 2, .lo = lo, .hi = hi, .integer = true, .evaluate = inner_eval,
                               .canon = inner_canon, .excluded = inner_excluded, .user = &in};
        slm_nsga2_params pp = slm_nsga2_default_params();
        pp.pop_size = s->params.population;
        pp.generations = s->params.generations;
        st = slm_nsga2_run(&p, &pp, init, n_init, &s->rng, &r);
    }
    /* the final population in (rank, crowding) order; new points first come first */
    int queued = 0;
    for (int i = 0; !st && i < r.n && queued < s->params.per_round; i++) {
        to_genes(sp, r.x + (size_t)i * ng, in.genes);
        slm_nas_canon(sp, in.genes, in.canon);
        if (known(s, in.canon)) continue;
        slm_nas_features(sp, in.canon, in.feat);
        double pa = slm_predictor_predict(&in.acc, in.feat);
        double pt = s->params.objective == SLM_NAS_OBJ_THROUGHPUT ? slm_predictor_predict(&in.tps, in.feat) : NAN;
        st = add_pending(s, in.canon, pa, pt);
        queued++;
    }
    /* a small space may run out of new points near the front */
    if (!st && queued < s->params.per_round) st = add_random(s, s->params.per_round - queued);
    if (!st) { /* the inner objectives moved the plan around */
        slm_nas_full_widths(m, in.widths);
        st = slm_nas_apply(m, in.widths);
    }
    slm_nsga2_result_free(&r);
    slm_predictor_free(&in.acc);
    slm_predictor_free(&in.tps);
    free(in.genes);
    free(in.widths);
    free(in.canon);
    free(in.feat);
    free(lo);
    free(hi);
    free(front);
    free(init);
    return st;
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void report(const slm_nas_state *s, const slm_nas_eval *e, const char *what) {
    if (s->params.quiet) return;
    fprintf(stderr, "nas: %-9s %3d/%d  blocks %2d  params %7.2f M  acc %.4f", what, s->n_ev, s->params.evals,
            e->n_blocks, (double)e->params / 1e6, e->accuracy);
    if (isfinite(e->pred_accuracy)) fprintf(stderr, " (predicted %.4f)", e->pred_accuracy);
    if (isfinite(e->loss)) fprintf(stderr, "  loss %.4f", e->loss);
    if (isfinite(e->tokens_per_s)) fprintf(stderr, "  %.0f tok/s", e->tokens_per_s);
    fprintf(stderr, "  %.1f s\n", e->seconds);
}

slm_status slm_nas_search_run(slm_nas_state *s, slm_model *m, slm_nas_accuracy_fn acc, void *acc_user,
                              slm_nas_checkpoint_fn ckpt, void *ckpt_user) {
    const slm_nas_space *sp = &s->space;
    int L = sp->n_layers;
    if (m->cfg.n_layers != L || m->cfg.d_ff != sp->d_ff)
        return slm_fail(SLM_ERR_ARG, "search: the space is for %d blocks of width %d, the model has %d of %d", L,
                        sp->d_ff, m->cfg.n_layers, m->cfg.d_ff);
    int *widths = slm_malloc((size_t)L * sizeof *widths, "sub-network");
    if (!widths) return SLM_ERR_NOMEM;
    slm_status st = SLM_OK;
    if (!s->have_ref) {
        slm_nas_full_widths(m, widths);
        memset(&s->ref, 0, sizeof s->ref);
        st = slm_nas_evaluate(m, widths, &s->params, acc, acc_user, &s->ref);
        s->ref.round = -1;
        s->ref.pred_accuracy = s->ref.pred_tps = NAN;
        if (!st) {
            s->have_ref = true;
            report(s, &s->ref, "reference");
            if (s->params.objective == SLM_NAS_OBJ_THROUGHPUT && !(s->ref.tokens_per_s > 0))
                st = slm_fail(SLM_ERR_STATE, "search: the reference throughput could not be measured");
        }
    }
    if (!st && ckpt) st = ckpt(ckpt_user, s);
    double space_size = slm_nas_space_size(sp);
    while (!st && s->n_ev < s->params.evals) {
        if (s->n_ev >= space_size) {
            if (!s->params.quiet) fprintf(stderr, "nas: every sub-network of the space is evaluated\n");
            break;
        }
        if (!s->n_pend) {
            if (s->params.random || s->n_ev < s->params.n_init) {
                int want = s->params.random ? 1 : s->params.n_init - s->n_ev;
                st = add_random(s, want);
            } else {
                st = plan_round(s, m);
            }
            if (!st && !s->n_pend) break; /* nothing new could be found */
            if (st) break;
        }
        slm_nas_pending pd = s->pend[0];
        /* round 0: drawn at random (initial sample, baseline, or filler) */
        slm_nas_eval e = {.genes = pd.genes, .round = isnan(pd.pred_accuracy) ? 0 : s->round,
                          .pred_accuracy = pd.pred_accuracy, .pred_tps = pd.pred_tps};
        st = slm_nas_decode(sp, pd.genes, widths);
        if (!st) st = slm_nas_evaluate(m, widths, &s->params, acc, acc_user, &e);
        if (!st) st = slm_nas_grow((void **)&s->ev, &s->cap_ev, s->n_ev + 1, sizeof *s->ev);
        if (st) {
            free(e.widths);
            break;
        }
        memmove(s->pend, s->pend + 1, (size_t)(s->n_pend - 1) * sizeof *s->pend);
        s->n_pend--;
        s->ev[s->n_ev++] = e;
        report(s, &e, s->params.random ? "random" : e.round ? "predicted" : "initial");
        if (ckpt) st = ckpt(ckpt_user, s);
    }
    free(widths);
    return st;
}
