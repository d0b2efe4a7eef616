/* slimlm tokenize MODEL -p TEXT | --file F: the ids and pieces of a text.
 * Loads only the tokenizer (GGUF metadata, or tokenizer.json of an HF
 * directory), so it is instant even for large checkpoints. */
#define _POSIX_C_SOURCE 200809L
#include "commands.h"
#include "core/core.h"
#include "options.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A piece printed inside quotes: printable ASCII as is, the rest escaped. */
static void print_piece(const char *p, int n) {
    putchar('\'');
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\\' || c == '\'') printf("\\%c", c);
        else if (c < 0x20 || c == 0x7F) printf("\\x%02x", c);
        else putchar(c); /* UTF-8 bytes pass through (a split character shows as it is) */
    }
    putchar('\'');
}

int slm_cmd_tokenize(int argc, char **argv) {
    const char *prompt = NULL, *file = NULL;
    bool ids_only = false, parse_special = false, no_special = false, count = false;
    const slm_option opts[] = {
        {"prompt", 'p', SLM_OPT_STRING, &prompt, "TEXT", "text to tokenize"},
        {"file", 'f', SLM_OPT_STRING, &file, "FILE", "tokenize the contents of FILE"},
        {"ids", 0, SLM_OPT_FLAG, &ids_only, NULL, "print only the ids, space-separated, on one line"},
        {"parse-special", 0, SLM_OPT_FLAG, &parse_special, NULL, "match special-token texts such as <|im_start|>"},
        {"no-bos", 0, SLM_OPT_FLAG, &no_special, NULL, "do not add BOS/EOS even when the vocabulary asks for them"},
        {"count", 0, SLM_OPT_FLAG, &count, NULL, "print only the number of tokens"},
        {0}};
    const slm_cli_spec spec = {"tokenize", "MODEL (-p TEXT | --file FILE) [options]",
                               "Show the token ids and pieces of a text (MODEL: GGUF file or HF directory).", opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    const char *model = pos[0];
    free(pos);
    if ((prompt == NULL) == (file == NULL)) {
        fprintf(stderr, "error: tokenize: give exactly one of -p TEXT or --file FILE\n");
        return 2;
    }
    char *text = NULL;
    size_t len = 0;
    slm_status st;
    if (file) {
        if ((st = slm_read_file(file, &text, &len))) return slm_cli_report(st);
    } else {
        len = strlen(prompt);
    }
    slm_tokenizer *t = NULL;
    if ((st = slm_tokenizer_load_path(model, &t))) {
        free(text);
        return slm_cli_report(st);
    }
    int32_t *ids = NULL;
    size_t n = 0;
    st = slm_tokenizer_encode(t, file ? text : prompt, len, !no_special, parse_special, &ids, &n);
    free(text);
    if (st) {
        slm_tokenizer_free(t);
        return slm_cli_report(st);
    }
    if (count) {
        printf("%zu\n", n);
    } else if (ids_only) {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    } else {
        char buf[4096];
        for (size_t i = 0; i < n; i++) {
            int k = slm_token_to_piece(t, ids[i], buf, (int)sizeof buf);
            printf("%6d -> ", ids[i]);
            print_piece(buf, k < 0 ? 0 : k);
            putchar('\n');
        }
    }
    free(ids);
    slm_tokenizer_free(t);
    return 0;
}
