/* Tokenizer <-> GGUF metadata (llama.cpp's keys):
 *
 *   tokenizer.ggml.model        string   "gpt2" (byte-level BPE) | "llama" (SentencePiece BPE)
 *   tokenizer.ggml.pre          string   pre-tokenizer family (byte-level only), e.g. "smollm"
 *   tokenizer.ggml.tokens       [string] V token texts (byte-level texts for gpt2, ▁ for llama)
 *   tokenizer.ggml.scores       [f32]    V scores (SentencePiece merge priority)
 *   tokenizer.ggml.token_type   [i32]    V types: 1 normal 2 unknown 3 control 4 user-defined 5 unused 6 byte
 *   tokenizer.ggml.merges       [string] "left right", rank = index (gpt2 only)
 *   tokenizer.ggml.{bos,eos,unknown,padding,seperator,cls,mask}_token_id   u32
 *   tokenizer.ggml.add_bos_token / add_eos_token / add_space_prefix      bool
 *   tokenizer.chat_template     string
 *
 * Missing add_bos_token follows llama.cpp: SentencePiece adds BOS,
 * byte-level adds it only for the llama3 family. Everything read is kept
 * and written back by slm_tokenizer_write_gguf.
 */
#define _POSIX_C_SOURCE 200809L
#include "formats/gguf.h"
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

static char *dup_str(slm_gguf_str s) {
    char *p = malloc(s.len + 1);
    if (!p) return NULL;
    memcpy(p, s.ptr, s.len);
    p[s.len] = 0;
    return p;
}

static bool str_is(slm_gguf_str s, const char *lit) { return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0; }

/* A string array kv as (texts, lens) views; NULL on wrong type. */
static const slm_gguf_kv *find_str_arr(const slm_gguf *g, const char *key) {
    const slm_gguf_kv *kv = slm_gguf_find(g, key);
    if (!kv || kv->type != SLM_GGUF_ARRAY || kv->arr_type != SLM_GGUF_STRING || !kv->arr_strs) return NULL;
    return kv;
}

static slm_status str_views(const slm_gguf_kv *kv, const char ***texts, uint64_t **lens) {
    *texts = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof **texts);
    *lens = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof **lens);
    if (!*texts || !*lens) return slm_fail(SLM_ERR_NOMEM, "out of memory reading %.*s", (int)kv->key.len, kv->key.ptr);
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        (*texts)[i] = kv->arr_strs[i].ptr;
        (*lens)[i] = kv->arr_strs[i].len;
    }
    return SLM_OK;
}

/* A numeric per-token array (scores or types) of exactly n elements. */
static slm_status per_token_array(const slm_gguf *g, const char *path, const char *key, int64_t n, bool as_float,
                                  void **out) {
    *out = NULL;
    const slm_gguf_kv *kv = slm_gguf_find(g, key);
    if (!kv) return SLM_OK;
    if (kv->type != SLM_GGUF_ARRAY || kv->arr_type == SLM_GGUF_STRING || kv->arr_type == SLM_GGUF_ARRAY)
        return slm_fail(SLM_ERR_FORMAT, "%s: %s is not a numeric array", path, key);
    if ((int64_t)kv->arr_n != n)
        return slm_fail(SLM_ERR_FORMAT, "%s: %s has %llu entries for %lld tokens", path, key,
                        (unsigned long long)kv->arr_n, (long long)n);
    void *v = malloc((size_t)n * 4);
    if (!v) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory reading %s", path, key);
    for (int64_t i = 0; i < n; i++) {
        if (as_float) {
            double d = 0;
            slm_gguf_arr_f64(kv, (uint64_t)i, &d);
            ((float *)v)[i] = (float)d;
        } else {
            int64_t x = 0;
            slm_gguf_arr_i64(kv, (uint64_t)i, &x);
            ((int32_t *)v)[i] = (int32_t)x;
        }
    }
    *out = v;
    return SLM_OK;
}

static slm_status load_gguf(slm_tokenizer *t, const slm_gguf *g, const char *path) {
    slm_gguf_str model;
    if (!slm_gguf_get_str(g, "tokenizer.ggml.model", &model))
        return slm_fail(SLM_ERR_FORMAT, "%s: no tokenizer (tokenizer.ggml.model missing)", path);
    if (str_is(model, "gpt2")) t->kind = SLM_TOK_BPE;
    else if (str_is(model, "llama")) t->kind = SLM_TOK_SPM;
    else
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: tokenizer model '%.*s' is not supported (gpt2 and llama are)", path,
                        (int)(model.len > 40 ? 40 : model.len), model.ptr);
    if (!(t->model = dup_str(model))) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
    slm_gguf_str s;
    if (slm_gguf_get_str(g, "tokenizer.ggml.pre", &s) && !(t->pre = dup_str(s))) return SLM_ERR_NOMEM;
    if (slm_gguf_get_str(g, "tokenizer.chat_template", &s) && !(t->chat_template = dup_str(s))) return SLM_ERR_NOMEM;

    const slm_gguf_kv *tok = find_str_arr(g, "tokenizer.ggml.tokens");
    if (!tok) return slm_fail(SLM_ERR_FORMAT, "%s: tokenizer.ggml.tokens missing or not a string array", path);
    int64_t n = (int64_t)tok->arr_n;
    const char **texts = NULL;
    uint64_t *lens = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    slm_status st = str_views(tok, &texts, &lens);
    if (!st) st = per_token_array(g, path, "tokenizer.ggml.scores", n, true, (void **)&scores);
    if (!st) st = per_token_array(g, path, "tokenizer.ggml.token_type", n, false, (void **)&types);
    if (!st) st = slm_tok_vocab_init(t, n, texts, lens, scores, types);
    free(texts);
    free(lens);
    free(scores);
    free(types);
    if (st) return st;

    if (t->kind == SLM_TOK_BPE) {
        const slm_gguf_kv *mk = find_str_arr(g, "tokenizer.ggml.merges");
        if (!mk) return slm_fail(SLM_ERR_FORMAT, "%s: tokenizer.ggml.merges missing (a gpt2 tokenizer needs them)", path);
        const char **ms;
        uint64_t *ml;
        st = str_views(mk, &ms, &ml);
        if (!st) st = slm_tok_merges_init(t, (int64_t)mk->arr_n, ms, ml);
        free(ms);
        free(ml);
        if (st) return st;
    }

    /* llama.cpp's defaults, then the file's keys */
    bool bpe = t->kind == SLM_TOK_BPE;
    t->ids[SLM_TOKID_BOS] = bpe ? 11 : 1;
    t->ids[SLM_TOKID_EOS] = bpe ? 11 : 2;
    t->ids[SLM_TOKID_UNK] = bpe ? -1 : 0;
    for (int k = 0; k < SLM_TOKID_COUNT; k++) {
        int64_t id;
        if (!slm_gguf_get_i64(g, slm_tok_id_keys[k], &id)) continue;
        if (id < 0 || id >= n)
            return slm_fail(SLM_ERR_FORMAT, "%s: %s = %lld is outside the vocabulary of %lld", path,
                            slm_tok_id_keys[k], (long long)id, (long long)n);
        t->ids[k] = (int32_t)id;
        t->has_id[k] = true;
    }
    for (int k = 0; k < SLM_TOKID_COUNT; k++)
        if (t->ids[k] >= n) t->ids[k] = -1; /* a default past a tiny vocabulary */
    bool default_bos = !bpe;
    if (bpe && (st = slm_tok_pretok_from_name(t, t->pre, &default_bos))) return st;
    t->add_bos = default_bos;
    t->add_space_prefix = !bpe;
    t->has_add_bos = slm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
    t->has_add_eos = slm_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos);
    t->has_add_space_prefix = slm_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
    return slm_tok_finish(t);
}

slm_status slm_tokenizer_load_gguf(const struct slm_gguf *g, const char *path, slm_tokenizer **out) {
    *out = NULL;
    slm_tokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(path ? path : "gguf"))) {
        free(t);
        return slm_fail(SLM_ERR_NOMEM, "%s: out of memory loading the tokenizer", path);
    }
    slm_status st = load_gguf(t, g, t->name);
    if (st) {
        slm_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SLM_OK;
}

/* ---- writing ----------------------------------------------------------- */

slm_status slm_tokenizer_write_gguf(const slm_tokenizer *t, struct slm_gguf_writer *w) {
    if (!t) return SLM_OK;
    slm_status st = slm_gguf_set_str(w, "tokenizer.ggml.model", t->model);
    if (!st && t->pre) st = slm_gguf_set_str(w, "tokenizer.ggml.pre", t->pre);
    int64_t n = t->n_vocab;
    const char **texts = malloc((size_t)n * sizeof *texts);
    uint64_t *lens = malloc((size_t)n * sizeof *lens);
    if (!texts || !lens) {
        free(texts);
        free(lens);
        return slm_fail(SLM_ERR_NOMEM, "out of memory writing the tokenizer");
    }
    for (int64_t i = 0; i < n; i++) {
        texts[i] = slm_tok_text(t, (int32_t)i);
        lens[i] = t->text_len[i];
    }
    if (!st) st = slm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", texts, lens, (uint64_t)n);
    free(texts);
    free(lens);
    if (!st && t->scores) st = slm_gguf_set_arr(w, "tokenizer.ggml.scores", SLM_GGUF_FLOAT32, t->scores, (uint64_t)n);
    if (!st && t->types) st = slm_gguf_set_arr(w, "tokenizer.ggml.token_type", SLM_GGUF_INT32, t->types, (uint64_t)n);
    if (!st && t->kind == SLM_TOK_BPE) {
        /* "left right" strings rebuilt from the id pairs */
        int64_t m = t->n_merges;
        size_t total = 0;
        for (int64_t r = 0; r < m; r++)
            total += t->text_len[t->merge_pairs[2 * r]] + t->text_len[t->merge_pairs[2 * r + 1]] + 2;
        char *blob = malloc(total ? total : 1);
        const char **ms = malloc((size_t)(m ? m : 1) * sizeof *ms);
        uint64_t *ml = malloc((size_t)(m ? m : 1) * sizeof *ml);
        if (!blob || !ms || !ml) st = slm_fail(SLM_ERR_NOMEM, "out of memory writing merges");
        size_t off = 0;
        for (int64_t r = 0; !st && r < m; r++) {
            int32_t l = t->merge_pairs[2 * r], rr = t->merge_pairs[2 * r + 1];
            ms[r] = blob + off;
            memcpy(blob + off, slm_tok_text(t, l), t->text_len[l]);
            off += t->text_len[l];
            blob[off++] = ' ';
            memcpy(blob + off, slm_tok_text(t, rr), t->text_len[rr]);
            off += t->text_len[rr];
            ml[r] = (uint64_t)(blob + off - ms[r]);
        }
        if (!st) st = slm_gguf_set_arr_str(w, "tokenizer.ggml.merges", ms, ml, (uint64_t)m);
        free(blob);
        free(ms);
        free(ml);
    }
    for (int k = 0; !st && k < SLM_TOKID_COUNT; k++)
        if (t->has_id[k] && t->ids[k] >= 0) st = slm_gguf_set_u32(w, slm_tok_id_keys[k], (uint32_t)t->ids[k]);
    if (!st && t->has_add_bos) st = slm_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", t->add_bos);
    if (!st && t->has_add_eos) st = slm_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", t->add_eos);
    if (!st && t->has_add_space_prefix) st = slm_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", t->add_space_prefix);
    if (!st && t->chat_template) st = slm_gguf_set_str(w, "tokenizer.chat_template", t->chat_template);
    return st;
}
