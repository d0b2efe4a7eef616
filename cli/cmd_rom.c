/* slimlm rom MODEL -o OUT: LLM-ROM compression (and the svd-llm / svd
 * baselines) to an overall parameter budget, by a hand plan (--blocks
 * last:N --module-budget b) or the automatic planner; prints a per-block
 * table, optionally JSON, and writes GGUF (OUT.gguf) or safetensors (a
 * directory). docs/rom.md has the method and measured results. */
#include "commands.h"
#include "compress/rom/rom.h"
#include "options.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_table(const slm_model *m, const slm_rom_report *r) {
    printf("%-6s", "block");
    for (int k = 0; k < SLM_PROJ_COUNT; k++) printf(" %7s", slm_proj_gguf_name((slm_proj)k) + (k < 4 ? 5 : 4));
    printf(" %10s %10s %9s %8s\n", "params", "after", "max err", "seconds");
    for (int i = 0; i < r->n_blocks; i++) {
        const slm_rom_block_report *b = &r->blocks[i];
        if (!b->compressed) continue;
        int64_t before = 0, after = 0;
        double worst = 0;
        printf("%-6d", i);
        for (int k = 0; k < SLM_PROJ_COUNT; k++) {
            const slm_rom_linear_report *l = &b->lin[k];
            if (l->rank) printf(" %7d", l->rank);
            else printf(" %7s", "dense");
            before += l->params_before;
            after += l->params_after;
            if (l->rel_err > worst) worst = l->rel_err;
        }
        printf(" %10lld %10lld %9.4f %8.2f\n", (long long)before, (long long)after, worst, b->seconds);
    }
    slm_model_stats s = slm_model_get_stats(m, 1);
    printf("model: %.2f M -> %.2f M params (%.1f%% of dense %.2f M), %.2f M MACs/token, %.1f s\n",
           (double)r->params_before / 1e6, (double)r->params_after / 1e6,
           100.0 * (double)r->params_after / (double)s.n_params_dense, (double)s.n_params_dense / 1e6,
           (double)s.macs_per_token / 1e6, r->seconds);
}

static cJSON *report_json(const slm_model *m, const slm_rom_params *p, const slm_calib *cal,
                          const slm_rom_report *r, const slm_rom_auto_report *ar, double nll_before, double nll_after) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "method", slm_rom_method_name(p->method));
    cJSON_AddNumberToObject(j, "blocks_compressed", m->cfg.n_layers - p->plan.first_block);
    cJSON_AddNumberToObject(j, "module_budget", p->plan.module_budget);
    if (cal) {
        cJSON_AddStringToObject(j, "calib", cal->source);
        cJSON_AddNumberToObject(j, "calib_batch", cal->n_seqs);
        cJSON_AddNumberToObject(j, "calib_seqlen", cal->seq_len);
        cJSON_AddNumberToObject(j, "calib_nll_before", nll_before);
        cJSON_AddNumberToObject(j, "calib_nll_after", nll_after);
    }
    slm_model_stats s = slm_model_get_stats(m, 1);
    cJSON_AddNumberToObject(j, "params_before", (double)r->params_before);
    cJSON_AddNumberToObject(j, "params_after", (double)r->params_after);
    cJSON_AddNumberToObject(j, "params_dense", (double)s.n_params_dense);
    cJSON_AddNumberToObject(j, "macs_per_token", (double)s.macs_per_token);
    cJSON_AddNumberToObject(j, "seconds", r->seconds);
    if (ar && ar->n_cand) {
        cJSON *pl = cJSON_AddArrayToObject(j, "planner");
        for (int i = 0; i < ar->n_cand; i++) {
            cJSON *c = cJSON_CreateObject();
            cJSON_AddNumberToObject(c, "blocks", m->cfg.n_layers - ar->cand[i].plan.first_block);
            cJSON_AddNumberToObject(c, "module_budget", ar->cand[i].plan.module_budget);
            cJSON_AddNumberToObject(c, "params", (double)ar->cand[i].params);
            cJSON_AddNumberToObject(c, "heldout_nll", ar->cand[i].heldout_nll);
            cJSON_AddBoolToObject(c, "chosen", i == ar->chosen);
            cJSON_AddItemToArray(pl, c);
        }
    }
    cJSON *blocks = cJSON_AddArrayToObject(j, "blocks");
    for (int i = 0; i < r->n_blocks; i++) {
        const slm_rom_block_report *b = &r->blocks[i];
        if (!b->compressed) continue;
        cJSON *jb = cJSON_CreateObject();
        cJSON_AddNumberToObject(jb, "block", i);
        cJSON_AddNumberToObject(jb, "seconds", b->seconds);
        cJSON *lins = cJSON_AddArrayToObject(jb, "linears");
        for (int k = 0; k < SLM_PROJ_COUNT; k++) {
            cJSON *jl = cJSON_CreateObject();
            cJSON_AddStringToObject(jl, "name", slm_proj_gguf_name((slm_proj)k));
            cJSON_AddNumberToObject(jl, "rank", b->lin[k].rank);
            cJSON_AddNumberToObject(jl, "params_before", (double)b->lin[k].params_before);
            cJSON_AddNumberToObject(jl, "params_after", (double)b->lin[k].params_after);
            cJSON_AddNumberToObject(jl, "rel_err", b->lin[k].rel_err);
            cJSON_AddItemToArray(lins, jl);
        }
        cJSON_AddItemToArray(blocks, jb);
    }
    return j;
}

int slm_cmd_rom(int argc, char **argv) {
    const char *out_path = NULL, *method = "rom", *blocks = NULL, *json_path = NULL;
    slm_cli_calib cc = {.spec = "mix", .data_dir = SLM_DEFAULT_DATA_DIR, .batch = 512, .seqlen = 128, .seed = 1};
    float budget = 0.8f, module_budget = -1.0f;
    int threads = 0;
    bool quiet = false, no_loss = false;
    const slm_option opts[] = {
        {"output-model", 'o', SLM_OPT_STRING, &out_path, "OUT", "write the model: OUT.gguf, else a safetensors directory"},
        {"budget", 'b', SLM_OPT_FLOAT, &budget, "F", "overall parameter fraction (all parameters, embeddings included)"},
        {"method", 'm', SLM_OPT_STRING, &method, "M", "rom (sequential), svd-llm (whitening), svd (data-free)"},
        {"blocks", 0, SLM_OPT_STRING, &blocks, "last:N", "hand plan: compress the last N blocks (b from --budget unless --module-budget)"},
        {"module-budget", 0, SLM_OPT_FLOAT, &module_budget, "B", "hand plan: rank r = floor(B d1 d2 / (d1 + d2))"},
        SLM_CLI_CALIB_OPTIONS(cc),
        {"output", 0, SLM_OPT_STRING, &json_path, "FILE", "also write the report as JSON"},
        {"no-loss", 0, SLM_OPT_FLAG, &no_loss, NULL, "skip the calibration loss before/after"},
        {"quiet", 'q', SLM_OPT_FLAG, &quiet, NULL, "no progress bars"},
        {"threads", 't', SLM_OPT_INT, &threads, "N", "threads (0: all cores)"},
        {0}};
    const slm_cli_spec spec = {"rom", "MODEL -o OUT [--budget F | --blocks last:N --module-budget B] [options]",
                               "Compress with LLM-ROM (or svd-llm / svd) to a parameter budget.", opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    slm_rom_params p = slm_rom_default_params();
    p.quiet = quiet;
    slm_status st = slm_rom_method_parse(method, &p.method);
    int last_n = 0;
    if (!st && !out_path) st = slm_fail(SLM_ERR_ARG, "rom: -o OUT is required");
    if (!st && blocks && (sscanf(blocks, "last:%d", &last_n) != 1 || last_n < 1))
        st = slm_fail(SLM_ERR_ARG, "--blocks %s: expected last:N", blocks);
    if (!st && !blocks && module_budget > 0)
        st = slm_fail(SLM_ERR_ARG, "--module-budget needs --blocks last:N");
    if (st) {
        free(pos);
        return slm_cli_report(st);
    }
    slm_model *m = NULL;
    if (slm_cli_load_model(pos[0], true, threads, &m)) {
        free(pos);
        return 1;
    }
    slm_calib cal = {0};
    bool need_cal = p.method != SLM_ROM_METHOD_SVD || !blocks;
    if (need_cal) {
        st = slm_cli_calib_load(m, &cc, quiet, &cal);
    }
    slm_rom_auto_report ar = {0};
    if (!st && blocks) {
        if (last_n > m->cfg.n_layers) st = slm_fail(SLM_ERR_ARG, "--blocks last:%d: the model has %d blocks", last_n, m->cfg.n_layers);
        p.plan.first_block = m->cfg.n_layers - last_n;
        p.plan.module_budget = module_budget;
        /* --blocks alone: the module budget that meets --budget with those blocks */
        if (!st && module_budget <= 0) st = slm_rom_plan_for_budget(m, budget, last_n, &p.plan);
    } else if (!st) {
        st = slm_rom_auto_plan(m, &cal, budget, &p, &p.plan, &ar);
        if (!st)
            printf("planner chose: last %d blocks at module budget %.4f (held-out calibration NLL %.4f; "
                   "%d fit / %d held-out sequences)\n", m->cfg.n_layers - p.plan.first_block, p.plan.module_budget,
                   ar.cand[ar.chosen].heldout_nll, ar.n_fit, ar.n_heldout);
    }
    double nll_before = 0, nll_after = 0;
    if (!st && need_cal && !no_loss) st = slm_calib_nll(m, &cal, &nll_before);
    slm_rom_report r = {0};
    if (!st) st = slm_rom_compress(m, need_cal ? &cal : NULL, &p, &r);
    if (!st && need_cal && !no_loss) st = slm_calib_nll(m, &cal, &nll_after);
    if (!st) {
        print_table(m, &r);
        if (need_cal && !no_loss) printf("calibration NLL %.4f -> %.4f\n", nll_before, nll_after);
        st = slm_cli_save_model(m, out_path);
    }
    rc = st ? slm_cli_report(st) : 0;
    if (!st && json_path) {
        cJSON *j = report_json(m, &p, need_cal ? &cal : NULL, &r, &ar, nll_before, nll_after);
        char *text = cJSON_Print(j);
        rc = slm_cli_write_text(json_path, text);
        free(text);
        cJSON_Delete(j);
    }
    slm_rom_report_free(&r);
    slm_calib_free(&cal);
    slm_model_free(m);
    free(pos);
    return rc;
}
