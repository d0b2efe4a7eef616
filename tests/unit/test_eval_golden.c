/* Scoring against llama.cpp: for the golden documents of every task
 * (tests/golden/eval_requests.json.gz, from tools/make_eval_golden.py),
 *  - our request token ids equal those lm-eval's encoding gives with
 *    llama.cpp's tokenizer (context ids and continuation ids, exactly);
 *  - each choice's log-likelihood, scored by the harness engine as the run
 *    loop does (all groups of a task packed into forward steps by
 *    slm_eval_score_docs), is within 1e-3 of llama.cpp's on the F32 GGUF
 *    made from the same Q4_1 file (fp32 weights and fp32 KV cache), and so
 *    is the group-by-group path (KV prefix sharing, slm_eval_score_group:
 *    documents too large for a packed step) on the first GROUP_DOCS
 *    documents of each task (all of them cost 7x the packed pass's time);
 *  - the predicted choice is the same.
 * The distance to llama.cpp on the Q4_1 file itself (which quantises
 * activations to Q8_1) is printed for information. */
#define _POSIX_C_SOURCE 200809L
#include "core/core.h"
#include "eval/data.h"
#include "eval/harness.h"
#include "eval/tasks.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LL_TOL 1e-3
#define MAX_ROWS 256 /* logits rows per choice beyond the shared prefix */
#define GROUP_DOCS 5  /* documents per task also scored group by group */

/* A group kept for the task's packed pass, with its llama.cpp values. */
typedef struct {
    slm_eval_seq seqs[16];
    int n;
    double ll[16];
    const cJSON *g_f32;
    bool check_pred; /* the document's answer choices (not a PMI-DC request) */
    char what[128];
} pending;

typedef struct {
    slm_model *m;
    const slm_tokenizer *tok;
    slm_context *ctx;
    slm_eval_packer *packer;
    int32_t *cache;
    int n_cache, n_vocab;
    float *logits;
    double max_d_f32, max_d_q41, max_d_pack;
    double sec_seq, sec_pack; /* scoring time of each path */
    int n_ll, n_ids_bad, n_pred_bad, n_docs, n_ids_only;
    pending *pend; /* this task's groups so far */
    int n_pend, cap_pend;
} state;

static bool ids_equal(const cJSON *g, const int32_t *ids, int n) {
    if (!cJSON_IsArray(g) || cJSON_GetArraySize(g) != n) return false;
    int i = 0;
    for (const cJSON *e = g->child; e; e = e->next, i++)
        if (e->valueint != ids[i]) return false;
    return true;
}

static const cJSON *at(const cJSON *v, int i, bool shared) { return shared ? v : cJSON_GetArrayItem(v, i); }

/* The predicted choice (largest LL) is llama.cpp's. */
static void check_prediction(state *s, const char *what, const double *ll, const cJSON *g_f32, int n) {
    double gl[16];
    for (int i = 0; i < n; i++) gl[i] = cJSON_GetArrayItem(g_f32, i)->valuedouble;
    if (slm_eval_argmax(ll, n) != slm_eval_argmax(gl, n) && s->n_pred_bad++ < 5)
        CHECK(false, "%s: predicted choice %d, llama.cpp's %d", what, slm_eval_argmax(ll, n), slm_eval_argmax(gl, n));
}

/* Encodes n (ctx, cont) string pairs and compares the ids with the golden
 * arrays; with group, scores them as one group (slm_eval_score_group) and
 * compares the LLs; keeps them for the task's packed pass. Golden arrays (ids: [[ctx_ids], [cont_ids]] per choice, or the
 * split ctx_ids / cont_ids fields). */
static void score_and_compare(state *s, const char *what, const char *const *ctx, const char *const *cont, int n,
                              const cJSON *g_ctx_ids, bool ctx_shared, const cJSON *g_cont_ids, const cJSON *g_f32,
                              const cJSON *g_q41, bool group, bool check_pred, double *ll) {
    slm_eval_seq seqs[16];
    int32_t bos = slm_tokenizer_bos(s->tok);
    for (int i = 0; i < n; i++) {
        int32_t *a, *b;
        int na, nb;
        if (slm_eval_encode_pair(s->tok, ctx[i], cont[i], bos, &a, &na, &b, &nb)) {
            CHECK(false, "%s: encode: %s", what, slm_last_error());
            for (int j = 0; j < i; j++) free(seqs[j].tokens);
            return;
        }
        bool ok = ids_equal(at(g_ctx_ids, i, ctx_shared), a, na) && ids_equal(cJSON_GetArrayItem(g_cont_ids, i), b, nb);
        if (!ok && s->n_ids_bad++ < 5) CHECK(false, "%s choice %d: token ids differ from llama.cpp's", what, i);
        seqs[i].tokens = malloc((size_t)(na + nb) * sizeof(int32_t));
        memcpy(seqs[i].tokens, a, (size_t)na * sizeof(int32_t));
        memcpy(seqs[i].tokens + na, b, (size_t)nb * sizeof(int32_t));
        seqs[i].n = na + nb;
        seqs[i].cont_start = na;
        free(a);
        free(b);
    }
    if (!g_f32 || slm_eval_group_logits_rows(seqs, n) > MAX_ROWS) {
        CHECK(!g_f32, "%s: more than %d rows of logits", what, MAX_ROWS);
        for (int i = 0; i < n; i++) free(seqs[i].tokens);
        return;
    }
    slm_status st = SLM_OK;
    if (group) {
        double t0 = slm_time_now();
        st = slm_eval_score_group(s->ctx, s->n_vocab, seqs, n, s->cache, &s->n_cache, s->logits, ll, NULL);
        s->sec_seq += slm_time_now() - t0;
        CHECK(st == SLM_OK, "%s: score: %s", what, slm_last_error());
    }
    for (int i = 0; i < n && group && !st; i++) {
        double d = fabs(ll[i] - cJSON_GetArrayItem(g_f32, i)->valuedouble);
        if (d > s->max_d_f32) s->max_d_f32 = d;
        if (d > LL_TOL) CHECK(false, "%s choice %d: LL %.6f vs llama.cpp %.6f (|d| %.2e)", what, i, ll[i],
                              cJSON_GetArrayItem(g_f32, i)->valuedouble, d);
        if (g_q41) {
            double dq = fabs(ll[i] - cJSON_GetArrayItem(g_q41, i)->valuedouble);
            if (dq > s->max_d_q41) s->max_d_q41 = dq;
        }
    }
    if (group && !st && check_pred) check_prediction(s, what, ll, g_f32, n);
    /* Kept for the task's packed pass. */
    if (s->n_pend == s->cap_pend) {
        s->cap_pend = s->cap_pend ? 2 * s->cap_pend : 64;
        s->pend = realloc(s->pend, (size_t)s->cap_pend * sizeof *s->pend);
    }
    pending *pd = &s->pend[s->n_pend++];
    memcpy(pd->seqs, seqs, (size_t)n * sizeof *seqs);
    pd->n = n;
    pd->g_f32 = g_f32;
    pd->check_pred = check_pred;
    snprintf(pd->what, sizeof pd->what, "%s", what);
}

/* The run loop's path over the task's groups (each as a document, in the
 * order scored): packed into steps of SLM_EVAL_PACK_ROWS rows, a group too
 * large for one scored group by group. */
static void score_pending_packed(state *s) {
    slm_eval_group *g = malloc((size_t)s->n_pend * sizeof *g);
    int *off = malloc((size_t)(s->n_pend + 1) * sizeof *off);
    off[0] = 0;
    for (int j = 0; j < s->n_pend; j++) {
        g[j] = (slm_eval_group){s->pend[j].seqs, s->pend[j].n, s->pend[j].ll};
        off[j + 1] = j + 1;
    }
    double t0 = slm_time_now();
    slm_status st = slm_eval_score_docs(s->ctx, s->packer, s->n_vocab, g, off, s->n_pend, s->cache, &s->n_cache,
                                        s->logits, NULL, NULL);
    s->sec_pack += slm_time_now() - t0;
    CHECK(st == SLM_OK, "packed scoring: %s", slm_last_error());
    for (int j = 0; j < s->n_pend && !st; j++) {
        const pending *pd = &s->pend[j];
        for (int i = 0; i < pd->n; i++) {
            double d = fabs(pd->ll[i] - cJSON_GetArrayItem(pd->g_f32, i)->valuedouble);
            if (d > s->max_d_pack) s->max_d_pack = d;
            if (d > LL_TOL) CHECK(false, "%s choice %d: packed LL %.6f vs llama.cpp %.6f (|d| %.2e)", pd->what, i,
                                  pd->ll[i], cJSON_GetArrayItem(pd->g_f32, i)->valuedouble, d);
            s->n_ll++;
        }
        if (pd->check_pred) check_prediction(s, pd->what, pd->ll, pd->g_f32, pd->n);
    }
    for (int j = 0; j < s->n_pend; j++)
        for (int i = 0; i < s->pend[j].n; i++) free(s->pend[j].seqs[i].tokens);
    s->n_pend = 0;
    free(g);
    free(off);
}

static void check_doc(state *s, const char *task, int k, const slm_eval_doc *doc, const cJSON *g) {
    char what[96];
    snprintf(what, sizeof what, "%s doc %d", task, k);
    const cJSON *gctx = cJSON_GetObjectItem(g, "ctx");
    bool shared = cJSON_IsString(gctx);
    double ll[16];
    int n = doc->n_choices;
    bool group = k < GROUP_DOCS;
    if (n > 16) {
        CHECK(false, "%s: %d choices", what, n);
        return;
    }
    const cJSON *f32 = cJSON_GetObjectItem(g, "ll_f32");
    if (!f32) { /* ids only: this task's llama.cpp run has not been made */
        s->n_ids_only++;
        f32 = NULL;
    }
    score_and_compare(s, what, (const char *const *)doc->ctx, (const char *const *)doc->cont, n,
                      cJSON_GetObjectItem(g, "ctx_ids"), shared, cJSON_GetObjectItem(g, "cont_ids"), f32,
                      cJSON_GetObjectItem(g, "ll_q4_1"), group, true, ll);
    if (!f32) return;
    s->n_docs++;

    /* ARC-Challenge also carries PMI-DC ("Answer:") and unconditional ("") requests. */
    const cJSON *dc = cJSON_GetObjectItem(g, "dc_ids");
    if (!dc) return;
    static const char *const kinds[2][3] = {{"dc_ids", "dc_f32", "Answer:"}, {"unc_ids", "unc_f32", ""}};
    for (int kind = 0; kind < 2; kind++) {
        const cJSON *pairs = cJSON_GetObjectItem(g, kinds[kind][0]);
        const char *ctxs[16];
        char *conts[16];
        cJSON *cids = cJSON_CreateArray(), *kids = cJSON_CreateArray();
        for (int i = 0; i < n; i++) {
            ctxs[i] = kinds[kind][2];
            conts[i] = slm_eval_strf(" %s", doc->choice[i]);
            const cJSON *p = cJSON_GetArrayItem(pairs, i);
            cJSON_AddItemToArray(cids, cJSON_Duplicate(cJSON_GetArrayItem(p, 0), true));
            cJSON_AddItemToArray(kids, cJSON_Duplicate(cJSON_GetArrayItem(p, 1), true));
        }
        char w2[128];
        snprintf(w2, sizeof w2, "%s %s", what, kinds[kind][0]);
        score_and_compare(s, w2, ctxs, (const char *const *)conts, n, cids, false, kids,
                          cJSON_GetObjectItem(g, kinds[kind][1]), NULL, group, false, ll);
        for (int i = 0; i < n; i++) free(conts[i]);
        cJSON_Delete(cids);
        cJSON_Delete(kids);
    }
}

int main(void) {
    const char *model = slm_test_env("SLM_TEST_MODEL", "");
    const char *data_dir = slm_test_env("SLM_DATA_DIR", "../shared/data");
    const char *gpath = slm_test_path(slm_test_env("SLM_GOLDEN_DIR", "tests/golden"), "eval_requests.json.gz");
    state s = {0};
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = true;
    char *text;
    size_t len;
    if (!CHECK(slm_model_load(model, &lp, &s.m) == SLM_OK, "load %s: %s", model, slm_last_error()) ||
        !CHECK(slm_data_read_all(gpath, &text, &len) == SLM_OK, "golden: %s", slm_last_error()))
        return slm_test_finish();
    cJSON *root = cJSON_Parse(text);
    free(text);
    s.tok = slm_model_tokenizer(s.m);
    s.n_vocab = slm_tokenizer_n_vocab(s.tok);
    slm_context_params cp = slm_context_default_params();
    cp.n_ctx = 2048;
    CHECK(slm_context_new(s.m, &cp, &s.ctx) == SLM_OK, "context: %s", slm_last_error());
    CHECK(slm_eval_packer_new(SLM_EVAL_PACK_ROWS, MAX_ROWS, &s.packer) == SLM_OK, "packer: %s", slm_last_error());
    s.cache = malloc(2048 * sizeof(int32_t));
    s.logits = malloc((size_t)MAX_ROWS * (size_t)s.n_vocab * sizeof(float));
    double t0 = slm_time_now();
    const cJSON *tasks = cJSON_GetObjectItem(root, "tasks");
    int n_tasks = 0, n_ll_tasks = 0, min_docs = 1 << 30;
    for (const cJSON *t = tasks ? tasks->child : NULL; t && s.ctx; t = t->next) {
        int n = cJSON_GetArraySize(t), before_ll = s.n_ll;
        n_tasks++;
        bool has_ll = cJSON_GetObjectItem(cJSON_GetArrayItem(t, 0), "ll_f32") != NULL;
        if (has_ll && n < min_docs) min_docs = n;
        n_ll_tasks += has_ll;
        double before = s.max_d_f32, before_pack = s.max_d_pack;
        s.max_d_f32 = s.max_d_pack = 0;
        for (int k = 0; k < n; k++) {
            const cJSON *g = cJSON_GetArrayItem(t, k);
            const cJSON *sub = cJSON_GetObjectItem(g, "task");
            slm_eval_task task;
            slm_eval_docs d;
            int first = sub ? 0 : k; /* MMLU: the first document of each subject */
            if (slm_eval_task_find(sub ? sub->valuestring : t->string, &task) ||
                slm_eval_task_load(&task, data_dir, first + 1, &d)) {
                CHECK(false, "%s: %s", t->string, slm_last_error());
                break;
            }
            check_doc(&s, t->string, k, &d.v[first], g);
            slm_eval_docs_free(&d);
        }
        score_pending_packed(&s);
        printf("%-15s %3d docs %4d LLs: max|LL - llama.cpp F32| = %.2e packed, %.2e group by group (first %d docs; "
               "tol %.0e)\n",
               t->string, n, s.n_ll - before_ll, s.max_d_pack, s.max_d_f32, GROUP_DOCS, LL_TOL);
        if (before > s.max_d_f32) s.max_d_f32 = before;
        if (before_pack > s.max_d_pack) s.max_d_pack = before_pack;
    }
    printf("all: %d docs, %d log-likelihoods in %.1f s; max|d| vs llama.cpp F32 %.2e packed, %.2e group by group; "
           "vs llama.cpp Q4_1 %.2e (informational, group by group); %d id mismatches, %d prediction mismatches\n",
           s.n_docs, s.n_ll, slm_time_now() - t0, s.max_d_pack, s.max_d_f32, s.max_d_q41, s.n_ids_bad, s.n_pred_bad);
    printf("scoring time: group by group %.1f s, packed %.1f s\n", s.sec_seq, s.sec_pack);
    printf("coverage: ids of %d tasks; log-likelihoods of %d tasks (%d documents with ids only)\n", n_tasks,
           n_ll_tasks, s.n_ids_only);
    CHECK(s.n_ll >= 2900, "only %d log-likelihoods compared", s.n_ll);
    CHECK(n_tasks == 15 && n_ll_tasks >= 1 && min_docs >= 10, "golden: %d tasks, %d with LLs, smallest has %d documents",
          n_tasks, n_ll_tasks, min_docs);
    cJSON_Delete(root);
    free(s.cache);
    free(s.logits);
    slm_context_free(s.ctx);
    slm_eval_packer_free(s.packer);
    free(s.pend);
    slm_model_free(s.m);
    return slm_test_finish();
}
