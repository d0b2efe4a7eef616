/* Calibration data for the compression methods (calib.h): token windows drawn from a
 * text file, from a task's TRAINING split (prompt + gold answer per
 * document, as the evaluation would phrase it), or from a mix of tasks;
 * and the next-token loss over such windows (the planner's proxy).
 *
 * Only tasks with a training split in ../shared/data can calibrate; the
 * evaluation splits (and the wikitext-2 test text) are refused so a
 * reported score is never measured on the data that shaped the model. */
#include "compress/calib.h"
#include "eval/perplexity.h"
#include "eval/tasks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Task name -> its training file (same loader and format as the test split). */
static const struct {
    const char *task;
    const char *train_file;
} k_train_splits[] = {
    {"arc_easy", "arc/ARC-Easy/ARC-Easy-Train.jsonl"},
    {"arc_challenge", "arc/ARC-Challenge/ARC-Challenge-Train.jsonl"},
    {"openbookqa", "openbookqa/Main/train.jsonl"},
};
#define N_TRAIN_SPLITS (int)(sizeof k_train_splits / sizeof k_train_splits[0])

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

typedef struct text_list {
    char **v;
    int n, cap;
} text_list;

static slm_status list_add(text_list *l, char *s) {
    if (!s) return SLM_ERR_NOMEM;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        char **nv = realloc(l->v, (size_t)cap * sizeof *nv);
        if (!nv) {
            free(s);
            return slm_fail(SLM_ERR_NOMEM, "calibration documents: out of memory");
        }
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return SLM_OK;
}

/* Documents of one task's training split: context + gold continuation. */
static slm_status task_docs(const char *name, const char *data_dir, text_list *out) {
    int k = 0;
    while (k < N_TRAIN_SPLITS && strcmp(k_train_splits[k].task, name) != 0) k++;
    if (k == N_TRAIN_SPLITS)
        return slm_fail(SLM_ERR_ARG, "--calib task:%s: no training split for it in the data directory "
                        "(tasks with one: arc_easy, arc_challenge, openbookqa)", name);
    slm_eval_task t;
    slm_status st = slm_eval_task_find(name, &t);
    if (st) return st;
    memset(t.src, 0, sizeof t.src);
    t.src[0].file = k_train_splits[k].train_file;
    t.src[0].load = name[0] == 'a' ? slm_eval_load_arc : slm_eval_load_openbookqa;
    slm_eval_docs docs;
    st = slm_eval_task_load(&t, data_dir, 0, &docs);
    if (st) return st;
    for (int i = 0; i < docs.n && !st; i++) {
        const slm_eval_doc *d = &docs.v[i];
        st = list_add(out, slm_eval_strf("%s%s", d->ctx[d->gold], d->cont[d->gold]));
    }
    slm_eval_docs_free(&docs);
    return st;
}

/* The whole calibration text for spec (malloc'd) and a description. */
static slm_status calib_text(const char *spec, const char *data_dir, uint64_t *rng, char **text, size_t *len,
                             char *source, size_t source_cap) {
    if (strncmp(spec, "text:", 5) == 0) {
        const char *path = spec + 5;
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (strstr(base, "wiki.test") || strstr(base, "test.raw"))
            return slm_fail(SLM_ERR_ARG, "--calib %s: that is evaluation (test) text; calibrate on a corpus/ file", spec);
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", data_dir, path);
        FILE *f = fopen(path, "rb");
        const char *use = f ? path : full;
        if (f) fclose(f);
        snprintf(source, source_cap, "text:%.240s", use);
        return slm_read_file(use, text, len);
    }
    text_list docs = {0};
    slm_status st = SLM_OK;
    if (strncmp(spec, "task:", 5) == 0) {
        st = task_docs(spec + 5, data_dir, &docs);
        snprintf(source, source_cap, "%s (training split)", spec);
    } else if (strcmp(spec, "mix") == 0) {
        for (int k = 0; k < N_TRAIN_SPLITS && !st; k++) st = task_docs(k_train_splits[k].task, data_dir, &docs);
        snprintf(source, source_cap, "mix (training splits of arc_easy, arc_challenge, openbookqa)");
    } else {
        return slm_fail(SLM_ERR_ARG, "--calib %s: expected mix, task:NAME or text:FILE", spec);
    }
    /* Shuffled (Fisher-Yates) so windows mix tasks, joined by blank lines. */
    size_t total = 1;
    for (int i = docs.n - 1; i > 0 && !st; i--) {
        int j = (int)(rng_next(rng) % (uint64_t)(i + 1));
        char *tmp = docs.v[i];
        docs.v[i] = docs.v[j];
        docs.v[j] = tmp;
    }
    for (int i = 0; i < docs.n; i++) total += strlen(docs.v[i]) + 2;
    char *buf = st ? NULL : slm_malloc(total, "calibration text");
    if (!st && !buf) st = SLM_ERR_NOMEM;
    size_t n = 0;
    for (int i = 0; i < docs.n && buf; i++) {
        size_t k = strlen(docs.v[i]);
        memcpy(buf + n, docs.v[i], k);
        n += k;
        memcpy(buf + n, "\n\n", 2);
        n += 2;
    }
    if (buf) buf[n] = 0;
    for (int i = 0; i < docs.n; i++) free(docs.v[i]);
    free(docs.v);
    *text = buf;
    *len = n;
    return st;
}

slm_status slm_calib_load(const slm_tokenizer *tok, const char *spec, const char *data_dir, int n_seqs,
                              int seq_len, uint64_t seed, slm_calib *out) {
    memset(out, 0, sizeof *out);
    if (!tok) return slm_fail(SLM_ERR_ARG, "calibration: the model has no tokenizer");
    if (n_seqs < 1 || seq_len < 2 || seq_len > (1 << 16))
        return slm_fail(SLM_ERR_ARG, "calibration: %d sequences of %d tokens", n_seqs, seq_len);
    uint64_t rng = seed * 2654435761u + 0x9E3779B97F4A7C15ull;
    char *text = NULL;
    size_t len = 0;
    slm_status st = calib_text(spec, data_dir, &rng, &text, &len, out->source, sizeof out->source);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (!st) st = slm_ppl_tokenize(tok, text, len, false, &ids, &n_ids);
    free(text);
    if (!st && n_ids < (size_t)seq_len)
        st = slm_fail(SLM_ERR_ARG, "--calib %s: %zu tokens, fewer than one sequence of %d", spec, n_ids, seq_len);
    if (!st) {
        out->tokens = slm_malloc((size_t)n_seqs * (size_t)seq_len * sizeof(int32_t), "calibration tokens");
        if (!out->tokens) st = SLM_ERR_NOMEM;
    }
    if (!st) {
        out->n_seqs = n_seqs;
        out->seq_len = seq_len;
        int32_t bos = slm_tokenizer_adds_bos(tok) ? slm_tokenizer_bos(tok) : -1;
        for (int s = 0; s < n_seqs; s++) {
            size_t off = (size_t)(rng_next(&rng) % (uint64_t)(n_ids - (size_t)seq_len + 1));
            int32_t *dst = out->tokens + (size_t)s * seq_len;
            memcpy(dst, ids + off, (size_t)seq_len * sizeof(int32_t));
            if (bos >= 0) dst[0] = bos;
        }
    }
    free(ids);
    if (st) slm_calib_free(out);
    return st;
}

void slm_calib_free(slm_calib *c) {
    free(c->tokens);
    c->tokens = NULL;
    c->n_seqs = 0;
}

slm_calib slm_calib_slice(const slm_calib *c, int first, int n) {
    slm_calib v = *c;
    v.tokens = c->tokens + (size_t)first * c->seq_len;
    v.n_seqs = n;
    return v;
}

slm_status slm_calib_nll(const slm_model *m, const slm_calib *c, double *nll) {
    int V = m->cfg.n_vocab, T = c->seq_len;
    slm_context_params cp = {.n_ctx = T, .n_batch = T};
    slm_context *ctx = NULL;
    slm_status st = slm_context_new(m, &cp, &ctx);
    if (st) return st;
    float *logits = slm_malloc((size_t)T * (size_t)V * sizeof(float), "calibration logits");
    double sum = 0;
    int64_t count = 0;
    if (!logits) st = SLM_ERR_NOMEM;
    for (int s = 0; s < c->n_seqs && !st; s++) {
        const int32_t *tok = c->tokens + (size_t)s * T;
        slm_context_truncate(ctx, 0);
        st = slm_decode(ctx, tok, T, true, logits);
        for (int t = 0; t + 1 < T && !st; t++) { /* log-softmax in double */
            const float *row = logits + (size_t)t * V;
            float mx = row[0];
            for (int v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
            double z = 0;
            for (int v = 0; v < V; v++) z += exp((double)(row[v] - mx));
            sum += log(z) + mx - row[tok[t + 1]];
            count++;
        }
    }
    free(logits);
    slm_context_free(ctx);
    *nll = count ? sum / (double)count : 0;
    return st;
}
