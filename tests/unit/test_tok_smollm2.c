/* SmolLM2's tokenizer (byte-level BPE, pre-tokenizer "smollm") against
 * goldens from two independent references, llama.cpp and HF tokenizers
 * (tools/make_tokenizer_golden.py; every id list there was produced
 * identically by both, except 4 invalid-UTF-8 inputs HF cannot take,
 * which come from llama.cpp alone):
 *   - ~230 hard cases (emoji, CJK, RTL, combining marks, whitespace runs,
 *     digits, contractions, code, URLs, special tokens with and without
 *     parse_special, add_special, invalid UTF-8);
 *   - all of wikitext-2 test as one document (303k ids) and line by line;
 *   - decode(encode(x)) == x on every valid-UTF-8 case and on the document;
 *   - slm_tokenizer_write_gguf -> reload gives the same vocabulary and ids;
 *   - damaged GGUF vocabularies fail with a message naming the file.
 * Tolerance: none; ids must be identical. */
#define _POSIX_C_SOURCE 200809L
#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint64_t fnv_ids(const int32_t *ids, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) h = (h ^ (((uint32_t)ids[i] >> (8 * k)) & 0xFF)) * 0x100000001b3ull;
    return h;
}

static char *gunzip_file(const char *path, size_t *len) {
    gzFile f = gzopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
        int r = gzread(f, buf + n, (unsigned)(cap - n));
        if (r <= 0) break;
        n += (size_t)r;
    }
    gzclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Concatenated pieces of ids (malloc'd). */
static char *detok(const slm_tokenizer *t, const int32_t *ids, size_t n, size_t *len) {
    size_t cap = n * 16 + 16, k = 0;
    char *out = malloc(cap);
    for (size_t i = 0; i < n; i++) {
        if (k + 512 > cap) out = realloc(out, cap *= 2);
        int m = slm_token_to_piece(t, ids[i], out + k, 512);
        if (m > 0) k += (size_t)m;
    }
    *len = k;
    return out;
}

/* Strict UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!l || i + l > n) return false;
        uint32_t cp = l == 1 ? c : c & (0x3Fu >> (l - 1));
        for (size_t k = 1; k < l; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((l == 2 && cp < 0x80) || (l == 3 && cp < 0x800) || (l == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += l;
    }
    return true;
}

static int hexval(int c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

static void test_cases(const slm_tokenizer *t, const char *golden) {
    size_t len;
    char *txt = slm_test_read_file(slm_test_path(golden, "tok_smollm2_cases.tsv"), &len);
    if (!CHECK(txt != NULL, "cannot read tok_smollm2_cases.tsv")) return;
    int n = 0, pass = 0, roundtrip = 0, n_valid = 0;
    char *save = NULL;
    for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *f[5] = {0};
        char *p = line;
        for (int i = 0; i < 5; i++) {
            f[i] = p;
            char *tab = i < 4 ? strchr(p, '\t') : NULL;
            if (tab) { *tab = 0; p = tab + 1; }
            else if (i < 4) { f[i + 1] = NULL; break; }
        }
        if (!f[4]) { CHECK(false, "bad golden line"); continue; }
        size_t hl = strcmp(f[0], "-") == 0 ? 0 : strlen(f[0]);
        char in[4096];
        size_t inn = hl / 2;
        for (size_t i = 0; i < inn; i++) in[i] = (char)(hexval(f[0][2 * i]) * 16 + hexval(f[0][2 * i + 1]));
        bool add = f[1][0] == '1', special = f[2][0] == '1';
        int32_t want[4096];
        size_t nw = 0;
        for (char *q = f[4]; *q;) {
            char *e;
            long v = strtol(q, &e, 10);
            if (e == q) break;
            want[nw++] = (int32_t)v;
            q = e;
        }
        int32_t *got;
        size_t ng;
        slm_status st = slm_tokenizer_encode(t, in, inn, add, special, &got, &ng);
        n++;
        bool ok = st == SLM_OK && ng == nw && memcmp(got, want, nw * sizeof *got) == 0;
        if (ok) pass++;
        else CHECK(false, "case %d '%.*s' add=%d special=%d: %zu ids, want %zu", n, (int)inn, in, add, special, ng, nw);
        /* decode inverts encode when nothing special was added or matched */
        bool valid = utf8_valid((const unsigned char *)in, inn);
        if (st == SLM_OK && valid && !add && !special) {
            size_t dl;
            char *d = detok(t, got, ng, &dl);
            n_valid++;
            if (dl == inn && memcmp(d, in, inn) == 0) roundtrip++;
            else CHECK(false, "decode(encode('%.*s')) differs", (int)inn, in);
            free(d);
        }
        free(got);
    }
    printf("hard cases: %d/%d identical to the references; decode(encode(x)) == x on %d/%d\n", pass, n, roundtrip, n_valid);
    CHECK(n > 200, "only %d hard cases read", n);
    free(txt);
}

static void test_wikitext(const slm_tokenizer *t, const char *golden, const char *data) {
    size_t rl, gl;
    char *raw = slm_test_read_file(slm_test_path(data, "wikitext-2-raw/wiki.test.raw"), &rl);
    char *g = gunzip_file(slm_test_path(golden, "tok_smollm2_wikitext_doc.u16.gz"), &gl);
    if (!CHECK(raw && g, "cannot read wikitext or its golden")) { free(raw); free(g); return; }
    int32_t *ids;
    size_t n;
    slm_status st = slm_tokenizer_encode(t, raw, rl, false, false, &ids, &n);
    CHECK(st == SLM_OK, "encode wikitext: %s", slm_last_error());
    size_t nw = gl / 2, first_diff = SIZE_MAX;
    for (size_t i = 0; i < n && i < nw; i++) {
        int32_t w = (int32_t)((uint8_t)g[2 * i] | ((uint8_t)g[2 * i + 1] << 8));
        if (ids[i] != w) { first_diff = i; break; }
    }
    printf("wikitext-2 test as one document: %zu ids (golden %zu), first difference at %s\n", n, nw,
           first_diff == SIZE_MAX ? "none" : "an index");
    CHECK(n == nw && first_diff == SIZE_MAX, "wikitext document differs (n %zu vs %zu, first diff %zu)", n, nw, first_diff);
    size_t dl;
    char *d = detok(t, ids, n, &dl);
    CHECK(dl == rl && memcmp(d, raw, rl) == 0, "decode(encode(wikitext)) != wikitext");
    free(d);
    free(ids);
    free(g);

    /* line by line: n_ids and a hash of the ids per line */
    char *lg = gunzip_file(slm_test_path(golden, "tok_smollm2_wikitext_lines.tsv.gz"), &gl);
    if (!CHECK(lg != NULL, "cannot read line golden")) { free(raw); return; }
    int lines = 0, same = 0;
    const char *gp = lg;
    for (size_t off = 0; off < rl;) {
        const char *nl = memchr(raw + off, '\n', rl - off);
        size_t ll = nl ? (size_t)(nl - (raw + off)) + 1 : rl - off;
        unsigned long long wn = 0, wh = 0;
        int used = 0;
        if (sscanf(gp, "%llu %llx\n%n", &wn, &wh, &used) < 2) { CHECK(false, "line golden ends early"); break; }
        gp += used;
        st = slm_tokenizer_encode(t, raw + off, ll, false, false, &ids, &n);
        lines++;
        if (st == SLM_OK && n == wn && fnv_ids(ids, n) == wh) same++;
        else if (lines - same <= 5) CHECK(false, "wikitext line %d differs ('%.40s')", lines, raw + off);
        free(ids);
        off += ll;
    }
    printf("wikitext-2 test line by line: %d/%d lines identical\n", same, lines);
    CHECK(lines == 4358 && same == lines, "%d of %d lines identical", same, lines);
    free(lg);
    free(raw);
}

/* Written back to GGUF and loaded again: same vocabulary, flags and ids. */
static void test_write_back(const slm_tokenizer *t, const char *tmp) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tok_roundtrip.gguf", tmp);
    slm_gguf_writer *w = slm_gguf_writer_new();
    slm_status st = slm_gguf_set_str(w, "general.architecture", "llama");
    if (!st) st = slm_tokenizer_write_gguf(t, w);
    if (!st) st = slm_gguf_writer_write(w, path);
    slm_gguf_writer_free(w);
    if (!CHECK(st == SLM_OK, "write gguf: %s", slm_last_error())) return;
    slm_gguf *g;
    slm_tokenizer *t2 = NULL;
    if (!CHECK(slm_gguf_open(path, &g) == SLM_OK, "reopen: %s", slm_last_error())) return;
    st = slm_tokenizer_load_gguf(g, path, &t2);
    slm_gguf_close(g);
    if (!CHECK(st == SLM_OK, "reload: %s", slm_last_error())) return;
    int diff = 0;
    for (int32_t id = 0; id < slm_tokenizer_n_vocab(t); id++) {
        char a[256], b[256];
        int na = slm_token_to_piece(t, id, a, 256), nb = slm_token_to_piece(t2, id, b, 256);
        if (na != nb || memcmp(a, b, (size_t)na) != 0) diff++;
    }
    CHECK(slm_tokenizer_n_vocab(t2) == slm_tokenizer_n_vocab(t) && diff == 0, "written vocabulary differs (%d tokens)", diff);
    CHECK(slm_tokenizer_bos(t2) == slm_tokenizer_bos(t) && slm_tokenizer_eos(t2) == slm_tokenizer_eos(t) &&
              slm_tokenizer_adds_bos(t2) == slm_tokenizer_adds_bos(t), "special ids / add_bos differ after write-back");
    const char *s = "Write-back check: 12345 <|im_start|> naïve café 😀\n\n  done";
    int32_t *x, *y;
    size_t nx, ny;
    slm_tokenizer_encode(t, s, strlen(s), true, true, &x, &nx);
    slm_tokenizer_encode(t2, s, strlen(s), true, true, &y, &ny);
    CHECK(nx == ny && memcmp(x, y, nx * sizeof *x) == 0, "ids differ after write-back");
    printf("write-back to GGUF: %d tokens, %d differences\n", slm_tokenizer_n_vocab(t2), diff);
    free(x);
    free(y);
    slm_tokenizer_free(t2);
    remove(path);
}

/* Damaged GGUF vocabularies: one clear error each, never a tokenizer. */
static void test_bad_gguf(const char *tmp) {
    const char *toks[] = {"a", "b", "ab", "a"};
    const uint64_t lens[] = {1, 1, 2, 1};
    const char *merges_ok[] = {"a b"}, *merges_bad[] = {"a zz"};
    const uint64_t ml[] = {3, 4};
    const float scores[] = {0, 0};
    for (int c = 0; c < 6; c++) {
        slm_gguf_writer *w = slm_gguf_writer_new();
        slm_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
        slm_gguf_set_str(w, "tokenizer.ggml.pre", c == 5 ? "no-such-family" : "gpt-2");
        slm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, lens, c == 0 ? 4 : 3); /* 0: duplicate "a" */
        if (c != 1) slm_gguf_set_arr_str(w, "tokenizer.ggml.merges", c == 2 ? merges_bad : merges_ok, &ml[c == 2], 1);
        if (c == 3) slm_gguf_set_arr(w, "tokenizer.ggml.scores", SLM_GGUF_FLOAT32, scores, 2); /* 2 scores, 3 tokens */
        if (c == 4) slm_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 7);
        char path[1024];
        snprintf(path, sizeof path, "%s/tok_bad_%d.gguf", tmp, c);
        slm_status st = slm_gguf_writer_write(w, path);
        slm_gguf_writer_free(w);
        slm_gguf *g;
        slm_tokenizer *t = NULL;
        if (!CHECK(st == SLM_OK && slm_gguf_open(path, &g) == SLM_OK, "bad gguf %d: %s", c, slm_last_error())) continue;
        st = slm_tokenizer_load_gguf(g, path, &t);
        slm_gguf_close(g);
        printf("bad GGUF vocabulary %d: %s\n", c, slm_last_error());
        CHECK(st != SLM_OK && !t && strstr(slm_last_error(), path), "bad gguf %d loaded or unnamed error", c);
        slm_tokenizer_free(t);
        remove(path);
    }
}

int main(void) {
    const char *model = slm_test_env("SLM_TEST_MODEL", "");
    const char *golden = slm_test_env("SLM_GOLDEN_DIR", "tests/golden");
    const char *data = slm_test_env("SLM_DATA_DIR", "../shared/data");
    const char *tmp = slm_test_env("SLM_TEST_TMP", "/tmp");
    slm_gguf *g;
    if (!CHECK(slm_gguf_open(model, &g) == SLM_OK, "open %s: %s", model, slm_last_error())) return slm_test_finish();
    slm_tokenizer *t = NULL;
    slm_status st = slm_tokenizer_load_gguf(g, model, &t);
    slm_gguf_close(g);
    if (!CHECK(st == SLM_OK, "load tokenizer: %s", slm_last_error())) return slm_test_finish();
    CHECK(slm_tokenizer_n_vocab(t) == 49152, "n_vocab %d", slm_tokenizer_n_vocab(t));
    CHECK(slm_tokenizer_bos(t) == 1 && slm_tokenizer_eos(t) == 2, "bos %d eos %d", slm_tokenizer_bos(t), slm_tokenizer_eos(t));
    CHECK(!slm_tokenizer_adds_bos(t), "SmolLM2's GGUF says add_bos_token = false");
    /* the buffer contract of slm_tokenize */
    int32_t small[2];
    size_t need = 0;
    st = slm_tokenize(t, "Hello world, again", 18, false, false, small, 2, &need);
    CHECK(st == SLM_ERR_ARG && need == 4, "small buffer: st %d need %zu", st, need);
    test_cases(t, golden);
    test_wikitext(t, golden, data);
    test_write_back(t, tmp);
    test_bad_gguf(tmp);
    slm_tokenizer_free(t);
    return slm_test_finish();
}
