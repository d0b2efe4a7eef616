/* slm_tokenize: text -> ids.
 *
 *  1. Special tokens are cut out of the raw text first (llama.cpp's
 *     tokenizer_st_partition): longest text first; control and unknown
 *     tokens only when parse_special, user-defined tokens always (HF
 *     matches added tokens the same way).
 *  2. Each remaining raw fragment goes through the vocabulary's encoder:
 *     byte-level BPE (invalid UTF-8 -> U+FFFD as llama.cpp does, then the
 *     pre-tokenizer regexes, then BPE per piece) or SentencePiece BPE
 *     (a ▁ prefix on the first fragment and after each special token).
 *  3. BOS / EOS are added when add_special and the vocabulary says so.
 */
#define _POSIX_C_SOURCE 200809L
#include "tokenizer/tok_internal.h"

#include <pcre2.h>
#include <string.h>

/* ---- UTF-8 repair ------------------------------------------------------
 * Decodes like llama.cpp's unicode_cpt_from_utf8 (lead byte decides the
 * length, continuation bytes must be 10xxxxxx, anything else is one bad
 * byte -> U+FFFD) and re-encodes, so overlong forms come out canonical.
 * Surrogates (which llama.cpp re-encodes as they are) stay in the BPE text
 * but become U+E000 in the regex text: both are "other" to every
 * pre-tokenizer regex, and PCRE2 only takes valid UTF-8. Code points past
 * U+10FFFF (which llama.cpp cannot re-encode) become U+FFFD. */
static uint32_t utf8_decode_lenient(const uint8_t *s, size_t n, size_t i, size_t *len) {
    uint8_t c = s[i];
    *len = 1;
    if (c < 0x80) return c;
    if (!(c & 0x40)) return 0xFFFD;
    size_t need = !(c & 0x20) ? 2 : !(c & 0x10) ? 3 : !(c & 0x08) ? 4 : 0;
    if (need == 0 || i + need > n) return 0xFFFD;
    uint32_t cp = c & (0x7Fu >> need);
    for (size_t k = 1; k < need; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return 0xFFFD;
        cp = (cp << 6) | (s[i + k] & 0x3Fu);
    }
    *len = need;
    return cp > 0x10FFFF ? 0xFFFD : cp;
}

static bool is_surrogate(uint32_t cp) { return cp >= 0xD800 && cp <= 0xDFFF; }

/* Returns false when p is valid canonical UTF-8 (the common case: no copy);
 * else *rx and *bp (one allocation, free *rx) hold the two texts. */
static bool utf8_repair(const char *p, size_t n, char **rx, char **bp, size_t *out_n, bool *oom) {
    const uint8_t *s = (const uint8_t *)p;
    size_t i = 0;
    for (; i < n; i++) { /* the first byte that needs a change */
        if (s[i] < 0x80) continue;
        size_t len;
        uint32_t cp = utf8_decode_lenient(s, n, i, &len);
        char enc[4];
        if (is_surrogate(cp) || (size_t)slm_tok_utf8_put(cp, enc) != len || memcmp(enc, p + i, len) != 0) break;
        i += len - 1;
    }
    if (i == n) return false;
    size_t cap = n * 3 + 1; /* one bad byte grows to 3 bytes at most */
    char *o = malloc(cap * 2);
    if (!o) return *oom = true;
    char *b = o + cap;
    memcpy(o, p, i);
    memcpy(b, p, i);
    size_t k = i;
    while (i < n) {
        size_t len;
        uint32_t cp = utf8_decode_lenient(s, n, i, &len);
        slm_tok_utf8_put(cp, b + k);
        k += (size_t)slm_tok_utf8_put(is_surrogate(cp) ? 0xE000 : cp, o + k);
        i += len;
    }
    *rx = o;
    *bp = b;
    *out_n = k;
    return true;
}

/* ---- special-token partition ------------------------------------------ */

typedef struct frag {
    size_t off, len; /* raw text span; len 0 marks a token fragment */
    int32_t id;
} frag;

typedef struct frag_list {
    frag *v;
    size_t n, cap;
} frag_list;

static bool frag_push(frag_list *l, frag f) {
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 16;
        frag *v = realloc(l->v, c * sizeof *v);
        if (!v) return false;
        l->v = v;
        l->cap = c;
    }
    l->v[l->n++] = f;
    return true;
}

static const char *find_bytes(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0 || nn > hn) return NULL;
    const char *end = h + hn - nn;
    for (const char *p = h; p <= end; p++) {
        p = memchr(p, nd[0], (size_t)(end - p) + 1);
        if (!p) return NULL;
        if (memcmp(p, nd, nn) == 0) return p;
    }
    return NULL;
}

static slm_status partition(const slm_tokenizer *t, const char *text, size_t n, bool parse_special, frag_list *out) {
    frag_list a = {0}, b = {0};
    if (n && !frag_push(&a, (frag){0, n, -1})) goto oom;
    for (int si = 0; si < t->n_specials && a.n; si++) {
        int32_t id = t->specials[si];
        if (!parse_special && t->attr[id] != SLM_TOKTYPE_USER_DEFINED) continue;
        const char *st = slm_tok_text(t, id);
        size_t sl = t->text_len[id];
        b.n = 0;
        bool found = false;
        for (size_t fi = 0; fi < a.n; fi++) {
            frag f = a.v[fi];
            const char *m;
            while (f.len && (m = find_bytes(text + f.off, f.len, st, sl)) != NULL) {
                size_t at = (size_t)(m - text);
                found = true;
                if (at > f.off && !frag_push(&b, (frag){f.off, at - f.off, -1})) goto oom;
                if (!frag_push(&b, (frag){0, 0, id})) goto oom;
                f.len -= at + sl - f.off;
                f.off = at + sl;
            }
            if ((f.len || f.id >= 0) && !frag_push(&b, f)) goto oom;
        }
        if (found) {
            frag_list tmp = a;
            a = b;
            b = tmp;
        }
    }
    free(b.v);
    *out = a;
    return SLM_OK;
oom:
    free(a.v);
    free(b.v);
    return slm_fail(SLM_ERR_NOMEM, "%s: out of memory splitting special tokens", t->name);
}

/* ---- the entry point --------------------------------------------------- */

static void scratch_free(slm_tok_scratch *s) {
    free(s->syms);
    free(s->heap);
    free(s->buf);
    if (s->match) pcre2_match_data_free((pcre2_match_data *)s->match);
}

/* Encodes into a growable list (used by slm_tokenize and the CLI/bench). */
slm_status slm_tokenizer_encode(const slm_tokenizer *t, const char *text, size_t len, bool add_special,
                                bool parse_special, int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (!t || (!text && len)) return slm_fail(SLM_ERR_ARG, "slm_tokenize: NULL tokenizer or text");
    frag_list fl = {0};
    slm_status st = partition(t, text, len, parse_special, &fl);
    if (st) return st;
    slm_tok_out out = {0};
    slm_tok_scratch sc = {0};
    int32_t bos = t->ids[SLM_TOKID_BOS], eos = t->ids[SLM_TOKID_EOS];
    if (add_special && t->add_bos && bos >= 0) slm_tok_push(&out, bos);
    bool prev_special = true; /* SPM: the first fragment gets the ▁ prefix too */
    for (size_t i = 0; i < fl.n && !st; i++) {
        frag f = fl.v[i];
        if (f.id >= 0) {
            slm_tok_push(&out, f.id);
            prev_special = true;
            continue;
        }
        if (t->kind == SLM_TOK_SPM) {
            slm_tok_spm_fragment(t, &sc, text + f.off, f.len, t->add_space_prefix && prev_special, &out);
        } else {
            size_t rn = 0;
            char *rx = NULL, *bp = NULL;
            bool oom = false;
            if (utf8_repair(text + f.off, f.len, &rx, &bp, &rn, &oom)) st = slm_tok_bpe_fragment(t, &sc, rx, bp, rn, &out);
            else if (oom) sc.oom = true;
            else st = slm_tok_bpe_fragment(t, &sc, text + f.off, text + f.off, f.len, &out);
            free(rx);
        }
        prev_special = false;
    }
    if (add_special && t->add_eos && eos >= 0) slm_tok_push(&out, eos);
    free(fl.v);
    bool oom = out.oom || sc.oom;
    scratch_free(&sc);
    if (!st && oom) st = slm_fail(SLM_ERR_NOMEM, "%s: out of memory tokenizing %zu bytes", t->name, len);
    if (st) {
        free(out.v);
        return st;
    }
    if (!out.v && !(out.v = malloc(sizeof *out.v))) /* never NULL on success, even for 0 ids */
        return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", t->name);
    *ids = out.v;
    *n_ids = out.n;
    return SLM_OK;
}

slm_status slm_tokenize(const slm_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                        int32_t *ids, size_t cap, size_t *n_out) {
    int32_t *v;
    size_t n;
    *n_out = 0;
    slm_status st = slm_tokenizer_encode(t, text, len, add_special, parse_special, &v, &n);
    if (st) return st;
    *n_out = n;
    if (n > cap) {
        free(v);
        return slm_fail(SLM_ERR_ARG, "slm_tokenize: %zu ids do not fit in a buffer of %zu", n, cap);
    }
    if (n) memcpy(ids, v, n * sizeof *v);
    free(v);
    return SLM_OK;
}
