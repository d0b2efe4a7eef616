/* lm-evaluation-harness's `wikitext` protocol on three short documents
 * (28, 29, 14 of wikitext-2-raw-v1 test) with a 128-token max length, so
 * that documents need one, three and five rolling windows, the last one
 * partial. Reference: tools/make_ppl_golden.py lmeval-docs, i.e. lm_eval
 * 0.4.13's windowing (get_rolling_token_windows + make_disjoint_window)
 * with llama.cpp's logits on an F32 copy of the same GGUF (the weights
 * slimlm computes with; see test_ppl_llamacpp.c for why not the Q4_1
 * kernels). Token counts and windows must match exactly; each document's
 * per-token log-likelihood within log(1.003), i.e. 0.3% in perplexity,
 * and the aggregated word / byte perplexities within 0.3%. */
#include "eval/perplexity.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void check_rel(const char *what, double ours, double ref, double tol) {
    double d = fabs(ours - ref) / fabs(ref);
    printf("%-16s slimlm %.5f  reference %.5f  rel %.4f%% (tol %.2f%%)\n", what, ours, ref, 100 * d, 100 * tol);
    CHECK(d <= tol, "%s: rel diff %.4f%% > %.2f%%", what, 100 * d, 100 * tol);
}

int main(void) {
    const char *model_path = slm_test_env("SLM_TEST_MODEL", "");
    const char *data = slm_test_env("SLM_DATA_DIR", "../shared/data");
    const char *golden = slm_test_env("SLM_GOLDEN_DIR", "tests/golden");
    char *gt = slm_test_read_file(slm_test_path(golden, "ppl_lmeval_docs_f32_ctx128.json"), NULL);
    cJSON *g = gt ? cJSON_Parse(gt) : NULL;
    size_t len = 0;
    char *raw = slm_test_read_file(slm_test_path(data, "wikitext-2-raw/wiki.test.raw"), &len);
    if (!CHECK(g && raw, "golden ppl_lmeval_docs_f32_ctx128.json and wiki.test.raw")) return slm_test_finish();
    const cJSON *sel = cJSON_GetObjectItem(g, "scored_docs");
    int n_sel = cJSON_GetArraySize(sel);
    int idx[16];
    if (!CHECK(n_sel > 0 && n_sel <= 16, "scored docs %d", n_sel)) return slm_test_finish();
    for (int i = 0; i < n_sel; i++) idx[i] = cJSON_GetArrayItem(sel, i)->valueint;
    const int max_len = (int)num(g, "max_length");

    slm_set_threads(2);
    slm_model *m = NULL;
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = true;
    if (!CHECK(slm_model_load(model_path, &lp, &m) == SLM_OK, "load %s: %s", model_path, slm_last_error()))
        return slm_test_finish();
    slm_context_params cp = slm_context_default_params();
    cp.n_ctx = max_len;
    cp.n_batch = 64; /* smaller than a window: exercises the sub-batched scoring */
    slm_context *ctx = NULL;
    CHECK(slm_context_new(m, &cp, &ctx) == SLM_OK, "context: %s", slm_last_error());

    slm_ppl_params pp = slm_ppl_default_params();
    pp.n_ctx = max_len;
    pp.n_batch = 64;
    pp.doc_index = idx;
    pp.n_doc_index = n_sel;
    slm_lmeval_result r;
    slm_status st = slm_ppl_lmeval_wikitext(ctx, m, raw, len, "wiki.test.raw", &pp, &r);
    if (CHECK(st == SLM_OK, "lm-eval wikitext: %s", slm_last_error())) {
        CHECK(r.prefix_token == (int32_t)num(g, "prefix_token"), "prefix token %d vs %.0f", r.prefix_token,
              num(g, "prefix_token"));
        const cJSON *gdocs = cJSON_GetObjectItem(g, "documents");
        double worst = 0.0;
        for (int i = 0; i < r.n_docs; i++) {
            const slm_lmeval_doc *d = &r.docs[i];
            const cJSON *gd = cJSON_GetArrayItem(gdocs, d->index);
            double ref = num(gd, "loglik");
            double per_tok = fabs(d->loglik - ref) / (double)d->n_tokens;
            printf("doc %2d: %4lld tokens, %d windows, loglik slimlm %.4f reference %.4f (|d|/token %.5f)\n", d->index,
                   (long long)d->n_tokens, d->n_windows, d->loglik, ref, per_tok);
            CHECK(d->n_tokens == (int64_t)num(gd, "n_tokens"), "doc %d tokens %lld vs %.0f", d->index,
                  (long long)d->n_tokens, num(gd, "n_tokens"));
            CHECK(d->n_windows == (int)num(gd, "n_windows"), "doc %d windows %d vs %.0f", d->index, d->n_windows,
                  num(gd, "n_windows"));
            CHECK(d->words == (int64_t)num(gd, "words") && d->bytes == (int64_t)num(gd, "bytes"),
                  "doc %d words/bytes", d->index);
            if (!(per_tok <= worst)) worst = isnan(per_tok) ? INFINITY : per_tok;
        }
        printf("max per-token log-likelihood difference %.5f (tol %.5f)\n", worst, log(1.003));
        CHECK(worst <= log(1.003), "per-token log-likelihood differs by %.5f", worst);
        check_rel("word_perplexity", r.word_perplexity, num(g, "word_perplexity"), 0.003);
        check_rel("byte_perplexity", r.byte_perplexity, num(g, "byte_perplexity"), 0.003);
        check_rel("bits_per_byte", r.bits_per_byte, num(g, "bits_per_byte"), 0.003);
        slm_lmeval_result_free(&r);
    }
    slm_context_free(ctx);
    slm_model_free(m);
    cJSON_Delete(g);
    free(gt);
    free(raw);
    return slm_test_finish();
}
