/* slimlm quantize MODEL --int8 -o OUT: per-channel int8 weights for every
 * linear (dense or low-rank), per-token int8 activations at run time,
 * optionally LLM.int8-style fp32 outlier columns found on calibration data
 * (src/compress/quant/quant.h, docs/int8.md). Writes slimlm's int8 GGUF
 * (OUT.gguf; slimlm loads it back as INT8 linears), or a safetensors
 * directory of the dequantised fp32 values; --gguf-q8_0 FILE also writes
 * the source model as a standard GGUF Q8_0 that llama.cpp loads. */
#include "commands.h"
#include "compress/quant/quant.h"
#include "kernels/cpu/int8.h"
#include "options.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_point_names[SLM_FWD_POINT_COUNT] = {"attn_in", "o_in", "mlp_in", "down_in"};

static void print_report(const slm_model *m, const slm_quant_params *p, const slm_quant_report *r, double bpp) {
    if (p->outlier_threshold > 0.0f) {
        printf("outlier columns kept in fp32 / over the threshold (calibration |x| > %g, at most %g of a row):\n%-6s",
               (double)p->outlier_threshold, (double)p->max_outlier_frac, "block");
        for (int k = 0; k < SLM_FWD_POINT_COUNT; k++) printf(" %11s", k_point_names[k]);
        printf("\n");
        int total = 0, above = 0;
        for (int l = 0; l < r->n_layers; l++) {
            if (!m->blocks[l].kept) continue;
            printf("%-6d", l);
            for (int k = 0; k < SLM_FWD_POINT_COUNT; k++) {
                char cell[32];
                snprintf(cell, sizeof cell, "%d/%d", r->outliers[l][k], r->above[l][k]);
                printf(" %11s", cell);
                total += r->outliers[l][k], above += r->above[l][k];
            }
            printf("\n");
        }
        printf("kept %d of %d block-input columns over the threshold, %d in low-rank intermediates, %d/%d at the lm head\n",
               total, above, r->lowrank_outliers, r->lm_head_outliers, r->lm_head_above);
    }
    if (p->act_group > 0) printf("activations: per token and %d columns\n", p->act_group);
    if (p->embd == SLM_QUANT_EMBD_INT8)
        printf("token embedding: int8 rows, %s\n",
               m->cfg.tied_embeddings ? "the lm head's (tied: one matrix)" : "its own matrix");
    printf("int8: %d linears%s; weights %.1f MiB -> %.1f MiB (%.2fx smaller), %.3f bytes/parameter, %.1f s\n",
           r->n_linears, p->lm_head ? " (lm head included)" : "", (double)r->bytes_before / 1048576.0,
           (double)r->bytes_after / 1048576.0, (double)r->bytes_before / (double)r->bytes_after,
           bpp, r->seconds);
}

static cJSON *report_json(const slm_quant_params *p, const slm_quant_report *r, const slm_calib *cal, double bpp) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "scheme", "int8");
    cJSON_AddNumberToObject(j, "outlier_threshold", p->outlier_threshold);
    cJSON_AddNumberToObject(j, "max_outlier_frac", p->max_outlier_frac);
    cJSON_AddNumberToObject(j, "act_group", p->act_group);
    cJSON_AddBoolToObject(j, "lm_head_int8", p->lm_head);
    cJSON_AddBoolToObject(j, "embedding_f16", p->embd == SLM_QUANT_EMBD_F16);
    cJSON_AddStringToObject(j, "embedding", slm_quant_embd_name(p->embd));
    if (cal->tokens) {
        cJSON_AddStringToObject(j, "calib", cal->source);
        cJSON_AddNumberToObject(j, "calib_batch", cal->n_seqs);
        cJSON_AddNumberToObject(j, "calib_seqlen", cal->seq_len);
    }
    cJSON_AddNumberToObject(j, "linears", r->n_linears);
    cJSON_AddNumberToObject(j, "weight_bytes_before", (double)r->bytes_before);
    cJSON_AddNumberToObject(j, "weight_bytes_after", (double)r->bytes_after);
    cJSON_AddNumberToObject(j, "bytes_per_param", bpp);
    cJSON_AddNumberToObject(j, "seconds", r->seconds);
    cJSON_AddNumberToObject(j, "lm_head_outliers", r->lm_head_outliers);
    cJSON_AddNumberToObject(j, "lm_head_above_threshold", r->lm_head_above);
    cJSON_AddNumberToObject(j, "lowrank_outliers", r->lowrank_outliers);
    cJSON *blocks = cJSON_AddArrayToObject(j, "outliers");
    for (int l = 0; l < r->n_layers; l++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddNumberToObject(b, "block", l);
        for (int k = 0; k < SLM_FWD_POINT_COUNT; k++) {
            cJSON *pt = cJSON_AddObjectToObject(b, k_point_names[k]);
            cJSON_AddNumberToObject(pt, "kept", r->outliers[l][k]);
            cJSON_AddNumberToObject(pt, "above_threshold", r->above[l][k]);
        }
        cJSON_AddItemToArray(blocks, b);
    }
    return j;
}

/* --embd NAME -> *out (slm_quant_embd_name's table); false when unknown. */
static bool embd_kind(const char *name, slm_quant_embd *out) {
    for (int e = 0; e < SLM_QUANT_EMBD_COUNT; e++)
        if (!strcmp(name, slm_quant_embd_name((slm_quant_embd)e))) {
            *out = (slm_quant_embd)e;
            return true;
        }
    return false;
}

int slm_cmd_quantize(int argc, char **argv) {
    const char *out_path = NULL, *q8_path = NULL, *json_path = NULL, *embd = "f16";
    slm_cli_calib cc = {.spec = "mix", .data_dir = SLM_DEFAULT_DATA_DIR, .batch = 32, .seqlen = 128, .seed = 1};
    int threads = 0;
    bool int8 = false, keep_head = false, quiet = false;
    slm_quant_params qp = slm_quant_default_params();
    const slm_option opts[] = {
        {"output-model", 'o', SLM_OPT_STRING, &out_path, "OUT",
         "write the model: OUT.gguf (slimlm's int8 layout), else a safetensors directory (dequantised fp32)"},
        {"int8", 0, SLM_OPT_FLAG, &int8, NULL, "per-channel int8 weights, per-token int8 activations (required)"},
        {"outlier-threshold", 0, SLM_OPT_FLOAT, &qp.outlier_threshold, "T",
         "keep input columns whose calibration |x| exceeds T in fp32 (LLM.int8); 0: none"},
        {"max-outliers", 0, SLM_OPT_FLOAT, &qp.max_outlier_frac, "F",
         "at most this fraction of an input's columns (the largest) stay fp32"},
        {"act-group", 0, SLM_OPT_INT, &qp.act_group, "G",
         "quantise activations per token and G input columns (32, 64, 128, ...: a multiple of 32); 0: per token"},
        {"keep-lm-head", 0, SLM_OPT_FLAG, &keep_head, NULL, "leave the lm head in float"},
        {"embd", 0, SLM_OPT_STRING, &embd, "TYPE",
         "token embedding: f16 or f32 values, or int8 (the int8 lm head's rows: a smaller file, opt-in)"},
        {"gguf-q8_0", 0, SLM_OPT_STRING, &q8_path, "FILE", "also write the source model as GGUF Q8_0 (llama.cpp)"},
        SLM_CLI_CALIB_OPTIONS(cc),
        {"output", 0, SLM_OPT_STRING, &json_path, "FILE", "also write the report as JSON"},
        {"quiet", 'q', SLM_OPT_FLAG, &quiet, NULL, "no progress bar"},
        {"threads", 't', SLM_OPT_INT, &threads, "N", "threads (0: all cores)"},
        {0}};
    const slm_cli_spec spec = {"quantize", "MODEL --int8 [--outlier-threshold T] -o OUT [options]",
                               "Quantise every linear to int8 (per output channel; activations per token at run "
                               "time), with LLM.int8 outlier columns kept in fp32.",
                               opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    slm_status st = SLM_OK;
    if (!int8) st = slm_fail(SLM_ERR_ARG, "quantize: --int8 is required (the only scheme so far)");
    else if (!out_path) st = slm_fail(SLM_ERR_ARG, "quantize: -o OUT is required");
    else if (!embd_kind(embd, &qp.embd))
        st = slm_fail(SLM_ERR_ARG, "quantize: --embd must be f16, f32 or int8, not '%s'", embd);
    else if (qp.embd == SLM_QUANT_EMBD_INT8 && keep_head)
        st = slm_fail(SLM_ERR_ARG, "quantize: --embd int8 is the int8 lm head's rows: not with --keep-lm-head");
    else if (!(qp.outlier_threshold >= 0.0f))
        st = slm_fail(SLM_ERR_ARG, "quantize: --outlier-threshold must be >= 0");
    else if (!(qp.max_outlier_frac >= 0.0f && qp.max_outlier_frac <= 1.0f))
        st = slm_fail(SLM_ERR_ARG, "quantize: --max-outliers must be in [0, 1]");
    else if (qp.act_group != 0 && !slm_i8_group_ok(qp.act_group))
        st = slm_fail(SLM_ERR_ARG, "quantize: --act-group must be 0 or a multiple of 32 in [32, 1024], not %d",
                      qp.act_group);
    if (st) {
        free(pos);
        return slm_cli_report(st);
    }
    qp.lm_head = !keep_head;
    qp.quiet = quiet;
    slm_model *m = NULL;
    if (slm_cli_load_model(pos[0], true, threads, &m)) { /* the tokenizer goes into the output */
        free(pos);
        return 1;
    }
    slm_calib cal = {0};
    slm_quant_report rep = {0};
    if (q8_path) { /* llama.cpp's own Q8_0 of the source weights */
        slm_save_params sp = slm_save_default_params();
        sp.format = SLM_SAVE_GGUF;
        sp.dtype = SLM_DTYPE_Q8_0;
        st = slm_model_save(m, q8_path, &sp);
        if (!st) printf("wrote %s (GGUF Q8_0)\n", q8_path);
    }
    if (!st && qp.outlier_threshold > 0.0f) {
        st = slm_cli_calib_load(m, &cc, quiet, &cal);
    }
    if (!st) st = slm_quant_int8(m, &qp, qp.outlier_threshold > 0.0f ? &cal : NULL, &rep);
    double bpp = 0; /* bytes per parameter of the int8 model, as held */
    if (!st) {
        slm_model_stats ms = slm_model_get_stats(m, 1);
        bpp = (double)ms.weight_bytes / (double)ms.n_params;
        print_report(m, &qp, &rep, bpp);
    }
    if (!st) {
        slm_save_params sp = slm_save_default_params();
        sp.format = slm_cli_format_for(out_path);
        sp.dtype = SLM_DTYPE_I8;
        if (sp.format == SLM_SAVE_SAFETENSORS) { /* no int8 there: the dequantised values */
            sp.dtype = SLM_DTYPE_F32;
            st = slm_quant_dequantize(m);
        }
        if (!st) st = slm_model_save(m, out_path, &sp);
        if (!st) printf("wrote %s%s\n", out_path, sp.format == SLM_SAVE_SAFETENSORS ? " (dequantised fp32)" : "");
    }
    rc = st ? slm_cli_report(st) : 0;
    if (!st && json_path) {
        cJSON *j = report_json(&qp, &rep, &cal, bpp);
        char *text = cJSON_Print(j);
        rc = slm_cli_write_text(json_path, text);
        free(text);
        cJSON_Delete(j);
    }
    slm_quant_report_free(&rep);
    slm_calib_free(&cal);
    slm_model_free(m);
    free(pos);
    return rc;
}
