/* Scoring engine: request encoding, prefix-sharing scoring of one group
 * over the KV cache, and the per-task run loop that packs documents into
 * forward steps (harness_pack.c; see harness.h for the contract). */
#define _POSIX_C_SOURCE 200809L
#include "eval/harness.h"
#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- requests ------------------------------------------------------------------ */

/* Tokenises with the vocabulary's own BOS rule (lm-eval's tok_encode with
 * default special tokens); special-token text is not parsed. */
static slm_status tokenize_alloc(const slm_tokenizer *tok, const char *s, size_t len, int32_t **ids, int *n) {
    size_t cap = len + 8, got = 0;
    *ids = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        int32_t *buf = slm_malloc(cap * sizeof *buf, "token ids");
        if (!buf) return SLM_ERR_NOMEM;
        slm_status st = slm_tokenize(tok, s, len, true, false, buf, cap, &got);
        if (st == SLM_OK) {
            *ids = buf;
            *n = (int)got;
            return SLM_OK;
        }
        free(buf);
        if (st != SLM_ERR_ARG || got <= cap) return st;
        cap = got;
    }
    return slm_fail(SLM_ERR_STATE, "tokenizer: buffer size changed between calls");
}

slm_status slm_eval_encode_pair(const slm_tokenizer *tok, const char *ctx, const char *cont, int32_t bos,
                                int32_t **ctx_ids, int *n_ctx, int32_t **cont_ids, int *n_cont) {
    *ctx_ids = *cont_ids = NULL;
    *n_ctx = *n_cont = 0;
    slm_status st;
    if (!ctx[0]) {
        int32_t *c;
        int nc;
        if ((st = tokenize_alloc(tok, cont, strlen(cont), &c, &nc))) return st;
        if (nc == 0) {
            free(c);
            return slm_fail(SLM_ERR_ARG, "empty continuation '%s'", cont);
        }
        int32_t first = c[0] != bos ? bos : c[0];
        int skip = c[0] != bos ? 0 : 1;
        *ctx_ids = slm_malloc(sizeof(int32_t), "token ids");
        if (!*ctx_ids) {
            free(c);
            return SLM_ERR_NOMEM;
        }
        (*ctx_ids)[0] = first;
        *n_ctx = 1;
        memmove(c, c + skip, (size_t)(nc - skip) * sizeof *c);
        *cont_ids = c;
        *n_cont = nc - skip;
        return SLM_OK;
    }
    /* Move the context's trailing whitespace onto the continuation. */
    char *stripped = slm_eval_strip(ctx, strlen(ctx), false, true);
    if (!stripped) return SLM_ERR_NOMEM;
    char *whole = slm_eval_strf("%s%s", ctx, cont); /* = stripped + moved + cont */
    if (!whole) {
        free(stripped);
        return SLM_ERR_NOMEM;
    }
    int32_t *w = NULL, *c = NULL;
    int nw = 0, nc = 0;
    st = tokenize_alloc(tok, whole, strlen(whole), &w, &nw);
    if (!st) st = tokenize_alloc(tok, stripped, strlen(stripped), &c, &nc);
    free(whole);
    free(stripped);
    if (st) {
        free(w);
        free(c);
        return st;
    }
    int ncont = nw - nc;
    if (ncont <= 0) {
        free(w);
        free(c);
        return slm_fail(SLM_ERR_ARG, "continuation '%s' adds no tokens to its context", cont);
    }
    memmove(w, w + nc, (size_t)ncont * sizeof *w);
    *ctx_ids = c;
    *n_ctx = nc;
    *cont_ids = w;
    *n_cont = ncont;
    return SLM_OK;
}

/* ---- scoring ---------------------------------------------------------------------- */

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* The prefix decoded once for the group: common to all sequences, and
 * short enough that every sequence still has the token before its
 * continuation to decode (its logits predict the first continuation token). */
static int group_prefix(const slm_eval_seq *seqs, int n) {
    int p = seqs[0].cont_start - 1;
    for (int i = 1; i < n; i++) {
        int lcp = common_prefix(seqs[0].tokens, seqs[0].n, seqs[i].tokens, seqs[i].n);
        if (lcp < p) p = lcp;
        if (seqs[i].cont_start - 1 < p) p = seqs[i].cont_start - 1;
    }
    return p < 0 ? 0 : p;
}

int slm_eval_group_logits_rows(const slm_eval_seq *seqs, int n) {
    int p = group_prefix(seqs, n), rows = 1;
    for (int i = 0; i < n; i++)
        if (seqs[i].n - 1 - p > rows) rows = seqs[i].n - 1 - p;
    return rows;
}

void slm_eval_row_lse(const float *row, int V, double *mx, double *lse) {
    float m = row[0];
    for (int j = 1; j < V; j++) m = row[j] > m ? row[j] : m;
    double s = 0.0;
    for (int j = 0; j < V; j++) s += exp((double)row[j] - (double)m);
    *mx = m;
    *lse = log(s);
}

/* log-softmax of one row at token t, with a double sum over the vocabulary. */
static double row_logprob(const float *row, int V, int32_t t) {
    double mx, lse;
    slm_eval_row_lse(row, V, &mx, &lse);
    return (double)row[t] - mx - lse;
}

slm_status slm_eval_score_group(slm_context *ctx, int n_vocab, const slm_eval_seq *seqs, int n, int32_t *cache,
                                int *n_cache, float *logits, double *ll, int64_t *decoded) {
    int p = group_prefix(seqs, n);
    int reuse = common_prefix(cache, *n_cache, seqs[0].tokens, p);
    slm_status st;
    slm_context_truncate(ctx, reuse);
    *n_cache = reuse;
    if (p > reuse) {
        if ((st = slm_decode(ctx, seqs[0].tokens + reuse, p - reuse, false, NULL))) return st;
        memcpy(cache + reuse, seqs[0].tokens + reuse, (size_t)(p - reuse) * sizeof *cache);
        *n_cache = p;
        if (decoded) *decoded += p - reuse;
    }
    for (int i = 0; i < n; i++) {
        const slm_eval_seq *s = &seqs[i];
        int k = s->n - 1 - p; /* tokens fed: [p, n-1); the last token is only predicted */
        slm_context_truncate(ctx, p);
        if ((st = slm_decode(ctx, s->tokens + p, k, true, logits))) return st;
        memcpy(cache + p, s->tokens + p, (size_t)k * sizeof *cache);
        *n_cache = p + k;
        if (decoded) *decoded += k;
        double sum = 0.0;
        for (int pos = s->cont_start; pos < s->n; pos++)
            sum += row_logprob(logits + (int64_t)(pos - 1 - p) * n_vocab, n_vocab, s->tokens[pos]);
        ll[i] = sum;
    }
    return SLM_OK;
}

/* ---- the run loop -------------------------------------------------------------------- */

slm_eval_params slm_eval_default_params(void) {
    return (slm_eval_params){.data_dir = SLM_DEFAULT_DATA_DIR, .limit = 0, .seed = 1234, .bootstrap_iters = 1000,
                             .extra_metrics = 0, .max_len = 0, .quiet = false, .log_samples = NULL};
}

void slm_eval_results_free(slm_eval_results *r) {
    free(r->tasks);
    free(r->groups);
    memset(r, 0, sizeof *r);
}

enum { KIND_COND = 0, KIND_UNC, KIND_DC, KIND_COUNT };

/* All requests of one task: seqs[(doc * KIND_COUNT + kind)] points to
 * n_choices sequences (NULL when that kind is not asked for). */
typedef struct task_requests {
    slm_eval_seq **seqs;
    int n_docs;
    int max_len;  /* longest sequence */
    int max_rows; /* most logits rows any group needs */
    int64_t tokens;
} task_requests;

static void requests_free(task_requests *r, const slm_eval_docs *docs) {
    if (!r->seqs) return;
    for (int d = 0; d < r->n_docs; d++)
        for (int k = 0; k < KIND_COUNT; k++) {
            slm_eval_seq *s = r->seqs[d * KIND_COUNT + k];
            if (!s) continue;
            for (int i = 0; i < docs->v[d].n_choices; i++) free(s[i].tokens);
            free(s);
        }
    free(r->seqs);
    memset(r, 0, sizeof *r);
}

/* Builds one sequence: enc(ctx) + continuation, keeping the last
 * max_len + 1 tokens as lm-eval does for over-long inputs. */
static slm_status build_seq(const slm_tokenizer *tok, const char *ctx, const char *cont, int32_t bos, int max_len,
                            slm_eval_seq *out) {
    int32_t *a, *b;
    int na, nb;
    slm_status st = slm_eval_encode_pair(tok, ctx, cont, bos, &a, &na, &b, &nb);
    if (st) return st;
    int n = na + nb;
    int32_t *t = slm_malloc((size_t)n * sizeof *t, "request tokens");
    if (!t) {
        free(a);
        free(b);
        return SLM_ERR_NOMEM;
    }
    memcpy(t, a, (size_t)na * sizeof *t);
    memcpy(t + na, b, (size_t)nb * sizeof *t);
    free(a);
    free(b);
    int drop = n - (max_len + 1);
    if (drop > 0) {
        memmove(t, t + drop, (size_t)(n - drop) * sizeof *t);
        n -= drop;
        na = na - drop < 1 ? 1 : na - drop;
    }
    *out = (slm_eval_seq){t, n, na};
    return SLM_OK;
}

static slm_status build_requests(const slm_tokenizer *tok, const slm_eval_task *t, const slm_eval_docs *docs,
                                 unsigned metrics, int max_len, task_requests *r) {
    memset(r, 0, sizeof *r);
    r->n_docs = docs->n;
    r->seqs = calloc((size_t)docs->n * KIND_COUNT, sizeof *r->seqs);
    if (!r->seqs) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory for requests", t->name);
    int32_t bos = slm_tokenizer_bos(tok);
    if (bos < 0) bos = slm_tokenizer_eos(tok); /* lm-eval: BOS, else EOS */
    for (int d = 0; d < docs->n; d++) {
        const slm_eval_doc *doc = &docs->v[d];
        for (int k = 0; k < KIND_COUNT; k++) {
            if ((k == KIND_UNC && !(metrics & SLM_EVAL_MI)) || (k == KIND_DC && !(metrics & SLM_EVAL_PMI_DC))) continue;
            slm_eval_seq *s = calloc((size_t)doc->n_choices, sizeof *s);
            if (!s) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory for requests", t->name);
            r->seqs[d * KIND_COUNT + k] = s;
            for (int i = 0; i < doc->n_choices; i++) {
                const char *ctx = k == KIND_COND ? doc->ctx[i] : k == KIND_UNC ? "" : t->premise;
                /* Unconditional and domain requests score " " + choice, as lm-eval's aux requests. */
                char *cont = k == KIND_COND ? NULL : slm_eval_strf(" %s", doc->choice[i]);
                if (k != KIND_COND && !cont) return SLM_ERR_NOMEM;
                slm_status st = build_seq(tok, ctx, cont ? cont : doc->cont[i], bos, max_len, &s[i]);
                free(cont);
                if (st) {
                    slm_error_prefix(t->name);
                    return st;
                }
                r->tokens += s[i].n;
                if (s[i].n > r->max_len) r->max_len = s[i].n;
            }
            int rows = slm_eval_group_logits_rows(s, doc->n_choices);
            if (rows > r->max_rows) r->max_rows = rows;
        }
    }
    return SLM_OK;
}

typedef struct {
    int doc, len;
} doc_order;

static int cmp_longest_first(const void *a, const void *b) {
    const doc_order *x = a, *y = b;
    if (x->len != y->len) return y->len - x->len;
    return x->doc - y->doc;
}

static void log_sample(FILE *f, const slm_eval_task *t, int d, const slm_eval_doc *doc, const slm_eval_scores *s);

/* The request groups of document d, one per kind asked for; returns how many. */
static int doc_groups(const task_requests *rq, const slm_eval_docs *docs, const slm_eval_scores *sc, int d,
                      slm_eval_group *g) {
    double *outs[KIND_COUNT] = {sc->ll, sc->unc, sc->dc};
    int n = 0;
    for (int k = 0; k < KIND_COUNT; k++) {
        const slm_eval_seq *s = rq->seqs[d * KIND_COUNT + k];
        if (s) g[n++] = (slm_eval_group){s, docs->v[d].n_choices, outs[k]};
    }
    return n;
}

slm_status slm_eval_score_docs(slm_context *ctx, slm_eval_packer *pk, int n_vocab, const slm_eval_group *g,
                               const int *off, int n_docs, int32_t *cache, int *n_cache, float *logits,
                               slm_progress *pr, int64_t *decoded) {
    slm_status st = SLM_OK;
    int n_done = 0;
    for (int j = 0; j < n_docs && !st; j++) {
        const slm_eval_group *gj = g + off[j];
        int ng = off[j + 1] - off[j];
        bool added;
        st = slm_eval_packer_add(pk, gj, ng, &added);
        if (!st && !added && slm_eval_packer_docs(pk) > 0) { /* the step is full: run it, start the next */
            n_done += slm_eval_packer_docs(pk);
            st = slm_eval_packer_run(pk, ctx, n_vocab, cache, n_cache, logits, decoded);
            if (pr) slm_progress_update(pr, n_done);
            if (!st) st = slm_eval_packer_add(pk, gj, ng, &added);
        }
        if (!st && !added) { /* larger than a step alone */
            for (int k = 0; k < ng && !st; k++)
                st = slm_eval_score_group(ctx, n_vocab, gj[k].seqs, gj[k].n, cache, n_cache, logits, gj[k].ll,
                                          decoded);
            n_done++;
            if (pr) slm_progress_update(pr, n_done);
        }
    }
    if (!st) {
        n_done += slm_eval_packer_docs(pk);
        st = slm_eval_packer_run(pk, ctx, n_vocab, cache, n_cache, logits, decoded);
        if (pr) slm_progress_update(pr, n_done);
    }
    return st;
}

static slm_status run_task(const slm_model *m, const slm_eval_task *t, const slm_eval_params *p,
                           slm_eval_task_result *res) {
    const slm_tokenizer *tok = slm_model_tokenizer(m);
    unsigned metrics = t->metrics;
    if (!t->multi_input && t->premise) metrics |= p->extra_metrics & SLM_EVAL_PMI_DC;
    if (!t->multi_input) metrics |= p->extra_metrics & SLM_EVAL_MI;
    int n_vocab = slm_tokenizer_n_vocab(tok);
    int max_len = p->max_len > 0 ? p->max_len : 2048;

    double t0 = slm_time_now();
    slm_eval_docs docs;
    slm_status st = slm_eval_task_load(t, p->data_dir, p->limit, &docs);
    if (st) return st;
    task_requests rq;
    slm_context *ctx = NULL;
    slm_eval_packer *packer = NULL;
    float *logits = NULL;
    int32_t *cache = NULL;
    double *lls = NULL;
    slm_eval_scores *scores = NULL;
    doc_order *order = NULL;
    slm_eval_group *groups = NULL; /* of the documents in scoring order: doc j's are goff[j] .. goff[j+1]-1 */
    int *goff = NULL;
    st = build_requests(tok, t, &docs, metrics, max_len, &rq);
    if (st) goto done;

    /* A packed step's slots and the longest sequence both fit the cache. */
    slm_context_params cp = slm_context_default_params();
    cp.n_ctx = rq.max_len > SLM_EVAL_PACK_ROWS ? rq.max_len : SLM_EVAL_PACK_ROWS;
    cp.n_batch = cp.n_ctx;
    if ((st = slm_context_new(m, &cp, &ctx))) goto done;
    size_t pack_out = SLM_EVAL_PACK_LOGITS_BYTES / ((size_t)n_vocab * sizeof *logits);
    if (pack_out > SLM_EVAL_PACK_ROWS) pack_out = SLM_EVAL_PACK_ROWS;
    if (pack_out < 1) pack_out = 1;
    if ((st = slm_eval_packer_new(SLM_EVAL_PACK_ROWS, (int)pack_out, &packer))) goto done;
    size_t logits_rows = (size_t)rq.max_rows > pack_out ? (size_t)rq.max_rows : pack_out;
    logits = slm_malloc(logits_rows * (size_t)n_vocab * sizeof *logits, "logits");
    cache = slm_malloc((size_t)cp.n_ctx * sizeof *cache, "token cache");
    int64_t n_ll = 0;
    for (int d = 0; d < docs.n; d++) n_ll += (int64_t)docs.v[d].n_choices * KIND_COUNT;
    lls = calloc((size_t)n_ll, sizeof *lls);
    scores = calloc((size_t)docs.n, sizeof *scores);
    order = slm_malloc((size_t)docs.n * sizeof *order, "document order");
    groups = slm_malloc((size_t)docs.n * KIND_COUNT * sizeof *groups, "request groups");
    goff = slm_calloc((size_t)docs.n + 1, sizeof *goff, "request group offsets");
    if (!logits || !cache || !lls || !scores || !order || !groups || !goff) {
        st = slm_fail(SLM_ERR_NOMEM, "%s: out of memory", t->name);
        goto done;
    }
    int64_t off = 0;
    for (int d = 0; d < docs.n; d++) {
        int nc = docs.v[d].n_choices;
        scores[d].ll = lls + off;
        scores[d].unc = (metrics & SLM_EVAL_MI) ? lls + off + nc : NULL;
        scores[d].dc = (metrics & SLM_EVAL_PMI_DC) ? lls + off + 2 * nc : NULL;
        off += (int64_t)nc * KIND_COUNT;
        int len = 0;
        for (int i = 0; i < nc; i++) len += rq.seqs[d * KIND_COUNT][i].n;
        order[d] = (doc_order){d, len};
    }
    qsort(order, (size_t)docs.n, sizeof *order, cmp_longest_first);

    slm_progress pr = {.quiet = p->quiet}; /* begin keeps quiet from the caller */
    for (int j = 0; j < docs.n; j++) {
        int d = order[j].doc;
        goff[j + 1] = goff[j] + doc_groups(&rq, &docs, &scores[d], d, groups + goff[j]);
    }
    slm_progress_begin(&pr, t->name, "docs", docs.n);
    int n_cache = 0;
    st = slm_eval_score_docs(ctx, packer, n_vocab, groups, goff, docs.n, cache, &n_cache, logits, &pr,
                             &res->tokens_decoded);
    slm_progress_end(&pr);
    if (st) {
        slm_error_prefix(t->name);
        goto done;
    }
    snprintf(res->name, sizeof res->name, "%s", t->name);
    snprintf(res->group, sizeof res->group, "%s", t->group);
    snprintf(res->category, sizeof res->category, "%s", t->category);
    res->n_docs = docs.n;
    res->tokens_requested = rq.tokens;
    st = slm_eval_compute_metrics(docs.v, scores, docs.n, metrics, p->bootstrap_iters, p->seed, res->v,
                                  &res->n_values);
    if (!st && p->log_samples)
        for (int d = 0; d < docs.n; d++) log_sample(p->log_samples, t, d, &docs.v[d], &scores[d]);
    res->seconds = slm_time_now() - t0;
done:
    free(goff);
    free(groups);
    free(order);
    free(scores);
    free(lls);
    free(cache);
    free(logits);
    slm_context_free(ctx);
    slm_eval_packer_free(packer);
    requests_free(&rq, &docs);
    slm_eval_docs_free(&docs);
    return st;
}

slm_status slm_eval_run(const slm_model *m, const slm_eval_task *tasks, int n_tasks, const slm_eval_params *p,
                        slm_eval_results *out) {
    memset(out, 0, sizeof *out);
    if (!slm_model_tokenizer(m)) return slm_fail(SLM_ERR_ARG, "eval: the model has no tokenizer");
    out->tasks = calloc((size_t)n_tasks, sizeof *out->tasks);
    if (!out->tasks) return slm_fail(SLM_ERR_NOMEM, "eval: out of memory");
    double t0 = slm_time_now();
    for (int i = 0; i < n_tasks; i++) {
        slm_status st = run_task(m, &tasks[i], p, &out->tasks[i]);
        if (st) {
            slm_eval_results_free(out);
            return st;
        }
        out->n_tasks = i + 1;
    }
    out->seconds = slm_time_now() - t0;
    return slm_eval_aggregate_groups(out);
}

/* ---- --log-samples ------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c == '\n') fputs("\\n", f);
        else if (*c == '\t') fputs("\\t", f);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}

static void json_doubles(FILE *f, const char *key, const double *v, int n) {
    fprintf(f, ",\"%s\":[", key);
    for (int i = 0; i < n; i++) fprintf(f, "%s%.6f", i ? "," : "", v[i]);
    fputc(']', f);
}

static void log_sample(FILE *f, const slm_eval_task *t, int d, const slm_eval_doc *doc, const slm_eval_scores *s) {
    fprintf(f, "{\"task\":\"%s\",\"doc_id\":%d,\"gold\":%d,\"pred\":%d,\"ctx\":", t->name, d, doc->gold,
            slm_eval_argmax(s->ll, doc->n_choices));
    json_str(f, doc->ctx[0]);
    fputs(",\"continuations\":[", f);
    for (int i = 0; i < doc->n_choices; i++) {
        if (i) fputc(',', f);
        json_str(f, doc->cont[i]);
    }
    fputc(']', f);
    json_doubles(f, "loglik", s->ll, doc->n_choices);
    if (s->unc) json_doubles(f, "loglik_unconditional", s->unc, doc->n_choices);
    if (s->dc) json_doubles(f, "loglik_domain", s->dc, doc->n_choices);
    fputs("}\n", f);
}
