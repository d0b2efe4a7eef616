/* Tokenizer from an HF directory: tokenizer.json (+ tokenizer_config.json).
 *
 * Supported: model.type "BPE" with
 *   - byte-level BPE: a ByteLevel pre-tokenizer (use_regex true or false),
 *     optionally after Split(Regex|String, behavior Isolated) and Digits;
 *   - SentencePiece-style BPE: byte_fallback and/or ▁ through a normalizer
 *     (Prepend "▁" + Replace " " -> "▁") or a Metaspace pre-tokenizer.
 * Merges in both forms: ["a b", ...] and [["a", "b"], ...]. Added tokens:
 * special -> control (matched with parse_special), others -> user-defined
 * (always matched), as llama.cpp's converter types them. BOS/EOS come from
 * tokenizer_config.json (add_bos_token, bos_token, ...) or else from the
 * post-processor's TemplateProcessing. Refused with a clear message:
 * Unigram, WordPiece, WordLevel, other pre-tokenizers and Split behaviours.
 * A NFC normalizer is accepted and, like llama.cpp, not applied.
 */
#define _POSIX_C_SOURCE 200809L
#include "tokenizer/tok_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RX_HF_BYTELEVEL "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

typedef struct hf_ctx {
    slm_tokenizer *t;
    const char *file;
    bool byte_level;
    bool metaspace;
    bool prepend;  /* ▁ prefix from a normalizer or Metaspace */
    /* pre-tokenizer regexes as they will be compiled (for naming the family) */
    char sig[4096];
} hf_ctx;

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }
static const char *get_str(const cJSON *o, const char *k) {
    const cJSON *v = get(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static bool type_is(const cJSON *o, const char *ty) {
    const char *s = get_str(o, "type");
    return s && strcmp(s, ty) == 0;
}

static slm_status add_regex(hf_ctx *c, const char *rx, const char *what) {
    size_t l = strlen(c->sig);
    snprintf(c->sig + l, sizeof c->sig - l, "%s%s", l ? "\x01" : "", rx);
    return slm_tok_pretok_add(c->t, rx, strlen(rx), what);
}

/* One pre-tokenizer node (recursing into Sequence). */
static slm_status pretok_node(hf_ctx *c, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return SLM_OK;
    const char *ty = get_str(n, "type");
    if (!ty) return slm_fail(SLM_ERR_FORMAT, "%s: pre_tokenizer without a type", c->file);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, get(n, "pretokenizers")) {
            slm_status st = pretok_node(c, e);
            if (st) return st;
        }
        return SLM_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        c->byte_level = true;
        if (cJSON_IsTrue(get(n, "add_prefix_space")))
            return slm_fail(SLM_ERR_UNSUPPORTED, "%s: ByteLevel with add_prefix_space is not supported", c->file);
        const cJSON *ur = get(n, "use_regex");
        return (!ur || cJSON_IsTrue(ur)) ? add_regex(c, RX_HF_BYTELEVEL, "ByteLevel") : SLM_OK;
    }
    if (strcmp(ty, "Digits") == 0) return add_regex(c, cJSON_IsTrue(get(n, "individual_digits")) ? "\\p{N}" : "\\p{N}+", "Digits");
    if (strcmp(ty, "Split") == 0) {
        const char *beh = get_str(n, "behavior");
        if (!beh || strcmp(beh, "Isolated") != 0 || cJSON_IsTrue(get(n, "invert")))
            return slm_fail(SLM_ERR_UNSUPPORTED, "%s: Split behavior '%s' is not supported (Isolated is)", c->file,
                            beh ? beh : "?");
        const cJSON *pat = get(n, "pattern");
        const char *rx = get_str(pat, "Regex");
        if (rx) return add_regex(c, rx, "Split");
        const char *lit = get_str(pat, "String");
        if (!lit) return slm_fail(SLM_ERR_FORMAT, "%s: Split without a Regex or String pattern", c->file);
        char buf[600];
        if (strlen(lit) > 500 || strstr(lit, "\\E")) return slm_fail(SLM_ERR_UNSUPPORTED, "%s: Split string pattern too odd", c->file);
        snprintf(buf, sizeof buf, "\\Q%s\\E", lit);
        return add_regex(c, buf, "Split");
    }
    if (strcmp(ty, "Metaspace") == 0) {
        c->metaspace = true;
        const char *scheme = get_str(n, "prepend_scheme");
        const cJSON *aps = get(n, "add_prefix_space");
        c->prepend = scheme ? strcmp(scheme, "never") != 0 : (!aps || cJSON_IsTrue(aps));
        return SLM_OK;
    }
    return slm_fail(SLM_ERR_UNSUPPORTED, "%s: pre-tokenizer '%s' is not supported", c->file, ty);
}

static slm_status normalizer_node(hf_ctx *c, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return SLM_OK;
    const char *ty = get_str(n, "type");
    if (!ty) return slm_fail(SLM_ERR_FORMAT, "%s: normalizer without a type", c->file);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, get(n, "normalizers")) {
            slm_status st = normalizer_node(c, e);
            if (st) return st;
        }
        return SLM_OK;
    }
    if (strcmp(ty, "Prepend") == 0) {
        const char *p = get_str(n, "prepend");
        if (p && strcmp(p, "\xe2\x96\x81") == 0) { c->prepend = true; c->metaspace = true; return SLM_OK; }
    } else if (strcmp(ty, "Replace") == 0) {
        const char *from = get_str(get(n, "pattern"), "String"), *to = get_str(n, "content");
        if (from && to && strcmp(from, " ") == 0 && strcmp(to, "\xe2\x96\x81") == 0) { c->metaspace = true; return SLM_OK; }
    } else if (strcmp(ty, "NFC") == 0) {
        return SLM_OK; /* llama.cpp ignores it too; see the file comment */
    }
    return slm_fail(SLM_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported", c->file, ty);
}

/* Which llama.cpp pre-tokenizer name the regex list corresponds to (for
 * GGUF write-back); NULL when none does. */
static const char *family_name(const char *sig) {
    static const struct { const char *name, *sig; } k[] = {
        {"smollm", "\\p{N}\x01" RX_HF_BYTELEVEL},
        {"gpt-2", RX_HF_BYTELEVEL},
        {"llama-bpe", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
        {"qwen2", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                  "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (strcmp(sig, k[i].sig) == 0) return k[i].name;
    return NULL;
}

/* The id of a token named in tokenizer_config.json ("<s>" or {"content": "<s>"}). */
static int32_t config_token(const slm_tokenizer *t, const cJSON *v) {
    const char *s = cJSON_IsString(v) ? v->valuestring : get_str(v, "content");
    return s ? slm_tok_lookup(t, s, strlen(s)) : -1;
}

static slm_status load_vocab(hf_ctx *c, const cJSON *model, const cJSON *added) {
    const cJSON *vocab = get(model, "vocab");
    if (!cJSON_IsObject(vocab)) return slm_fail(SLM_ERR_FORMAT, "%s: model.vocab missing", c->file);
    int64_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= (1 << 30))
            return slm_fail(SLM_ERR_FORMAT, "%s: vocab entry '%.40s' has a bad id", c->file, e->string);
        if ((int64_t)e->valuedouble + 1 > n) n = (int64_t)e->valuedouble + 1;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = get(e, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= (1 << 30) || !get_str(e, "content"))
            return slm_fail(SLM_ERR_FORMAT, "%s: added token without a valid id and content", c->file);
        if ((int64_t)id->valuedouble + 1 > n) n = (int64_t)id->valuedouble + 1;
    }
    if (n == 0) return slm_fail(SLM_ERR_FORMAT, "%s: empty vocabulary", c->file);
    const char **texts = calloc((size_t)n, sizeof *texts);
    uint64_t *lens = calloc((size_t)n, sizeof *lens);
    int32_t *types = calloc((size_t)n, sizeof *types);
    if (!texts || !lens || !types) {
        free(texts); free(lens); free(types);
        return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", c->file);
    }
    slm_status st = SLM_OK;
    cJSON_ArrayForEach(e, vocab) {
        int64_t id = (int64_t)e->valuedouble;
        if (texts[id]) { st = slm_fail(SLM_ERR_FORMAT, "%s: id %lld given to two tokens", c->file, (long long)id); break; }
        texts[id] = e->string;
        types[id] = SLM_TOKTYPE_NORMAL;
    }
    const char *unk = get_str(model, "unk_token");
    cJSON_ArrayForEach(e, added) {
        if (st) break;
        int64_t id = (int64_t)get(e, "id")->valuedouble;
        texts[id] = get_str(e, "content");
        types[id] = cJSON_IsTrue(get(e, "special")) ? SLM_TOKTYPE_CONTROL : SLM_TOKTYPE_USER_DEFINED;
    }
    for (int64_t i = 0; !st && i < n; i++) {
        if (!texts[i]) { st = slm_fail(SLM_ERR_FORMAT, "%s: no token has id %lld", c->file, (long long)i); break; }
        lens[i] = strlen(texts[i]);
        if (unk && strcmp(texts[i], unk) == 0) types[i] = SLM_TOKTYPE_UNKNOWN;
        else if (!c->byte_level && lens[i] == 6 && strncmp(texts[i], "<0x", 3) == 0 && texts[i][5] == '>' &&
                 types[i] == SLM_TOKTYPE_NORMAL)
            types[i] = SLM_TOKTYPE_BYTE;
    }
    if (!st) st = slm_tok_vocab_init(c->t, n, texts, lens, NULL, types);
    free(texts);
    free(lens);
    free(types);
    return st;
}

static slm_status load_merges(hf_ctx *c, const cJSON *model) {
    const cJSON *m = get(model, "merges");
    if (!cJSON_IsArray(m)) return slm_fail(SLM_ERR_FORMAT, "%s: model.merges missing", c->file);
    int64_t n = cJSON_GetArraySize(m);
    if (n > (1 << 24)) return slm_fail(SLM_ERR_FORMAT, "%s: %lld merges is too many", c->file, (long long)n);
    int32_t *pairs = malloc((size_t)(n ? n : 1) * 2 * sizeof *pairs);
    if (!pairs) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", c->file);
    int64_t r = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, m) {
        const char *a = NULL, *b = NULL;
        size_t al = 0;
        if (cJSON_IsString(e)) { /* "a b" */
            const char *s = e->valuestring, *sp = s[0] ? strchr(s + 1, ' ') : NULL;
            if (sp) { a = s; al = (size_t)(sp - s); b = sp + 1; }
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) { /* ["a", "b"] */
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            al = strlen(a);
            b = cJSON_GetArrayItem(e, 1)->valuestring;
        }
        int32_t l = a ? slm_tok_lookup(c->t, a, al) : -1, rr = b ? slm_tok_lookup(c->t, b, strlen(b)) : -1;
        if (!a || l < 0 || rr < 0) {
            free(pairs);
            return slm_fail(SLM_ERR_FORMAT, "%s: merge %lld %s", c->file, (long long)r,
                            a ? "names a token not in the vocabulary" : "is not a pair of tokens");
        }
        pairs[2 * r] = l;
        pairs[2 * r + 1] = rr;
        r++;
    }
    return slm_tok_merges_init_pairs(c->t, n, pairs);
}

/* BOS/EOS: tokenizer_config.json first, else the TemplateProcessing. */
static void special_flags(hf_ctx *c, const cJSON *root, const cJSON *cfg) {
    slm_tokenizer *t = c->t;
    const cJSON *single = get(get(root, "post_processor"), "single");
    if (type_is(get(root, "post_processor"), "TemplateProcessing") && cJSON_IsArray(single)) {
        int n = cJSON_GetArraySize(single);
        const cJSON *first = get(cJSON_GetArrayItem(single, 0), "SpecialToken");
        const cJSON *last = get(cJSON_GetArrayItem(single, n - 1), "SpecialToken");
        if (first) { t->add_bos = true; t->ids[SLM_TOKID_BOS] = config_token(t, get(first, "id")); }
        if (last && n > 1) { t->add_eos = true; t->ids[SLM_TOKID_EOS] = config_token(t, get(last, "id")); }
    }
    if (cfg) {
        int32_t id;
        if ((id = config_token(t, get(cfg, "bos_token"))) >= 0) t->ids[SLM_TOKID_BOS] = id;
        if ((id = config_token(t, get(cfg, "eos_token"))) >= 0) t->ids[SLM_TOKID_EOS] = id;
        if ((id = config_token(t, get(cfg, "pad_token"))) >= 0) t->ids[SLM_TOKID_PAD] = id;
        const cJSON *v;
        if (cJSON_IsBool(v = get(cfg, "add_bos_token"))) t->add_bos = cJSON_IsTrue(v);
        if (cJSON_IsBool(v = get(cfg, "add_eos_token"))) t->add_eos = cJSON_IsTrue(v);
        const char *tmpl = get_str(cfg, "chat_template");
        if (tmpl) t->chat_template = strdup(tmpl);
    }
    const char *unk = get_str(get(root, "model"), "unk_token");
    if (unk) t->ids[SLM_TOKID_UNK] = slm_tok_lookup(t, unk, strlen(unk));
    t->has_add_bos = t->has_add_eos = true; /* written back explicitly */
    for (int k = 0; k < SLM_TOKID_COUNT; k++) t->has_id[k] = t->ids[k] >= 0;
}

static slm_status load_json(hf_ctx *c, const cJSON *root, const cJSON *cfg) {
    slm_tokenizer *t = c->t;
    const cJSON *model = get(root, "model");
    if (!cJSON_IsObject(model)) return slm_fail(SLM_ERR_FORMAT, "%s: no model object", c->file);
    const char *mt = get_str(model, "type");
    if (mt && strcmp(mt, "BPE") != 0)
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: model type '%s' is not supported (BPE is)", c->file, mt);
    if (!mt && !get(model, "merges")) return slm_fail(SLM_ERR_FORMAT, "%s: model has no type and no merges", c->file);
    if (get_str(model, "continuing_subword_prefix") || get_str(model, "end_of_word_suffix"))
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: BPE with subword prefix/suffix is not supported", c->file);
    slm_status st = normalizer_node(c, get(root, "normalizer"));
    if (!st) st = pretok_node(c, get(root, "pre_tokenizer"));
    if (st) return st;
    if (c->byte_level == c->metaspace && !cJSON_IsTrue(get(model, "byte_fallback")))
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: BPE that is neither byte-level nor SentencePiece-style", c->file);
    t->kind = c->byte_level ? SLM_TOK_BPE : SLM_TOK_SPM;
    t->model = strdup(c->byte_level ? "gpt2" : "llama");
    const char *fam = family_name(c->sig);
    if (c->byte_level && fam) t->pre = strdup(fam);
    t->ignore_merges = cJSON_IsTrue(get(model, "ignore_merges"));
    t->add_space_prefix = c->prepend;
    t->has_add_space_prefix = !c->byte_level;
    if ((st = load_vocab(c, model, get(root, "added_tokens")))) return st;
    if ((st = load_merges(c, model))) return st;
    if (t->kind == SLM_TOK_SPM) { /* GGUF "llama" wants scores: merge priority, best first */
        t->scores = malloc((size_t)t->n_vocab * sizeof *t->scores);
        if (!t->scores) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", c->file);
        for (int32_t i = 0; i < t->n_vocab; i++) t->scores[i] = -1e9f;
        for (int64_t r = t->n_merges - 1; r >= 0; r--) {
            int32_t rank, res;
            if (slm_tok_merge_find(t, t->merge_pairs[2 * r], t->merge_pairs[2 * r + 1], &rank, &res) && res >= 0)
                t->scores[res] = -(float)rank;
        }
    }
    special_flags(c, root, cfg);
    return slm_tok_finish(t);
}

slm_status slm_tokenizer_load_hf_json(const char *json, size_t len, const char *cfg_json, size_t cfg_len,
                                      const char *name, slm_tokenizer **out) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len), *cfg = NULL;
    if (!root) return slm_fail(SLM_ERR_FORMAT, "%s: malformed JSON", name);
    if (cfg_json) {
        cfg = cJSON_ParseWithLength(cfg_json, cfg_len);
        if (!cfg) {
            cJSON_Delete(root);
            return slm_fail(SLM_ERR_FORMAT, "%s: malformed tokenizer_config.json", name);
        }
    }
    slm_tokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(name))) {
        free(t);
        cJSON_Delete(root);
        cJSON_Delete(cfg);
        return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", name);
    }
    for (int k = 0; k < SLM_TOKID_COUNT; k++) t->ids[k] = -1;
    hf_ctx c = {.t = t, .file = t->name};
    slm_status st = load_json(&c, root, cfg);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    if (st) {
        slm_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SLM_OK;
}

slm_status slm_tokenizer_load_hf(const char *dir, slm_tokenizer **out) {
    *out = NULL;
    char path[4096], cpath[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", dir);
    char *text = NULL, *ctext = NULL;
    size_t len, clen = 0;
    slm_status st = slm_read_file(path, &text, &len);
    if (st) return st;
    FILE *cf = fopen(cpath, "rb");
    if (cf) {
        fclose(cf);
        if ((st = slm_read_file(cpath, &ctext, &clen))) {
            free(text);
            return st;
        }
    }
    st = slm_tokenizer_load_hf_json(text, len, ctext, clen, path, out);
    free(text);
    free(ctext);
    return st;
}
