/* The combined, normalised distillation loss against PyTorch
 * (tests/golden/train_kd.json, tools/make_train_golden.py kd_case):
 * teacher hf_qwen2_tiny (GQA 4/2, q/k/v biases, tied), student the same
 * model with block 0 dropped, 2 x 12 tokens, lambda 0.5, tau 2, every term
 * on (vanilla + MiniLM relation + homotopic = "vanilla+minilm+hidden").
 * Checked: CE, each raw term and the total loss (relative 1e-5), each
 * student parameter's gradient norm (relative 1e-4) and sampled values
 * (1e-4 of the tensor's max|g|). Also: --kd names, and the one-line errors
 * of mismatched heads, a missing keep_attn_out and a bad block map. */
#include "train/train.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double k_tol_val = 1e-5, k_tol_norm = 1e-4, k_tol_grad = 1e-4;

static double num(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valuedouble; }

static void check_term(const char *name, double got, double want) {
    double e = fabs(got - want) / fmax(fabs(want), 1e-30);
    printf("  %-22s %.8f vs torch %.8f: relative error %.2e (tol %.0e)\n", name, got, want, e, k_tol_val);
    CHECK(e <= k_tol_val, "%s: %.8f vs torch %.8f", name, got, want);
}

static void torch_case(void) {
    const char *gp = slm_test_path(slm_test_env("SLM_GOLDEN_DIR", "tests/golden"), "train_kd.json");
    char *txt = slm_test_read_file(gp, NULL);
    cJSON *g = txt ? cJSON_Parse(txt) : NULL;
    if (!CHECK(g != NULL, "read %s", gp)) return;
    const char *model = slm_test_path(slm_test_env("SLM_GOLDEN_DIR", "tests/golden"), "hf_qwen2_tiny");
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = false;
    slm_model *ms, *mt;
    if (!CHECK(slm_model_load(model, &lp, &ms) == SLM_OK && slm_model_load(model, &lp, &mt) == SLM_OK, "load: %s",
               slm_last_error()))
        return;
    ms->blocks[0].kept = false;
    const int B = cJSON_GetObjectItem(g, "B")->valueint, T = cJSON_GetObjectItem(g, "T")->valueint, N = B * T;
    int32_t *tok = malloc(sizeof(int32_t) * N), *tgt = malloc(sizeof(int32_t) * N);
    for (int n = 0; n < N; n++) tok[n] = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "tokens"), n)->valueint;
    slm_targets_next_token(tok, B, T, tgt);
    slm_trainable *tv;
    slm_train_ctx *sc, *tc;
    slm_train_ctx_params sp = {.n_seq = B, .n_tok = T, .keep_attn_out = true};
    slm_train_ctx_params tp = {.n_seq = B, .n_tok = T, .forward_only = true, .keep_attn_out = true};
    if (!CHECK(slm_trainable_new(ms, &tv) == SLM_OK && slm_train_ctx_new(ms, tv, &sp, &sc) == SLM_OK &&
                   slm_train_ctx_new(mt, NULL, &tp, &tc) == SLM_OK,
               "setup: %s", slm_last_error()))
        return;
    const int src[2] = {-1, 1};
    unsigned terms;
    CHECK(slm_kd_parse("vanilla+minilm+hidden", &terms) == SLM_OK, "parse");
    slm_kd_params kp = {.terms = terms, .lambda = (float)num(g, "lambda"), .tau = (float)num(g, "tau"), .src = src};
    slm_kd_result r;
    slm_trainable_zero_grad(tv);
    if (CHECK(slm_train_microstep(sc, tc, tok, tgt, 0, &kp, &r) == SLM_OK, "microstep: %s", slm_last_error())) {
        printf("== hf_qwen2_tiny, student without block 0, %d x %d tokens, lambda %.1f, tau %.0f\n", B, T,
               (double)kp.lambda, (double)kp.tau);
        check_term("CE", r.ce, num(g, "ce"));
        check_term("vanilla KD", r.logits, num(g, "kd"));
        check_term("relation KD", r.rel, num(g, "rel"));
        check_term("homotopic KD", r.hid, num(g, "hom"));
        check_term("  hidden-state MSEs", r.parts.hidden, num(g, "hom_hidden"));
        check_term("  attention-output MSEs", r.parts.attn, num(g, "hom_attn"));
        CHECK(r.parts.emb == 0.0 && num(g, "hom_emb") == 0.0, "embeddings are shared: MSE 0");
        check_term("normalised total", r.loss, num(g, "loss"));
        double worst_n = 0, worst_v = 0;
        int n_t = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(g, "tensors")) {
            const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
            int ix = slm_trainable_find(tv, name);
            if (!CHECK(ix >= 0, "no tensor %s in the view", name)) continue;
            const slm_train_tensor *st = &tv->t[ix];
            double nrm = 0, ev = 0, gmax = num(t, "grad_max");
            for (int64_t i = 0; i < st->n; i++) nrm += (double)st->g[i] * st->g[i];
            nrm = sqrt(nrm);
            double en = fabs(nrm - num(t, "grad_norm")) / num(t, "grad_norm");
            const cJSON *s;
            cJSON_ArrayForEach(s, cJSON_GetObjectItem(t, "samples")) {
                int64_t i = (int64_t)cJSON_GetArrayItem(s, 0)->valuedouble;
                if (CHECK(i >= 0 && i < st->n, "%s: index", name))
                    ev = fmax(ev, fabs(st->g[i] - cJSON_GetArrayItem(s, 1)->valuedouble) / gmax);
            }
            CHECK(en <= k_tol_norm && ev <= k_tol_grad, "%s: gradient norm error %.2e, values %.2e of max|g|", name, en,
                  ev);
            worst_n = fmax(worst_n, en);
            worst_v = fmax(worst_v, ev);
            n_t++;
        }
        printf("  %d student tensors: gradient norms max relative error %.2e (tol %.0e), sampled values %.2e of "
               "max|g| (tol %.0e)\n", n_t, worst_n, k_tol_norm, worst_v, k_tol_grad);
        CHECK(n_t == tv->n_tensors, "every tensor of the view is in the golden (%d vs %d)", n_t, tv->n_tensors);
    }

    /* errors */
    int bad_src[2] = {-1, 5};
    kp.src = bad_src;
    CHECK(slm_train_microstep(sc, tc, tok, tgt, 0, &kp, &r) == SLM_ERR_ARG && strstr(slm_last_error(), "teacher block 5"),
          "a block map past the teacher is refused");
    printf("bad map: %s\n", slm_last_error());
    kp.src = src;
    slm_train_ctx *plain;
    slm_train_ctx_params pp = {.n_seq = B, .n_tok = T};
    CHECK(slm_train_ctx_new(ms, tv, &pp, &plain) == SLM_OK, "plain ctx");
    kp.terms = SLM_KD_HIDDEN;
    CHECK(slm_train_microstep(plain, tc, tok, tgt, 0, &kp, &r) == SLM_ERR_STATE &&
              strstr(slm_last_error(), "keep_attn_out"),
          "homotopic KD without kept attention outputs is refused");
    printf("no keep_attn_out: %s\n", slm_last_error());
    slm_train_ctx_free(plain);
    slm_train_ctx_free(sc);
    slm_train_ctx_free(tc);
    slm_trainable_free(tv);
    slm_model_free(ms);

    /* a teacher with other head counts: relation KD refused */
    slm_config c2 = mt->cfg;
    c2.n_kv_heads = 1;
    slm_model *m2, *m3;
    slm_train_ctx *c2s, *c3t;
    CHECK(slm_model_new_random(&c2, 3, &m2) == SLM_OK && slm_model_new_random(&mt->cfg, 4, &m3) == SLM_OK, "random");
    slm_trainable *tv2;
    CHECK(slm_trainable_new(m2, &tv2) == SLM_OK && slm_train_ctx_new(m2, tv2, &pp, &c2s) == SLM_OK &&
              slm_train_ctx_new(m3, NULL, &tp, &c3t) == SLM_OK,
          "ctxs: %s", slm_last_error());
    kp.terms = SLM_KD_RELATION;
    CHECK(slm_train_microstep(c2s, c3t, tok, tgt, 0, &kp, &r) == SLM_ERR_ARG && strstr(slm_last_error(), "same heads"),
          "relation KD across head counts is refused");
    printf("heads: %s\n", slm_last_error());
    slm_train_ctx_free(c2s);
    slm_train_ctx_free(c3t);
    slm_trainable_free(tv2);
    slm_model_free(m2);
    slm_model_free(m3);
    slm_model_free(mt);
    free(tok), free(tgt);
    cJSON_Delete(g);
    free(txt);
}

static void names(void) {
    static const struct {
        const char *in, *out;
        unsigned terms;
    } cases[] = {{"none", "none", 0},
                 {"vanilla", "vanilla", SLM_KD_LOGITS},
                 {"minilm", "minilm", SLM_KD_RELATION},
                 {"homotopic", "homotopic", SLM_KD_LOGITS | SLM_KD_HIDDEN},
                 {"hidden+vanilla", "homotopic", SLM_KD_LOGITS | SLM_KD_HIDDEN},
                 {"minilm+vanilla", "vanilla+minilm", SLM_KD_LOGITS | SLM_KD_RELATION}};
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned t = 99;
        CHECK(slm_kd_parse(cases[i].in, &t) == SLM_OK && t == cases[i].terms &&
                  strcmp(slm_kd_name(t, buf, sizeof buf), cases[i].out) == 0,
              "--kd %s -> %u '%s'", cases[i].in, t, buf);
    }
    unsigned t;
    CHECK(slm_kd_parse("minilm+tinybert", &t) == SLM_ERR_ARG && strstr(slm_last_error(), "'tinybert'"), "unknown");
    printf("unknown: %s\n", slm_last_error());
    CHECK(slm_kd_parse("", &t) == SLM_ERR_ARG, "empty refused");
}

int main(void) {
    slm_set_threads(2);
    names();
    torch_case();
    return slm_test_finish();
}
