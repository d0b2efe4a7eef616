/* WikiText-2 documents, detokeniser and word counts as lm-evaluation-harness
 * computes them (see wikitext.h for the rules and their sources). Python's
 * str semantics are reproduced on UTF-8 bytes: every pattern is ASCII (or
 * valid UTF-8), so byte matches fall on code-point boundaries, and Python's
 * Unicode whitespace is spelled out as an explicit set. */
#include "eval/wikitext.h"
#include "core/core.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

/* ---- Python's whitespace (str.isspace, and re's \s on str) ------------------ */

static bool py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}
/* The same set as a PCRE2 class body, so regex \s means what Python's does. */
#define PY_SPACE_CLASS "[\\t-\\r\\x{1c}-\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]"

/* Decodes one code point at s[i] (i < n); returns its byte length. Invalid
 * bytes decode as themselves (one byte, never whitespace above 0x7f). */
static int utf8_next(const char *s, size_t n, size_t i, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s + i;
    size_t left = n - i;
    if (u[0] < 0x80) { *cp = u[0]; return 1; }
    int len = (u[0] & 0xe0) == 0xc0 ? 2 : (u[0] & 0xf0) == 0xe0 ? 3 : (u[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || (size_t)len > left) { *cp = 0xfffd; return 1; }
    uint32_t c = u[0] & (0x7f >> len);
    for (int k = 1; k < len; k++) {
        if ((u[k] & 0xc0) != 0x80) { *cp = 0xfffd; return 1; }
        c = (c << 6) | (u[k] & 0x3f);
    }
    *cp = c;
    return len;
}

int64_t slm_wikitext_count_words(const char *s, size_t len) {
    int64_t runs = 0;
    bool in_space = false;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        i += (size_t)utf8_next(s, len, i, &c);
        bool sp = py_isspace(c);
        if (sp && !in_space) runs++;
        in_space = sp;
    }
    return runs + 1; /* re.split returns one more piece than there are matches */
}

/* Python str.strip() as a byte range [*b, *e). */
static void py_strip(const char *s, size_t len, size_t *b, size_t *e) {
    size_t i = 0;
    while (i < len) {
        uint32_t c;
        int k = utf8_next(s, len, i, &c);
        if (!py_isspace(c)) break;
        i += (size_t)k;
    }
    size_t j = len;
    while (j > i) { /* step back over one code point */
        size_t k = j - 1;
        while (k > i && ((unsigned char)s[k] & 0xc0) == 0x80) k--;
        uint32_t c;
        utf8_next(s, len, k, &c);
        if (!py_isspace(c)) break;
        j = k;
    }
    *b = i;
    *e = j;
}

/* ---- string building ------------------------------------------------------- */

/* str.replace(from, to) on s[0..n): every non-overlapping occurrence, left
 * to right. Returns a malloc'd NUL-terminated string or NULL (message set). */
static char *str_replace_all(const char *s, size_t n, const char *from, const char *to, size_t *out_n) {
    size_t fl = strlen(from), tl = strlen(to), count = 0;
    for (size_t i = 0; i + fl <= n;) {
        if (memcmp(s + i, from, fl) == 0) { count++; i += fl; }
        else i++;
    }
    size_t cap = n + (tl > fl ? count * (tl - fl) : 0) + 1;
    char *o = slm_malloc(cap, "wikitext text");
    if (!o) return NULL;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        if (i + fl <= n && memcmp(s + i, from, fl) == 0) {
            memcpy(o + w, to, tl);
            w += tl;
            i += fl;
        } else {
            o[w++] = s[i++];
        }
    }
    o[w] = 0;
    *out_n = w;
    return o;
}

/* re.sub(pattern, repl, s) with PCRE2 (global, UTF). repl uses $1. */
static slm_status regex_sub(const char *pattern, const char *repl, const char *s, size_t n, const char *name,
                            char **out, size_t *out_n) {
    int err;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_NO_UTF_CHECK,
                                   &err, &eoff, NULL);
    if (!re) return slm_fail(SLM_ERR_STATE, "wikitext detokenizer: bad pattern '%s' (pcre2 error %d)", pattern, err);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    slm_status st = SLM_OK;
    PCRE2_SIZE cap = n + n / 4 + 64;
    char *buf = NULL;
    for (int attempt = 0; attempt < 2 && st == SLM_OK; attempt++) {
        free(buf);
        buf = slm_malloc(cap + 1, "wikitext text");
        if (!buf || !md) { st = SLM_ERR_NOMEM; break; }
        PCRE2_SIZE olen = cap;
        int rc = pcre2_substitute(re, (PCRE2_SPTR)s, n, 0,
                                  PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_NO_UTF_CHECK,
                                  md, NULL, (PCRE2_SPTR)repl, PCRE2_ZERO_TERMINATED, (PCRE2_UCHAR *)buf, &olen);
        if (rc >= 0) {
            buf[olen] = 0;
            *out = buf;
            *out_n = olen;
            buf = NULL;
            break;
        }
        if (rc == PCRE2_ERROR_NOMEMORY && attempt == 0) { cap = olen; continue; }
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        st = slm_fail(SLM_ERR_FORMAT, "%s: detokenizer regex failed: %s", name, (const char *)msg);
    }
    free(buf);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return st;
}

/* ---- documents ------------------------------------------------------------- */

/* The dataset script's heading test on one line. */
static slm_status line_is_heading(const char *line, size_t n, bool *is) {
    *is = false;
    if (!memchr(line, '=', n)) return SLM_OK;
    size_t n1, n2;
    char *a = str_replace_all(line, n, "= = =", "===", &n1);
    if (!a) return SLM_ERR_NOMEM;
    char *r = str_replace_all(a, n1, "= =", "==", &n2);
    free(a);
    if (!r) return SLM_ERR_NOMEM;
    size_t b, e;
    py_strip(r, n2, &b, &e);
    *is = e - b >= 2 && memcmp(r + b, "= ", 2) == 0 && memcmp(r + e - 2, " =", 2) == 0;
    free(r);
    return SLM_OK;
}

static bool has_non_space(const char *s, size_t n) {
    size_t b, e;
    py_strip(s, n, &b, &e);
    return e > b;
}

slm_status slm_wikitext_split_pages(const char *raw, size_t len, slm_wikitext_page **pages, int *n_pages) {
    *pages = NULL;
    *n_pages = 0;
    int cap = 64, np = 0;
    slm_wikitext_page *pg = slm_malloc(sizeof *pg * (size_t)cap, "wikitext pages");
    if (!pg) return SLM_ERR_NOMEM;
    size_t page_start = 0;
    bool have_lines = false; /* ret non-empty */
    for (size_t ls = 0;;) {
        const char *nl = memchr(raw + ls, '\n', len - ls);
        size_t le = nl ? (size_t)(nl - raw) : len;
        bool heading;
        if (line_is_heading(raw + ls, le - ls, &heading)) { free(pg); return SLM_ERR_NOMEM; }
        if (heading) {
            /* "\n".join(ret): the lines before this one, without the last '\n' */
            if (have_lines && has_non_space(raw + page_start, ls - 1 - page_start)) {
                if (np == cap) {
                    cap *= 2;
                    slm_wikitext_page *g = realloc(pg, sizeof *pg * (size_t)cap);
                    if (!g) { free(pg); return slm_fail(SLM_ERR_NOMEM, "out of memory for wikitext pages"); }
                    pg = g;
                }
                pg[np].off = page_start;
                pg[np].len = ls - 1 - page_start;
                np++;
            }
            page_start = ls;
        }
        have_lines = true;
        if (!nl) break;
        ls = le + 1;
    }
    /* the last page is kept even when blank, as the dataset script does */
    if (np == cap) {
        slm_wikitext_page *g = realloc(pg, sizeof *pg * (size_t)(cap + 1));
        if (!g) { free(pg); return slm_fail(SLM_ERR_NOMEM, "out of memory for wikitext pages"); }
        pg = g;
    }
    pg[np].off = page_start;
    pg[np].len = len - page_start;
    np++;
    *pages = pg;
    *n_pages = np;
    return SLM_OK;
}

/* ---- detokenizer ------------------------------------------------------------- */

typedef struct detok_step {
    bool regex;
    const char *from; /* literal text or PCRE2 pattern */
    const char *to;   /* literal text or PCRE2 replacement */
} detok_step;

/* preprocess_wikitext.wikitext_detokenizer, step for step, in its order. */
static const detok_step k_detok_steps[] = {
    {false, "s '", "s'"},
    {true, "/' [0-9]/", "/'[0-9]/"}, /* a literal pattern upstream; kept as is */
    {false, " @-@ ", "-"},
    {false, " @,@ ", ","},
    {false, " @.@ ", "."},
    {false, " : ", ": "},
    {false, " ; ", "; "},
    {false, " . ", ". "},
    {false, " ! ", "! "},
    {false, " ? ", "? "},
    {false, " , ", ", "},
    {true, "\\(" PY_SPACE_CLASS "*([^\\)]*?)" PY_SPACE_CLASS "*\\)", "($1)"},
    {true, "\\[" PY_SPACE_CLASS "*([^\\]]*?)" PY_SPACE_CLASS "*\\]", "[$1]"},
    {true, "\\{" PY_SPACE_CLASS "*([^}]*?)" PY_SPACE_CLASS "*\\}", "{$1}"},
    {true, "\"" PY_SPACE_CLASS "*([^\"]*?)" PY_SPACE_CLASS "*\"", "\"$1\""},
    {true, "'" PY_SPACE_CLASS "*([^']*?)" PY_SPACE_CLASS "*'", "'$1'"},
    {false, "= = = =", "===="},
    {false, "= = =", "==="},
    {false, "= =", "=="},
    {false, " \xc2\xb0 ", "\xc2\xb0"}, /* chr(176), the degree sign */
    {false, " \n", "\n"},
    {false, "\n ", "\n"},
    {false, " N ", " 1 "},
    {false, " 's", "'s"},
};

slm_status slm_wikitext_detokenize(const char *page, size_t len, const char *name, char **out, size_t *out_len) {
    *out = NULL;
    size_t n = len;
    char *cur = slm_malloc(len + 1, "wikitext text");
    if (!cur) return SLM_ERR_NOMEM;
    memcpy(cur, page, len);
    cur[len] = 0;
    for (size_t k = 0; k < sizeof k_detok_steps / sizeof k_detok_steps[0]; k++) {
        const detok_step *s = &k_detok_steps[k];
        char *next = NULL;
        size_t nn = 0;
        if (s->regex) {
            slm_status st = regex_sub(s->from, s->to, cur, n, name, &next, &nn);
            if (st) { free(cur); return st; }
        } else {
            next = str_replace_all(cur, n, s->from, s->to, &nn);
            if (!next) { free(cur); return SLM_ERR_NOMEM; }
        }
        free(cur);
        cur = next;
        n = nn;
    }
    *out = cur;
    *out_len = n;
    return SLM_OK;
}
