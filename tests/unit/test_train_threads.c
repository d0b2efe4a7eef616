/* The parallel paths of the training engine. The gradient-check and torch
 * tests use shapes below SLM_TRAIN_PAR_MIN, where every row loop runs on
 * one thread; here a model large enough to cross every threshold (D 256,
 * H 8, Hkv 4, F 512, V 2048, 2 x 64 tokens: RMSNorm rows and column chunks,
 * SwiGLU, RoPE, attention forward/backward tasks, the loss rows) is run
 * with 2 threads and with 1:
 *   - gradients agree to 1e-5 of each tensor's max |g| (only summation
 *     order differs: a race would show as garbage);
 *   - with 2 threads, recompute gives bit-identical gradients (each task's
 *     arithmetic does not depend on which thread runs it). */
#include "train/ops.h"
#include "train/train.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, T = 64, N = B * T };

static double run(slm_trainable *tv, const int32_t *tok, const int32_t *tgt, bool recompute, float *grad_out) {
    slm_train_ctx_params cp = {.n_seq = B, .n_tok = T, .recompute = recompute};
    slm_train_ctx *tc;
    slm_loss_params lp = slm_loss_default_params();
    slm_loss_result res = {0};
    slm_trainable_zero_grad(tv);
    CHECK(slm_train_ctx_new(tv->m, tv, &cp, &tc) == SLM_OK && slm_train_forward(tc, tok) == SLM_OK &&
              slm_train_backward(tc, tgt, NULL, &lp, &res) == SLM_OK,
          "step: %s", slm_last_error());
    slm_train_ctx_free(tc);
    memcpy(grad_out, tv->grad, sizeof(float) * (size_t)tv->n_floats);
    return res.loss;
}

int main(void) {
    slm_config cfg = {.arch = SLM_ARCH_QWEN2, .n_vocab = 2048, .d_model = 256, .n_layers = 2, .n_heads = 8,
                      .n_kv_heads = 4, .head_dim = 32, .d_ff = 512, .max_ctx = 128, .norm_eps = 1e-6f,
                      .rope_theta = 10000.0f, .attn_bias = true, .bos_id = -1, .eos_id = -1};
    CHECK((int64_t)N * cfg.d_model >= SLM_TRAIN_PAR_MIN, "shapes cross the parallel threshold");
    slm_model *m;
    if (!CHECK(slm_model_new_random(&cfg, 5, &m) == SLM_OK, "model")) return slm_test_finish();
    /* a low-rank up projection */
    slm_linear *l = &m->blocks[1].lin[SLM_PROJ_UP];
    int r = 48;
    float *a = slm_model_alloc_f32(m, (size_t)l->n_out * r, "A"), *b = slm_model_alloc_f32(m, (size_t)r * l->n_in, "B");
    for (int i = 0; i < l->n_out * r; i++) a[i] = (float)((i * 7919 % 2001) - 1000) / 4000.0f;
    for (int i = 0; i < r * l->n_in; i++) b[i] = (float)((i * 104729 % 2001) - 1000) / 16000.0f;
    l->kind = SLM_LINEAR_LOWRANK, l->rank = r, l->a = a, l->b = b, l->ld_b = l->n_in, l->w = NULL;
    slm_trainable *tv;
    if (!CHECK(slm_trainable_new(m, &tv) == SLM_OK, "view: %s", slm_last_error())) return slm_test_finish();
    int32_t tok[N], tgt[N];
    for (int n = 0; n < N; n++) tok[n] = (n * 613 + 17) % cfg.n_vocab;
    slm_targets_next_token(tok, B, T, tgt);
    float *g2 = malloc(sizeof(float) * (size_t)tv->n_floats), *g1 = malloc(sizeof(float) * (size_t)tv->n_floats);
    float *g2r = malloc(sizeof(float) * (size_t)tv->n_floats);

    slm_set_threads(2);
    double l2 = run(tv, tok, tgt, false, g2);
    double l2r = run(tv, tok, tgt, true, g2r);
    slm_set_threads(1);
    double l1 = run(tv, tok, tgt, false, g1);

    double worst = 0;
    for (int i = 0; i < tv->n_tensors; i++) {
        const slm_train_tensor *t = &tv->t[i];
        double gm = 0, d = 0;
        for (int64_t j = 0; j < t->n; j++) {
            gm = fmax(gm, fabs(g2[t->offset + j]));
            d = fmax(d, fabs(g2[t->offset + j] - g1[t->offset + j]));
        }
        CHECK(gm > 0 && d <= 1e-5 * gm, "%s: 2 vs 1 threads differ by %.3g (max|g| %.3g)", t->name, d, gm);
        worst = fmax(worst, gm > 0 ? d / gm : INFINITY);
    }
    printf("loss 2 threads %.9f, 1 thread %.9f; gradients max|d| / max|g| per tensor: %.2e (tol 1e-5)\n", l2, l1,
           worst);
    CHECK(fabs(l2 - l1) <= 1e-6 * l1, "loss 2 vs 1 threads");
    bool same = l2 == l2r && memcmp(g2, g2r, sizeof(float) * (size_t)tv->n_floats) == 0;
    printf("2 threads, recompute vs stored activations: %s\n", same ? "bit-identical" : "DIFFERENT");
    CHECK(same, "recompute with threads gives identical gradients");
    free(g1), free(g2), free(g2r);
    slm_trainable_free(tv);
    slm_model_free(m);
    return slm_test_finish();
}
