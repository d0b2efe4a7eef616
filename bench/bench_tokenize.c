/* Tokenization throughput, single thread: MODEL (GGUF or HF directory) and
 * a text file; encodes the file as one document and line by line, best of
 * N repetitions, and prints MB/s. bench/bench_tokenize.sh runs it next to
 * HF tokenizers on the same text and prints the ratio.
 *   usage: bench_tokenize MODEL FILE [REPS] */
#define _POSIX_C_SOURCE 200809L
#include "core/core.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static slm_status load(const char *path, slm_tokenizer **t) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return slm_tokenizer_load_hf(path, t);
    slm_gguf *g;
    slm_status s = slm_gguf_open(path, &g);
    if (s) return s;
    s = slm_tokenizer_load_gguf(g, path, t);
    slm_gguf_close(g);
    return s;
}

/* Seconds for one pass; *n_ids gets the ids produced. */
static double run(const slm_tokenizer *t, const char *text, size_t len, bool lines, size_t *n_ids) {
    double t0 = slm_time_now();
    size_t total = 0;
    for (size_t off = 0; off < len;) {
        size_t l = len - off;
        if (lines) {
            const char *nl = memchr(text + off, '\n', len - off);
            if (nl) l = (size_t)(nl - (text + off)) + 1;
        }
        int32_t *ids;
        size_t n;
        if (slm_tokenizer_encode(t, text + off, l, false, false, &ids, &n)) {
            fprintf(stderr, "error: %s\n", slm_last_error());
            exit(1);
        }
        total += n;
        free(ids);
        off += l;
    }
    *n_ids = total;
    return slm_time_now() - t0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL FILE [REPS]\n", argv[0]);
        return 2;
    }
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    slm_tokenizer *t = NULL;
    char *text;
    size_t len;
    if (load(argv[1], &t) || slm_read_file(argv[2], &text, &len)) {
        fprintf(stderr, "error: %s\n", slm_last_error());
        return 1;
    }
    for (int mode = 0; mode < 2; mode++) {
        double best = 1e30;
        size_t n = 0;
        for (int r = 0; r < (reps < 1 ? 1 : reps); r++) {
            double s = run(t, text, len, mode == 1, &n);
            if (s < best) best = s;
        }
        printf("slimlm %-9s %8.2f MB/s  %zu ids  %.3f s\n", mode ? "lines" : "document", (double)len / best / 1e6, n, best);
    }
    free(text);
    slm_tokenizer_free(t);
    return 0;
}
