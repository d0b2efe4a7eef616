/* Optimizers (AdamW, Lion), global-norm gradient clipping and the learning
 * rate schedule.
 *
 * With g the (clipped) gradient, t the step count from 1, and decay
 * applied only to tensors that are not norms or biases:
 *   AdamW (Loshchilov & Hutter; torch.optim.AdamW):
 *     p -= lr wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *     p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
 *   Lion (Chen et al. 2023, "Symbolic discovery of optimization algorithms"):
 *     p -= lr wd p;  p -= lr sign(b1 m + (1-b1) g);  m = b2 m + (1-b2) g
 * Clipping scales every gradient by min(1, clip / (norm + 1e-6)) with norm
 * the L2 norm over all trainable tensors (torch clip_grad_norm_). Moments
 * live in arrays parallel to the view's flat gradient array.
 *
 * The update loops are memory-bound once vectorised: `omp simd` and this
 * file's -fno-math-errno (CMakeLists.txt; sqrtf otherwise keeps a scalar
 * errno path) let the compiler use vector sqrt and division, which round
 * exactly as the scalar ones, so the update is the same bit for bit.
 */
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double k_pi = 3.14159265358979323846;

struct slm_optim {
    slm_optim_params p;
    int64_t n_floats;
    float *m; /* [n_floats] first moment (AdamW), momentum (Lion) */
    float *v; /* [n_floats] second moment (AdamW only) */
    int64_t t;
    /* elastic views: steps each unit took part in (its own bias corrections,
     * as PyTorch counts state['step'] per parameter), tensor i's units from
     * unit_off[i]; and per-column factors of a column-unit tensor */
    int64_t n_units;
    int64_t *unit_t, *unit_off;
    float *col_step, *col_bc2;
};

slm_optim_params slm_optim_default_params(slm_optim_kind kind) {
    return (slm_optim_params){.kind = kind, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                              .clip_norm = 1.0f};
}

slm_status slm_optim_new(const slm_trainable *tv, const slm_optim_params *p, slm_optim **out) {
    *out = NULL;
    if (p->kind != SLM_OPTIM_ADAMW && p->kind != SLM_OPTIM_LION)
        return slm_fail(SLM_ERR_ARG, "optimizer: unknown kind %d", (int)p->kind);
    if (!(p->beta1 >= 0 && p->beta1 < 1) || !(p->beta2 >= 0 && p->beta2 < 1) || !(p->weight_decay >= 0) ||
        !(p->clip_norm >= 0) || (p->kind == SLM_OPTIM_ADAMW && !(p->eps > 0)))
        return slm_fail(SLM_ERR_ARG, "optimizer: betas (%g, %g) must be in [0, 1), eps %g > 0, weight decay %g and "
                        "clip %g >= 0", (double)p->beta1, (double)p->beta2, (double)p->eps, (double)p->weight_decay,
                        (double)p->clip_norm);
    slm_optim *o = slm_calloc(1, sizeof *o, "optimizer");
    if (!o) return SLM_ERR_NOMEM;
    o->p = *p;
    o->n_floats = tv->n_floats;
    size_t bytes = (size_t)tv->n_floats * sizeof(float);
    o->m = slm_aligned_alloc(bytes, "optimizer first moment");
    if (o->m && p->kind == SLM_OPTIM_ADAMW) o->v = slm_aligned_alloc(bytes, "optimizer second moment");
    if (!o->m || (p->kind == SLM_OPTIM_ADAMW && !o->v)) {
        slm_optim_free(o);
        return SLM_ERR_NOMEM;
    }
    memset(o->m, 0, bytes);
    if (o->v) memset(o->v, 0, bytes);
    if (tv->elastic) {
        int max_cols = 1;
        for (int i = 0; i < tv->n_tensors; i++) max_cols = tv->t[i].cols > max_cols ? tv->t[i].cols : max_cols;
        o->n_units = tv->n_units;
        o->unit_t = slm_calloc((size_t)tv->n_units, sizeof *o->unit_t, "optimizer step counts");
        o->unit_off = slm_calloc((size_t)tv->n_tensors, sizeof *o->unit_off, "optimizer step counts");
        o->col_step = slm_calloc((size_t)max_cols, 2 * sizeof(float), "optimizer factors");
        if (!o->unit_t || !o->unit_off || !o->col_step) {
            slm_optim_free(o);
            return SLM_ERR_NOMEM;
        }
        o->col_bc2 = o->col_step + max_cols;
        for (int i = 1; i < tv->n_tensors; i++) o->unit_off[i] = o->unit_off[i - 1] + tv->t[i - 1].n_units;
    }
    *out = o;
    return SLM_OK;
}

void slm_optim_free(slm_optim *o) {
    if (!o) return;
    free(o->m);
    free(o->v);
    free(o->unit_t);
    free(o->unit_off);
    free(o->col_step);
    free(o);
}

int64_t *slm_optim_unit_steps(slm_optim *o, int64_t *n) {
    *n = o->n_units;
    return o->unit_t;
}

int64_t slm_optim_steps(const slm_optim *o) { return o->t; }

const slm_optim_params *slm_optim_get_params(const slm_optim *o) { return &o->p; }

float *slm_optim_moment(slm_optim *o, int which) { return which == 0 ? o->m : which == 1 ? o->v : NULL; }

void slm_optim_set_steps(slm_optim *o, int64_t t) { o->t = t; }

/* Sum of squares of one tensor's gradient, in double (simd: partial sums
 * per vector lane, so the loop is not one chain of dependent adds). */
static double sum_sq(const float *g, int64_t n) {
    double s = 0.0;
#pragma omp parallel for simd reduction(+ : s) if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

static float adam_step(const slm_optim *o, float lr, int64_t t) { return (float)(lr / (1.0 - pow(o->p.beta1, (double)t))); }
static float adam_bc2(const slm_optim *o, int64_t t) { return (float)(1.0 / sqrt(1.0 - pow(o->p.beta2, (double)t))); }

/* t: the step count of these elements (from 1). */
static void adamw_tensor(const slm_optim *o, float *w, const float *g, float *m, float *v, int64_t n, float lr,
                         float decay, float gscale, int64_t t) {
    const float b1 = o->p.beta1, b2 = o->p.beta2, eps = o->p.eps;
    const float step = adam_step(o, lr, t);
    const float inv_bc2 = adam_bc2(o, t);
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * gscale;
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        float wi = w[i] * decay;
        w[i] = wi - step * m[i] / (sqrtf(v[i]) * inv_bc2 + eps);
    }
}

/* The first `active` columns of each of rows rows (row stride cols), each
 * column with its own bias corrections (o->col_step, o->col_bc2). */
static void adamw_cols(const slm_optim *o, float *w, const float *g, float *m, float *v, int rows, int cols,
                       int active, float decay, float gscale) {
    const float b1 = o->p.beta1, b2 = o->p.beta2, eps = o->p.eps;
    const float *cs = o->col_step, *cb = o->col_bc2;
#pragma omp parallel for if ((int64_t)rows * active > 65536) schedule(static)
    for (int r = 0; r < rows; r++) {
        int64_t off = (int64_t)r * cols;
        float *wr = w + off, *mr = m + off, *vr = v + off;
        const float *gr = g + off;
#pragma omp simd
        for (int c = 0; c < active; c++) {
            float gi = gr[c] * gscale;
            mr[c] = b1 * mr[c] + (1.0f - b1) * gi;
            vr[c] = b2 * vr[c] + (1.0f - b2) * gi * gi;
            float wi = wr[c] * decay;
            wr[c] = wi - cs[c] * mr[c] / (sqrtf(vr[c]) * cb[c] + eps);
        }
    }
}

static void lion_tensor(const slm_optim *o, float *w, const float *g, float *m, int64_t n, float lr, float decay,
                        float gscale) {
    const float b1 = o->p.beta1, b2 = o->p.beta2;
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * gscale;
        float c = b1 * m[i] + (1.0f - b1) * gi;
        float s = c > 0.0f ? 1.0f : (c < 0.0f ? -1.0f : 0.0f);
        w[i] = w[i] * decay - lr * s;
        m[i] = b2 * m[i] + (1.0f - b2) * gi;
    }
}

/* An elastic view's tensor: only its active units are updated (the others
 * had no gradient this step: skipped, as PyTorch skips a parameter whose
 * grad is None), each with its own step count ut[unit]. */
static void elastic_update(slm_optim *o, const slm_train_tensor *t, float lr, float decay, float gscale,
                           int64_t *ut) {
    float *m = o->m + t->offset, *v = o->v ? o->v + t->offset : NULL;
    const int a = t->active;
    if (a <= 0) return;
    if (t->unit_axis == 2) { /* columns */
        for (int c = 0; c < a; c++) {
            ut[c]++;
            o->col_step[c] = adam_step(o, lr, ut[c]);
            o->col_bc2[c] = adam_bc2(o, ut[c]);
        }
        if (v) {
            adamw_cols(o, t->w, t->g, m, v, t->rows, t->cols, a, decay, gscale);
        } else {
            for (int r = 0; r < t->rows; r++) {
                int64_t off = (int64_t)r * t->cols;
                lion_tensor(o, t->w + off, t->g + off, m + off, a, lr, decay, gscale);
            }
        }
        return;
    }
    /* one unit, or rows: a contiguous prefix; rows of equal count share a call */
    const int64_t per = t->unit_axis == 1 ? t->cols : t->n;
    int u = 0;
    for (int k = 0; k < a; k++) ut[k]++;
    while (u < a) {
        int e = u + 1;
        while (e < a && ut[e] == ut[u]) e++;
        int64_t off = (int64_t)u * per, n = (int64_t)(e - u) * per;
        if (v) adamw_tensor(o, t->w + off, t->g + off, m + off, v + off, n, lr, decay, gscale, ut[u]);
        else lion_tensor(o, t->w + off, t->g + off, m + off, n, lr, decay, gscale);
        u = e;
    }
}

slm_status slm_optim_step(slm_optim *o, slm_trainable *tv, float lr, double *grad_norm) {
    if (tv->n_floats != o->n_floats)
        return slm_fail(SLM_ERR_ARG, "optimizer: made for %lld parameters, the view has %lld", (long long)o->n_floats,
                        (long long)tv->n_floats);
    double ss = 0.0;
    for (int i = 0; i < tv->n_tensors; i++) {
        const slm_train_tensor *t = &tv->t[i];
        if (t->frozen || (tv->elastic && t->active == 0)) continue;
        /* a row-unit tensor's gradient is zero past its active rows */
        double s = sum_sq(t->g, tv->elastic && t->unit_axis == 1 ? (int64_t)t->active * t->cols : t->n);
        if (!isfinite(s))
            return slm_fail(SLM_ERR_NUMERIC, "optimizer: NaN or Inf in the gradient of %s (no update made)", t->name);
        ss += s;
    }
    double norm = sqrt(ss);
    if (grad_norm) *grad_norm = norm;
    float gscale = 1.0f;
    if (o->p.clip_norm > 0 && norm > o->p.clip_norm) gscale = (float)(o->p.clip_norm / (norm + 1e-6));
    o->t++;
    for (int i = 0; i < tv->n_tensors; i++) {
        slm_train_tensor *t = &tv->t[i];
        if (t->frozen) continue;
        float decay = t->no_decay ? 1.0f : 1.0f - lr * o->p.weight_decay;
        float *m = o->m + t->offset;
        if (tv->elastic) elastic_update(o, t, lr, decay, gscale, o->unit_t + o->unit_off[i]);
        else if (o->p.kind == SLM_OPTIM_ADAMW)
            adamw_tensor(o, t->w, t->g, m, o->v + t->offset, t->n, lr, decay, gscale, o->t);
        else lion_tensor(o, t->w, t->g, m, t->n, lr, decay, gscale);
    }
    return SLM_OK;
}

float slm_lr_at(const slm_lr_schedule *s, int64_t step) {
    if (step < s->warmup) return s->peak * (float)(step + 1) / (float)s->warmup;
    double span = (double)(s->total - s->warmup);
    double prog = span > 0 ? (double)(step - s->warmup) / span : 1.0;
    if (prog > 1.0) prog = 1.0;
    double f = s->final_frac;
    return (float)(s->peak * (f + (1.0 - f) * 0.5 * (1.0 + cos(k_pi * prog))));
}
