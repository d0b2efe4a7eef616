/* Training data: text and jsonl files tokenised with the model's tokenizer
 * and packed into one stream (BOS? doc EOS BOS? doc EOS ...), cut into
 * disjoint windows of T tokens, visited in a seeded order (trainer.h).
 *
 * The order of epoch e is a Fisher-Yates permutation of the windows drawn
 * from a xorshift64* generator seeded by (seed, e), so window number k of
 * the run depends only on (data, T, seed, k): a checkpoint stores k and
 * the seed, and a resumed run reads exactly the windows it would have.
 */
#define _POSIX_C_SOURCE 200809L
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- file list ---------------------------------------------------------------------------------- */

typedef struct path_list {
    char **v;
    int n, cap;
} path_list;

static slm_status list_push(path_list *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **nv = realloc(l->v, sizeof *nv * (size_t)cap);
        if (!nv) return slm_fail(SLM_ERR_NOMEM, "training data: file list");
        l->v = nv;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return slm_fail(SLM_ERR_NOMEM, "training data: file list");
    l->n++;
    return SLM_OK;
}

static void list_free(path_list *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Evaluation texts must not be trained on: a score measured on them would
 * no longer mean what it says. */
static bool is_eval_text(const char *path) {
    static const char *const k_eval[] = {"wiki.test", "wiki.valid", ".test.raw", ".valid.raw", "ptb.test",
                                         "ptb.valid", "ptb.char.test", "ptb.char.valid"};
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < sizeof k_eval / sizeof k_eval[0]; i++)
        if (strstr(base, k_eval[i])) return true;
    return false;
}

/* Adds one item of the list: a file, or a directory's *.txt / *.jsonl. */
static slm_status add_item(path_list *out, const char *item, const char *data_dir) {
    char full[4096];
    struct stat st;
    const char *use = item;
    if (stat(item, &st) != 0 && item[0] != '/' && data_dir) {
        snprintf(full, sizeof full, "%s/%s", data_dir, item);
        if (stat(full, &st) == 0) use = full;
    }
    if (stat(use, &st) != 0) return slm_fail(SLM_ERR_IO, "%s: cannot open training data: %s", item, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return list_push(out, use);
    DIR *d = opendir(use);
    if (!d) return slm_fail(SLM_ERR_IO, "%s: cannot list directory: %s", use, strerror(errno));
    path_list found = {0};
    slm_status s = SLM_OK;
    struct dirent *e;
    while (!s && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && (has_suffix(e->d_name, ".txt") || has_suffix(e->d_name, ".jsonl"))) {
            char p[4096];
            if (snprintf(p, sizeof p, "%s/%s", use, e->d_name) >= (int)sizeof p)
                s = slm_fail(SLM_ERR_ARG, "%s: path too long", use);
            else
                s = list_push(&found, p);
        }
    closedir(d);
    if (!s && found.n == 0) s = slm_fail(SLM_ERR_ARG, "%s: no .txt or .jsonl files in the directory", use);
    if (found.n) qsort(found.v, (size_t)found.n, sizeof *found.v, cmp_str);
    for (int i = 0; !s && i < found.n; i++) s = list_push(out, found.v[i]);
    list_free(&found);
    return s;
}

/* ---- tokenising -------------------------------------------------------------------------------- */

typedef struct stream {
    int32_t *v;
    int64_t n, cap;
} stream;

static slm_status stream_add(stream *s, const int32_t *ids, int64_t n) {
    if (s->n + n > s->cap) {
        int64_t cap = s->cap ? s->cap : 1 << 16;
        while (cap < s->n + n) cap *= 2;
        int32_t *nv = realloc(s->v, sizeof *nv * (size_t)cap);
        if (!nv) return slm_fail(SLM_ERR_NOMEM, "training data: %lld tokens", (long long)cap);
        s->v = nv;
        s->cap = cap;
    }
    memcpy(s->v + s->n, ids, sizeof *ids * (size_t)n);
    s->n += n;
    return SLM_OK;
}

static slm_status add_doc(const slm_tokenizer *tok, stream *s, const char *text, size_t len, const char *where) {
    int32_t *ids = NULL;
    size_t n = 0;
    slm_status st = slm_tokenizer_encode(tok, text, len, false, false, &ids, &n);
    if (st) {
        slm_error_prefix(where);
        return st;
    }
    int32_t bos = slm_tokenizer_adds_bos(tok) ? slm_tokenizer_bos(tok) : -1, eos = slm_tokenizer_eos(tok);
    if (bos >= 0) st = stream_add(s, &bos, 1);
    if (!st) st = stream_add(s, ids, (int64_t)n);
    if (!st) st = stream_add(s, &eos, 1);
    free(ids);
    return st;
}

/* One document per non-empty line: {"text": "..."}. */
static slm_status add_jsonl(const slm_tokenizer *tok, stream *s, const char *path, char *text, size_t len,
                            int *n_docs) {
    char *p = text, *end = text + len;
    int line = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        line++;
        size_t n = (size_t)(le - p);
        while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        if (n) {
            cJSON *j = cJSON_ParseWithLength(p, n);
            const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
            if (!cJSON_IsString(t)) {
                cJSON_Delete(j);
                return slm_fail(SLM_ERR_FORMAT, "%s:%d: %s", path, line,
                                j ? "no \"text\" string in the JSON object" : "not valid JSON");
            }
            char where[4200];
            snprintf(where, sizeof where, "%s:%d", path, line);
            slm_status st = add_doc(tok, s, t->valuestring, strlen(t->valuestring), where);
            cJSON_Delete(j);
            if (st) return st;
            (*n_docs)++;
        }
        p = le + (nl ? 1 : 0);
    }
    return SLM_OK;
}

slm_status slm_train_data_load(const slm_tokenizer *tok, const char *files, const char *data_dir, int ctx,
                               uint64_t seed, bool allow_eval, slm_train_data *out) {
    memset(out, 0, sizeof *out);
    out->perm_epoch = -1;
    if (!tok) return slm_fail(SLM_ERR_ARG, "training data: the model has no tokenizer (give --tokenizer)");
    if (slm_tokenizer_eos(tok) < 0)
        return slm_fail(SLM_ERR_ARG, "training data: the tokenizer has no EOS token to separate documents");
    if (ctx < 2 || ctx > (1 << 20)) return slm_fail(SLM_ERR_ARG, "training data: window length %d", ctx);
    path_list paths = {0};
    slm_status st = SLM_OK;
    char *spec = strdup(files), *save = NULL;
    if (!spec) return slm_fail(SLM_ERR_NOMEM, "training data: file list");
    for (char *it = strtok_r(spec, ",", &save); it && !st; it = strtok_r(NULL, ",", &save))
        if (*it) st = add_item(&paths, it, data_dir);
    free(spec);
    if (!st && paths.n == 0) st = slm_fail(SLM_ERR_ARG, "training data: no files given");
    for (int i = 0; i < paths.n && !st && !allow_eval; i++)
        if (is_eval_text(paths.v[i]))
            st = slm_fail(SLM_ERR_ARG, "%s: that is evaluation (test/validation) text; train on corpus/ or "
                          "tinyshakespeare/ files and keep it for --val or slimlm ppl", paths.v[i]);
    stream s = {0};
    size_t used = 0;
    for (int i = 0; i < paths.n && !st; i++) {
        char *text = NULL;
        size_t len = 0;
        if ((st = slm_read_file(paths.v[i], &text, &len))) break;
        if (has_suffix(paths.v[i], ".jsonl")) {
            st = add_jsonl(tok, &s, paths.v[i], text, len, &out->n_docs);
        } else {
            st = add_doc(tok, &s, text, len, paths.v[i]);
            out->n_docs++;
        }
        free(text);
        if (!st && used < sizeof out->source)
            used += (size_t)snprintf(out->source + used, sizeof out->source - used, "%s%s", i ? "," : "", paths.v[i]);
    }
    out->n_files = paths.n;
    list_free(&paths);
    if (!st && s.n < (int64_t)ctx + 1)
        st = slm_fail(SLM_ERR_ARG, "training data %s: %lld tokens, fewer than one window of %d (+1)", out->source,
                      (long long)s.n, ctx);
    if (st) {
        free(s.v);
        memset(out, 0, sizeof *out);
        return st;
    }
    out->tokens = s.v;
    out->n_tokens = s.n;
    out->ctx = ctx;
    out->n_windows = (s.n - 1) / ctx;
    out->seed = seed;
    out->max_id = 0;
    for (int64_t i = 0; i < s.n; i++) out->max_id = s.v[i] > out->max_id ? s.v[i] : out->max_id;
    uint64_t h = slm_fnv1a(0xcbf29ce484222325ull, &ctx, sizeof ctx);
    out->hash = slm_fnv1a(h, s.v, sizeof *s.v * (size_t)s.n);
    return SLM_OK;
}

void slm_train_data_free(slm_train_data *d) {
    free(d->tokens);
    free(d->labels);
    free(d->perm);
    memset(d, 0, sizeof *d);
}

/* ---- order --------------------------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static slm_status make_perm(slm_train_data *d, int64_t epoch) {
    if (!d->perm && !(d->perm = slm_malloc(sizeof *d->perm * (size_t)d->n_windows, "window order")))
        return SLM_ERR_NOMEM;
    /* splitmix64 of (seed, epoch): never the all-zero state xorshift cannot leave */
    uint64_t z = d->seed + 0x9E3779B97F4A7C15ull * (uint64_t)(epoch + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    uint64_t s = (z ^ (z >> 31)) | 1;
    for (int64_t i = 0; i < d->n_windows; i++) d->perm[i] = i;
    for (int64_t i = d->n_windows - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_next(&s) % (uint64_t)(i + 1)), t = d->perm[i];
        d->perm[i] = d->perm[j];
        d->perm[j] = t;
    }
    d->perm_epoch = epoch;
    return SLM_OK;
}

slm_status slm_train_data_window(slm_train_data *d, int64_t k, bool shuffled, int32_t *tokens, int32_t *targets) {
    if (k < 0 || d->n_windows <= 0) return slm_fail(SLM_ERR_ARG, "training data: window %lld", (long long)k);
    int64_t epoch = k / d->n_windows, w = k % d->n_windows;
    if (shuffled) {
        if (d->perm_epoch != epoch) {
            slm_status st = make_perm(d, epoch);
            if (st) return st;
        }
        w = d->perm[w];
    }
    const int32_t *p = d->tokens + w * d->ctx;
    memcpy(tokens, p, sizeof *tokens * (size_t)d->ctx);
    if (d->labels) { /* one example per window, targets stored */
        memcpy(targets, d->labels + w * d->ctx, sizeof *targets * (size_t)d->ctx);
        return SLM_OK;
    }
    memcpy(targets, p + 1, sizeof *targets * (size_t)d->ctx);
    return SLM_OK;
}
