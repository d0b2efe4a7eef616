/* Losses on logits: next-token cross-entropy and vanilla KD, row by row,
 * and the lm head stage that feeds them one sequence at a time.
 *
 * Per row with logits z [V], target y, teacher logits zt, temperature tau:
 *   CE  = lse(z) - z_y                              dCE/dz = softmax(z) - onehot(y)
 *   KD  = tau^2 sum_i pt_i (log pt_i - log ps_i),   pt = softmax(zt/tau), ps = softmax(z/tau)
 *                                                   dKD/dz = tau (ps - pt)
 * Every exponential is of (value - row max) <= 0, so nothing overflows, and
 * the sums are in double; the gradient is written over z in place, so the
 * head stage holds one [T][V] buffer (plus the teacher's, for KD).
 */
#include "train/ops.h"
#include "train/train_ctx.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#ifdef SLM_OPENMP
#include <omp.h>
#endif

slm_loss_params slm_loss_default_params(void) {
    return (slm_loss_params){.ce_weight = 1.0f, .kd_weight = 0.0f, .kd_temperature = 1.0f, .denom = 0.0};
}

static float row_max(const float *z, int V) {
    float mx = z[0];
    for (int i = 1; i < V; i++) mx = z[i] > mx ? z[i] : mx;
    return mx;
}

/* e[i] = exp((z[i] - mx) * k); returns the sum in double. */
static double exp_shifted(float *e, const float *z, int V, float mx, float k) {
    for (int i = 0; i < V; i++) e[i] = (z[i] - mx) * k;
    slm_vexp(e, V);
    double s = 0.0;
    for (int i = 0; i < V; i++) s += e[i];
    return s;
}

void slm_loss_row(float *z, float *zt, int V, int32_t target, const slm_loss_params *lp, float scale, bool grad,
                  float *scratch, double *ce, double *kd) {
    *ce = 0.0;
    *kd = 0.0;
    if (target < 0 || target >= V) { /* not predicted: no loss, no gradient */
        if (grad) memset(z, 0, (size_t)V * sizeof(float));
        return;
    }
    float *e = scratch, *es = scratch + V, *et = scratch + 2 * (int64_t)V;
    float mx = row_max(z, V);
    double s = exp_shifted(e, z, V, mx, 1.0f);
    *ce = (double)mx + log(s) - z[target];
    bool with_kd = zt && lp->kd_weight != 0.0f;
    double ss = 1.0, st = 1.0;
    float tau = lp->kd_temperature, inv_tau = 1.0f / tau;
    if (with_kd) {
        ss = exp_shifted(es, z, V, mx, inv_tau);
        float mt = row_max(zt, V);
        st = exp_shifted(et, zt, V, mt, inv_tau);
        /* log pt_i - log ps_i = (zt_i - mt)/tau - log st - (z_i - mx)/tau + log ss */
        double c = log(ss) - log(st), kl = 0.0;
        for (int i = 0; i < V; i++)
            if (et[i] > 0.0f) kl += (double)et[i] * ((double)(zt[i] - mt) * inv_tau - (double)(z[i] - mx) * inv_tau + c);
        *kd = (double)tau * tau * kl / st;
    }
    if (!grad) return;
    float cw = lp->ce_weight * scale, inv_s = (float)(1.0 / s);
    if (with_kd) {
        float kw = lp->kd_weight * tau * scale, inv_ss = (float)(1.0 / ss), inv_st = (float)(1.0 / st);
        for (int i = 0; i < V; i++) z[i] = cw * e[i] * inv_s + kw * (es[i] * inv_ss - et[i] * inv_st);
    } else {
        for (int i = 0; i < V; i++) z[i] = cw * e[i] * inv_s;
    }
    z[target] -= cw;
}

void slm_targets_next_token(const int32_t *tokens, int B, int T, int32_t *targets) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            targets[(int64_t)b * T + t] = t + 1 < T ? tokens[(int64_t)b * T + t + 1] : -1;
}

/* ---- the head stage ------------------------------------------------------------------- */

/* logits [T][V] of sequence b: xn_f rows . lm_head^T */
static void head_logits(const slm_train_ctx *tc, int b, float *out) {
    const slm_config *c = &tc->m->cfg;
    const int T = tc->T, D = c->d_model, V = c->n_vocab;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, V, D, 1.0f, tc->xn_f + (int64_t)b * T * D, D,
                tc->m->lm_head, D, 0.0f, out, V);
}

slm_status slm_train_logits(slm_train_ctx *tc, int b, float *logits) {
    if (!tc->have_forward) return slm_fail(SLM_ERR_STATE, "train: logits asked before a forward");
    if (b < 0 || b >= tc->B) return slm_fail(SLM_ERR_ARG, "train: sequence %d out of range (0..%d)", b, tc->B - 1);
    head_logits(tc, b, logits);
    return SLM_OK;
}

slm_status slm_train_head_loss(slm_train_ctx *tc, const int32_t *targets, slm_train_ctx *teacher,
                               const slm_loss_params *lp, bool grad, slm_loss_result *res) {
    const slm_config *c = &tc->m->cfg;
    const int B = tc->B, T = tc->T, D = c->d_model, V = c->n_vocab;
    memset(res, 0, sizeof *res);
    if (!tc->have_forward) return slm_fail(SLM_ERR_STATE, "train: loss asked before a forward");
    bool with_kd = lp->kd_weight != 0.0f;
    if (with_kd) {
        if (!teacher || !teacher->have_forward)
            return slm_fail(SLM_ERR_STATE, "train: KD needs a teacher context that ran forward on the same tokens");
        if (teacher->B != B || teacher->T != T || teacher->m->cfg.n_vocab != V)
            return slm_fail(SLM_ERR_ARG, "train: teacher shape (%d x %d, vocabulary %d) differs from the student's "
                            "(%d x %d, vocabulary %d)", teacher->B, teacher->T, teacher->m->cfg.n_vocab, B, T, V);
        if (memcmp(teacher->tokens, tc->tokens, (size_t)tc->N * sizeof(int32_t)) != 0)
            return slm_fail(SLM_ERR_ARG, "train: the teacher ran on other tokens than the student");
        if (!(lp->kd_temperature > 0.0f))
            return slm_fail(SLM_ERR_ARG, "train: KD temperature %g must be positive", (double)lp->kd_temperature);
    }
    int64_t n_pred = 0;
    for (int64_t n = 0; n < tc->N; n++) {
        if (targets[n] >= V)
            return slm_fail(SLM_ERR_ARG, "train: target id %d at %lld out of range (vocabulary %d)", targets[n],
                            (long long)n, V);
        n_pred += targets[n] >= 0;
    }
    double denom = lp->denom > 0 ? lp->denom : (double)n_pred;
    float scale = denom > 0 ? (float)(1.0 / denom) : 0.0f;
    float *g_head = NULL;
    if (grad && tc->tv) {
        const slm_train_tensor *h = &tc->tv->t[tc->tv->lm_head];
        g_head = h->frozen ? NULL : h->g;
    }
    double ce_sum = 0.0, kd_sum = 0.0;
    for (int b = 0; b < B; b++) {
        head_logits(tc, b, tc->logits);
        if (with_kd) head_logits(teacher, b, teacher->logits);
        const int32_t *tg = targets + (int64_t)b * T;
#pragma omp parallel for schedule(static) reduction(+ : ce_sum, kd_sum) num_threads(tc->n_threads) \
    if ((int64_t)T * V >= SLM_TRAIN_PAR_MIN)
        for (int t = 0; t < T; t++) {
#ifdef SLM_OPENMP
            int tid = omp_get_thread_num();
#else
            int tid = 0;
#endif
            double ce, kd;
            slm_loss_row(tc->logits + (int64_t)t * V, with_kd ? teacher->logits + (int64_t)t * V : NULL, V, tg[t], lp,
                         scale, grad, tc->loss_scratch + (int64_t)tid * 3 * V, &ce, &kd);
            ce_sum += ce;
            kd_sum += kd;
        }
        if (!grad) continue;
        const float *xb = tc->xn_f + (int64_t)b * T * D;
        if (g_head)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, D, T, 1.0f, tc->logits, V, xb, D, 1.0f, g_head, D);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, V, 1.0f, tc->logits, V, tc->m->lm_head, D, 0.0f,
                    tc->dxn + (int64_t)b * T * D, D);
    }
    res->n_pred = n_pred;
    res->ce = denom > 0 ? ce_sum / denom : 0.0;
    res->kd = denom > 0 ? kd_sum / denom : 0.0;
    res->loss = lp->ce_weight * res->ce + (with_kd ? lp->kd_weight * res->kd : 0.0);
    if (!isfinite(res->loss))
        return slm_fail(SLM_ERR_NUMERIC, "%s: the loss is not finite", tc->m->path ? tc->m->path : "model");
    return SLM_OK;
}

slm_status slm_train_loss(slm_train_ctx *tc, const int32_t *targets, slm_train_ctx *teacher,
                          const slm_loss_params *lp, slm_loss_result *res) {
    return slm_train_head_loss(tc, targets, teacher, lp, false, res);
}
