/* slimlm info MODEL: architecture, parameter count, per-block plan, tensor
 * types, file size, MACs per token (as in LLM-ROM's Table 1). */
#include "commands.h"
#include "model/linear_int8.h"
#include "model/model.h"
#include "options.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

/* "dense", "lowrank", "int8", "int8-lowrank", or the block type of a
 * QBLOCK linear ("q4_1", ...). */
static const char *kind_name(const slm_linear *l) {
    switch (l->kind) {
    case SLM_LINEAR_LOWRANK: return "lowrank";
    case SLM_LINEAR_INT8: return l->rank > 0 ? "int8-lowrank" : "int8";
    case SLM_LINEAR_QBLOCK:
        return l->qtype == SLM_DTYPE_Q4_0 ? "q4_0" : l->qtype == SLM_DTYPE_Q4_1 ? "q4_1" : "q8_0";
    default: return "dense";
    }
}

static cJSON *info_json(const slm_model *m, const slm_model_stats *s, int ctx) {
    const slm_config *c = &m->cfg;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "path", m->path ? m->path : "");
    cJSON_AddStringToObject(j, "format", m->format);
    cJSON_AddStringToObject(j, "arch", slm_arch_name(c->arch));
    cJSON_AddNumberToObject(j, "n_vocab", c->n_vocab);
    cJSON_AddNumberToObject(j, "d_model", c->d_model);
    cJSON_AddNumberToObject(j, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "n_layers_kept", s->n_layers_kept);
    cJSON_AddNumberToObject(j, "n_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "n_kv_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(j, "d_ff", c->d_ff);
    cJSON_AddNumberToObject(j, "max_ctx", c->max_ctx);
    cJSON_AddBoolToObject(j, "tied_embeddings", c->tied_embeddings);
    cJSON_AddNumberToObject(j, "n_params", (double)s->n_params);
    cJSON_AddNumberToObject(j, "n_params_dense", (double)s->n_params_dense);
    cJSON_AddNumberToObject(j, "macs_per_token", (double)s->macs_per_token);
    cJSON_AddNumberToObject(j, "macs_ctx", ctx);
    cJSON_AddNumberToObject(j, "file_bytes", (double)m->src_file_bytes);
    cJSON_AddNumberToObject(j, "weight_bytes", (double)s->weight_bytes);
    cJSON_AddNumberToObject(j, "bytes_per_param", (double)s->weight_bytes / (double)s->n_params);
    cJSON_AddStringToObject(j, "lm_head", m->lm_head_q.qw ? kind_name(&m->lm_head_q) : "float");
    cJSON_AddStringToObject(j, "embedding", m->tok_embd_i8 ? "int8" : "float");
    cJSON *types = cJSON_AddObjectToObject(j, "tensor_types");
    for (int t = 0; t < SLM_DTYPE_COUNT_; t++) {
        const slm_dtype_traits *tr = slm_dtype_get(t);
        if (m->src_type_counts[t] && tr) cJSON_AddNumberToObject(types, tr->name, m->src_type_counts[t]);
    }
    cJSON *blocks = cJSON_AddArrayToObject(j, "blocks");
    for (int i = 0; i < c->n_layers; i++) {
        const slm_block *b = &m->blocks[i];
        cJSON *jb = cJSON_CreateObject();
        cJSON_AddBoolToObject(jb, "kept", b->kept);
        cJSON_AddNumberToObject(jb, "d_ff", b->d_ff);
        cJSON *lins = cJSON_AddArrayToObject(jb, "linears");
        for (int p = 0; p < SLM_PROJ_COUNT; p++) {
            cJSON *jl = cJSON_CreateObject();
            cJSON_AddStringToObject(jl, "name", slm_proj_gguf_name((slm_proj)p));
            cJSON_AddStringToObject(jl, "kind", kind_name(&b->lin[p]));
            if (b->lin[p].kind == SLM_LINEAR_LOWRANK || (b->lin[p].kind == SLM_LINEAR_INT8 && b->lin[p].rank > 0))
                cJSON_AddNumberToObject(jl, "rank", b->lin[p].rank);
            cJSON_AddItemToArray(lins, jl);
        }
        cJSON_AddItemToArray(blocks, jb);
    }
    return j;
}

static void print_table(const slm_model *m, const slm_model_stats *s, int ctx) {
    const slm_config *c = &m->cfg;
    printf("model          %s\n", m->path ? m->path : "");
    printf("format         %s\n", m->format);
    printf("architecture   %s  (V %d, D %d, L %d, H %d, Hkv %d, Dh %d, F %d, ctx %d, %s embeddings%s)\n",
           slm_arch_name(c->arch), c->n_vocab, c->d_model, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
           c->d_ff, c->max_ctx, c->tied_embeddings ? "tied" : "untied", c->attn_bias ? ", qkv bias" : "");
    printf("rope           theta %g, %s pairs%s\n", (double)c->rope_theta,
           c->rope_layout == SLM_ROPE_ADJACENT ? "adjacent" : "half-split",
           c->rope_scaling == SLM_ROPE_SCALING_LLAMA3 ? ", llama3 scaling"
           : c->rope_scaling == SLM_ROPE_SCALING_LINEAR ? ", linear scaling" : "");
    printf("#params        %lld  (%.2f M; dense architecture %.2f M, %.1f%%)\n", (long long)s->n_params,
           (double)s->n_params / 1e6, (double)s->n_params_dense / 1e6,
           100.0 * (double)s->n_params / (double)s->n_params_dense);
    printf("#MACs/token    %lld  (%.2f M at context %d)\n", (long long)s->macs_per_token,
           (double)s->macs_per_token / 1e6, ctx);
    printf("file size      %lld bytes (%.1f MiB)\n", (long long)m->src_file_bytes, (double)m->src_file_bytes / 1048576.0);
    printf("weights held   %lld bytes (%.1f MiB), %.3f bytes/parameter; lm head %s\n", (long long)s->weight_bytes,
           (double)s->weight_bytes / 1048576.0, (double)s->weight_bytes / (double)s->n_params,
           m->lm_head_q.qw ? kind_name(&m->lm_head_q) : "float");
    if (m->tok_embd_i8)
        printf("embedding      int8, a scale per row%s (slimlm.int8.embd)\n",
               m->lm_head_q.i8[0] == m->tok_embd_i8 ? "; the lm head's matrix" : "");
    const int act_group = slm_model_int8_act_group(m);
    if (act_group > 0) printf("int8 activations quantised per token and %d columns (slimlm.int8.act_group)\n", act_group);
    printf("tensor types  ");
    for (int t = 0; t < SLM_DTYPE_COUNT_; t++) {
        const slm_dtype_traits *tr = slm_dtype_get(t);
        if (m->src_type_counts[t] && tr) printf(" %s:%d", tr->name, m->src_type_counts[t]);
    }
    printf("\nblocks kept    %d of %d\n\n", s->n_layers_kept, c->n_layers);
    printf("%-6s %-5s %-6s", "block", "kept", "d_ff");
    for (int p = 0; p < SLM_PROJ_COUNT; p++) printf(" %-12s", slm_proj_gguf_name((slm_proj)p));
    printf("\n");
    for (int i = 0; i < c->n_layers; i++) {
        const slm_block *b = &m->blocks[i];
        printf("%-6d %-5s %-6d", i, b->kept ? "yes" : "no", b->d_ff);
        for (int p = 0; p < SLM_PROJ_COUNT; p++) {
            char cell[32];
            const slm_linear *l = &b->lin[p];
            if (l->kind == SLM_LINEAR_LOWRANK) snprintf(cell, sizeof cell, "r%d", l->rank);
            else if (l->kind == SLM_LINEAR_INT8 && l->rank > 0) snprintf(cell, sizeof cell, "i8 r%d", l->rank);
            else if (l->kind == SLM_LINEAR_INT8) snprintf(cell, sizeof cell, "int8");
            else snprintf(cell, sizeof cell, "dense");
            printf(" %-12s", cell);
        }
        printf("\n");
    }
}

int slm_cmd_info(int argc, char **argv) {
    int ctx = 1, threads = 0;
    bool json = false;
    const char *output = NULL;
    const slm_option opts[] = {
        {"ctx", 0, SLM_OPT_INT, &ctx, "N", "context length at which attention MACs are counted"},
        {"json", 0, SLM_OPT_FLAG, &json, NULL, "print JSON instead of the table"},
        {"output", 'o', SLM_OPT_STRING, &output, "FILE", "also write the JSON to FILE"},
        {"threads", 't', SLM_OPT_INT, &threads, "N", "threads (0: all cores)"},
        {0}};
    const slm_cli_spec spec = {"info", "MODEL [options]",
                               "Show a model's architecture, plan, #params, #MACs per token and tensor types.", opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    slm_model *m = NULL;
    if (slm_cli_load_model(pos[0], false, threads, &m)) {
        free(pos);
        return 1;
    }
    slm_model_stats s = slm_model_get_stats(m, ctx);
    cJSON *j = info_json(m, &s, ctx);
    char *text = cJSON_Print(j);
    if (json) printf("%s\n", text);
    else print_table(m, &s, ctx);
    if (output) rc = slm_cli_write_text(output, text);
    free(text);
    cJSON_Delete(j);
    slm_model_free(m);
    free(pos);
    return rc;
}
