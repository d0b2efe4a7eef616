/* Helpers shared by the subcommands. */
#include "commands.h"
#include "core/core.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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

slm_save_format slm_cli_format_for(const char *path) {
    size_t n = strlen(path);
    return n >= 5 && strcasecmp(path + n - 5, ".gguf") == 0 ? SLM_SAVE_GGUF : SLM_SAVE_SAFETENSORS;
}

slm_status slm_cli_save_model(const slm_model *m, const char *path) {
    slm_save_params sp = slm_save_default_params();
    sp.format = slm_cli_format_for(path);
    slm_status st = slm_model_save(m, path, &sp);
    if (!st) printf("wrote %s\n", path);
    return st;
}

slm_status slm_cli_calib_load(const slm_model *m, const slm_cli_calib *c, bool quiet, slm_calib *out) {
    slm_status st = slm_calib_load(slm_model_tokenizer(m), c->spec, c->data_dir, c->batch, c->seqlen, c->seed, out);
    if (!st && !quiet) fprintf(stderr, "calibration: %d x %d tokens from %s\n", c->batch, c->seqlen, out->source);
    return st;
}
