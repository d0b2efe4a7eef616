/* The training backward against PyTorch (tests/golden/train_grads.json,
 * tools/make_train_golden.py): transformers' LlamaForCausalLM /
 * Qwen2ForCausalLM loss with labels and loss.backward() on three HF
 * checkpoints loaded in fp32 (tiny-random-LlamaForCausalLM: MHA, untied,
 * V 32000; a random Qwen2: GQA, q/k/v biases, tied; a random Llama with
 * llama3 RoPE scaling and MQA), 2 sequences of 12 tokens, one label ignored.
 * Checked: the loss (relative 1e-5), every parameter's gradient L2 norm
 * (relative 1e-4) and 16 sampled gradient values per tensor (the 8 largest
 * and 8 random; |c - torch| <= 1e-4 * max|g| of the tensor). Both sides
 * compute in fp32 with different summation orders; measured errors are
 * printed (docs/train.md). */
#include "train/train.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double k_tol_loss = 1e-5, k_tol_norm = 1e-4, k_tol_val = 1e-4;

static const char *model_path(const char *rel) {
    if (strncmp(rel, "data:", 5) == 0) return slm_test_path(slm_test_env("SLM_DATA_DIR", "../shared/data"), rel + 5);
    return slm_test_path(slm_test_env("SLM_GOLDEN_DIR", "tests/golden"), rel + 7);
}

static void run_case(const cJSON *cs) {
    const char *rel = cJSON_GetObjectItem(cs, "model")->valuestring;
    int B = cJSON_GetObjectItem(cs, "B")->valueint, T = cJSON_GetObjectItem(cs, "T")->valueint, N = B * T;
    printf("== %s\n", rel);
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = false;
    slm_model *m;
    const char *path = model_path(rel);
    if (!CHECK(slm_model_load(path, &lp, &m) == SLM_OK, "load %s: %s", path, slm_last_error())) return;
    slm_trainable *tv;
    if (!CHECK(slm_trainable_new(m, &tv) == SLM_OK, "view: %s", slm_last_error())) return;
    int32_t *tok = malloc(sizeof(int32_t) * N), *tgt = malloc(sizeof(int32_t) * N);
    const cJSON *jt = cJSON_GetObjectItem(cs, "tokens"), *jl = cJSON_GetObjectItem(cs, "labels");
    for (int n = 0; n < N; n++) tok[n] = cJSON_GetArrayItem(jt, n)->valueint;
    /* HF shifts labels inside the model: position t predicts labels[t+1]. */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int y = t + 1 < T ? cJSON_GetArrayItem(jl, b * T + t + 1)->valueint : -1;
            tgt[b * T + t] = y < 0 ? -1 : y;
        }
    slm_train_ctx_params cp = {.n_seq = B, .n_tok = T};
    slm_train_ctx *tc;
    slm_loss_params lsp = slm_loss_default_params();
    slm_loss_result res;
    bool ok = CHECK(slm_train_ctx_new(m, tv, &cp, &tc) == SLM_OK, "ctx: %s", slm_last_error()) &&
              CHECK(slm_train_forward(tc, tok) == SLM_OK, "forward: %s", slm_last_error()) &&
              CHECK(slm_train_backward(tc, tgt, NULL, &lsp, &res) == SLM_OK, "backward: %s", slm_last_error());
    if (ok) {
        double want = cJSON_GetObjectItem(cs, "loss")->valuedouble;
        double rel_err = fabs(res.loss - want) / want;
        printf("  loss %.8f vs torch %.8f: relative error %.2e (tol %.0e)\n", res.loss, want, rel_err, k_tol_loss);
        CHECK(rel_err <= k_tol_loss, "%s: loss %.8f vs torch %.8f", rel, res.loss, want);
        const cJSON *ts = cJSON_GetObjectItem(cs, "tensors"), *t;
        double worst_norm = 0, worst_val = 0;
        int n_t = 0, n_vals = 0;
        cJSON_ArrayForEach(t, ts) {
            const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
            int ix = slm_trainable_find(tv, name);
            if (!CHECK(ix >= 0, "%s: no tensor %s in the trainable view", rel, name)) continue;
            const slm_train_tensor *st = &tv->t[ix];
            double nrm = 0;
            for (int64_t i = 0; i < st->n; i++) nrm += (double)st->g[i] * st->g[i];
            nrm = sqrt(nrm);
            double want_n = cJSON_GetObjectItem(t, "grad_norm")->valuedouble;
            double gmax = cJSON_GetObjectItem(t, "grad_max")->valuedouble;
            double en = fabs(nrm - want_n) / want_n, ev = 0;
            const cJSON *s;
            cJSON_ArrayForEach(s, cJSON_GetObjectItem(t, "samples")) {
                int64_t i = (int64_t)cJSON_GetArrayItem(s, 0)->valuedouble;
                double v = cJSON_GetArrayItem(s, 1)->valuedouble;
                if (!CHECK(i >= 0 && i < st->n, "%s: index %lld", name, (long long)i)) continue;
                ev = fmax(ev, fabs(st->g[i] - v) / gmax);
                n_vals++;
            }
            CHECK(en <= k_tol_norm, "%s: %s gradient norm %.8g vs torch %.8g (%.2e)", rel, name, nrm, want_n, en);
            CHECK(ev <= k_tol_val, "%s: %s sampled gradients differ by %.2e of max|g| %.3g", rel, name, ev, gmax);
            worst_norm = fmax(worst_norm, en);
            worst_val = fmax(worst_val, ev);
            n_t++;
        }
        printf("  %d tensors (view has %d): gradient norms max relative error %.2e (tol %.0e); "
               "%d sampled values max error %.2e of the tensor's max|g| (tol %.0e)\n",
               n_t, tv->n_tensors, worst_norm, k_tol_norm, n_vals, worst_val, k_tol_val);
        CHECK(n_t == tv->n_tensors, "every tensor of the view is in the golden");
    }
    slm_train_ctx_free(tc);
    slm_trainable_free(tv);
    slm_model_free(m);
    free(tok), free(tgt);
}

int main(void) {
    slm_set_threads(2);
    const char *gp = slm_test_path(slm_test_env("SLM_GOLDEN_DIR", "tests/golden"), "train_grads.json");
    char *txt = slm_test_read_file(gp, NULL);
    cJSON *root = txt ? cJSON_Parse(txt) : NULL;
    if (!CHECK(root != NULL, "read %s", gp)) return slm_test_finish();
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItem(root, "cases")) run_case(cs);
    cJSON_Delete(root);
    free(txt);
    return slm_test_finish();
}
