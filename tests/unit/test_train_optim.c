/* Optimizers, schedule and loss rows against PyTorch / written-out
 * references (tests/golden/train_optim.json, tools/make_train_golden.py):
 *   - four AdamW steps vs torch.optim.AdamW (betas 0.9/0.95, eps 1e-8,
 *     weight decay 0.1 on the weight, none on the norm and bias) after
 *     torch.nn.utils.clip_grad_norm_(1.0), with the warm-up + cosine lr;
 *   - four Lion steps vs Lion written out in float64 (Chen et al. 2023);
 *   - a frozen tensor never moves; a NaN gradient stops the step untouched;
 *   - the lr schedule's values and end points;
 *   - CE rows vs F.cross_entropy (ignore_index) and KD rows vs
 *     F.kl_div(log_softmax(s/2), softmax(t/2), 'batchmean') * 4, values and
 *     gradients w.r.t. the student logits.
 * Tolerances: parameters 2e-6 absolute (values O(1), fp32 updates of ~1e-2),
 * clip norms and lr 1e-6 relative, losses 1e-6 relative, loss gradients 1e-6. */
#include "train/train.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *k_names[4] = {"w", "norm", "bias", "frozen"};

static void fill(float *dst, const cJSON *arr) {
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) dst[i++] = (float)v->valuedouble;
}

/* A view over four synthetic tensors (no model: the optimizer needs none). */
static slm_trainable *make_view(const cJSON *g) {
    const cJSON *shapes = cJSON_GetObjectItem(g, "shapes"), *p0 = cJSON_GetObjectItem(g, "p0");
    slm_trainable *tv = calloc(1, sizeof *tv);
    tv->t = calloc(4, sizeof *tv->t);
    tv->n_tensors = 4;
    for (int k = 0; k < 4; k++) tv->n_floats += cJSON_GetObjectItem(shapes, k_names[k])->valueint;
    float *w = malloc(sizeof(float) * (size_t)tv->n_floats);
    tv->grad = calloc((size_t)tv->n_floats, sizeof(float));
    int64_t off = 0;
    for (int k = 0; k < 4; k++) {
        slm_train_tensor *t = &tv->t[k];
        snprintf(t->name, sizeof t->name, "%s", k_names[k]);
        t->n = t->cols = cJSON_GetObjectItem(shapes, k_names[k])->valueint;
        t->rows = 1;
        t->offset = off;
        t->w = w + off;
        t->g = tv->grad + off;
        t->no_decay = k == 1 || k == 2;
        t->frozen = k == 3;
        fill(t->w, cJSON_GetObjectItem(p0, k_names[k]));
        off += t->n;
    }
    return tv;
}

static void free_view(slm_trainable *tv) {
    free(tv->t[0].w);
    free(tv->grad);
    free(tv->t);
    free(tv);
}

static void run_optim(const cJSON *g, slm_optim_kind kind, const char *key) {
    const cJSON *hp = cJSON_GetObjectItem(g, "hyper"), *sc = cJSON_GetObjectItem(g, "schedule");
    slm_trainable *tv = make_view(g);
    float *frozen0 = malloc(sizeof(float) * (size_t)tv->t[3].n);
    memcpy(frozen0, tv->t[3].w, sizeof(float) * (size_t)tv->t[3].n);
    slm_optim_params op = slm_optim_default_params(kind);
    CHECK(op.beta1 == 0.9f && op.beta2 == 0.95f, "default betas (0.9, 0.95)");
    op.eps = (float)cJSON_GetObjectItem(hp, "eps")->valuedouble;
    op.weight_decay = (float)cJSON_GetObjectItem(hp, "weight_decay")->valuedouble;
    op.clip_norm = (float)cJSON_GetObjectItem(hp, "clip_norm")->valuedouble;
    slm_lr_schedule sch = {.peak = (float)cJSON_GetObjectItem(sc, "peak")->valuedouble,
                           .warmup = cJSON_GetObjectItem(sc, "warmup")->valueint,
                           .total = cJSON_GetObjectItem(sc, "total")->valueint,
                           .final_frac = (float)cJSON_GetObjectItem(sc, "final_frac")->valuedouble};
    slm_optim *o;
    if (!CHECK(slm_optim_new(tv, &op, &o) == SLM_OK, "optim: %s", slm_last_error())) return;
    const cJSON *grads = cJSON_GetObjectItem(g, "grads"), *want = cJSON_GetObjectItem(g, key);
    double worst_p = 0, worst_n = 0, worst_lr = 0;
    for (int s = 0; s < cJSON_GetArraySize(grads); s++) {
        const cJSON *gs = cJSON_GetArrayItem(grads, s), *ws = cJSON_GetArrayItem(want, s);
        for (int k = 0; k < 4; k++) fill(tv->t[k].g, cJSON_GetObjectItem(gs, k_names[k]));
        float lr = slm_lr_at(&sch, s);
        double want_lr = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "lr"), s)->valuedouble;
        worst_lr = fmax(worst_lr, fabs(lr - want_lr) / want_lr);
        double norm;
        CHECK(slm_optim_step(o, tv, lr, &norm) == SLM_OK, "step %d: %s", s, slm_last_error());
        double want_n = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "clip_norms"), s)->valuedouble;
        worst_n = fmax(worst_n, fabs(norm - want_n) / want_n);
        for (int k = 0; k < 3; k++) {
            const cJSON *arr = cJSON_GetObjectItem(ws, k_names[k]);
            for (int i = 0; i < tv->t[k].n; i++)
                worst_p = fmax(worst_p, fabs(tv->t[k].w[i] - cJSON_GetArrayItem(arr, i)->valuedouble));
        }
    }
    printf("%s: %d steps: params max|d| %.2e (tol 2e-6), global norms rel %.2e, lr rel %.2e\n", key,
           (int)slm_optim_steps(o), worst_p, worst_n, worst_lr);
    CHECK(worst_p <= 2e-6, "%s: parameters differ by %.3g", key, worst_p);
    CHECK(worst_n <= 1e-6 && worst_lr <= 1e-6, "%s: norm %.3g lr %.3g", key, worst_n, worst_lr);
    CHECK(memcmp(frozen0, tv->t[3].w, sizeof(float) * (size_t)tv->t[3].n) == 0, "%s: frozen tensor unchanged", key);

    /* a NaN gradient: refused, nothing moves */
    float *before = malloc(sizeof(float) * (size_t)tv->n_floats);
    memcpy(before, tv->t[0].w, sizeof(float) * (size_t)tv->n_floats);
    tv->t[2].g[1] = NAN;
    CHECK(slm_optim_step(o, tv, 1e-3f, NULL) == SLM_ERR_NUMERIC && strstr(slm_last_error(), "bias"),
          "NaN gradient refused naming the tensor: %s", slm_last_error());
    CHECK(memcmp(before, tv->t[0].w, sizeof(float) * (size_t)tv->n_floats) == 0 && slm_optim_steps(o) == 4,
          "no update after a refused step");
    free(before);
    free(frozen0);
    slm_optim_free(o);
    free_view(tv);
}

static void test_schedule(void) {
    slm_lr_schedule s = {.peak = 3e-4f, .warmup = 10, .total = 110, .final_frac = 0.1f};
    CHECK(fabsf(slm_lr_at(&s, 0) - 3e-5f) < 1e-10f, "first warm-up step peak/warmup");
    CHECK(fabsf(slm_lr_at(&s, 9) - 3e-4f) < 1e-10f, "warm-up ends at peak");
    CHECK(fabsf(slm_lr_at(&s, 10) - 3e-4f) < 1e-10f, "decay starts at peak");
    CHECK(fabsf(slm_lr_at(&s, 60) - 3e-4f * 0.55f) < 1e-9f, "half way: (peak + 10%% of peak) / 2");
    CHECK(fabsf(slm_lr_at(&s, 110) - 3e-5f) < 1e-10f && fabsf(slm_lr_at(&s, 500) - 3e-5f) < 1e-10f,
          "ends and stays at 10%% of peak");
    bool mono = true;
    for (int i = 11; i < 120; i++) mono = mono && slm_lr_at(&s, i) <= slm_lr_at(&s, i - 1);
    CHECK(mono, "cosine decay is monotone");
    printf("schedule: lr(0) %.3g lr(9) %.3g lr(60) %.3g lr(110) %.3g\n", slm_lr_at(&s, 0), slm_lr_at(&s, 9),
           slm_lr_at(&s, 60), slm_lr_at(&s, 110));
}

static void test_loss_rows(const cJSON *g) {
    const cJSON *lr = cJSON_GetObjectItem(g, "loss_rows");
    int R = cJSON_GetObjectItem(lr, "R")->valueint, V = cJSON_GetObjectItem(lr, "V")->valueint;
    float tau = (float)cJSON_GetObjectItem(lr, "tau")->valuedouble;
    float *s = malloc(sizeof(float) * R * V), *t = malloc(sizeof(float) * R * V), *z = malloc(sizeof(float) * V);
    float *zt = malloc(sizeof(float) * V), *scr = malloc(sizeof(float) * 3 * V);
    float *gce = malloc(sizeof(float) * R * V), *gkd = malloc(sizeof(float) * R * V);
    fill(s, cJSON_GetObjectItem(lr, "student"));
    fill(t, cJSON_GetObjectItem(lr, "teacher"));
    fill(gce, cJSON_GetObjectItem(lr, "ce_grad"));
    fill(gkd, cJSON_GetObjectItem(lr, "kd_grad"));
    const cJSON *tg = cJSON_GetObjectItem(lr, "targets");
    int n_pred = 0;
    for (int r = 0; r < R; r++) n_pred += cJSON_GetArrayItem(tg, r)->valueint >= 0;
    slm_loss_params ce_p = slm_loss_default_params();
    slm_loss_params kd_p = {.ce_weight = 0.0f, .kd_weight = 1.0f, .kd_temperature = tau};
    double ce_sum = 0, kd_sum = 0, ce_gerr = 0, kd_gerr = 0;
    for (int r = 0; r < R; r++) {
        int y = cJSON_GetArrayItem(tg, r)->valueint;
        double ce, kd;
        memcpy(z, s + r * V, sizeof(float) * V);
        slm_loss_row(z, NULL, V, y < 0 ? -1 : y, &ce_p, 1.0f / n_pred, true, scr, &ce, &kd);
        ce_sum += ce;
        for (int i = 0; i < V; i++) ce_gerr = fmax(ce_gerr, fabs(z[i] - gce[r * V + i]));
        /* torch's batchmean KD covers every row: give each a (any) target */
        memcpy(z, s + r * V, sizeof(float) * V);
        memcpy(zt, t + r * V, sizeof(float) * V);
        slm_loss_row(z, zt, V, 0, &kd_p, 1.0f / R, true, scr, &ce, &kd);
        kd_sum += kd;
        for (int i = 0; i < V; i++) kd_gerr = fmax(kd_gerr, fabs(z[i] - gkd[r * V + i]));
    }
    double ce_want = cJSON_GetObjectItem(lr, "ce")->valuedouble, kd_want = cJSON_GetObjectItem(lr, "kd")->valuedouble;
    double ce_e = fabs(ce_sum / n_pred - ce_want) / ce_want, kd_e = fabs(kd_sum / R - kd_want) / kd_want;
    printf("CE rows vs F.cross_entropy: loss rel %.2e, grad max|d| %.2e\n", ce_e, ce_gerr);
    printf("KD rows (tau %.0f) vs F.kl_div batchmean * tau^2: loss rel %.2e, grad max|d| %.2e\n", tau, kd_e, kd_gerr);
    CHECK(ce_e <= 1e-6 && ce_gerr <= 1e-6, "CE vs torch: %.3g %.3g", ce_e, ce_gerr);
    CHECK(kd_e <= 1e-6 && kd_gerr <= 1e-6, "KD vs torch: %.3g %.3g", kd_e, kd_gerr);
    free(s), free(t), free(z), free(zt), free(scr), free(gce), free(gkd);
}

int main(void) {
    const char *gp = slm_test_path(slm_test_env("SLM_GOLDEN_DIR", "tests/golden"), "train_optim.json");
    char *txt = slm_test_read_file(gp, NULL);
    cJSON *g = txt ? cJSON_Parse(txt) : NULL;
    if (!CHECK(g != NULL, "read %s", gp)) return slm_test_finish();
    run_optim(g, SLM_OPTIM_ADAMW, "adamw");
    run_optim(g, SLM_OPTIM_LION, "lion");
    test_schedule();
    test_loss_rows(g);
    cJSON_Delete(g);
    free(txt);
    return slm_test_finish();
}
