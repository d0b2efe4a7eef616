/* Performance predictors for LINAS-style search: cheap regressors fitted on
 * the sub-networks evaluated so far (features: slm_nas_features), used by
 * the inner NSGA-II in place of real evaluations.
 *
 * Two models, as in LINAS (Cummings et al. 2022):
 *   ridge regression: w = argmin ||y - X w||^2 + lambda ||w||^2 on
 *     standardised features and target (so the intercept is the mean),
 *     solved by Cholesky (LAPACKE_dposv);
 *   epsilon-SVR with an RBF kernel K(a, b) = exp(-gamma ||a - b||^2): the
 *     dual  min 1/2 (a - a*)' K (a - a*) + eps sum(a + a*) - y'(a - a*),
 *     sum(a - a*) = 0, 0 <= a, a* <= C, solved by SMO with second-order
 *     working-set selection (Fan, Chen, Lin 2005), the algorithm libsvm
 *     uses, written here (libsvm is not among the project's Debian
 *     dependencies and the problems have at most a few hundred points).
 *     f(x) = sum_i (a_i - a*_i) K(x_i, x) - rho.
 * slm_pred_select fits every configuration of a small grid (ridge lambda;
 * SVR C x gamma at eps 0.05 on the standardised target), scores each by
 * K-fold cross-validated MAPE, keeps the best and refits it on all points.
 */
#ifndef SLM_NAS_PREDICT_H
#define SLM_NAS_PREDICT_H

#include "slimlm.h"

#include <stdint.h>

typedef enum slm_pred_kind { SLM_PRED_RIDGE = 0, SLM_PRED_SVR } slm_pred_kind;
const char *slm_pred_kind_name(slm_pred_kind k); /* "ridge", "svr" */

typedef struct slm_predictor {
    slm_pred_kind kind;
    int d;              /* features */
    double *mu, *sd;    /* [d] feature standardisation (sd 1 for a constant feature) */
    double y_mu, y_sd;  /* target standardisation */
    /* ridge */
    double lambda;
    double *w;          /* [d] */
    /* SVR */
    double C, eps, gamma;
    int n_sv;
    double *sv;         /* [n_sv][d] standardised support vectors */
    double *coef;       /* [n_sv] a_i - a*_i */
    double rho;
    int iterations;     /* SMO iterations used */
} slm_predictor;
void slm_predictor_free(slm_predictor *p);

/* X [n][d], y [n]. */
slm_status slm_ridge_fit(const double *X, const double *y, int n, int d, double lambda, slm_predictor *out);
/* eps is in units of the standardised target (y_sd); gamma applies to
 * standardised features. */
slm_status slm_svr_fit(const double *X, const double *y, int n, int d, double C, double eps, double gamma,
                       slm_predictor *out);
double slm_predictor_predict(const slm_predictor *p, const double *x);

/* Mean absolute percentage error, in percent: 100/n sum |y - yhat| / |y|
 * (terms with y = 0 skipped). */
double slm_mape(const double *y, const double *yhat, int n);

typedef struct slm_pred_report {
    double ridge_mape, svr_mape; /* best cross-validated MAPE of each kind (%) */
    double ridge_lambda, svr_C, svr_gamma;
    int folds;
} slm_pred_report;

/* Cross-validates the grid with k folds (k > n: leave-one-out; needs
 * n >= 3), keeps the configuration with the lowest MAPE and fits it on all
 * n points into *out. seed shuffles the folds. rep may be NULL. */
slm_status slm_pred_select(const double *X, const double *y, int n, int d, int k, uint64_t seed, slm_predictor *out,
                           slm_pred_report *rep);

#endif
