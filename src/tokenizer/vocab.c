/* The vocabulary: token texts, the text -> id hash, merges with ranks, the
 * byte tables, decoded pieces and the list of specially matched tokens.
 * Shared by the GGUF and tokenizer.json loaders; also the small public
 * getters of slimlm.h. */
#define _POSIX_C_SOURCE 200809L
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

const char *const slm_tok_id_keys[SLM_TOKID_COUNT] = {
    "tokenizer.ggml.bos_token_id",     "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id", "tokenizer.ggml.seperator_token_id", /* sic: llama.cpp's key */
    "tokenizer.ggml.cls_token_id",     "tokenizer.ggml.mask_token_id"};

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a: tokens are short, this is plenty */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

int32_t slm_tok_lookup(const slm_tokenizer *t, const char *s, size_t n) {
    uint64_t h = hash_bytes(s, n);
    for (uint32_t i = (uint32_t)h & t->hash_mask;; i = (i + 1) & t->hash_mask) {
        int32_t id = t->hash[i];
        if (id < 0) return -1;
        if (t->text_len[id] == n && memcmp(slm_tok_text(t, id), s, n) == 0) return id;
    }
}

/* ---- GPT-2 byte <-> unicode map ---------------------------------------
 * Printable Latin-1 bytes map to themselves; the other 68 bytes map to
 * U+0100.. in byte order, so every byte is a visible character. */
static bool byte_is_printable(int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t slm_tok_byte_to_cpt(uint8_t b) {
    if (byte_is_printable(b)) return b;
    uint32_t k = 0;
    for (int i = 0; i < b; i++)
        if (!byte_is_printable(i)) k++;
    return 0x100 + k;
}

int slm_tok_utf8_put(uint32_t c, char *d) {
    if (c < 0x80) { d[0] = (char)c; return 1; }
    if (c < 0x800) { d[0] = (char)(0xC0 | (c >> 6)); d[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        d[0] = (char)(0xE0 | (c >> 12)); d[1] = (char)(0x80 | ((c >> 6) & 0x3F)); d[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (c >> 18)); d[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((c >> 6) & 0x3F)); d[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---- building ---------------------------------------------------------- */

slm_status slm_tok_vocab_init(slm_tokenizer *t, int64_t n, const char *const *texts, const uint64_t *lens,
                              const float *scores, const int32_t *types) {
    const char *name = t->name;
    if (n <= 0 || n > (1 << 30)) return slm_fail(SLM_ERR_FORMAT, "%s: vocabulary size %lld is invalid", name, (long long)n);
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (lens[i] > (1u << 20)) return slm_fail(SLM_ERR_FORMAT, "%s: token %lld is %llu bytes long", name, (long long)i, (unsigned long long)lens[i]);
        /* llama.cpp renames an empty token "[EMPTY_<id>]"; so do we (<= 20 bytes) */
        total += (lens[i] ? lens[i] : 24) + 1;
    }
    t->n_vocab = (int32_t)n;
    t->text_blob = slm_malloc(total, "token texts");
    t->text_off = slm_calloc((size_t)n, sizeof *t->text_off, "token offsets");
    t->text_len = slm_calloc((size_t)n, sizeof *t->text_len, "token lengths");
    t->attr = slm_calloc((size_t)n, 1, "token types");
    if (!t->text_blob || !t->text_off || !t->text_len || !t->attr) return SLM_ERR_NOMEM;
    size_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        t->text_off[i] = off;
        if (lens[i]) {
            memcpy(t->text_blob + off, texts[i], lens[i]);
            t->text_len[i] = (uint32_t)lens[i];
        } else {
            t->text_len[i] = (uint32_t)snprintf(t->text_blob + off, 24, "[EMPTY_%lld]", (long long)i);
        }
        off += t->text_len[i];
        t->text_blob[off++] = 0;
    }
    if (scores) {
        t->scores = slm_malloc((size_t)n * sizeof *t->scores, "token scores");
        if (!t->scores) return SLM_ERR_NOMEM;
        memcpy(t->scores, scores, (size_t)n * sizeof *t->scores);
    }
    if (types) {
        t->types = slm_malloc((size_t)n * sizeof *t->types, "token types");
        if (!t->types) return SLM_ERR_NOMEM;
        memcpy(t->types, types, (size_t)n * sizeof *t->types);
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t ty = types ? types[i] : SLM_TOKTYPE_NORMAL;
        t->attr[i] = (uint8_t)((ty >= SLM_TOKTYPE_NORMAL && ty <= SLM_TOKTYPE_BYTE) ? ty : SLM_TOKTYPE_UNDEFINED);
    }
    /* hash at load factor <= 1/2 */
    uint32_t cap = 16;
    while (cap < (uint64_t)n * 2) cap <<= 1;
    t->hash = slm_malloc((size_t)cap * sizeof *t->hash, "token hash");
    if (!t->hash) return SLM_ERR_NOMEM;
    memset(t->hash, 0xff, (size_t)cap * sizeof *t->hash);
    t->hash_mask = cap - 1;
    for (int32_t id = 0; id < (int32_t)n; id++) {
        const char *s = slm_tok_text(t, id);
        uint32_t len = t->text_len[id];
        uint64_t h = hash_bytes(s, len);
        uint32_t i = (uint32_t)h & t->hash_mask;
        for (;; i = (i + 1) & t->hash_mask) {
            int32_t o = t->hash[i];
            if (o < 0) break;
            if (t->text_len[o] == len && memcmp(slm_tok_text(t, o), s, len) == 0)
                return slm_fail(SLM_ERR_FORMAT, "%s: duplicate token '%.40s' (ids %d and %d)", name, s, o, id);
        }
        t->hash[i] = id;
    }
    for (int k = 0; k < SLM_TOKID_COUNT; k++) t->ids[k] = -1;
    return SLM_OK;
}

static slm_status merges_build_hash(slm_tokenizer *t) {
    uint64_t cap = 16;
    while (cap < (uint64_t)t->n_merges * 2) cap <<= 1;
    t->mhash = slm_malloc(cap * sizeof *t->mhash, "merge hash");
    if (!t->mhash) return SLM_ERR_NOMEM;
    for (uint64_t i = 0; i < cap; i++) t->mhash[i].key = UINT64_MAX;
    t->mhash_mask = cap - 1;
    char buf[2048];
    for (int64_t r = 0; r < t->n_merges; r++) {
        int32_t l = t->merge_pairs[2 * r], rr = t->merge_pairs[2 * r + 1];
        uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)rr;
        uint64_t i = ((key * 0x9E3779B97F4A7C15ull) >> 20) & t->mhash_mask;
        while (t->mhash[i].key != UINT64_MAX && t->mhash[i].key != key) i = (i + 1) & t->mhash_mask;
        if (t->mhash[i].key == key) continue; /* repeated merge: the first (lowest) rank wins, as in llama.cpp */
        size_t ln = t->text_len[l], rn = t->text_len[rr];
        int32_t res = -1;
        if (ln + rn <= sizeof buf) {
            memcpy(buf, slm_tok_text(t, l), ln);
            memcpy(buf + ln, slm_tok_text(t, rr), rn);
            res = slm_tok_lookup(t, buf, ln + rn);
        }
        t->mhash[i] = (slm_tok_merge_slot){key, (int32_t)r, res};
    }
    return SLM_OK;
}

slm_status slm_tok_merges_init_pairs(slm_tokenizer *t, int64_t n, int32_t *pairs) {
    t->n_merges = n;
    t->merge_pairs = pairs;
    return merges_build_hash(t);
}

slm_status slm_tok_merges_init(slm_tokenizer *t, int64_t n, const char *const *strs, const uint64_t *lens) {
    if (n < 0 || n > (1 << 24)) return slm_fail(SLM_ERR_FORMAT, "%s: merge count %lld is invalid", t->name, (long long)n);
    int32_t *pairs = slm_malloc((size_t)(n ? n : 1) * 2 * sizeof *pairs, "merges");
    if (!pairs) return SLM_ERR_NOMEM;
    for (int64_t r = 0; r < n; r++) {
        const char *s = strs[r];
        size_t len = lens[r];
        /* split at the first space after the first byte (llama.cpp: find(' ', 1)) */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) {
            free(pairs);
            return slm_fail(SLM_ERR_FORMAT, "%s: merge %lld '%.*s' is not two tokens separated by a space", t->name,
                            (long long)r, (int)(len > 60 ? 60 : len), s);
        }
        int32_t l = slm_tok_lookup(t, s, (size_t)(sp - s));
        int32_t rr = slm_tok_lookup(t, sp + 1, len - (size_t)(sp - s) - 1);
        if (l < 0 || rr < 0) {
            free(pairs);
            return slm_fail(SLM_ERR_FORMAT, "%s: merge %lld '%.*s' names a token not in the vocabulary", t->name,
                            (long long)r, (int)(len > 60 ? 60 : len), s);
        }
        pairs[2 * r] = l;
        pairs[2 * r + 1] = rr;
    }
    return slm_tok_merges_init_pairs(t, n, pairs);
}

/* ---- finishing: byte tables, pieces, specials ------------------------- */

static int parse_byte_token(const char *s, uint32_t n) {
    /* "<0xNN>" */
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        int c = (unsigned char)s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Decoded bytes of token id into dst (room for 3 * text_len + 8). */
static uint32_t decode_one(const slm_tokenizer *t, int32_t id, char *dst) {
    const char *s = slm_tok_text(t, id);
    uint32_t n = t->text_len[id];
    int a = t->attr[id];
    if (a == SLM_TOKTYPE_CONTROL || a == SLM_TOKTYPE_USER_DEFINED || a == SLM_TOKTYPE_UNKNOWN) {
        memcpy(dst, s, n); /* stored as plain text */
        return n;
    }
    uint32_t k = 0;
    if (t->kind == SLM_TOK_SPM) {
        if (a == SLM_TOKTYPE_BYTE) {
            int b = parse_byte_token(s, n);
            if (b >= 0) { dst[0] = (char)b; return 1; }
        }
        for (uint32_t i = 0; i < n; i++) {
            if (i + 2 < n && (uint8_t)s[i] == 0xE2 && (uint8_t)s[i + 1] == 0x96 && (uint8_t)s[i + 2] == 0x81) {
                dst[k++] = ' '; /* ▁ */
                i += 2;
            } else {
                dst[k++] = s[i];
            }
        }
        return k;
    }
    /* byte-level: every code point maps back to one byte; others kept as UTF-8 */
    for (uint32_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        size_t l = slm_tok_utf8_len(c);
        if (i + l > n) l = n - i;
        uint32_t cp = c;
        if (l == 2) cp = ((c & 0x1Fu) << 6) | ((uint8_t)s[i + 1] & 0x3Fu);
        else if (l > 2) cp = 0x10000; /* outside the byte map */
        if (cp < 0x180 && t->unbyte_ok[cp]) dst[k++] = (char)t->unbyte[cp];
        else { memcpy(dst + k, s + i, l); k += (uint32_t)l; }
        i += (uint32_t)l;
    }
    return k;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const slm_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->text_len[x] != t->text_len[y]) return t->text_len[x] > t->text_len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* qsort with a context, without relying on GNU qsort_r: insertion into a
 * sorted array is fine for the few hundred specials vocabularies have, but
 * some (phi-3, byte-level with many added tokens) have thousands, so merge sort. */
static void sort_specials(const slm_tokenizer *t, int32_t *v, int32_t *tmp, int n) {
    if (n < 2) return;
    int h = n / 2;
    sort_specials(t, v, tmp, h);
    sort_specials(t, v + h, tmp, n - h);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp_special(&v[j], &v[i], (void *)t) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, (size_t)n * sizeof *v);
}

static bool is_eot_text(const char *s) {
    static const char *const eot[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                      "<EOT>", "<｜end▁of▁sentence｜>" /* DeepSeek */};
    for (size_t i = 0; i < sizeof eot / sizeof eot[0]; i++)
        if (strcmp(s, eot[i]) == 0) return true;
    return false;
}

slm_status slm_tok_finish(slm_tokenizer *t) {
    int32_t n = t->n_vocab;
    for (int k = 0; k < SLM_TOKID_COUNT; k++)
        if (t->ids[k] >= n)
            return slm_fail(SLM_ERR_FORMAT, "%s: %s = %d is outside the vocabulary of %d", t->name, slm_tok_id_keys[k],
                            t->ids[k], n);
    /* llama.cpp promotes end-of-turn texts to control tokens, so they are
     * matched only with parse_special. */
    for (int32_t id = 0; id < n; id++)
        if (t->text_len[id] >= 5 && t->text_blob[t->text_off[id]] == '<' && is_eot_text(slm_tok_text(t, id)))
            t->attr[id] = SLM_TOKTYPE_CONTROL;

    /* raw byte -> token */
    memset(t->unbyte_ok, 0, sizeof t->unbyte_ok);
    for (int b = 0; b < 256; b++) {
        t->byte_tok[b] = -1;
        if (t->kind == SLM_TOK_BPE) {
            uint32_t cp = slm_tok_byte_to_cpt((uint8_t)b);
            char u[4];
            int l = slm_tok_utf8_put(cp, u);
            t->byte_tok[b] = slm_tok_lookup(t, u, (size_t)l);
            t->unbyte[cp] = (uint8_t)b;
            t->unbyte_ok[cp] = true;
        } else {
            char u[8];
            snprintf(u, sizeof u, "<0x%02X>", b);
            int32_t id = slm_tok_lookup(t, u, 6);
            if (id < 0) { /* llama.cpp falls back to the byte as a one-character token */
                char c = (char)b;
                id = slm_tok_lookup(t, &c, 1);
            }
            t->byte_tok[b] = id;
        }
    }

    /* decoded pieces */
    size_t total = 0;
    for (int32_t id = 0; id < n; id++) total += (size_t)t->text_len[id] * 3 + 8;
    t->piece_blob = slm_malloc(total, "token pieces");
    t->piece_off = slm_malloc((size_t)n * sizeof *t->piece_off, "token pieces");
    t->piece_len = slm_malloc((size_t)n * sizeof *t->piece_len, "token pieces");
    if (!t->piece_blob || !t->piece_off || !t->piece_len) return SLM_ERR_NOMEM;
    size_t off = 0;
    for (int32_t id = 0; id < n; id++) {
        t->piece_off[id] = off;
        t->piece_len[id] = decode_one(t, id, t->piece_blob + off);
        off += t->piece_len[id];
    }

    /* tokens matched in the text before BPE (llama.cpp cache_special_tokens) */
    int ns = 0;
    for (int32_t id = 0; id < n; id++) {
        int a = t->attr[id];
        if (a == SLM_TOKTYPE_CONTROL || a == SLM_TOKTYPE_USER_DEFINED || a == SLM_TOKTYPE_UNKNOWN) ns++;
    }
    t->specials = slm_malloc((size_t)(ns ? ns : 1) * sizeof *t->specials, "special tokens");
    int32_t *tmp = slm_malloc((size_t)(ns ? ns : 1) * sizeof *tmp, "special tokens");
    if (!t->specials || !tmp) { free(tmp); return SLM_ERR_NOMEM; }
    ns = 0;
    for (int32_t id = 0; id < n; id++) {
        int a = t->attr[id];
        if (a == SLM_TOKTYPE_CONTROL || a == SLM_TOKTYPE_USER_DEFINED || a == SLM_TOKTYPE_UNKNOWN) t->specials[ns++] = id;
    }
    sort_specials(t, t->specials, tmp, ns);
    free(tmp);
    t->n_specials = ns;
    return SLM_OK;
}

/* ---- public getters and free ------------------------------------------ */

int slm_tokenizer_n_vocab(const slm_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t slm_tokenizer_bos(const slm_tokenizer *t) { return t ? t->ids[SLM_TOKID_BOS] : -1; }
int32_t slm_tokenizer_eos(const slm_tokenizer *t) { return t ? t->ids[SLM_TOKID_EOS] : -1; }
bool slm_tokenizer_adds_bos(const slm_tokenizer *t) { return t && t->add_bos && t->ids[SLM_TOKID_BOS] >= 0; }

int slm_token_to_piece(const slm_tokenizer *t, int32_t id, char *buf, int cap) {
    if (!t || id < 0 || id >= t->n_vocab || cap < 0) return -1;
    uint32_t n = t->piece_len[id];
    /* Never truncate silently: a short buffer gets the size it needs, negated
     * (as llama.cpp's llama_token_to_piece does), and nothing is written. */
    if (n > (uint32_t)cap) return n > (uint32_t)INT32_MAX ? INT32_MIN : -(int)n;
    memcpy(buf, t->piece_blob + t->piece_off[id], n);
    return (int)n;
}

void slm_tokenizer_free(slm_tokenizer *t) {
    if (!t) return;
    free(t->model);
    free(t->pre);
    free(t->chat_template);
    free(t->name);
    free(t->text_blob);
    free(t->text_off);
    free(t->text_len);
    free(t->scores);
    free(t->types);
    free(t->attr);
    free(t->hash);
    free(t->merge_pairs);
    free(t->mhash);
    free(t->piece_blob);
    free(t->piece_off);
    free(t->piece_len);
    free(t->specials);
    slm_tok_pretok_free(&t->pretok);
    free(t);
}
