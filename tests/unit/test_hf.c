/* HF checkpoints end to end, against independent references:
 *  - tiny-random-LlamaForCausalLM tensor values vs python `safetensors`
 *    (tests/golden/hf_tiny_tensors.txt) and its logits vs transformers (1e-4);
 *  - a random Qwen2 (BF16, GQA, q/k/v biases, tied, transformers-5 config)
 *    and a random Llama with llama3 rope scaling (F16) vs transformers;
 *  - save -> load round trips: F32 bit-exact, F16/BF16 rounded exactly as the
 *    converters round; plans (dropped block, narrowed MLP, low-rank linear)
 *    survive; adjacent-pair q/k rows are put back in HF order;
 *  - sharded checkpoints (index.json + 2 shards made here) load the same
 *    tensors; broken directories give one clear error;
 *  - SmolLM2 GGUF -> safetensors -> GGUF: identical tensors (q/k rows
 *    permuted between the layouts, all else bit-exact) and logits, and the
 *    export's logits vs transformers on an HF conversion made in Python.
 * Goldens: tools/make_hf_golden.py. */
#define _POSIX_C_SOURCE 200809L
#include "formats/safetensors.h"
#include "model/model.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *g_tmp, *g_golden;

/* Without tokenizers: a GGUF written from a tokenizer-less HF dir has none. */
static slm_model *load(const char *path) {
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = false;
    slm_model *m = NULL;
    slm_status st = slm_model_load(path, &lp, &m);
    CHECK(st == SLM_OK, "load %s: %s", path, slm_last_error());
    return m;
}

/* logits [T][V] of ids through the public forward pass; NULL on failure. */
static float *logits_of(const slm_model *m, const int32_t *ids, int T) {
    slm_context_params cp = slm_context_default_params();
    cp.n_ctx = 64;
    slm_context *c = NULL;
    float *out = malloc((size_t)T * (size_t)m->cfg.n_vocab * sizeof(float));
    slm_status st = slm_context_new(m, &cp, &c);
    if (!st) st = slm_decode(c, ids, T, true, out);
    CHECK(st == SLM_OK, "forward: %s", slm_last_error());
    slm_context_free(c);
    if (st) {
        free(out);
        return NULL;
    }
    return out;
}

/* Compares a model's logits with a golden file from transformers. */
static void check_logits_golden(const slm_model *m, const char *golden, double tol) {
    size_t len = 0;
    char *buf = slm_test_read_file(slm_test_path(g_golden, golden), &len);
    CHECK(buf != NULL && len > 12, "golden %s", golden);
    if (!buf || !m) {
        free(buf);
        return;
    }
    int32_t hdr[3];
    memcpy(hdr, buf, sizeof hdr);
    int T = hdr[0], V = hdr[1], stride = hdr[2], Vs = (V + stride - 1) / stride;
    CHECK(V == m->cfg.n_vocab && len == 12 + 4 * (size_t)T + 4 * (size_t)T * (size_t)Vs, "golden %s layout", golden);
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    float *want = malloc((size_t)T * (size_t)Vs * sizeof *want), *got = malloc((size_t)T * (size_t)Vs * sizeof *got);
    memcpy(ids, buf + 12, (size_t)T * 4);
    memcpy(want, buf + 12 + 4 * T, (size_t)T * (size_t)Vs * 4);
    float *lg = logits_of(m, ids, T);
    if (lg) {
        for (int t = 0; t < T; t++)
            for (int j = 0; j < Vs; j++) got[(size_t)t * Vs + j] = lg[(size_t)t * V + (size_t)j * stride];
        char name[128];
        snprintf(name, sizeof name, "%s logits vs transformers", golden);
        CHECK_CLOSE(name, got, want, (size_t)T * Vs, tol);
    }
    free(lg);
    free(ids);
    free(want);
    free(got);
    free(buf);
}

/* ---- comparing models -------------------------------------------------- */

typedef struct cmp_stats {
    int64_t n, mismatches;
    double max_diff;
} cmp_stats;

/* rows x cols of a (stride lda) vs b (stride ldb); round: expected value of x. */
static void cmp_rows(cmp_stats *s, const float *a, int64_t lda, const float *b, int64_t ldb, int64_t rows, int64_t cols,
                     float (*round_fn)(float)) {
    if (!a || !b) {
        s->mismatches += (a != b);
        return;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            float x = round_fn ? round_fn(a[r * lda + c]) : a[r * lda + c], y = b[r * ldb + c];
            double d = fabs((double)x - (double)y);
            if (memcmp(&x, &y, sizeof x) != 0) s->mismatches++;
            if (d > s->max_diff) s->max_diff = d;
            s->n++;
        }
}

static void cmp_linear(cmp_stats *s, const slm_linear *a, const slm_linear *b, float (*rf)(float)) {
    if (a->kind != b->kind || a->n_out != b->n_out || a->n_in != b->n_in || a->rank != b->rank) {
        s->mismatches++;
        return;
    }
    if (a->kind == SLM_LINEAR_DENSE) cmp_rows(s, a->w, a->ld_w, b->w, b->ld_w, a->n_out, a->n_in, rf);
    else {
        cmp_rows(s, a->a, a->rank, b->a, b->rank, a->n_out, a->rank, rf);
        cmp_rows(s, a->b, a->ld_b, b->b, b->ld_b, a->rank, a->n_in, rf);
    }
    cmp_rows(s, a->bias, 0, b->bias, 0, 1, a->bias ? a->n_out : 0, rf);
}

/* a's kept blocks against b's blocks in order (b was saved from a). */
static cmp_stats cmp_models(const slm_model *a, const slm_model *b, float (*rf)(float)) {
    cmp_stats s = {0};
    int64_t V = a->cfg.n_vocab, D = a->cfg.d_model;
    cmp_rows(&s, a->tok_embd, D, b->tok_embd, D, V, D, rf);
    cmp_rows(&s, a->lm_head, D, b->lm_head, D, V, D, rf);
    cmp_rows(&s, a->out_norm, D, b->out_norm, D, 1, D, rf);
    int j = 0;
    for (int i = 0; i < a->cfg.n_layers; i++) {
        if (!a->blocks[i].kept) continue;
        if (j >= b->cfg.n_layers) {
            s.mismatches++;
            break;
        }
        const slm_block *x = &a->blocks[i], *y = &b->blocks[j++];
        cmp_rows(&s, x->attn_norm, D, y->attn_norm, D, 1, D, rf);
        cmp_rows(&s, x->ffn_norm, D, y->ffn_norm, D, 1, D, rf);
        for (int p = 0; p < SLM_PROJ_COUNT; p++) cmp_linear(&s, &x->lin[p], &y->lin[p], rf);
    }
    if (j != b->cfg.n_layers) s.mismatches++;
    return s;
}

static float round_f16(float x) { return slm_fp16_to_fp32(slm_fp32_to_fp16(x)); }
static float round_bf16(float x) { return slm_bf16_to_fp32(slm_fp32_to_bf16(x)); }

static slm_model *save_and_load(const slm_model *m, const char *name, int dtype) {
    slm_save_params sp = slm_save_default_params();
    sp.format = SLM_SAVE_SAFETENSORS;
    sp.dtype = dtype;
    const char *out = slm_test_path(g_tmp, name);
    slm_status st = slm_model_save(m, out, &sp);
    CHECK(st == SLM_OK, "save %s: %s", name, slm_last_error());
    return st ? NULL : load(out);
}

/* ---- the tests --------------------------------------------------------- */

/* "model.layers.1.self_attn.q_proj.weight" -> the model's fp32 data. */
static const float *hf_tensor(const slm_model *m, const char *name) {
    if (!strcmp(name, "model.embed_tokens.weight")) return m->tok_embd;
    if (!strcmp(name, "lm_head.weight")) return m->lm_head;
    if (!strcmp(name, "model.norm.weight")) return m->out_norm;
    int b, k = 0;
    if (sscanf(name, "model.layers.%d.%n", &b, &k) != 1 || k == 0 || b < 0 || b >= m->cfg.n_layers) return NULL;
    const char *rest = name + k;
    if (!strcmp(rest, "input_layernorm.weight")) return m->blocks[b].attn_norm;
    if (!strcmp(rest, "post_attention_layernorm.weight")) return m->blocks[b].ffn_norm;
    for (int p = 0; p < SLM_PROJ_COUNT; p++) {
        size_t n = strlen(slm_proj_hf_name((slm_proj)p));
        if (!strncmp(rest, slm_proj_hf_name((slm_proj)p), n) && !strcmp(rest + n, ".weight"))
            return m->blocks[b].lin[p].w;
    }
    return NULL;
}

static void test_tiny_llama(const char *tiny) {
    slm_model *m = load(tiny);
    if (!m) return;
    CHECK(m->cfg.n_vocab == 32000 && m->cfg.d_model == 16 && m->cfg.n_layers == 2 && !m->cfg.tied_embeddings &&
              m->cfg.rope_layout == SLM_ROPE_HALVES && m->src_type_counts[SLM_DTYPE_F32] == 21 &&
              m->src_file_bytes == 4131280 && strcmp(m->format, "safetensors") == 0,
          "tiny config/format");
    CHECK(m->lm_head != m->tok_embd, "untied lm head");
    slm_load_params lp = slm_load_default_params();
    slm_model *mt = NULL;
    CHECK(lp.load_tokenizer && slm_model_load(tiny, &lp, &mt) == SLM_OK && slm_model_tokenizer(mt) == NULL,
          "no tokenizer.json -> loads, without a tokenizer");
    slm_model_free(mt);
    /* values vs python safetensors */
    FILE *f = fopen(slm_test_path(g_golden, "hf_tiny_tensors.txt"), "r");
    CHECK(f != NULL, "golden hf_tiny_tensors.txt");
    char name[256];
    long long idx;
    float want;
    int n = 0, bad = 0;
    double maxd = 0;
    while (f && fscanf(f, "%255s %lld %f", name, &idx, &want) == 3) {
        const float *t = hf_tensor(m, name);
        double d = t ? fabs((double)t[idx] - want) : INFINITY;
        if (!(d == 0.0)) bad++;
        if (d > maxd) maxd = d;
        n++;
    }
    if (f) fclose(f);
    printf("tiny tensors vs python safetensors: %d values, max|d|=%g\n", n, maxd);
    CHECK(n == 105 && bad == 0, "%d of %d golden values differ", bad, n);
    check_logits_golden(m, "hf_tiny_logits.bin", 1e-4);

    /* F32 round trip is bit-exact, logits too; F16 / BF16 round like the converters. */
    slm_model *b = save_and_load(m, "hf_rt_f32", SLM_DTYPE_F32);
    if (b) {
        cmp_stats s = cmp_models(m, b, NULL);
        printf("f32 round trip: %lld values, %lld differ\n", (long long)s.n, (long long)s.mismatches);
        CHECK(s.mismatches == 0 && s.n > 1000000, "f32 round trip exact");
        CHECK(b->cfg.max_ctx == m->cfg.max_ctx && b->cfg.bos_id == 0 && b->cfg.eos_id == 1, "config kept");
        const int32_t ids[5] = {1, 450, 4996, 17354, 29889};
        float *la = logits_of(m, ids, 5), *lb = logits_of(b, ids, 5);
        if (la && lb) CHECK_CLOSE("f32 round trip logits", la, lb, 5 * 32000, 0.0);
        free(la);
        free(lb);
        slm_model_free(b);
    }
    const int dts[2] = {SLM_DTYPE_F16, SLM_DTYPE_BF16};
    for (int i = 0; i < 2; i++) {
        b = save_and_load(m, i ? "hf_rt_bf16" : "hf_rt_f16", dts[i]);
        if (!b) continue;
        cmp_stats s = cmp_models(m, b, i ? round_bf16 : round_f16);
        printf("%s round trip: %lld values, %lld differ from the rounded source, max|d|=%g\n", i ? "bf16" : "f16",
               (long long)s.n, (long long)s.mismatches, s.max_diff);
        CHECK(s.mismatches == 0 && b->src_type_counts[dts[i]] == 21, "%s round trip", i ? "bf16" : "f16");
        slm_model_free(b);
    }

    /* A model holding llama.cpp's adjacent-pair q/k rows is written in HF order. */
    slm_model *adj = load(tiny);
    if (adj) {
        for (int l = 0; l < 2; l++)
            for (int p = SLM_PROJ_Q; p <= SLM_PROJ_K; p++) {
                slm_linear *lin = &adj->blocks[l].lin[p];
                float *w = slm_model_alloc_f32(adj, (size_t)lin->n_out * lin->n_in, "permuted");
                slm_rope_permute_rows(lin->w, w, lin->n_out / adj->cfg.head_dim, adj->cfg.head_dim, lin->ld_w, true);
                lin->w = w;
            }
        adj->cfg.rope_layout = SLM_ROPE_ADJACENT;
        b = save_and_load(adj, "hf_rt_adjacent", SLM_DTYPE_F32);
        if (b) {
            cmp_stats s = cmp_models(m, b, NULL);
            CHECK(s.mismatches == 0 && b->cfg.rope_layout == SLM_ROPE_HALVES,
                  "adjacent q/k rows un-permuted on save (%lld differ)", (long long)s.mismatches);
            slm_model_free(b);
        }
        slm_model_free(adj);
    }
    slm_save_params sp = {.format = SLM_SAVE_SAFETENSORS, .dtype = SLM_DTYPE_Q8_0};
    CHECK(slm_model_save(m, slm_test_path(g_tmp, "hf_q8"), &sp) == SLM_ERR_UNSUPPORTED &&
              strstr(slm_last_error(), "q8_0"),
          "q8_0 to safetensors refused: %s", slm_last_error());
    slm_model_free(m);
}

/* Dropped block, narrowed MLP and a low-rank linear survive save + load. */
static void test_plans(const char *qwen2) {
    slm_model *m = load(qwen2);
    if (!m) return;
    CHECK(m->cfg.arch == SLM_ARCH_QWEN2 && m->cfg.attn_bias && m->cfg.tied_embeddings && m->cfg.n_kv_heads == 2 &&
              m->src_type_counts[SLM_DTYPE_BF16] > 0 && m->blocks[0].lin[SLM_PROJ_Q].bias &&
              m->cfg.eos_id == 2,
          "qwen2 tiny: bias, tied, GQA, BF16, eos list");
    check_logits_golden(m, "hf_qwen2_logits.bin", 1e-4);
    m->blocks[0].kept = false;
    CHECK(slm_block_set_mlp_width(m, 1, 24) == SLM_OK, "narrow MLP");
    slm_linear *o = &m->blocks[1].lin[SLM_PROJ_O];
    const int r = 5;
    float *a = slm_model_alloc_f32(m, (size_t)o->n_out * r, "A"), *bb = slm_model_alloc_f32(m, (size_t)r * o->n_in, "B");
    for (int i = 0; i < o->n_out * r; i++) a[i] = sinf((float)i);
    for (int i = 0; i < r * o->n_in; i++) bb[i] = cosf((float)i * 0.5f) * 0.2f;
    *o = (slm_linear){.kind = SLM_LINEAR_LOWRANK, .n_out = o->n_out, .n_in = o->n_in, .rank = r, .a = a, .b = bb,
                      .ld_b = o->n_in};
    slm_model *b = save_and_load(m, "hf_rt_plan", SLM_DTYPE_F32);
    if (b) {
        CHECK(b->cfg.n_layers == 1 && b->cfg.d_ff == 24 && b->blocks[0].lin[SLM_PROJ_O].kind == SLM_LINEAR_LOWRANK &&
                  b->blocks[0].lin[SLM_PROJ_O].rank == r && b->cfg.tied_embeddings && b->cfg.attn_bias,
              "plan read back: %d layers, d_ff %d", b->cfg.n_layers, b->cfg.d_ff);
        cmp_stats s = cmp_models(m, b, NULL);
        CHECK(s.mismatches == 0, "plan tensors exact (%lld differ)", (long long)s.mismatches);
        const int32_t ids[6] = {3, 17, 42, 5, 88, 61};
        float *la = logits_of(m, ids, 6), *lb = logits_of(b, ids, 6);
        if (la && lb) CHECK_CLOSE("plan round trip logits", la, lb, 6 * 96, 1e-5);
        free(la);
        free(lb);
        slm_model_free(b);
    }
    /* Blocks of different widths cannot be one HF intermediate_size. */
    m->blocks[0].kept = true;
    const char *out = slm_test_path(g_tmp, "hf_mixed_width");
    slm_save_params sp = {.format = SLM_SAVE_SAFETENSORS, .dtype = SLM_DTYPE_F32};
    CHECK(slm_model_save(m, out, &sp) == SLM_ERR_UNSUPPORTED && strstr(slm_last_error(), "MLP widths"),
          "mixed widths refused: %s", slm_last_error());
    struct stat st;
    CHECK(stat(out, &st) != 0, "nothing written on failure");
    slm_model_free(m);
}

/* Two shards + index.json built from a saved copy of the tiny model. */
static void write_shards(const char *dir, const char *src_st, const char *bad_name, bool misplace) {
    slm_st_file *f = NULL;
    CHECK(slm_st_open(src_st, &f) == SLM_OK, "open %s", src_st);
    if (!f) return;
    mkdir(dir, 0755);
    slm_st_writer *w[2] = {slm_st_writer_new(), slm_st_writer_new()};
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *ix = fopen(path, "w");
    fprintf(ix, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const slm_st_tensor *t = &f->tensors[i];
        int s = strstr(t->name, "layers.0.") || strstr(t->name, "embed") ? 0 : 1;
        slm_st_writer_add(w[s], t->name, t->type, t->n_dims, t->shape, t->data, t->shape[t->n_dims - 1], false);
        if (misplace && strstr(t->name, "layers.1.mlp.up_proj")) s = 0; /* index points at the wrong shard */
        const char *shard = s ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
        if (bad_name && s == 1) shard = bad_name;
        fprintf(ix, "%s\"%s\": \"%s\"", i ? ", " : "", t->name, shard);
    }
    fprintf(ix, "}}\n");
    fclose(ix);
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, s + 1);
        CHECK(slm_st_writer_write(w[s], path) == SLM_OK, "write shard: %s", slm_last_error());
        slm_st_writer_free(w[s]);
    }
    slm_st_close(f);
}

static void copy_config(const char *from_dir, const char *to_dir) {
    char *text = slm_test_read_file(slm_test_path(from_dir, "config.json"), NULL);
    FILE *f = fopen(slm_test_path(to_dir, "config.json"), "w");
    if (f && text) fputs(text, f);
    if (f) fclose(f);
    free(text);
}

static void expect_load_error(const char *path, const char *frag) {
    slm_model *m = NULL;
    slm_load_params lp = slm_load_default_params();
    slm_status st = slm_model_load(path, &lp, &m);
    const char *msg = slm_last_error();
    CHECK(st != SLM_OK && m == NULL && strstr(msg, frag) && !strchr(msg, '\n'), "%s: want error '%s', got '%s'", path,
          frag, msg);
    printf("  %s\n", msg);
    slm_model_free(m);
}

static void test_sharded(const char *tiny) {
    slm_model *m = load(tiny);
    slm_model *b = m ? save_and_load(m, "hf_shard_src", SLM_DTYPE_F32) : NULL;
    slm_model_free(b);
    if (!m) return;
    char src_dir[4096], src_st[4200], dir[4096];
    snprintf(src_dir, sizeof src_dir, "%s/hf_shard_src", g_tmp);
    snprintf(src_st, sizeof src_st, "%s/model.safetensors", src_dir);
    snprintf(dir, sizeof dir, "%s/hf_sharded", g_tmp);
    write_shards(dir, src_st, NULL, false);
    copy_config(src_dir, dir);
    b = load(dir);
    if (b) {
        cmp_stats s = cmp_models(m, b, NULL);
        printf("sharded load: %lld values, %lld differ, format '%s', %lld bytes\n", (long long)s.n,
               (long long)s.mismatches, b->format, (long long)b->src_file_bytes);
        CHECK(s.mismatches == 0 && strstr(b->format, "sharded"), "sharded tensors exact");
        slm_model_free(b);
    }
    /* The same model through its .safetensors and config.json paths. */
    b = load(src_st);
    CHECK(b && cmp_models(m, b, NULL).mismatches == 0, "load via .safetensors path");
    slm_model_free(b);
    b = load(slm_test_path(src_dir, "config.json"));
    CHECK(b != NULL, "load via config.json path");
    slm_model_free(b);

    printf("broken directories:\n");
    snprintf(dir, sizeof dir, "%s/hf_sharded_escape", g_tmp);
    write_shards(dir, src_st, "../hf_shard_src/model.safetensors", false);
    copy_config(src_dir, dir);
    expect_load_error(dir, "is not a shard file name in the same directory");
    snprintf(dir, sizeof dir, "%s/hf_sharded_misplaced", g_tmp);
    write_shards(dir, src_st, NULL, true);
    copy_config(src_dir, dir);
    expect_load_error(dir, "'model.layers.1.mlp.up_proj.weight' is listed in weight_map but missing from its shard");
    snprintf(dir, sizeof dir, "%s/hf_shard_src_noconfig", g_tmp);
    mkdir(dir, 0755);
    expect_load_error(dir, "no model.safetensors or model.safetensors.index.json");

    /* Untied config without lm_head.weight. */
    snprintf(dir, sizeof dir, "%s/hf_no_lm_head", g_tmp);
    mkdir(dir, 0755);
    slm_st_file *f = NULL;
    if (slm_st_open(src_st, &f) == SLM_OK) {
        slm_st_writer *w = slm_st_writer_new();
        for (int64_t i = 0; i < f->n_tensors; i++)
            if (strcmp(f->tensors[i].name, "lm_head.weight"))
                slm_st_writer_add(w, f->tensors[i].name, SLM_DTYPE_F32, f->tensors[i].n_dims, f->tensors[i].shape,
                                  f->tensors[i].data, f->tensors[i].shape[f->tensors[i].n_dims - 1], false);
        slm_st_writer_write(w, slm_test_path(dir, "model.safetensors"));
        slm_st_writer_free(w);
        slm_st_close(f);
    }
    copy_config(src_dir, dir);
    expect_load_error(dir, "missing tensor 'lm_head.weight'");

    /* Saving into a directory with other content replaces only our files. */
    snprintf(dir, sizeof dir, "%s/hf_existing", g_tmp);
    mkdir(dir, 0755);
    FILE *keep = fopen(slm_test_path(dir, "README.md"), "w");
    fputs("mine\n", keep);
    fclose(keep);
    FILE *stale = fopen(slm_test_path(dir, "model.safetensors"), "w");
    fputs("stale", stale);
    fclose(stale);
    b = save_and_load(m, "hf_existing", SLM_DTYPE_F32);
    CHECK(b && access(slm_test_path(dir, "README.md"), F_OK) == 0, "existing dir: model replaced, other files kept");
    slm_model_free(b);
    slm_model_free(m);
}

static void unpermute_qk(slm_model *m) {
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int p = SLM_PROJ_Q; p <= SLM_PROJ_K; p++) {
            slm_linear *lin = &m->blocks[l].lin[p];
            float *w = slm_model_alloc_f32(m, (size_t)lin->n_out * (size_t)lin->ld_w, "unpermuted");
            slm_rope_permute_rows(lin->w, w, lin->n_out / m->cfg.head_dim, m->cfg.head_dim, lin->ld_w, false);
            lin->w = w;
        }
    m->cfg.rope_layout = SLM_ROPE_HALVES;
}

static void test_gguf_roundtrip(const char *gguf) {
    if (!CHECK(access(gguf, R_OK) == 0, "default model %s missing (scripts/fetch-model.sh)", gguf)) return;
    static const int32_t ids[12] = {1, 504, 3458, 282, 4649, 314, 253, 1345, 30, 378, 2152, 282};
    slm_model *g = load(gguf);
    slm_model *h = g ? save_and_load(g, "hf_smollm2", SLM_DTYPE_F32) : NULL;
    if (!h) {
        slm_model_free(g);
        return;
    }
    CHECK(g->cfg.rope_layout == SLM_ROPE_ADJACENT && h->cfg.rope_layout == SLM_ROPE_HALVES &&
              h->cfg.tied_embeddings && h->cfg.n_kv_heads == 3 && h->cfg.rope_theta == g->cfg.rope_theta &&
              h->cfg.norm_eps == g->cfg.norm_eps && h->cfg.bos_id == g->cfg.bos_id,
          "SmolLM2 config through safetensors");
    float *lg = logits_of(g, ids, 12), *lh = logits_of(h, ids, 12);
    if (lg && lh) CHECK_CLOSE("SmolLM2 GGUF vs its safetensors export, logits", lg, lh, 12 * 49152, 1e-4);
    free(lh);
    check_logits_golden(h, "hf_smollm2_logits.bin", 2e-4);
    unpermute_qk(g);
    cmp_stats s = cmp_models(g, h, NULL);
    printf("SmolLM2 GGUF -> safetensors: %lld values, %lld differ (q/k compared un-permuted)\n", (long long)s.n,
           (long long)s.mismatches);
    CHECK(s.mismatches == 0, "GGUF -> safetensors tensors exact");
    slm_model_free(g);

    const char *back = slm_test_path(g_tmp, "hf_smollm2_back.gguf");
    slm_save_params sp = {.format = SLM_SAVE_GGUF, .dtype = SLM_DTYPE_F32};
    slm_status st = slm_model_save(h, back, &sp);
    CHECK(st == SLM_OK, "safetensors -> GGUF: %s", slm_last_error());
    slm_model_free(h);
    slm_model *g2 = st ? NULL : load(back);
    g = g2 ? load(gguf) : NULL;
    if (g && g2) {
        s = cmp_models(g, g2, NULL);
        printf("SmolLM2 GGUF -> safetensors -> GGUF: %lld values, %lld differ\n", (long long)s.n, (long long)s.mismatches);
        CHECK(s.mismatches == 0 && g2->cfg.rope_layout == g->cfg.rope_layout, "GGUF -> safetensors -> GGUF tensors exact");
        float *l2 = logits_of(g2, ids, 12);
        if (l2 && lg) CHECK_CLOSE("SmolLM2 GGUF -> safetensors -> GGUF logits", lg, l2, 12 * 49152, 0.0);
        free(l2);
    }
    free(lg);
    slm_model_free(g);
    slm_model_free(g2);
    /* 0.5 GB each: do not leave them in the build tree */
    remove(back);
    remove(slm_test_path(g_tmp, "hf_smollm2/model.safetensors"));
    remove(slm_test_path(g_tmp, "hf_smollm2/config.json"));
    rmdir(slm_test_path(g_tmp, "hf_smollm2"));
}

int main(void) {
    g_tmp = slm_test_env("SLM_TEST_TMP", "/tmp");
    g_golden = slm_test_env("SLM_GOLDEN_DIR", "tests/golden");
    const char *data = slm_test_env("SLM_DATA_DIR", "../shared/data");
    const char *tiny = slm_test_path(data, "models/tiny-random-LlamaForCausalLM");
    char tiny_buf[4096], qwen2[4096], llama3[4096];
    snprintf(tiny_buf, sizeof tiny_buf, "%s", tiny);
    snprintf(qwen2, sizeof qwen2, "%s/hf_qwen2_tiny", g_golden);
    snprintf(llama3, sizeof llama3, "%s/hf_llama3_tiny", g_golden);

    test_tiny_llama(tiny_buf);
    test_plans(qwen2);
    slm_model *l3 = load(llama3);
    if (l3) {
        CHECK(l3->cfg.rope_scaling == SLM_ROPE_SCALING_LLAMA3 && l3->cfg.rope_orig_ctx == 64 &&
                  l3->src_type_counts[SLM_DTYPE_F16] > 0 && l3->cfg.n_kv_heads == 1,
              "llama3 tiny config");
        check_logits_golden(l3, "hf_llama3_logits.bin", 1e-4);
        slm_model_free(l3);
    }
    test_sharded(tiny_buf);
    char model[4096];
    snprintf(model, sizeof model, "%s", slm_test_env("SLM_TEST_MODEL", ""));
    test_gguf_roundtrip(model);
    return slm_test_finish();
}
