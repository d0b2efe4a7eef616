/* Helpers shared by the subcommands. */
#include "commands.h"
#include "core/core.h"

#include <stdio.h>
#include <string.h>

int slm_cli_report(slm_status st) {
    const char *msg = slm_last_error();
    fprintf(stderr, "error: %s\n", (msg && *msg) ? msg : slm_status_str(st));
    return 1;
}

slm_status slm_cli_load_model(const char *path, bool tokenizer, int threads, slm_model **out) {
    return slm_cli_load_model_q(path, tokenizer, threads, false, out);
}

slm_status slm_cli_load_model_q(const char *path, bool tokenizer, int threads, bool keep_quantized, slm_model **out) {
    slm_set_threads(threads);
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = tokenizer;
    lp.keep_quantized = keep_quantized;
    slm_status st = slm_model_load(path, &lp, out);
    if (st) slm_cli_report(st);
    return st;
}

int slm_cli_write_text(const char *path, const char *text) {
    slm_atomic_file af;
    slm_status st = slm_atomic_open(path, &af);
    if (st) return slm_cli_report(st);
    st = slm_atomic_write(&af, text, strlen(text));
    if (st) {
        slm_atomic_abort(&af);
        return slm_cli_report(st);
    }
    st = slm_atomic_commit(&af);
    return st ? slm_cli_report(st) : 0;
}
