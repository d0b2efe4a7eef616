/* Pre-tokenizers of byte-level BPE vocabularies: each family is a list of
 * regexes (llama.cpp's llm_tokenizer_bpe table, which HF tokenizer.json
 * files spell as Split/Digits/ByteLevel). Every regex splits each piece
 * into its matches and the gaps between them; the final pieces go to BPE.
 *
 * Regexes run through PCRE2 with UTF + UCP (JIT when available). One
 * difference is patched here: with UCP, PCRE2's \s lacks U+0085, which
 * llama.cpp and Rust's regex count as whitespace, so \s and \S are
 * rewritten to an explicit class before compiling.
 */
#define _POSIX_C_SOURCE 200809L
#include "tokenizer/tok_internal.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RX_LLAMA3                                                                                                 \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "     \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_QWEN2                                                                                                  \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "          \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_CJK "[一-龥ࠀ-一가-퟿]+"

/* llama.cpp's pre-tokenizer families (llama-vocab.cpp), by GGUF name. */
typedef struct pre_family {
    const char *names; /* '|'-separated tokenizer.ggml.pre values */
    const char *rx[6];
    bool ignore_merges;
    bool add_bos; /* default when the file has no add_bos_token key */
} pre_family;

static const pre_family k_families[] = {
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|dbrx|smaug-bpe", {RX_LLAMA3}, true, true},
    {"deepseek-llm",
     {"[\r\n]",
      "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-"
      "ὗὙὛὝὟ-\\x{1F7D}ᾀ-ᾴᾶ-ᾼ\\x{1FBE}ῂ-ῄῆ-ῌῐ-\\x{1FD3}ῖ-\\x{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\\x{2126}ℨ\\x{212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-"
      "ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
      "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", RX_CJK, "\\p{N}+"},
     false, false},
    {"deepseek-coder", {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RX_CJK, "\\p{N}"}, false, false},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RX_GPT2, "[0-9][0-9][0-9]"}, false, false},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", {"\\p{N}", RX_GPT2}, false, false},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v1-en|jina-v2-es|jina-v2-de|jina-v2-code|roberta-bpe|mpt|olmo|jais|"
     "trillion|granite-docling",
     {RX_GPT2},
     false,
     false},
    {"qwen2|qwen2.5|qwen-2.5|deepseek-r1-qwen|megrez|stablelm2|hunyuan", {RX_QWEN2}, false, false},
    {"poro-chat|bloom|gpt3-finnish", {" ?[^(\\s|.,!?…。，、।۔،)]+"}, false, false},
    {"viking", {" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}"}, false, false},
    {"chatglm-bpe|glm4", {RX_LLAMA3}, false, false},
    /* no or unknown-but-empty pre: llama.cpp's "default" */
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RX_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false},
};

static bool name_in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, name, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

/* \s -> [\t-\r\x{85}\p{Z}] (Unicode White_Space), \S -> its complement. */
static char *rewrite_space_classes(const char *pat, size_t len) {
    static const char ws[] = "\\t-\\r\\x{85}\\p{Z}";
    char *out = malloc(len * 24 + 1);
    if (!out) return NULL;
    size_t k = 0;
    bool in_class = false;
    size_t class_start = 0;
    for (size_t i = 0; i < len; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < len) {
            char d = pat[i + 1];
            if (d == 's') {
                k += (size_t)sprintf(out + k, in_class ? "%s" : "[%s]", ws);
            } else if (d == 'S' && !in_class) {
                k += (size_t)sprintf(out + k, "[^%s]", ws);
            } else {
                out[k++] = c;
                out[k++] = d;
            }
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            class_start = i;
        } else if (in_class && c == ']' && i > class_start + 1 && !(i == class_start + 2 && pat[i - 1] == '^')) {
            in_class = false;
        }
        out[k++] = c;
    }
    out[k] = 0;
    return out;
}

slm_status slm_tok_pretok_add(slm_tokenizer *t, const char *pattern, size_t len, const char *what) {
    slm_pretok *p = &t->pretok;
    if (p->n >= SLM_TOK_MAX_REGEX) return slm_fail(SLM_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizer regexes", t->name, SLM_TOK_MAX_REGEX);
    char *rx = rewrite_space_classes(pattern, len);
    if (!rx) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory compiling a regex", t->name);
    int err;
    PCRE2_SIZE erroff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)rx, PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK | PCRE2_DOLLAR_ENDONLY, &err, &erroff,
                                     NULL);
    free(rx);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return slm_fail(SLM_ERR_FORMAT, "%s: bad %s regex '%.*s': %s", t->name, what, (int)(len > 80 ? 80 : len),
                        pattern, (const char *)msg);
    }
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter when JIT is unavailable */
    uint32_t cap = 0;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &cap);
    if (cap + 1 > p->max_ovec) p->max_ovec = cap + 1;
    p->code[p->n++] = code;
    return SLM_OK;
}

slm_status slm_tok_pretok_from_name(slm_tokenizer *t, const char *pre, bool *default_add_bos) {
    const pre_family *f = NULL;
    const char *key = (pre && *pre) ? pre : "default";
    for (size_t i = 0; i < sizeof k_families / sizeof k_families[0]; i++)
        if (name_in_list(k_families[i].names, key)) f = &k_families[i];
    if (!f) return slm_fail(SLM_ERR_UNSUPPORTED, "%s: unknown pre-tokenizer '%s'", t->name, key);
    for (int i = 0; i < 6 && f->rx[i]; i++) {
        slm_status st = slm_tok_pretok_add(t, f->rx[i], strlen(f->rx[i]), key);
        if (st) return st;
    }
    t->ignore_merges = f->ignore_merges;
    *default_add_bos = f->add_bos;
    return SLM_OK;
}

void slm_tok_pretok_free(slm_pretok *p) {
    for (int i = 0; i < p->n; i++) pcre2_code_free((pcre2_code *)p->code[i]);
    p->n = 0;
}

/* Regex level k splits [s, s+n); pieces go to level k+1, the last level's
 * pieces to BPE, taken from b (same offsets as s; see slm_tok_bpe_fragment). Recursion depth is the number of regexes (<= 8). */
static slm_status split_level(const slm_tokenizer *t, slm_tok_scratch *sc, int k, const char *s, const char *b,
                              size_t n, slm_tok_out *out) {
    if (n == 0) return SLM_OK;
    if (k == t->pretok.n) {
        slm_tok_bpe_piece(t, sc, b, n, out);
        return SLM_OK;
    }
    const pcre2_code *code = t->pretok.code[k];
    pcre2_match_data *md = sc->match;
    size_t pos = 0, last = 0;
    while (pos <= n) {
        int rc = pcre2_match(code, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return slm_fail(SLM_ERR_STATE, "%s: pre-tokenizer regex failed: %s", t->name, (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t m0 = ov[0], m1 = ov[1];
        if (m1 == m0) { /* empty match: step one character and keep looking */
            pos = m0 + (m0 < n ? slm_tok_utf8_len((uint8_t)s[m0]) : 1);
            continue;
        }
        if (m0 > last) {
            slm_status st = split_level(t, sc, k + 1, s + last, b + last, m0 - last, out);
            if (st) return st;
        }
        slm_status st = split_level(t, sc, k + 1, s + m0, b + m0, m1 - m0, out);
        if (st) return st;
        last = pos = m1;
    }
    if (last < n) return split_level(t, sc, k + 1, s + last, b + last, n - last, out);
    return SLM_OK;
}

slm_status slm_tok_bpe_fragment(const slm_tokenizer *t, slm_tok_scratch *s, const char *rx, const char *p, size_t n,
                                slm_tok_out *out) {
    if (!s->match && t->pretok.n) {
        s->match = pcre2_match_data_create((uint32_t)(t->pretok.max_ovec + 1), NULL);
        if (!s->match) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory for regex matching", t->name);
    }
    return split_level(t, s, 0, rx, p, n, out);
}
