/* slimlm prune MODEL --drop K --strategy S -o OUT: layer pruning (the
 * truncated initialisation of Jha et al., or ShortGPT's block influence).
 * Prints which blocks stay, with their block influence when computed,
 * optionally as JSON, and writes a standard shallower model (GGUF or
 * safetensors + config.json). See src/compress/prune/prune.h. */
#include "commands.h"
#include "compress/prune/prune.h"
#include "options.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void print_table(int L, const bool *drop, const double *bi) {
    printf("%-6s %-8s%s\n", "block", "action", bi ? "  block influence" : "");
    for (int i = 0; i < L; i++) {
        printf("%-6d %-8s", i, drop[i] ? "drop" : "keep");
        if (bi) printf("  %.6f", bi[i]);
        printf("\n");
    }
}

static cJSON *report_json(const slm_model *m, slm_prune_strategy s, int K, const bool *drop, const double *bi,
                          const slm_calib *cal, int64_t params_before) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "strategy", slm_prune_strategy_name(s));
    cJSON_AddNumberToObject(j, "dropped", K);
    cJSON_AddNumberToObject(j, "blocks_before", m->cfg.n_layers);
    cJSON *kept = cJSON_AddArrayToObject(j, "kept_blocks"), *gone = cJSON_AddArrayToObject(j, "dropped_blocks");
    for (int i = 0; i < m->cfg.n_layers; i++) cJSON_AddItemToArray(drop[i] ? gone : kept, cJSON_CreateNumber(i));
    if (bi) {
        cJSON *b = cJSON_AddArrayToObject(j, "block_influence");
        for (int i = 0; i < m->cfg.n_layers; i++) cJSON_AddItemToArray(b, isnan(bi[i]) ? cJSON_CreateNull() : cJSON_CreateNumber(bi[i]));
        cJSON_AddStringToObject(j, "calib", cal->source);
        cJSON_AddNumberToObject(j, "calib_batch", cal->n_seqs);
        cJSON_AddNumberToObject(j, "calib_seqlen", cal->seq_len);
    }
    slm_model_stats st = slm_model_get_stats(m, 1);
    cJSON_AddNumberToObject(j, "params_before", (double)params_before);
    cJSON_AddNumberToObject(j, "params_after", (double)st.n_params);
    cJSON_AddNumberToObject(j, "macs_per_token_after", (double)st.macs_per_token);
    return j;
}

int slm_cmd_prune(int argc, char **argv) {
    const char *out_path = NULL, *strategy = "max-gap", *json_path = NULL;
    slm_cli_calib cc = {.spec = "mix", .data_dir = SLM_DEFAULT_DATA_DIR, .batch = 64, .seqlen = 128, .seed = 1};
    int drop_n = -1, threads = 0;
    bool quiet = false;
    const slm_option opts[] = {
        {"output-model", 'o', SLM_OPT_STRING, &out_path, "OUT", "write the model: OUT.gguf, else a safetensors directory"},
        {"drop", 'k', SLM_OPT_INT, &drop_n, "K", "number of decoder blocks to drop"},
        {"strategy", 's', SLM_OPT_STRING, &strategy, "S", "max-gap | input | output | middle | both | block-influence"},
        SLM_CLI_CALIB_OPTIONS(cc),
        {"output", 0, SLM_OPT_STRING, &json_path, "FILE", "also write the report as JSON"},
        {"quiet", 'q', SLM_OPT_FLAG, &quiet, NULL, "no progress bar"},
        {"threads", 't', SLM_OPT_INT, &threads, "N", "threads (0: all cores)"},
        {0}};
    const slm_cli_spec spec = {"prune", "MODEL --drop K [--strategy S] -o OUT [options]",
                               "Drop decoder blocks: a truncation configuration (first and last block kept) "
                               "or the lowest block influence.",
                               opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    slm_prune_strategy s;
    slm_status st = slm_prune_strategy_parse(strategy, &s);
    if (!st && !out_path) st = slm_fail(SLM_ERR_ARG, "prune: -o OUT is required");
    if (!st && drop_n < 0) st = slm_fail(SLM_ERR_ARG, "prune: --drop K is required");
    if (st) {
        free(pos);
        return slm_cli_report(st);
    }
    slm_model *m = NULL;
    if (slm_cli_load_model(pos[0], true, threads, &m)) { /* the tokenizer goes into the output */
        free(pos);
        return 1;
    }
    const int L = m->cfg.n_layers;
    bool *drop = slm_calloc((size_t)L, sizeof *drop, "block choice");
    double *bi = NULL;
    slm_calib cal = {0};
    int64_t params_before = slm_model_get_stats(m, 1).n_params;
    if (!drop) st = SLM_ERR_NOMEM;
    if (!st && s == SLM_PRUNE_BLOCK_INFLUENCE) {
        bi = slm_calloc((size_t)L, sizeof *bi, "block influence");
        st = bi ? slm_cli_calib_load(m, &cc, quiet, &cal) : SLM_ERR_NOMEM;
        if (!st) st = slm_prune_block_influence(m, &cal, quiet, bi);
    }
    if (!st) st = slm_prune_select(L, drop_n, s, bi, drop);
    if (!st) st = slm_prune_apply(m, drop);
    if (!st) {
        print_table(L, drop, bi);
        slm_model_stats ms = slm_model_get_stats(m, 1);
        printf("%s: %d -> %d blocks, %.2f M -> %.2f M params, %.2f M MACs/token\n", slm_prune_strategy_name(s), L,
               L - drop_n, (double)params_before / 1e6, (double)ms.n_params / 1e6, (double)ms.macs_per_token / 1e6);
        st = slm_cli_save_model(m, out_path);
    }
    rc = st ? slm_cli_report(st) : 0;
    if (!st && json_path) {
        cJSON *j = report_json(m, s, drop_n, drop, bi, &cal, params_before);
        char *text = cJSON_Print(j);
        rc = slm_cli_write_text(json_path, text);
        free(text);
        cJSON_Delete(j);
    }
    slm_calib_free(&cal);
    free(bi);
    free(drop);
    slm_model_free(m);
    free(pos);
    return rc;
}
