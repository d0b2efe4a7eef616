/* Tokenizer internals shared by the files of src/tokenizer/.
 *
 * One struct holds a vocabulary of either kind:
 *   byte-level BPE (GGUF tokenizer.ggml.model "gpt2"; HF model BPE with a
 *     ByteLevel pre-tokenizer): text is split by the family's regexes, each
 *     piece's bytes become symbols, merges are applied lowest rank first;
 *   SentencePiece-style BPE (GGUF "llama"; HF BPE with byte_fallback and
 *     Metaspace/▁): spaces become ▁, a ▁ is prepended, pairs that form a
 *     vocabulary token merge highest score first, leftovers become <0xNN>.
 * It keeps everything it was loaded from (texts, scores, types, merges,
 * flags) so slm_tokenizer_write_gguf can write it back unchanged.
 *
 * The behaviour follows llama.cpp's llama-vocab.cpp, which is the reference
 * the GGUF files were made for; HF tokenizers agrees on everything tested
 * (see docs/tokenizer.md for the measured agreement).
 */
#ifndef SLM_TOK_INTERNAL_H
#define SLM_TOK_INTERNAL_H

#include "core/core.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>

/* GGUF token types (llama.cpp's llama_token_type). */
enum {
    SLM_TOKTYPE_UNDEFINED = 0,
    SLM_TOKTYPE_NORMAL = 1,
    SLM_TOKTYPE_UNKNOWN = 2,
    SLM_TOKTYPE_CONTROL = 3,
    SLM_TOKTYPE_USER_DEFINED = 4,
    SLM_TOKTYPE_UNUSED = 5,
    SLM_TOKTYPE_BYTE = 6
};

typedef enum slm_tok_kind { SLM_TOK_BPE = 0, SLM_TOK_SPM } slm_tok_kind;

/* Special ids as GGUF names them; -1 when absent. */
enum {
    SLM_TOKID_BOS = 0, SLM_TOKID_EOS, SLM_TOKID_UNK, SLM_TOKID_PAD, SLM_TOKID_SEP,
    SLM_TOKID_CLS, SLM_TOKID_MASK, SLM_TOKID_COUNT
};
extern const char *const slm_tok_id_keys[SLM_TOKID_COUNT]; /* "tokenizer.ggml.bos_token_id", ... */

#define SLM_TOK_MAX_REGEX 8

/* A pre-tokenizer: regexes applied in turn; each splits every piece into
 * matches and the gaps between them (HF Split "isolated"). */
typedef struct slm_pretok {
    int n;
    void *code[SLM_TOK_MAX_REGEX]; /* pcre2_code_8 * */
    size_t max_ovec;
} slm_pretok;

typedef struct slm_tok_merge_slot {
    uint64_t key;   /* (left id << 32) | right id; UINT64_MAX when empty */
    int32_t rank;
    int32_t result; /* id of left+right, -1 when the vocabulary lacks it */
} slm_tok_merge_slot;

struct slm_tokenizer {
    slm_tok_kind kind;
    char *model;      /* "gpt2" / "llama" as written to GGUF */
    char *pre;        /* pre-tokenizer name ("smollm", ...) or NULL */
    char *chat_template;
    char *name;       /* where it came from, for messages */

    int32_t n_vocab;
    char *text_blob;  /* all token texts, each NUL-terminated */
    uint64_t *text_off; /* [V] */
    uint32_t *text_len; /* [V] */
    float *scores;      /* [V] or NULL (file had none) */
    int32_t *types;     /* [V] as loaded (NULL: file had none; attr then NORMAL) */
    uint8_t *attr;      /* [V] effective type used for matching (types, or NORMAL) */

    /* text -> id, open addressing, cap a power of two */
    int32_t *hash;
    uint32_t hash_mask;

    int64_t n_merges;
    int32_t *merge_pairs; /* [n_merges][2] left, right ids in rank order */
    slm_tok_merge_slot *mhash;
    uint64_t mhash_mask;

    int32_t ids[SLM_TOKID_COUNT];
    bool has_id[SLM_TOKID_COUNT]; /* the file had the key (written back only then) */
    bool add_bos, add_eos, add_space_prefix;
    bool has_add_bos, has_add_eos, has_add_space_prefix;
    bool ignore_merges; /* llama3: a piece that is a token is not merged */

    int32_t byte_tok[256]; /* token for a raw byte (byte-level char / <0xNN>), -1 none */
    uint8_t unbyte[0x180]; /* byte-level decode: code point -> byte (valid where unbyte_ok) */
    bool unbyte_ok[0x180];

    char *piece_blob;   /* decoded bytes of every token */
    uint64_t *piece_off;
    uint32_t *piece_len;

    int32_t *specials;  /* ids matched before BPE, longest text first */
    int n_specials;

    slm_pretok pretok;
};

/* ---- vocab.c ---- */
/* Builds the vocabulary part from parallel arrays (texts are copied; a
 * NULL scores/types means the source had none). */
slm_status slm_tok_vocab_init(slm_tokenizer *t, int64_t n, const char *const *texts, const uint64_t *lens,
                              const float *scores, const int32_t *types);
int32_t slm_tok_lookup(const slm_tokenizer *t, const char *s, size_t n);
static inline const char *slm_tok_text(const slm_tokenizer *t, int32_t id) { return t->text_blob + t->text_off[id]; }
/* Merges given as "left right" strings; unknown tokens are an error. */
slm_status slm_tok_merges_init(slm_tokenizer *t, int64_t n, const char *const *strs, const uint64_t *lens);
/* Merges given as id pairs (HF pair form, already resolved). */
slm_status slm_tok_merges_init_pairs(slm_tokenizer *t, int64_t n, int32_t *pairs /* taken */);
static inline bool slm_tok_merge_find(const slm_tokenizer *t, int32_t l, int32_t r, int32_t *rank, int32_t *res) {
    if (!t->mhash || l < 0 || r < 0) return false;
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (uint64_t i = (h >> 20) & t->mhash_mask;; i = (i + 1) & t->mhash_mask) {
        const slm_tok_merge_slot *s = &t->mhash[i];
        if (s->key == key) { *rank = s->rank; *res = s->result; return true; }
        if (s->key == UINT64_MAX) return false;
    }
}
/* After ids/flags/types are set: byte tables, decoded pieces, special list. */
slm_status slm_tok_finish(slm_tokenizer *t);
/* The GPT-2 byte -> code point map. */
uint32_t slm_tok_byte_to_cpt(uint8_t b);

/* ---- pretok.c ---- */
/* Looks up a llama.cpp pre-tokenizer name (NULL/"" = default) and compiles
 * its regexes; also sets the family's flags (ignore_merges, default add_bos). */
slm_status slm_tok_pretok_from_name(slm_tokenizer *t, const char *pre, bool *default_add_bos);
/* Compiles one more regex (HF Split / ByteLevel); what names it in errors. */
slm_status slm_tok_pretok_add(slm_tokenizer *t, const char *pattern, size_t len, const char *what);
void slm_tok_pretok_free(slm_pretok *p);

/* ---- encode.c: growable id list and per-call scratch ---- */
typedef struct slm_tok_out {
    int32_t *v;
    size_t n, cap;
    bool oom;
} slm_tok_out;
static inline void slm_tok_push(slm_tok_out *o, int32_t id) {
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 256;
        int32_t *nv = realloc(o->v, nc * sizeof *nv);
        if (!nv) { o->oom = true; return; }
        o->v = nv;
        o->cap = nc;
    }
    o->v[o->n++] = id;
}

typedef struct slm_tok_sym {
    int32_t id;    /* token id of this symbol's text, -1 when none */
    int32_t prev, next;
    uint32_t start, len; /* bytes in the piece */
} slm_tok_sym;

typedef struct slm_tok_pair {
    float score;   /* SPM: token score (higher first); BPE: -rank */
    int32_t left, right;
    int32_t lid, rid; /* ids of the two symbols when pushed (staleness check) */
    int32_t result;
} slm_tok_pair;

typedef struct slm_tok_scratch {
    slm_tok_sym *syms;
    size_t syms_cap;
    slm_tok_pair *heap;
    size_t heap_n, heap_cap;
    char *buf;      /* SPM: escaped text; BPE: byte-encoded piece */
    size_t buf_cap;
    void *match;    /* pcre2_match_data_8 * */
    bool oom;
} slm_tok_scratch;
bool slm_tok_scratch_reserve(slm_tok_scratch *s, size_t n_syms, size_t n_buf);
/* Binary heap on (score desc, left asc). */
void slm_tok_heap_push(slm_tok_scratch *s, slm_tok_pair p);
slm_tok_pair slm_tok_heap_pop(slm_tok_scratch *s);

/* ---- bpe.c / spm.c / pretok.c ---- */
/* One pre-tokenized piece (raw UTF-8 bytes) through byte-level BPE. */
void slm_tok_bpe_piece(const slm_tokenizer *t, slm_tok_scratch *s, const char *p, size_t n, slm_tok_out *out);
/* Splits rx[0..n) with the pre-tokenizer and runs BPE on the same spans of
 * p (rx is p with surrogates replaced by a private-use character of the
 * same length, since PCRE2 needs valid UTF-8; usually rx == p). */
slm_status slm_tok_bpe_fragment(const slm_tokenizer *t, slm_tok_scratch *s, const char *rx, const char *p, size_t n,
                                slm_tok_out *out);
/* One raw-text fragment through SentencePiece BPE (prefix: add the ▁ prefix). */
void slm_tok_spm_fragment(const slm_tokenizer *t, slm_tok_scratch *s, const char *p, size_t n, bool prefix,
                          slm_tok_out *out);

/* UTF-8 length from a lead byte as llama.cpp counts it (1 for stray bytes). */
static inline size_t slm_tok_utf8_len(uint8_t c) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}
/* Appends the UTF-8 encoding of cpt to dst (room for 4); returns bytes. */
int slm_tok_utf8_put(uint32_t cpt, char *dst);

#endif
