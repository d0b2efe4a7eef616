/* Ridge regression, epsilon-SVR (SMO) and cross-validated selection (predict.h). */
#include "nas/predict.h"
#include "core/core.h"
#include "nas/nsga2.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *slm_pred_kind_name(slm_pred_kind k) { return k == SLM_PRED_SVR ? "svr" : "ridge"; }

void slm_predictor_free(slm_predictor *p) {
    free(p->mu);
    free(p->sd);
    free(p->w);
    free(p->sv);
    free(p->coef);
    memset(p, 0, sizeof *p);
}

/* Means and standard deviations of X's columns and of y; fills p. */
static slm_status standardise(const double *X, const double *y, int n, int d, slm_predictor *p) {
    p->d = d;
    p->mu = slm_calloc((size_t)d, sizeof *p->mu, "predictor");
    p->sd = slm_calloc((size_t)d, sizeof *p->sd, "predictor");
    if (!p->mu || !p->sd) return SLM_ERR_NOMEM;
    for (int j = 0; j < d; j++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < n; i++) s += X[(size_t)i * d + j];
        double mu = s / n;
        for (int i = 0; i < n; i++) s2 += (X[(size_t)i * d + j] - mu) * (X[(size_t)i * d + j] - mu);
        double sd = sqrt(s2 / n);
        p->mu[j] = mu;
        p->sd[j] = sd > 1e-12 ? sd : 1.0;
    }
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += y[i];
    p->y_mu = s / n;
    for (int i = 0; i < n; i++) s2 += (y[i] - p->y_mu) * (y[i] - p->y_mu);
    double sd = sqrt(s2 / n);
    p->y_sd = sd > 1e-12 ? sd : 1.0;
    return SLM_OK;
}

static void std_row(const slm_predictor *p, const double *x, double *out) {
    for (int j = 0; j < p->d; j++) out[j] = (x[j] - p->mu[j]) / p->sd[j];
}

static slm_status check_data(const double *X, const double *y, int n, int d) {
    if (n < 1 || d < 1) return slm_fail(SLM_ERR_ARG, "predictor: %d points of %d features", n, d);
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i])) return slm_fail(SLM_ERR_NUMERIC, "predictor: target %d is not finite", i);
        for (int j = 0; j < d; j++)
            if (!isfinite(X[(size_t)i * d + j])) return slm_fail(SLM_ERR_NUMERIC, "predictor: feature %d of point %d is not finite", j, i);
    }
    return SLM_OK;
}

/* ---- ridge ---------------------------------------------------------------------------- */

slm_status slm_ridge_fit(const double *X, const double *y, int n, int d, double lambda, slm_predictor *out) {
    memset(out, 0, sizeof *out);
    slm_status st = check_data(X, y, n, d);
    if (st) return st;
    if (!(lambda > 0)) return slm_fail(SLM_ERR_ARG, "ridge: lambda %g must be positive", lambda);
    out->kind = SLM_PRED_RIDGE;
    out->lambda = lambda;
    st = standardise(X, y, n, d, out);
    double *A = slm_calloc((size_t)d * (size_t)d, sizeof *A, "ridge"), *xs = slm_malloc((size_t)d * sizeof *xs, "ridge");
    out->w = slm_calloc((size_t)d, sizeof *out->w, "ridge");
    if (!st && (!A || !xs || !out->w)) st = SLM_ERR_NOMEM;
    /* (Xs' Xs + lambda I) w = Xs' ys */
    for (int i = 0; !st && i < n; i++) {
        std_row(out, X + (size_t)i * d, xs);
        double ys = (y[i] - out->y_mu) / out->y_sd;
        for (int a = 0; a < d; a++) {
            out->w[a] += xs[a] * ys;
            for (int b = 0; b <= a; b++) A[(size_t)a * d + b] += xs[a] * xs[b];
        }
    }
    for (int a = 0; !st && a < d; a++) A[(size_t)a * d + a] += lambda;
    if (!st && LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', d, 1, A, d, out->w, 1) != 0)
        st = slm_fail(SLM_ERR_NUMERIC, "ridge: normal equations are not positive definite (lambda %g)", lambda);
    free(A);
    free(xs);
    if (st) slm_predictor_free(out);
    return st;
}

/* ---- epsilon-SVR by SMO ---------------------------------------------------------------- */

static double rbf(const double *a, const double *b, int d, double gamma) {
    double s = 0;
    for (int j = 0; j < d; j++) s += (a[j] - b[j]) * (a[j] - b[j]);
    return exp(-gamma * s);
}

/* Sign of variable t of the 2n (a first, then a*) and its Q entries. */
static inline double sgn(int t, int n) { return t < n ? 1.0 : -1.0; }
static inline double q_at(const double *K, int n, int a, int b) {
    return sgn(a, n) * sgn(b, n) * K[(size_t)(a % n) * n + (size_t)(b % n)];
}

/* The 2n-variable problem min 1/2 b'Qb + p'b, s'b = 0, 0 <= b <= C with
 * s = (+1..., -1...), Q_ij = s_i s_j K(i mod n, j mod n), p = (eps - y, eps + y).
 * K [n][n]. Returns the iterations, fills beta [2n] and *rho. */
static int smo(const double *K, const double *ys, int n, double C, double eps, double *beta, double *rho) {
    const double tau = 1e-12, tol = 1e-3;
    int l = 2 * n;
    double *G = malloc((size_t)l * sizeof *G);
    if (!G) return -1;
    for (int t = 0; t < l; t++) {
        beta[t] = 0;
        G[t] = t < n ? eps - ys[t] : eps + ys[t - n]; /* gradient Q b + p at b = 0 */
    }
    int it = 0, max_it = 100000 + 100 * l;
    for (; it < max_it; it++) {
        /* i: the most violating "up" variable; j: second-order choice */
        double gmax = -INFINITY, gmax2 = -INFINITY, best = INFINITY;
        int i = -1, j = -1;
        for (int t = 0; t < l; t++) {
            if (sgn(t, n) > 0 ? beta[t] < C : beta[t] > 0) {
                double v = -sgn(t, n) * G[t];
                if (v >= gmax) {
                    gmax = v;
                    i = t;
                }
            }
        }
        if (i < 0) break;
        for (int t = 0; t < l; t++) {
            if (!(sgn(t, n) > 0 ? beta[t] > 0 : beta[t] < C)) continue;
            double v = sgn(t, n) * G[t]; /* -(-s_t G_t) */
            if (v >= gmax2) gmax2 = v;
            double gd = gmax + v;
            if (gd > 0) {
                double quad = q_at(K, n, i, i) + q_at(K, n, t, t) - 2.0 * sgn(i, n) * sgn(t, n) * q_at(K, n, i, t);
                double obj = -(gd * gd) / (quad > 0 ? quad : tau);
                if (obj <= best) {
                    best = obj;
                    j = t;
                }
            }
        }
        if (gmax + gmax2 < tol || j < 0) break;
        double oi = beta[i], oj = beta[j], qij = q_at(K, n, i, j), qii = q_at(K, n, i, i), qjj = q_at(K, n, j, j);
        if (sgn(i, n) != sgn(j, n)) {
            double quad = qii + qjj + 2 * qij;
            if (quad <= 0) quad = tau;
            double delta = (-G[i] - G[j]) / quad, diff = beta[i] - beta[j];
            beta[i] += delta;
            beta[j] += delta;
            if (diff > 0) {
                if (beta[j] < 0) {
                    beta[j] = 0;
                    beta[i] = diff;
                }
            } else if (beta[i] < 0) {
                beta[i] = 0;
                beta[j] = -diff;
            }
            if (diff > 0) {
                if (beta[i] > C) {
                    beta[i] = C;
                    beta[j] = C - diff;
                }
            } else if (beta[j] > C) {
                beta[j] = C;
                beta[i] = C + diff;
            }
        } else {
            double quad = qii + qjj - 2 * qij;
            if (quad <= 0) quad = tau;
            double delta = (G[i] - G[j]) / quad, sum = beta[i] + beta[j];
            beta[i] -= delta;
            beta[j] += delta;
            if (sum > C) {
                if (beta[i] > C) {
                    beta[i] = C;
                    beta[j] = sum - C;
                }
            } else if (beta[j] < 0) {
                beta[j] = 0;
                beta[i] = sum;
            }
            if (sum > C) {
                if (beta[j] > C) {
                    beta[j] = C;
                    beta[i] = sum - C;
                }
            } else if (beta[i] < 0) {
                beta[i] = 0;
                beta[j] = sum;
            }
        }
        double di = beta[i] - oi, dj = beta[j] - oj;
        for (int t = 0; t < l; t++) G[t] += q_at(K, n, t, i) * di + q_at(K, n, t, j) * dj;
    }
    /* rho: mean of s_t G_t over free variables, else the middle of the bounds */
    double ub = INFINITY, lb = -INFINITY, sum = 0;
    int nfree = 0;
    for (int t = 0; t < l; t++) {
        double yg = sgn(t, n) * G[t];
        bool upper = beta[t] >= C, lower = beta[t] <= 0;
        if (upper) {
            if (sgn(t, n) < 0) ub = fmin(ub, yg);
            else lb = fmax(lb, yg);
        } else if (lower) {
            if (sgn(t, n) > 0) ub = fmin(ub, yg);
            else lb = fmax(lb, yg);
        } else {
            nfree++;
            sum += yg;
        }
    }
    *rho = nfree ? sum / nfree : (ub + lb) / 2;
    free(G);
    return it;
}

slm_status slm_svr_fit(const double *X, const double *y, int n, int d, double C, double eps, double gamma,
                       slm_predictor *out) {
    memset(out, 0, sizeof *out);
    slm_status st = check_data(X, y, n, d);
    if (st) return st;
    if (!(C > 0) || !(eps >= 0) || !(gamma > 0))
        return slm_fail(SLM_ERR_ARG, "svr: C %g, eps %g, gamma %g (C, gamma > 0, eps >= 0)", C, eps, gamma);
    out->kind = SLM_PRED_SVR;
    out->C = C;
    out->eps = eps;
    out->gamma = gamma;
    st = standardise(X, y, n, d, out);
    double *xs = slm_malloc((size_t)n * d * sizeof *xs, "svr"), *K = slm_malloc((size_t)n * n * sizeof *K, "svr");
    double *ys = slm_malloc((size_t)n * sizeof *ys, "svr"), *beta = slm_malloc(2 * (size_t)n * sizeof *beta, "svr");
    if (!st && (!xs || !K || !ys || !beta)) st = SLM_ERR_NOMEM;
    for (int i = 0; !st && i < n; i++) {
        std_row(out, X + (size_t)i * d, xs + (size_t)i * d);
        ys[i] = (y[i] - out->y_mu) / out->y_sd;
    }
    for (int i = 0; !st && i < n; i++)
        for (int j = 0; j <= i; j++) K[(size_t)i * n + j] = K[(size_t)j * n + i] = rbf(xs + (size_t)i * d, xs + (size_t)j * d, d, gamma);
    if (!st && (out->iterations = smo(K, ys, n, C, eps, beta, &out->rho)) < 0) st = slm_fail(SLM_ERR_NOMEM, "svr: out of memory");
    if (!st) {
        for (int i = 0; i < n; i++) out->n_sv += beta[i] - beta[n + i] != 0;
        out->sv = slm_malloc((size_t)(out->n_sv ? out->n_sv : 1) * d * sizeof *out->sv, "svr");
        out->coef = slm_malloc((size_t)(out->n_sv ? out->n_sv : 1) * sizeof *out->coef, "svr");
        if (!out->sv || !out->coef) st = SLM_ERR_NOMEM;
        for (int i = 0, k = 0; !st && i < n; i++) {
            double c = beta[i] - beta[n + i];
            if (c == 0) continue;
            memcpy(out->sv + (size_t)k * d, xs + (size_t)i * d, (size_t)d * sizeof *xs);
            out->coef[k++] = c;
        }
    }
    free(xs);
    free(K);
    free(ys);
    free(beta);
    if (st) slm_predictor_free(out);
    return st;
}

double slm_predictor_predict(const slm_predictor *p, const double *x) {
    double xs[1024], *buf = p->d <= 1024 ? xs : malloc((size_t)p->d * sizeof *buf);
    if (!buf) return NAN;
    std_row(p, x, buf);
    double f = 0;
    if (p->kind == SLM_PRED_RIDGE) {
        for (int j = 0; j < p->d; j++) f += p->w[j] * buf[j];
    } else {
        for (int k = 0; k < p->n_sv; k++) f += p->coef[k] * rbf(p->sv + (size_t)k * p->d, buf, p->d, p->gamma);
        f -= p->rho;
    }
    if (buf != xs) free(buf);
    return p->y_mu + p->y_sd * f;
}

double slm_mape(const double *y, const double *yhat, int n) {
    double s = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (y[i] != 0) {
            s += fabs(y[i] - yhat[i]) / fabs(y[i]);
            k++;
        }
    return k ? 100.0 * s / k : 0;
}

/* ---- selection by cross-validation ------------------------------------------------------ */

typedef struct pred_cfg {
    slm_pred_kind kind;
    double a, b; /* ridge: lambda; svr: C, gamma * d */
} pred_cfg;

static slm_status fit_cfg(const pred_cfg *c, const double *X, const double *y, int n, int d, slm_predictor *out) {
    return c->kind == SLM_PRED_RIDGE ? slm_ridge_fit(X, y, n, d, c->a, out)
                                     : slm_svr_fit(X, y, n, d, c->a, 0.05, c->b / d, out);
}

slm_status slm_pred_select(const double *X, const double *y, int n, int d, int k, uint64_t seed, slm_predictor *out,
                           slm_pred_report *rep) {
    memset(out, 0, sizeof *out);
    if (n < 3) return slm_fail(SLM_ERR_ARG, "predictor: %d points, at least 3 are needed", n);
    slm_status st = check_data(X, y, n, d);
    if (st) return st;
    if (k > n || k < 2) k = n;
    static const double lambdas[] = {1e-3, 1e-2, 0.1, 1, 10, 100};
    static const double Cs[] = {0.3, 1, 3, 10, 30, 100}, gds[] = {0.1, 0.3, 1, 3};
    pred_cfg cfgs[64];
    int nc = 0;
    for (size_t i = 0; i < sizeof lambdas / sizeof *lambdas; i++) cfgs[nc++] = (pred_cfg){SLM_PRED_RIDGE, lambdas[i], 0};
    for (size_t i = 0; i < sizeof Cs / sizeof *Cs; i++)
        for (size_t j = 0; j < sizeof gds / sizeof *gds; j++) cfgs[nc++] = (pred_cfg){SLM_PRED_SVR, Cs[i], gds[j]};
    int *perm = slm_malloc((size_t)n * sizeof *perm, "cross-validation");
    double *Xtr = slm_malloc((size_t)n * d * sizeof *Xtr, "cross-validation"), *ytr = slm_malloc((size_t)n * sizeof *ytr, "cv");
    double *pred = slm_malloc((size_t)n * sizeof *pred, "cross-validation");
    if (!perm || !Xtr || !ytr || !pred) st = SLM_ERR_NOMEM;
    /* shuffled fold assignment: point perm[i] is in fold i % k */
    uint64_t rng = seed;
    for (int i = 0; !st && i < n; i++) perm[i] = i;
    for (int i = n - 1; !st && i > 0; i--) {
        int j = slm_nas_rng_int(&rng, i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    double best_mape[2] = {INFINITY, INFINITY};
    int best[2] = {-1, -1};
    for (int c = 0; !st && c < nc; c++) {
        bool failed = false;
        for (int f = 0; f < k && !failed; f++) {
            int m = 0;
            for (int i = 0; i < n; i++)
                if (i % k != f) {
                    memcpy(Xtr + (size_t)m * d, X + (size_t)perm[i] * d, (size_t)d * sizeof *X);
                    ytr[m++] = y[perm[i]];
                }
            slm_predictor p;
            if (fit_cfg(&cfgs[c], Xtr, ytr, m, d, &p)) {
                failed = true; /* e.g. a singular fold: this configuration is skipped */
                break;
            }
            for (int i = 0; i < n; i++)
                if (i % k == f) pred[perm[i]] = slm_predictor_predict(&p, X + (size_t)perm[i] * d);
            slm_predictor_free(&p);
        }
        if (failed) continue;
        double mape = slm_mape(y, pred, n);
        int kind = cfgs[c].kind;
        if (mape < best_mape[kind]) {
            best_mape[kind] = mape;
            best[kind] = c;
        }
    }
    if (!st) slm_error_clear(); /* messages of skipped configurations */
    if (!st && best[0] < 0 && best[1] < 0) st = slm_fail(SLM_ERR_NUMERIC, "predictor: every configuration failed to fit");
    if (!st) {
        int kind = best[1] >= 0 && (best[0] < 0 || best_mape[1] < best_mape[0]) ? 1 : 0;
        st = fit_cfg(&cfgs[best[kind]], X, y, n, d, out);
        if (rep) {
            rep->ridge_mape = best_mape[0];
            rep->svr_mape = best_mape[1];
            rep->ridge_lambda = best[0] >= 0 ? cfgs[best[0]].a : NAN;
            rep->svr_C = best[1] >= 0 ? cfgs[best[1]].a : NAN;
            rep->svr_gamma = best[1] >= 0 ? cfgs[best[1]].b / d : NAN;
            rep->folds = k;
        }
    }
    free(perm);
    free(Xtr);
    free(ytr);
    free(pred);
    return st;
}
