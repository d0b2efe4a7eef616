/* SmolLM2-135M (the Q4_1 GGUF, dequantised on load) against llama.cpp:
 * log-softmax of the last position for fixed prompts, at the vocabulary ids
 * stored by tools/make_logits_golden.py (the 256 most likely + every 32nd).
 *
 * logits_smollm2_f32.json is llama.cpp on the same weights written as an F32
 * GGUF (exact fp32 matmuls, F32 KV cache): the tolerance is 2e-3.
 * logits_smollm2_q4_1.json is llama.cpp on the Q4_1 file itself, where it
 * quantises activations to Q8_1 before each matmul; the tolerance there is
 * what that quantisation costs (llama.cpp's own F32 and Q4_1 runs differ by
 * up to 0.89 over the full vocabulary on these prompts), measured and set
 * with a margin below.
 * The token ids come from llama.cpp's tokenizer, so only the forward pass is
 * under test. The 700-token prompt runs in 512-token batches. */
#include "model/model.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Returns the max |d| over the stored ids of all prompts (and checks argmax). */
static double compare(slm_model *m, slm_context *c, const char *golden_path, const char *label, double tol) {
    size_t len;
    char *txt = slm_test_read_file(golden_path, &len);
    if (!CHECK(txt != NULL, "cannot read %s", golden_path)) return INFINITY;
    cJSON *doc = cJSON_Parse(txt);
    free(txt);
    if (!CHECK(doc != NULL, "bad JSON in %s", golden_path)) return INFINITY;
    int V = m->cfg.n_vocab;
    CHECK(cJSON_GetObjectItem(doc, "n_vocab")->valueint == V, "vocabulary size");
    float *logits = malloc(sizeof(float) * V);
    double worst = 0;
    const cJSON *prompts = cJSON_GetObjectItem(doc, "prompts"), *p;
    cJSON_ArrayForEach(p, prompts) {
        const cJSON *jt = cJSON_GetObjectItem(p, "tokens");
        int n = cJSON_GetArraySize(jt);
        int32_t *tok = malloc(sizeof(int32_t) * n);
        for (int i = 0; i < n; i++) tok[i] = cJSON_GetArrayItem(jt, i)->valueint;
        slm_context_truncate(c, 0);
        if (!CHECK(slm_decode(c, tok, n, false, logits) == SLM_OK, "decode: %s", slm_last_error())) {
            free(tok);
            continue;
        }
        double mx = -INFINITY, sum = 0;
        int am = 0;
        for (int i = 0; i < V; i++)
            if (logits[i] > mx) mx = logits[i], am = i;
        for (int i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
        double lse = mx + log(sum), pd = 0;
        const cJSON *ids = cJSON_GetObjectItem(p, "ids"), *lp = cJSON_GetObjectItem(p, "logprobs");
        int k = cJSON_GetArraySize(ids);
        for (int i = 0; i < k; i++) {
            int id = cJSON_GetArrayItem(ids, i)->valueint;
            double d = fabs((double)logits[id] - lse - cJSON_GetArrayItem(lp, i)->valuedouble);
            if (!(d <= pd)) pd = d;
        }
        int ref_am = cJSON_GetObjectItem(p, "argmax")->valueint;
        printf("  %s: %4d tokens, %d ids: max|d logprob| = %.2e, argmax %d (llama.cpp %d)\n", label, n, k, pd, am,
               ref_am);
        CHECK(pd <= tol, "%s: prompt of %d tokens: max|d| %.3g > %.3g", label, n, pd, tol);
        if (tol < 0.01) CHECK(am == ref_am, "%s: argmax %d vs llama.cpp %d", label, am, ref_am);
        if (!(pd <= worst)) worst = pd;
        free(tok);
    }
    printf("%s: max|d| over all prompts = %.3e (tol %.1e)\n", label, worst, tol);
    free(logits);
    cJSON_Delete(doc);
    return worst;
}

int main(void) {
    slm_set_threads(2);
    const char *path = slm_test_env("SLM_TEST_MODEL", "");
    const char *gold = slm_test_env("SLM_GOLDEN_DIR", "tests/golden");
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = false;
    slm_model *m = NULL;
    if (!CHECK(slm_model_load(path, &lp, &m) == SLM_OK, "load %s: %s", path, slm_last_error()))
        return slm_test_finish();
    slm_context_params cp = {.n_ctx = 1024, .n_batch = 512};
    slm_context *c = NULL;
    if (CHECK(slm_context_new(m, &cp, &c) == SLM_OK, "context: %s", slm_last_error())) {
        compare(m, c, slm_test_path(gold, "logits_smollm2_f32.json"), "vs llama.cpp F32", 2e-3);
        compare(m, c, slm_test_path(gold, "logits_smollm2_q4_1.json"), "vs llama.cpp Q4_1", 1.0);
    }
    slm_context_free(c);
    slm_model_free(m);
    return slm_test_finish();
}
