/* Distillation terms on intermediate activations, and the normalisation
 * that puts every distillation term on the cross-entropy's scale.
 *
 * Relation KD (MiniLM, Wang et al. 2020), on the last kept block of the
 * student and of the teacher, with the heads attention itself uses: for
 * sequence b, query head h (key/value head g = h / (H/Hkv)) and row i,
 *   A_i = softmax_{j<=i}(q_i . k_j / sqrt(Dh))   attention distribution, H heads
 *   R_i = softmax_{j<=i}(v_i . v_j / sqrt(Dh))   value relation, Hkv heads
 *   L_rel = mean_{b,h,i} KL(A^t_i || A^s_i) + mean_{b,g,i} KL(R^t_i || R^s_i)
 * q and k after RoPE, each model with its own Dh (so head widths may
 * differ; head counts must agree). With s the student's scaled scores,
 *   dKL/ds_ij = ps_ij - pt_ij;  dq_i += sum_j ds_ij k_j / sqrt(Dh);
 *   dk_j += ds_ij q_i / sqrt(Dh);  dv_i, dv_j both get the V.V^T terms.
 *
 * Homotopic / TinyBERT-style KD: mean squared errors (over the N x D
 * elements) of the embeddings, of each kept student block's output
 * (residual stream) and of its attention output against the teacher block
 * it came from:
 *   L_hid = MSE(e^s, e^t) + sum_l [MSE(h^s_l, h^t_src(l)) + MSE(a^s_l, a^t_src(l))]
 *
 * Both add grad_scale * dL into the student's injection buffers, which the
 * backward (backward.c) adds where the activations were made; the caller
 * picks grad_scale = lambda * CE / L (slm_kd_norm_scale). Sums in double.
 */
#include "train/ops.h"
#include "train/train_ctx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef SLM_OPENMP
#include <omp.h>
#endif

double slm_kd_norm_scale(double lambda, double ce, double term) {
    return term > 1e-12 && isfinite(term) ? lambda * ce / term : 0.0;
}

static slm_status check_pair(const slm_train_ctx *s, const slm_train_ctx *t, const char *what) {
    if (!s->have_forward || !t || !t->have_forward)
        return slm_fail(SLM_ERR_STATE, "train: %s KD needs student and teacher forwards on the same tokens", what);
    if (s->B != t->B || s->T != t->T || memcmp(s->tokens, t->tokens, (size_t)s->N * sizeof(int32_t)) != 0)
        return slm_fail(SLM_ERR_ARG, "train: %s KD: the teacher ran on other tokens than the student", what);
    return SLM_OK;
}

/* ---- relation KD ---------------------------------------------------------------------- */

/* One head of one side: row i's query vector x (q_i or v_i) and the key
 * vectors y_j (k_j or v_j) at y + j * ldy, Dh wide, scaled by inv. */
typedef struct rel_head {
    const float *x, *y;
    int64_t ldy;
    int Dh;
    double inv;
} rel_head;

/* log-softmax of s[0..n) in place (double). */
static void log_softmax(double *s, int n) {
    double mx = s[0], sum = 0.0;
    for (int j = 1; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    for (int j = 0; j < n; j++) sum += exp(s[j] - mx);
    double lse = mx + log(sum);
    for (int j = 0; j < n; j++) s[j] -= lse;
}

static double dot(const float *a, const float *b, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* KL(pt || ps) of row i over keys j <= i; with grad, ls[j] = ps_j - pt_j
 * (dKL/ds_j) on return. ls, lt: scratch [i + 1]. */
static double rel_row(const rel_head *s, const rel_head *t, int i, double *ls, double *lt, bool grad) {
    for (int j = 0; j <= i; j++) {
        ls[j] = dot(s->x, s->y + j * s->ldy, s->Dh) * s->inv;
        lt[j] = dot(t->x, t->y + j * t->ldy, t->Dh) * t->inv;
    }
    log_softmax(ls, i + 1);
    log_softmax(lt, i + 1);
    double kl = 0.0;
    for (int j = 0; j <= i; j++) {
        double pt = exp(lt[j]);
        kl += pt * (lt[j] - ls[j]);
        if (grad) ls[j] = exp(ls[j]) - pt;
    }
    return kl;
}

/* Student gradient of one row: dx += c sum_j ds_j y_j, dy_j += c ds_j x
 * (x and y the student's vectors; dx, dy at the same offsets in the
 * gradient buffers; acc scratch [Dh]). */
static void rel_row_grad(const rel_head *s, const double *ds, int i, double c, float *dx, float *dy, double *acc) {
    const int Dh = s->Dh;
    for (int d = 0; d < Dh; d++) acc[d] = 0.0;
    for (int j = 0; j <= i; j++) {
        const float *yj = s->y + j * s->ldy;
        float *dyj = dy + j * s->ldy;
        double w = ds[j] * c;
        for (int d = 0; d < Dh; d++) {
            acc[d] += w * yj[d];
            dyj[d] += (float)(w * s->x[d]);
        }
    }
    for (int d = 0; d < Dh; d++) dx[d] += (float)acc[d];
}

slm_status slm_kd_relation(slm_train_ctx *student, const slm_train_ctx *teacher, float grad_scale, double *value) {
    *value = 0.0;
    slm_status st = check_pair(student, teacher, "relation");
    if (st) return st;
    const slm_config *cs = &student->m->cfg, *ct = &teacher->m->cfg;
    if (cs->n_heads != ct->n_heads || cs->n_kv_heads != ct->n_kv_heads)
        return slm_fail(SLM_ERR_ARG, "train: relation KD needs the same heads in student and teacher (student %d/%d, "
                        "teacher %d/%d query/key-value heads)", cs->n_heads, cs->n_kv_heads, ct->n_heads,
                        ct->n_kv_heads);
    const float *qs, *ks, *vs, *qt, *kt, *vt;
    if ((st = slm_train_last_qkv(student, &qs, &ks, &vs, NULL)) || (st = slm_train_last_qkv(teacher, &qt, &kt, &vt, NULL)))
        return st;
    const bool grad = grad_scale != 0.0f;
    float *dq = NULL, *dk = NULL, *dv = NULL;
    if (grad && (!(dq = slm_train_qkv_grad(student, 0)) || !(dk = slm_train_qkv_grad(student, 1)) ||
                 !(dv = slm_train_qkv_grad(student, 2))))
        return SLM_ERR_NOMEM;
    const int B = student->B, T = student->T, H = cs->n_heads, G = cs->n_kv_heads, per = H / G;
    const int Ds = cs->head_dim, Dt = ct->head_dim;
    const int64_t Qs = (int64_t)H * Ds, KVs = (int64_t)G * Ds, Qt = (int64_t)H * Dt, KVt = (int64_t)G * Dt;
    const double inv_s = 1.0 / sqrt((double)Ds), inv_t = 1.0 / sqrt((double)Dt);
    /* d L / d s_ij, with the 1/sqrt(Dh) of the score folded in */
    const double c_qk = (double)grad_scale / ((double)B * T * H) * inv_s;
    const double c_vv = (double)grad_scale / ((double)B * T * G) * inv_s;
    double sum_qk = 0.0, sum_vv = 0.0;
    int nomem = 0;
    const int n_items = B * G; /* (sequence, kv head): disjoint gradient rows and columns */
    const int64_t work = (int64_t)B * (H + G) * T * T * (Ds + Dt) / 2;
#pragma omp parallel num_threads(student->n_threads) if (n_items > 1 && work >= SLM_TRAIN_PAR_MIN) \
    reduction(+ : sum_qk, sum_vv, nomem)
    {
        double *ls = malloc(sizeof(double) * (2 * (size_t)T + (size_t)Ds));
        double *lt = ls ? ls + T : NULL, *acc = ls ? ls + 2 * (size_t)T : NULL;
        nomem += !ls;
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < n_items; it++) {
            if (!ls) continue;
            const int b = it / G, g = it % G;
            const int64_t r0 = (int64_t)b * T; /* first row of the sequence */
            for (int h = g * per; h < (g + 1) * per; h++)
                for (int i = 0; i < T; i++) {
                    rel_head s = {qs + (r0 + i) * Qs + (int64_t)h * Ds, ks + r0 * KVs + (int64_t)g * Ds, KVs, Ds, inv_s};
                    rel_head t = {qt + (r0 + i) * Qt + (int64_t)h * Dt, kt + r0 * KVt + (int64_t)g * Dt, KVt, Dt, inv_t};
                    sum_qk += rel_row(&s, &t, i, ls, lt, grad);
                    if (grad)
                        rel_row_grad(&s, ls, i, c_qk, dq + (r0 + i) * Qs + (int64_t)h * Ds,
                                     dk + r0 * KVs + (int64_t)g * Ds, acc);
                }
            for (int i = 0; i < T; i++) {
                rel_head s = {vs + (r0 + i) * KVs + (int64_t)g * Ds, vs + r0 * KVs + (int64_t)g * Ds, KVs, Ds, inv_s};
                rel_head t = {vt + (r0 + i) * KVt + (int64_t)g * Dt, vt + r0 * KVt + (int64_t)g * Dt, KVt, Dt, inv_t};
                sum_vv += rel_row(&s, &t, i, ls, lt, grad);
                if (grad)
                    rel_row_grad(&s, ls, i, c_vv, dv + (r0 + i) * KVs + (int64_t)g * Ds, dv + r0 * KVs + (int64_t)g * Ds,
                                 acc);
            }
        }
        free(ls);
    }
    if (nomem) return slm_fail(SLM_ERR_NOMEM, "train: relation KD scratch");
    *value = sum_qk / ((double)B * T * H) + sum_vv / ((double)B * T * G);
    if (!isfinite(*value)) return slm_fail(SLM_ERR_NUMERIC, "train: the relation KD loss is not finite");
    return SLM_OK;
}

/* ---- homotopic (hidden-state) KD ------------------------------------------------------------ */

/* sum over n elements of (s - t)^2; with grad, g += c (s - t). */
static double sq_diff(const float *s, const float *t, int64_t n, float *g, double c) {
    double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (n >= SLM_TRAIN_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double d = (double)s[i] - t[i];
        sum += d * d;
        if (g) g[i] += (float)(c * d);
    }
    return sum;
}

slm_status slm_kd_hidden(slm_train_ctx *student, const slm_train_ctx *teacher, const int *src, float grad_scale,
                         double *value, slm_kd_hidden_parts *parts) {
    *value = 0.0;
    slm_kd_hidden_parts pp = {0};
    slm_status st = check_pair(student, teacher, "homotopic");
    if (st) return st;
    const slm_model *ms = student->m, *mt = teacher->m;
    const int Ls = ms->cfg.n_layers, Lt = mt->cfg.n_layers, D = ms->cfg.d_model;
    if (mt->cfg.d_model != D)
        return slm_fail(SLM_ERR_ARG, "train: homotopic KD needs the same model width (student %d, teacher %d)", D,
                        mt->cfg.d_model);
    if (!student->keep_attn_out || !teacher->keep_attn_out)
        return slm_fail(SLM_ERR_STATE, "train: homotopic KD needs contexts made with keep_attn_out");
    for (int l = 0; l < Ls; l++) {
        if (!ms->blocks[l].kept) continue;
        if (src[l] < 0 || src[l] >= Lt || !mt->blocks[src[l]].kept)
            return slm_fail(SLM_ERR_ARG, "train: homotopic KD: student block %d maps to teacher block %d, which the "
                            "teacher does not have (0..%d)", l, src[l], Lt - 1);
    }
    const int64_t n = (int64_t)student->N * D;
    const double c = 2.0 * grad_scale / (double)n; /* d MSE / d s = 2 (s - t) / n */
    const bool grad = grad_scale != 0.0f;
    float *g = grad ? slm_train_hidden_grad(student, 0) : NULL;
    if (grad && !g) return SLM_ERR_NOMEM;
    pp.emb = sq_diff(student->hidden[0], teacher->hidden[0], n, g, c) / (double)n;
    for (int l = 0; l < Ls; l++) {
        if (!ms->blocks[l].kept) continue;
        g = grad ? slm_train_hidden_grad(student, l + 1) : NULL;
        if (grad && !g) return SLM_ERR_NOMEM;
        pp.hidden += sq_diff(student->hidden[l + 1], teacher->hidden[src[l] + 1], n, g, c) / (double)n;
        g = grad ? slm_train_attn_out_grad(student, l) : NULL;
        if (grad && !g) return SLM_ERR_NOMEM;
        pp.attn += sq_diff(student->attn_out[l], teacher->attn_out[src[l]], n, g, c) / (double)n;
        pp.n_blocks++;
    }
    *value = pp.emb + pp.hidden + pp.attn;
    if (parts) *parts = pp;
    if (!isfinite(*value)) return slm_fail(SLM_ERR_NUMERIC, "train: the homotopic KD loss is not finite");
    return SLM_OK;
}

/* ---- the combined loss -------------------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned terms;
} k_kd_names[] = {
    {"none", 0},
    {"vanilla", SLM_KD_LOGITS},
    {"minilm", SLM_KD_RELATION},
    {"hidden", SLM_KD_HIDDEN},
    {"homotopic", SLM_KD_HIDDEN | SLM_KD_LOGITS},
};
#define N_KD_NAMES (int)(sizeof k_kd_names / sizeof k_kd_names[0])

slm_status slm_kd_parse(const char *s, unsigned *terms) {
    *terms = 0;
    const char *p = s;
    while (*p) {
        size_t n = strcspn(p, "+");
        int k = 0;
        while (k < N_KD_NAMES && !(strlen(k_kd_names[k].name) == n && strncmp(k_kd_names[k].name, p, n) == 0)) k++;
        if (k == N_KD_NAMES)
            return slm_fail(SLM_ERR_ARG, "--kd %s: unknown distillation '%.*s' (known: none, vanilla, minilm, "
                            "homotopic, hidden, joined by '+')", s, (int)n, p);
        *terms |= k_kd_names[k].terms;
        p += n;
        if (*p == '+') p++;
    }
    if (p == s) return slm_fail(SLM_ERR_ARG, "--kd: empty (none, vanilla, minilm, homotopic, hidden)");
    return SLM_OK;
}

const char *slm_kd_name(unsigned terms, char *buf, size_t cap) {
    static const char *names[] = {"vanilla", "minilm", "hidden"};
    size_t n = 0;
    buf[0] = 0;
    if (terms == (SLM_KD_HIDDEN | SLM_KD_LOGITS)) return snprintf(buf, cap, "homotopic"), buf;
    for (int i = 0; i < 3; i++)
        if (terms & (1u << i)) n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", n ? "+" : "", names[i]);
    if (!terms) snprintf(buf, cap, "none");
    return buf;
}

slm_status slm_train_microstep(slm_train_ctx *student, slm_train_ctx *teacher, const int32_t *tokens,
                               const int32_t *targets, double denom, const slm_kd_params *kp, slm_kd_result *res) {
    memset(res, 0, sizeof *res);
    const unsigned terms = kp ? kp->terms : 0;
    if (terms && !teacher) return slm_fail(SLM_ERR_ARG, "train: distillation needs a teacher");
    if ((terms & SLM_KD_HIDDEN) && !kp->src) return slm_fail(SLM_ERR_ARG, "train: homotopic KD needs the block map");
    slm_status st = slm_train_forward(student, tokens);
    if (!st && terms) st = slm_train_forward(teacher, tokens);
    if (!st && (terms & SLM_KD_RELATION)) st = slm_kd_relation(student, teacher, 0.0f, &res->rel);
    if (!st && (terms & SLM_KD_HIDDEN)) st = slm_kd_hidden(student, teacher, kp->src, 0.0f, &res->hid, &res->parts);
    if (st) return st;
    slm_loss_params lp = slm_loss_default_params();
    lp.denom = denom;
    if (terms & SLM_KD_LOGITS) {
        slm_loss_result l0;
        lp.kd_weight = 1.0f;
        lp.kd_temperature = kp->tau;
        if ((st = slm_train_loss(student, targets, teacher, &lp, &l0))) return st;
        res->logits = l0.kd;
        res->scale_logits = slm_kd_norm_scale(kp->lambda, l0.ce, l0.kd);
        lp.kd_weight = (float)res->scale_logits;
    }
    slm_loss_result hr;
    if ((st = slm_train_backward_head(student, targets, teacher, &lp, &hr))) return st;
    res->ce = hr.ce;
    res->n_pred = hr.n_pred;
    if (terms & SLM_KD_RELATION) {
        double v;
        res->scale_rel = slm_kd_norm_scale(kp->lambda, res->ce, res->rel);
        if (res->scale_rel != 0.0 && (st = slm_kd_relation(student, teacher, (float)res->scale_rel, &v))) return st;
    }
    if (terms & SLM_KD_HIDDEN) {
        double v;
        res->scale_hid = slm_kd_norm_scale(kp->lambda, res->ce, res->hid);
        if (res->scale_hid != 0.0 && (st = slm_kd_hidden(student, teacher, kp->src, (float)res->scale_hid, &v, NULL)))
            return st;
    }
    res->loss = res->ce + res->scale_logits * res->logits + res->scale_rel * res->rel + res->scale_hid * res->hid;
    return slm_train_backward_blocks(student);
}
