/* llama.cpp's tokenizer test vectors (tests/test-tokenizer-0): for every
 * vocabulary-only GGUF in $SLM_DATA_DIR/tokenizer-vectors with .inp/.out
 * files, each of the 46 strings must give exactly the expected ids (no
 * BOS, no special-token parsing). Vocabularies of a type slimlm does not
 * implement (WordPiece "bert") must be refused with SLM_ERR_UNSUPPORTED. */
#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEP "\n__ggml_vocab_test__\n"

static const char *const k_vocabs[] = {"llama-spm", "phi-3", "gpt-2", "starcoder", "refact", "deepseek-llm",
                                       "deepseek-coder", "falcon", "mpt", "bert-bge"};

/* Parses one .out line of space-separated ids. */
static size_t parse_ids(const char *line, const char *end, int32_t *ids, size_t cap) {
    size_t n = 0;
    const char *p = line;
    while (p < end) {
        while (p < end && *p == ' ') p++;
        if (p >= end) break;
        char *q;
        long v = strtol(p, &q, 10);
        if (q == p) break;
        if (n < cap) ids[n] = (int32_t)v;
        n++;
        p = q;
    }
    return n;
}

static void run_vocab(const char *dir, const char *name, int *n_pass, int *n_cases) {
    char path[1200], inp_path[1300], out_path[1300];
    snprintf(path, sizeof path, "%s/ggml-vocab-%s.gguf", dir, name);
    snprintf(inp_path, sizeof inp_path, "%s.inp", path);
    snprintf(out_path, sizeof out_path, "%s.out", path);
    slm_gguf *g = NULL;
    if (!CHECK(slm_gguf_open(path, &g) == SLM_OK, "open %s: %s", path, slm_last_error())) return;
    slm_tokenizer *t = NULL;
    slm_status st = slm_tokenizer_load_gguf(g, path, &t);
    slm_gguf_close(g);
    if (strcmp(name, "bert-bge") == 0) {
        CHECK(st == SLM_ERR_UNSUPPORTED, "%s: WordPiece should be refused as unsupported (got %d)", name, st);
        printf("%-16s unsupported (WordPiece): %s\n", name, slm_last_error());
        slm_tokenizer_free(t);
        return;
    }
    if (!CHECK(st == SLM_OK, "load %s: %s", name, slm_last_error())) return;
    size_t inp_len, out_len;
    char *inp = slm_test_read_file(inp_path, &inp_len);
    char *out = slm_test_read_file(out_path, &out_len);
    if (!CHECK(inp && out, "%s: cannot read .inp/.out", name)) {
        free(inp);
        free(out);
        slm_tokenizer_free(t);
        return;
    }
    const char *ip = inp, *op = out;
    int pass = 0, cases = 0;
    for (;;) {
        const char *sep = strstr(ip, SEP);
        if (!sep) break;
        const char *eol = strchr(op, '\n');
        if (!eol) eol = out + out_len;
        int32_t want[1024];
        size_t nw = parse_ids(op, eol, want, 1024);
        int32_t *got = NULL;
        size_t ng = 0;
        st = slm_tokenizer_encode(t, ip, (size_t)(sep - ip), false, false, &got, &ng);
        bool ok = st == SLM_OK && ng == nw && memcmp(got, want, ng * sizeof *got) == 0;
        cases++;
        if (ok) pass++;
        else {
            fprintf(stderr, "%s case %d '%.*s':\n  want", name, cases, (int)(sep - ip > 60 ? 60 : sep - ip), ip);
            for (size_t i = 0; i < nw && i < 40; i++) fprintf(stderr, " %d", want[i]);
            fprintf(stderr, "\n  got ");
            for (size_t i = 0; i < ng && i < 40; i++) fprintf(stderr, " %d", got[i]);
            fprintf(stderr, "\n");
        }
        free(got);
        ip = sep + strlen(SEP);
        op = eol < out + out_len ? eol + 1 : eol;
    }
    printf("%-16s %d/%d vectors identical\n", name, pass, cases);
    CHECK(cases == 46 && pass == cases, "%s: %d of %d vectors identical", name, pass, cases);
    *n_pass += pass;
    *n_cases += cases;
    free(inp);
    free(out);
    slm_tokenizer_free(t);
}

int main(void) {
    const char *dir = slm_test_path(slm_test_env("SLM_DATA_DIR", "../shared/data"), "tokenizer-vectors");
    char d[1024];
    snprintf(d, sizeof d, "%s", dir);
    int pass = 0, cases = 0;
    for (size_t i = 0; i < sizeof k_vocabs / sizeof k_vocabs[0]; i++) run_vocab(d, k_vocabs[i], &pass, &cases);
    printf("total: %d/%d vectors identical to llama.cpp\n", pass, cases);
    return slm_test_finish();
}
