/* llama.cpp's perplexity protocol on wikitext-2 test, ctx 512, first 4
 * chunks of the default model, against llama.cpp itself (llama-cpp-python,
 * tools/make_ppl_golden.py):
 *  - ppl_llamacpp_f32_ctx512.json: llama.cpp on an F32 copy of the same GGUF
 *    (llama_model_quantize to ALL_F32), i.e. the same weight values computed
 *    in fp32 as slimlm does: running PPL and its error within 0.3%;
 *  - ppl_llamacpp_ctx512.json: llama.cpp on the Q4_1 GGUF as shipped. There
 *    llama.cpp quantises activations to Q8_1 inside every matmul, which
 *    raises PPL by about half a percent, so the bound is 1.5%; the token
 *    count of the whole file must match exactly.
 * Four chunks keep the runtime modest (the test also runs under ASan). */
#include "eval/perplexity.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_CHUNKS = 4 };

static cJSON *load_json(const char *dir, const char *name) {
    char *t = slm_test_read_file(slm_test_path(dir, name), NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    CHECK(j != NULL, "golden %s", name);
    return j;
}

static double num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* max relative difference of our running values against golden[key][0..n) */
static double max_rel(const double *ours, const cJSON *g, const char *key, int n) {
    const cJSON *a = cJSON_GetObjectItem(g, key);
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        double ref = v ? v->valuedouble : NAN;
        double d = fabs(ours[i] - ref) / ref;
        printf("  [%d] slimlm %.4f  llama.cpp %.4f  rel %.5f%%\n", i + 1, ours[i], ref, 100 * d);
        if (!(d <= worst)) worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

int main(void) {
    const char *model_path = slm_test_env("SLM_TEST_MODEL", "");
    const char *data = slm_test_env("SLM_DATA_DIR", "../shared/data");
    const char *golden = slm_test_env("SLM_GOLDEN_DIR", "tests/golden");
    cJSON *g32 = load_json(golden, "ppl_llamacpp_f32_ctx512.json");
    cJSON *gq = load_json(golden, "ppl_llamacpp_ctx512.json");
    size_t len = 0;
    char *text = slm_test_read_file(slm_test_path(data, "wikitext-2-raw/wiki.test.raw"), &len);
    if (!CHECK(text != NULL, "read wiki.test.raw") || !g32 || !gq) return slm_test_finish();

    slm_set_threads(2);
    slm_model *m = NULL;
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = true;
    if (!CHECK(slm_model_load(model_path, &lp, &m) == SLM_OK, "load %s: %s", model_path, slm_last_error()))
        return slm_test_finish();
    slm_context_params cp = slm_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 256;
    slm_context *ctx = NULL;
    CHECK(slm_context_new(m, &cp, &ctx) == SLM_OK, "context: %s", slm_last_error());

    slm_ppl_params pp = slm_ppl_default_params();
    pp.n_ctx = 512;
    pp.n_chunks = N_CHUNKS;
    pp.n_batch = 256;
    slm_ppl_result r;
    slm_status st = slm_ppl_llamacpp(ctx, m, text, len, "wiki.test.raw", &pp, &r);
    if (CHECK(st == SLM_OK, "ppl: %s", slm_last_error())) {
        printf("PPL = %.4f +/- %.5f over %d chunks (%lld scored tokens of %lld), %.1f s\n", r.ppl, r.ppl_stderr,
               r.n_chunks, (long long)r.n_scored, (long long)r.n_tokens, r.seconds);
        CHECK(r.n_tokens == (int64_t)num(gq, "n_tokens_file"), "tokens in the file: %lld vs llama.cpp %.0f",
              (long long)r.n_tokens, num(gq, "n_tokens_file"));
        CHECK(r.n_chunks == N_CHUNKS && r.n_scored == N_CHUNKS * 255, "chunks %d, scored %lld", r.n_chunks,
              (long long)r.n_scored);
        printf("vs llama.cpp on the F32 copy (tol 0.3%%):\n");
        double d32 = max_rel(r.running_ppl, g32, "running_ppl", N_CHUNKS);
        CHECK(d32 <= 0.003, "running PPL vs llama.cpp F32: max rel %.5f%% > 0.3%%", 100 * d32);
        const cJSON *errs = cJSON_GetObjectItem(g32, "running_stderr");
        double ref_err = cJSON_GetArrayItem(errs, N_CHUNKS - 1) ? cJSON_GetArrayItem(errs, N_CHUNKS - 1)->valuedouble : NAN;
        double derr = fabs(r.ppl_stderr - ref_err) / ref_err;
        printf("stderr: slimlm %.5f  llama.cpp F32 %.5f  rel %.4f%% (tol 1%%)\n", r.ppl_stderr, ref_err, 100 * derr);
        CHECK(derr <= 0.01, "PPL error estimate vs llama.cpp F32: rel %.4f%%", 100 * derr);
        printf("vs llama.cpp on the Q4_1 GGUF, Q8_1 activations (tol 1.5%%):\n");
        double dq = max_rel(r.running_ppl, gq, "running_ppl", N_CHUNKS);
        CHECK(dq <= 0.015, "running PPL vs llama.cpp Q4_1: max rel %.5f%% > 1.5%%", 100 * dq);
        slm_ppl_result_free(&r);
    }

    /* Too little text for two chunks is an error, not a number. */
    pp.n_chunks = -1;
    st = slm_ppl_llamacpp(ctx, m, "Too short.", 10, "short.txt", &pp, &r);
    CHECK(st == SLM_ERR_ARG && strstr(slm_last_error(), "short.txt"), "short text: %s", slm_last_error());

    slm_context_free(ctx);
    slm_model_free(m);
    cJSON_Delete(g32);
    cJSON_Delete(gq);
    free(text);
    return slm_test_finish();
}
