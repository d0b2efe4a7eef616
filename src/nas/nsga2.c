/* NSGA-II: sorting, crowding, variation, survival (see nsga2.h). */
#include "nas/nsga2.h"
#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers (splitmix64) ------------------------------------------------------ */

uint64_t slm_nas_rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double slm_nas_rng_uniform(uint64_t *s) { return (double)(slm_nas_rng_next(s) >> 11) * 0x1.0p-53; }

int slm_nas_rng_int(uint64_t *s, int n) { return n <= 1 ? 0 : (int)(slm_nas_rng_next(s) % (uint64_t)n); }

/* ---- sorting and crowding ------------------------------------------------------------- */

bool slm_nsga2_dominates(const double *a, const double *b, int m) {
    bool better = false;
    for (int j = 0; j < m; j++) {
        if (a[j] > b[j]) return false;
        if (a[j] < b[j]) better = true;
    }
    return better;
}

int slm_nsga2_sort(const double *f, int n, int m, int *rank) {
    /* Deb's fast non-dominated sort: count[i] = how many dominate i; the
     * points each one dominates are kept as a flat n x n bit of work. */
    int *count = calloc((size_t)n + 1, sizeof *count), *front = malloc(((size_t)n + 1) * sizeof *front);
    unsigned char *dom = calloc((size_t)n * (size_t)n + 1, 1); /* dom[i*n+j]: i dominates j */
    if (!count || !front || !dom) {
        free(count);
        free(front);
        free(dom);
        slm_fail(SLM_ERR_NOMEM, "non-dominated sort of %d points: out of memory", n);
        return -1;
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            if (slm_nsga2_dominates(f + (size_t)i * m, f + (size_t)j * m, m)) {
                dom[(size_t)i * n + j] = 1;
                count[j]++;
            } else if (slm_nsga2_dominates(f + (size_t)j * m, f + (size_t)i * m, m)) {
                dom[(size_t)j * n + i] = 1;
                count[i]++;
            }
        }
    int k = 0;
    for (int i = 0; i < n; i++)
        if (count[i] == 0) {
            rank[i] = 0;
            front[k++] = i;
        }
    int n_fronts = 0, start = 0;
    while (start < k) {
        int end = k;
        n_fronts++;
        for (int a = start; a < end; a++) {
            int i = front[a];
            for (int j = 0; j < n; j++)
                if (dom[(size_t)i * n + j] && --count[j] == 0) {
                    rank[j] = n_fronts;
                    front[k++] = j;
                }
        }
        start = end;
    }
    free(count);
    free(front);
    free(dom);
    return n_fronts;
}

typedef struct sort_key {
    double v;
    int i;
} sort_key;

static int cmp_key(const void *a, const void *b) {
    const sort_key *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return x->i - y->i;
}

void slm_nsga2_crowding(const double *f, int m, const int *idx, int k, double *crowd) {
    for (int j = 0; j < k; j++) crowd[idx[j]] = 0;
    if (k <= 2) {
        for (int j = 0; j < k; j++) crowd[idx[j]] = INFINITY;
        return;
    }
    sort_key *s = malloc((size_t)k * sizeof *s);
    if (!s) { /* degrade to "all equal" rather than fail: only tie-breaking is lost */
        for (int j = 0; j < k; j++) crowd[idx[j]] = INFINITY;
        return;
    }
    for (int o = 0; o < m; o++) {
        for (int j = 0; j < k; j++) s[j] = (sort_key){f[(size_t)idx[j] * m + o], idx[j]};
        qsort(s, (size_t)k, sizeof *s, cmp_key);
        double span = s[k - 1].v - s[0].v;
        crowd[s[0].i] = crowd[s[k - 1].i] = INFINITY;
        if (!(span > 0)) continue;
        for (int j = 1; j + 1 < k; j++) crowd[s[j].i] += (s[j + 1].v - s[j - 1].v) / span;
    }
    free(s);
}

double slm_nas_hypervolume2(const double *f, int n, const double ref[2]) {
    sort_key *s = malloc(((size_t)n + 1) * sizeof *s);
    if (!s) return NAN;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (f[2 * i] < ref[0] && f[2 * i + 1] < ref[1]) s[k++] = (sort_key){f[2 * i], i};
    qsort(s, (size_t)k, sizeof *s, cmp_key);
    /* sweep in increasing f0: each point adds the strip between its f1 and
     * the best f1 seen so far (dominated points add nothing) */
    double hv = 0, best1 = ref[1];
    for (int j = 0; j < k; j++) {
        double y = f[2 * s[j].i + 1];
        if (y < best1) {
            hv += (ref[0] - s[j].v) * (best1 - y);
            best1 = y;
        }
    }
    free(s);
    return hv;
}

int slm_nas_pareto_front(const double *f, int n, int m, int *idx) {
    sort_key *s = malloc(((size_t)n + 1) * sizeof *s);
    if (!s) {
        slm_fail(SLM_ERR_NOMEM, "Pareto front of %d points: out of memory", n);
        return -1;
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        bool keep = true;
        for (int j = 0; j < n && keep; j++) {
            if (j == i) continue;
            const double *a = f + (size_t)j * m, *b = f + (size_t)i * m;
            if (slm_nsga2_dominates(a, b, m)) keep = false;
            else if (j < i && memcmp(a, b, (size_t)m * sizeof *a) == 0) keep = false; /* first of equals */
        }
        if (keep) s[k++] = (sort_key){f[(size_t)i * m], i};
    }
    qsort(s, (size_t)k, sizeof *s, cmp_key);
    for (int j = 0; j < k; j++) idx[j] = s[j].i;
    free(s);
    return k;
}

/* ---- variation ------------------------------------------------------------------------ */

slm_nsga2_params slm_nsga2_default_params(void) {
    return (slm_nsga2_params){.pop_size = 50,
                              .generations = 100,
                              .p_crossover = 0.9,
                              .eta_c = 15,
                              .p_mutation = 0.02,
                              .eta_m = 20,
                              .dup_retries = 20};
}

/* Deb's bounded SBX on one variable pair (y1 <= y2 after ordering). */
static void sbx_var(double *a, double *b, double lo, double hi, double eta, uint64_t *rng) {
    double x1 = *a, x2 = *b;
    if (fabs(x1 - x2) <= 1e-14) return;
    double y1 = x1 < x2 ? x1 : x2, y2 = x1 < x2 ? x2 : x1, d = y2 - y1;
    double u = slm_nas_rng_uniform(rng), e1 = 1.0 / (eta + 1.0);
    double beta = 1.0 + 2.0 * (y1 - lo) / d, alpha = 2.0 - pow(beta, -(eta + 1.0));
    double bq = u <= 1.0 / alpha ? pow(u * alpha, e1) : pow(1.0 / (2.0 - u * alpha), e1);
    double c1 = 0.5 * ((y1 + y2) - bq * d);
    beta = 1.0 + 2.0 * (hi - y2) / d;
    alpha = 2.0 - pow(beta, -(eta + 1.0));
    bq = u <= 1.0 / alpha ? pow(u * alpha, e1) : pow(1.0 / (2.0 - u * alpha), e1);
    double c2 = 0.5 * ((y1 + y2) + bq * d);
    c1 = c1 < lo ? lo : c1 > hi ? hi : c1;
    c2 = c2 < lo ? lo : c2 > hi ? hi : c2;
    if (slm_nas_rng_uniform(rng) < 0.5) {
        *a = c2;
        *b = c1;
    } else {
        *a = c1;
        *b = c2;
    }
}

/* Deb's bounded polynomial mutation of one variable. */
static double pm_var(double y, double lo, double hi, double eta, uint64_t *rng) {
    double span = hi - lo;
    if (!(span > 0)) return y;
    double d1 = (y - lo) / span, d2 = (hi - y) / span, r = slm_nas_rng_uniform(rng), p = 1.0 / (eta + 1.0), dq;
    if (r < 0.5) {
        double v = 2.0 * r + (1.0 - 2.0 * r) * pow(1.0 - d1, eta + 1.0);
        dq = pow(v, p) - 1.0;
    } else {
        double v = 2.0 * (1.0 - r) + 2.0 * (r - 0.5) * pow(1.0 - d2, eta + 1.0);
        dq = 1.0 - pow(v, p);
    }
    y += dq * span;
    return y < lo ? lo : y > hi ? hi : y;
}

typedef struct engine {
    const slm_nsga2_problem *p;
    const slm_nsga2_params *pp;
    uint64_t *rng;
    double *lo, *hi; /* operator bounds (widened for integers) */
    double *ca, *cb; /* canonical copies for comparisons */
} engine;

static void round_child(const engine *e, double *x) {
    if (!e->p->integer) return;
    for (int v = 0; v < e->p->n_var; v++) {
        double r = nearbyint(x[v]);
        x[v] = r < e->p->lo[v] ? e->p->lo[v] : r > e->p->hi[v] ? e->p->hi[v] : r;
    }
}

static bool same(const engine *e, const double *a, const double *b) {
    int n = e->p->n_var;
    if (!e->p->canon) return memcmp(a, b, (size_t)n * sizeof *a) == 0;
    e->p->canon(e->p->user, a, e->ca);
    e->p->canon(e->p->user, b, e->cb);
    return memcmp(e->ca, e->cb, (size_t)n * sizeof *a) == 0;
}

/* x duplicates one of pop[0..n) or is excluded. */
static bool is_dup(const engine *e, const double *x, const double *pop, int n) {
    if (e->p->excluded && e->p->excluded(e->p->user, x)) return true;
    for (int i = 0; i < n; i++)
        if (same(e, x, pop + (size_t)i * e->p->n_var)) return true;
    return false;
}

static void random_point(const engine *e, double *x) {
    for (int v = 0; v < e->p->n_var; v++) {
        if (e->p->integer) {
            int span = (int)(e->p->hi[v] - e->p->lo[v]) + 1;
            x[v] = e->p->lo[v] + slm_nas_rng_int(e->rng, span);
        } else {
            x[v] = e->p->lo[v] + slm_nas_rng_uniform(e->rng) * (e->p->hi[v] - e->p->lo[v]);
        }
    }
}

/* Binary tournament on (rank, crowding). */
static int tournament(const engine *e, const int *rank, const double *crowd, int n) {
    int a = slm_nas_rng_int(e->rng, n), b = slm_nas_rng_int(e->rng, n);
    if (rank[a] != rank[b]) return rank[a] < rank[b] ? a : b;
    if (crowd[a] != crowd[b]) return crowd[a] > crowd[b] ? a : b;
    return slm_nas_rng_uniform(e->rng) < 0.5 ? a : b;
}

/* Two children of two tournament winners. */
static void make_children(const engine *e, const double *pop, const int *rank, const double *crowd, int n, double *c1,
                          double *c2) {
    int nv = e->p->n_var;
    const double *p1 = pop + (size_t)tournament(e, rank, crowd, n) * nv;
    const double *p2 = pop + (size_t)tournament(e, rank, crowd, n) * nv;
    memcpy(c1, p1, (size_t)nv * sizeof *c1);
    memcpy(c2, p2, (size_t)nv * sizeof *c2);
    if (slm_nas_rng_uniform(e->rng) < e->pp->p_crossover)
        for (int v = 0; v < nv; v++)
            if (slm_nas_rng_uniform(e->rng) < 0.5) sbx_var(&c1[v], &c2[v], e->lo[v], e->hi[v], e->pp->eta_c, e->rng);
    double pm = e->pp->p_mutation > 0 ? e->pp->p_mutation : 1.0 / nv;
    for (int v = 0; v < nv; v++) {
        if (slm_nas_rng_uniform(e->rng) < pm) c1[v] = pm_var(c1[v], e->lo[v], e->hi[v], e->pp->eta_m, e->rng);
        if (slm_nas_rng_uniform(e->rng) < pm) c2[v] = pm_var(c2[v], e->lo[v], e->hi[v], e->pp->eta_m, e->rng);
    }
    round_child(e, c1);
    round_child(e, c2);
}

/* Fills off[0..n_off) with children that duplicate neither the population
 * nor each other (see the header for the fallback). */
static void make_offspring(const engine *e, const double *pop, const int *rank, const double *crowd, int n,
                           double *off, int n_off, double *all, double *tmp2) {
    int nv = e->p->n_var;
    /* all = pop followed by the accepted children, for duplicate checks */
    memcpy(all, pop, (size_t)n * nv * sizeof *all);
    int k = 0, tries = 0;
    double *c1 = tmp2, *c2 = tmp2 + nv;
    while (k < n_off) {
        make_children(e, pop, rank, crowd, n, c1, c2);
        for (int c = 0; c < 2 && k < n_off; c++) {
            double *x = c ? c2 : c1;
            int resets = 0;
            while (tries >= e->pp->dup_retries && is_dup(e, x, all, n + k) && resets++ < e->pp->dup_retries) {
                int v = slm_nas_rng_int(e->rng, nv);
                double r = e->p->integer ? e->p->lo[v] + slm_nas_rng_int(e->rng, (int)(e->p->hi[v] - e->p->lo[v]) + 1)
                                         : e->p->lo[v] + slm_nas_rng_uniform(e->rng) * (e->p->hi[v] - e->p->lo[v]);
                x[v] = r;
            }
            if (tries < e->pp->dup_retries && is_dup(e, x, all, n + k)) {
                tries++;
                continue;
            }
            memcpy(off + (size_t)k * nv, x, (size_t)nv * sizeof *x);
            memcpy(all + (size_t)(n + k) * nv, x, (size_t)nv * sizeof *x);
            k++;
            tries = 0;
        }
    }
}

/* ---- survival ------------------------------------------------------------------------- */

typedef struct surv_key {
    int rank;
    double crowd;
    int i;
} surv_key;

static int cmp_surv(const void *a, const void *b) {
    const surv_key *x = a, *y = b;
    if (x->rank != y->rank) return x->rank - y->rank;
    if (x->crowd != y->crowd) return x->crowd > y->crowd ? -1 : 1;
    return x->i - y->i;
}

/* Ranks and crowding of f[n][m]; order[] = indices sorted by (rank, -crowd). */
static slm_status rank_and_crowd(const double *f, int n, int m, int *rank, double *crowd, int *order, int *scratch) {
    int nf = slm_nsga2_sort(f, n, m, rank);
    if (nf < 0) return SLM_ERR_NOMEM;
    for (int r = 0; r < nf; r++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (rank[i] == r) scratch[k++] = i;
        slm_nsga2_crowding(f, m, scratch, k, crowd);
    }
    surv_key *s = malloc((size_t)n * sizeof *s);
    if (!s) return slm_fail(SLM_ERR_NOMEM, "NSGA-II: out of memory");
    for (int i = 0; i < n; i++) s[i] = (surv_key){rank[i], crowd[i], i};
    qsort(s, (size_t)n, sizeof *s, cmp_surv);
    for (int i = 0; i < n; i++) order[i] = s[i].i;
    free(s);
    return SLM_OK;
}

void slm_nsga2_result_free(slm_nsga2_result *r) {
    free(r->x);
    free(r->f);
    free(r->rank);
    free(r->crowd);
    memset(r, 0, sizeof *r);
}

slm_status slm_nsga2_run(const slm_nsga2_problem *p, const slm_nsga2_params *pp, const double *init_x, int n_init,
                         uint64_t *rng, slm_nsga2_result *out) {
    memset(out, 0, sizeof *out);
    int N = pp->pop_size, nv = p->n_var, m = p->n_obj;
    if (N < 4 || N % 2 || nv < 1 || m < 1 || pp->generations < 0)
        return slm_fail(SLM_ERR_ARG, "NSGA-II: population %d (even, >= 4), %d variables, %d objectives", N, nv, m);
    for (int v = 0; v < nv; v++)
        if (!(p->hi[v] >= p->lo[v])) return slm_fail(SLM_ERR_ARG, "NSGA-II: variable %d has bounds [%g, %g]", v, p->lo[v], p->hi[v]);
    size_t N2 = 2 * (size_t)N;
    double *x = malloc(N2 * nv * sizeof *x), *f = malloc(N2 * m * sizeof *f), *crowd = malloc(N2 * sizeof *crowd);
    double *all = malloc((N2 + 1) * nv * sizeof *all), *tmp = malloc(4 * (size_t)nv * sizeof *tmp);
    double *xs = malloc(N2 * nv * sizeof *xs), *fs = malloc(N2 * m * sizeof *fs);
    double *bounds = malloc(2 * (size_t)nv * sizeof *bounds);
    int *rank = malloc(N2 * sizeof *rank), *order = malloc(N2 * sizeof *order), *scratch = malloc(N2 * sizeof *scratch);
    slm_status st = SLM_OK;
    if (!x || !f || !crowd || !all || !tmp || !xs || !fs || !bounds || !rank || !order || !scratch)
        st = slm_fail(SLM_ERR_NOMEM, "NSGA-II: out of memory");
    engine e = {p, pp, rng, bounds, bounds + nv, tmp + 2 * nv, tmp + 3 * nv};
    if (!st)
        for (int v = 0; v < nv; v++) {
            double w = p->integer ? 0.5 - 1e-9 : 0;
            e.lo[v] = p->lo[v] - w;
            e.hi[v] = p->hi[v] + w;
        }
    /* initial population: the given points, then random ones (no duplicates
     * while the space allows) */
    int n = 0;
    for (int i = 0; !st && i < n_init && n < N; i++) {
        memcpy(x + (size_t)n * nv, init_x + (size_t)i * nv, (size_t)nv * sizeof *x);
        round_child(&e, x + (size_t)n * nv);
        n++; /* given points are kept as they are, duplicates included */
    }
    for (int tries = 0; !st && n < N; tries++) {
        random_point(&e, x + (size_t)n * nv);
        if (tries > 50 * N || !is_dup(&e, x + (size_t)n * nv, x, n)) n++;
    }
    if (!st) st = p->evaluate(p->user, x, N, f);
    out->evaluations = N;
    if (!st) st = rank_and_crowd(f, N, m, rank, crowd, order, scratch);
    for (int g = 0; !st && g < pp->generations; g++) {
        make_offspring(&e, x, rank, crowd, N, x + (size_t)N * nv, N, all, tmp);
        st = p->evaluate(p->user, x + (size_t)N * nv, N, f + (size_t)N * m);
        out->evaluations += N;
        if (!st) st = rank_and_crowd(f, (int)N2, m, rank, crowd, order, scratch);
        if (st) break;
        /* survivors: the best N by (rank, crowding distance within the front) */
        for (int i = 0; i < N; i++) {
            memcpy(xs + (size_t)i * nv, x + (size_t)order[i] * nv, (size_t)nv * sizeof *x);
            memcpy(fs + (size_t)i * m, f + (size_t)order[i] * m, (size_t)m * sizeof *f);
        }
        memcpy(x, xs, (size_t)N * nv * sizeof *x);
        memcpy(f, fs, (size_t)N * m * sizeof *f);
        /* ranks and crowding among the survivors drive the next tournaments */
        st = rank_and_crowd(f, N, m, rank, crowd, order, scratch);
    }
    if (!st) {
        out->n = N;
        out->x = malloc((size_t)N * nv * sizeof *out->x);
        out->f = malloc((size_t)N * m * sizeof *out->f);
        out->rank = malloc((size_t)N * sizeof *out->rank);
        out->crowd = malloc((size_t)N * sizeof *out->crowd);
        if (!out->x || !out->f || !out->rank || !out->crowd) st = slm_fail(SLM_ERR_NOMEM, "NSGA-II: out of memory");
        for (int i = 0; !st && i < N; i++) {
            int j = order[i];
            memcpy(out->x + (size_t)i * nv, x + (size_t)j * nv, (size_t)nv * sizeof *x);
            memcpy(out->f + (size_t)i * m, f + (size_t)j * m, (size_t)m * sizeof *f);
            out->rank[i] = rank[j];
            out->crowd[i] = crowd[j];
        }
    }
    if (st) slm_nsga2_result_free(out);
    free(x);
    free(f);
    free(crowd);
    free(all);
    free(tmp);
    free(xs);
    free(fs);
    free(bounds);
    free(rank);
    free(order);
    free(scratch);
    return st;
}
