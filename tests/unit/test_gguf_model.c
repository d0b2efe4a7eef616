/* GGUF <-> model: slm_model_save_gguf then slm_model_load_gguf.
 *  - a small random model round-trips exactly in F32, and in F16 / BF16 /
 *    Q8_0 equals the type's own quantise-dequantise of the original (tol 0)
 *    and stays within the type's rounding bound;
 *  - plans survive: dropped blocks (renumbered), narrowed MLPs (zero-padded
 *    for llama.cpp, true widths in slimlm.feed_forward_length), low-rank
 *    linears (lr_a / lr_b), untied lm head;
 *  - a HALVES (qwen2, biased) model comes back ADJACENT with q/k rows and
 *    biases permuted as llama.cpp's converter does (checked row by row);
 *  - loader errors name the file and the tensor;
 *  - the SmolLM2 Q4_1 file loads with the right config and #params, its
 *    weights equal gguf-py's values (tests/golden/gguf_smollm2.txt), and it
 *    round-trips through Q8_0. */
#include "formats/gguf.h"
#include "model/loaders.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static float frand(void) {
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(g_rng >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

static const float *rand_f32(slm_model *m, size_t n) {
    float *p = slm_model_alloc_f32(m, n, "test tensor");
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

static slm_config tiny_config(void) {
    slm_config c = {0};
    c.arch = SLM_ARCH_LLAMA;
    c.n_vocab = 96;
    c.d_model = 64;
    c.n_layers = 3;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 16;
    c.d_ff = 96;
    c.max_ctx = 256;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.rope_layout = SLM_ROPE_ADJACENT;
    c.rope_factor = 1.0f; /* what the loader reports for no scaling */
    c.tied_embeddings = true;
    c.bos_id = c.eos_id = -1;
    return c;
}

static slm_model *tiny_model(const slm_config *c) {
    slm_model *m = NULL;
    if (slm_model_create(c, &m)) return NULL;
    m->tok_embd = rand_f32(m, (size_t)c->n_vocab * c->d_model);
    m->lm_head = c->tied_embeddings ? m->tok_embd : rand_f32(m, (size_t)c->n_vocab * c->d_model);
    m->out_norm = rand_f32(m, (size_t)c->d_model);
    for (int i = 0; i < c->n_layers; i++) {
        slm_block *b = &m->blocks[i];
        b->attn_norm = rand_f32(m, (size_t)c->d_model);
        b->ffn_norm = rand_f32(m, (size_t)c->d_model);
        for (int p = 0; p < SLM_PROJ_COUNT; p++) {
            slm_linear *l = &b->lin[p];
            l->w = rand_f32(m, (size_t)l->n_out * l->ld_w);
            if (c->attn_bias && p <= SLM_PROJ_V) l->bias = rand_f32(m, (size_t)l->n_out);
        }
    }
    return m;
}

/* The values a writer of type t must produce: from_float then to_float. */
static float *through(slm_dtype t, const float *x, int64_t rows, int64_t cols, int64_t ld) {
    const slm_dtype_traits *tr = slm_dtype_get(t);
    float *y = malloc((size_t)(rows * cols) * sizeof *y);
    uint8_t *q = malloc((size_t)cols * 4 + 64);
    for (int64_t r = 0; r < rows; r++) {
        tr->from_float(x + r * ld, q, cols);
        tr->to_float(q, y + r * cols, cols);
    }
    free(q);
    return y;
}

/* got [rows][cols] equals want (stride ld) after a trip through type t;
 * also prints the max deviation from the unquantised values vs bound. */
static void check_mat_ld(const char *what, slm_dtype t, const float *got_strided, int64_t got_ld, const float *want,
                         int64_t rows, int64_t cols, int64_t ld, double bound) {
    float *got = malloc((size_t)(rows * cols) * sizeof *got);
    for (int64_t r = 0; r < rows; r++) memcpy(got + r * cols, got_strided + r * got_ld, (size_t)cols * sizeof(float));
    float *ref = through(t, want, rows, cols, ld);
    float *orig = malloc((size_t)(rows * cols) * sizeof *orig);
    for (int64_t r = 0; r < rows; r++) memcpy(orig + r * cols, want + r * ld, (size_t)cols * sizeof(float));
    char nm[160];
    snprintf(nm, sizeof nm, "%s (%s, exact vs reference quantisation)", what, slm_dtype_get(t)->name);
    CHECK_CLOSE(nm, got, ref, (size_t)(rows * cols), 0.0);
    snprintf(nm, sizeof nm, "%s (%s, vs fp32 original)", what, slm_dtype_get(t)->name);
    CHECK_CLOSE(nm, got, orig, (size_t)(rows * cols), bound);
    free(ref);
    free(orig);
    free(got);
}

static void check_mat(const char *what, slm_dtype t, const float *got, const float *want, int64_t rows, int64_t cols,
                      int64_t ld, double bound) {
    check_mat_ld(what, t, got, cols, want, rows, cols, ld, bound);
}

static bool cfg_equal(const slm_config *a, const slm_config *b) {
    return a->arch == b->arch && a->n_vocab == b->n_vocab && a->d_model == b->d_model && a->n_layers == b->n_layers &&
           a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
           a->d_ff == b->d_ff && a->max_ctx == b->max_ctx && a->norm_eps == b->norm_eps &&
           a->rope_theta == b->rope_theta && a->rope_layout == b->rope_layout && a->rope_scaling == b->rope_scaling &&
           a->rope_factor == b->rope_factor && a->sliding_window == b->sliding_window &&
           a->tied_embeddings == b->tied_embeddings && a->attn_bias == b->attn_bias && a->bos_id == b->bos_id &&
           a->eos_id == b->eos_id;
}

static const char *tmp_path(const char *name) { return slm_test_path(slm_test_env("SLM_TEST_TMP", "/tmp"), name); }

static slm_model *save_load(const slm_model *m, slm_dtype t, const char *name) {
    slm_save_params sp = slm_save_default_params();
    sp.dtype = t;
    const char *path = tmp_path(name);
    slm_model *r = NULL;
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = false;
    if (!CHECK(slm_model_save_gguf(m, path, &sp) == SLM_OK, "save %s: %s", name, slm_last_error())) return NULL;
    CHECK(slm_model_load_gguf(path, &lp, &r) == SLM_OK, "load %s: %s", name, slm_last_error());
    return r;
}

static void test_types(void) {
    slm_config c = tiny_config();
    slm_model *m = tiny_model(&c);
    /* bounds for values in [-1, 1]: half an ulp of fp16 / bf16 at 1, and
     * for Q8_0 half a step (1/254) plus the fp16 rounding of the scale */
    static const struct { slm_dtype t; double bound; } types[] = {
        {SLM_DTYPE_F32, 0.0}, {SLM_DTYPE_F16, 1.0 / 2048}, {SLM_DTYPE_BF16, 1.0 / 256},
        {SLM_DTYPE_Q8_0, 0.5 / 127 + 1.0 / 2048}};
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        slm_dtype t = types[k].t;
        slm_model *r = save_load(m, t, "rt_types.gguf");
        if (!r) continue;
        CHECK(cfg_equal(&r->cfg, &m->cfg), "%s: config round trip", slm_dtype_get(t)->name);
        CHECK(r->lm_head == r->tok_embd && r->cfg.tied_embeddings, "tied embeddings stay tied");
        check_mat("token_embd", t, r->tok_embd, m->tok_embd, c.n_vocab, c.d_model, c.d_model, types[k].bound);
        CHECK_CLOSE("output_norm (F32)", r->out_norm, m->out_norm, (size_t)c.d_model, 0.0);
        for (int i = 0; i < c.n_layers; i++) {
            CHECK_CLOSE("attn_norm (F32)", r->blocks[i].attn_norm, m->blocks[i].attn_norm, (size_t)c.d_model, 0.0);
            for (int p = 0; p < SLM_PROJ_COUNT; p++) {
                const slm_linear *a = &r->blocks[i].lin[p], *b = &m->blocks[i].lin[p];
                char nm[64];
                snprintf(nm, sizeof nm, "blk.%d.%s", i, slm_proj_gguf_name((slm_proj)p));
                CHECK(a->kind == SLM_LINEAR_DENSE && a->n_out == b->n_out && a->n_in == b->n_in, "%s shape", nm);
                check_mat(nm, t, a->w, b->w, b->n_out, b->n_in, b->ld_w, types[k].bound);
            }
        }
        slm_model_free(r);
    }
    slm_model_free(m);
}

/* Drop block 1, narrow block 2's MLP to 64, factor block 0's q and block
 * 2's down, untie the lm head: everything comes back as it was planned. */
static void test_plan(void) {
    slm_config c = tiny_config();
    c.tied_embeddings = false;
    slm_model *m = tiny_model(&c);
    m->blocks[1].kept = false;
    slm_block_set_mlp_width(m, 2, 64);
    slm_linear *q = &m->blocks[0].lin[SLM_PROJ_Q], *dn = &m->blocks[2].lin[SLM_PROJ_DOWN];
    q->kind = SLM_LINEAR_LOWRANK;
    q->rank = 8;
    q->a = rand_f32(m, (size_t)q->n_out * 8);
    q->b = rand_f32(m, (size_t)8 * q->n_in);
    q->ld_b = q->n_in;
    dn->kind = SLM_LINEAR_LOWRANK;
    dn->rank = 5; /* not a multiple of 32: Q8_0 falls back to F16 for lr_a */
    dn->a = rand_f32(m, (size_t)dn->n_out * 5);
    dn->b = rand_f32(m, (size_t)5 * c.d_ff);
    dn->ld_b = c.d_ff; /* narrowed: first 64 of 96 columns */
    slm_dtype ts[2] = {SLM_DTYPE_F32, SLM_DTYPE_Q8_0};
    for (int k = 0; k < 2; k++) {
        slm_model *r = save_load(m, ts[k], "rt_plan.gguf");
        if (!r) continue;
        slm_dtype t = ts[k];
        double bound = t == SLM_DTYPE_F32 ? 0 : 0.5 / 127 + 1.0 / 2048;
        /* rank 8 and 5 rows do not fit Q8_0's 32-blocks: the writer uses F16 */
        slm_dtype t_lr = t == SLM_DTYPE_F32 ? SLM_DTYPE_F32 : SLM_DTYPE_F16;
        double bound_lr = t == SLM_DTYPE_F32 ? 0 : 1.0 / 2048;
        CHECK(r->cfg.n_layers == 2 && r->cfg.d_ff == 96 && r->blocks[0].d_ff == 96 && r->blocks[1].d_ff == 64,
              "dropped block omitted, widths kept: L %d, d_ff %d/%d", r->cfg.n_layers, r->blocks[0].d_ff,
              r->blocks[1].d_ff);
        CHECK(!r->cfg.tied_embeddings && r->lm_head != r->tok_embd, "untied lm head");
        check_mat("output", t, r->lm_head, m->lm_head, c.n_vocab, c.d_model, c.d_model, bound);
        const slm_linear *rq = &r->blocks[0].lin[SLM_PROJ_Q];
        if (CHECK(rq->kind == SLM_LINEAR_LOWRANK && rq->rank == 8, "q low-rank rank 8 (got kind %d)", rq->kind)) {
            check_mat("q lr_a", t_lr, rq->a, q->a, q->n_out, 8, 8, bound_lr);
            check_mat("q lr_b", t, rq->b, q->b, 8, q->n_in, q->ld_b, bound);
        }
        const slm_block *r1 = &r->blocks[1], *m2 = &m->blocks[2];
        CHECK_CLOSE("renumbered attn_norm", r1->attn_norm, m2->attn_norm, (size_t)c.d_model, 0.0);
        check_mat("narrowed gate", t, r1->lin[SLM_PROJ_GATE].w, m2->lin[SLM_PROJ_GATE].w, 64, c.d_model, c.d_model, bound);
        const slm_linear *rd = &r1->lin[SLM_PROJ_DOWN];
        if (CHECK(rd->kind == SLM_LINEAR_LOWRANK && rd->rank == 5 && rd->n_in == 64, "narrowed low-rank down")) {
            check_mat("down lr_a", t_lr, rd->a, dn->a, c.d_model, 5, 5, bound_lr);
            check_mat_ld("down lr_b", t, rd->b, rd->ld_b, dn->b, 5, 64, c.d_ff, bound);
        }
        slm_model_stats s0 = slm_model_get_stats(m, 1), s1 = slm_model_get_stats(r, 1);
        CHECK(s0.n_params == s1.n_params, "#params %lld vs %lld", (long long)s0.n_params, (long long)s1.n_params);
        slm_model_free(r);
    }
    /* the metadata says where the blocks came from */
    slm_gguf *g = NULL;
    if (CHECK(slm_gguf_open(tmp_path("rt_plan.gguf"), &g) == SLM_OK, "reopen")) {
        const slm_gguf_kv *sb = slm_gguf_find(g, "slimlm.source_blocks"), *ff = slm_gguf_find(g, "llama.feed_forward_length");
        int64_t v0 = -1, v1 = -1, f1 = -1;
        bool lr = false;
        CHECK(sb && slm_gguf_arr_i64(sb, 0, &v0) && slm_gguf_arr_i64(sb, 1, &v1) && v0 == 0 && v1 == 2, "source blocks");
        int64_t fw = 0;
        CHECK(slm_gguf_get_i64(g, "llama.feed_forward_length", &fw) && fw == 96, "one MLP width for llama.cpp");
        ff = slm_gguf_find(g, "slimlm.feed_forward_length");
        CHECK(ff && ff->arr_n == 2 && slm_gguf_arr_i64(ff, 1, &f1) && f1 == 64, "true widths in slimlm.feed_forward_length");
        /* the narrowed block is zero-padded: gate rows 64.. and down's lr_b columns 64.. */
        const slm_gguf_tensor *tg = slm_gguf_find_tensor(g, "blk.1.ffn_gate.weight"),
                              *tb = slm_gguf_find_tensor(g, "blk.1.ffn_down.lr_b.weight");
        if (CHECK(tg && tg->ne[1] == 96 && tb && tb->ne[0] == 96, "padded shapes")) {
            float *x = malloc(96 * 64 * sizeof *x);
            int nz = 0;
            slm_dtype_get(tg->type)->to_float(tg->data, x, 96 * 64);
            for (int i = 64 * 64; i < 96 * 64; i++) nz += x[i] != 0.0f;
            slm_dtype_get(tb->type)->to_float(tb->data, x, 5 * 96);
            for (int r = 0; r < 5; r++)
                for (int j = 64; j < 96; j++) nz += x[r * 96 + j] != 0.0f;
            CHECK(nz == 0, "%d non-zero values in the padding", nz);
            free(x);
        }
        CHECK(slm_gguf_get_bool(g, "slimlm.lowrank", &lr) && lr, "slimlm.lowrank");
        slm_gguf_close(g);
    }
    slm_model_free(m);
}

/* HALVES (HF order) -> ADJACENT: adjacent row h*Dh + 2j + i holds halves
 * row h*Dh + i*Dh/2 + j (llama.cpp convert_hf_to_gguf permute). */
static void test_rope_permute(void) {
    slm_config c = tiny_config();
    c.arch = SLM_ARCH_QWEN2;
    c.rope_layout = SLM_ROPE_HALVES;
    c.attn_bias = true;
    slm_model *m = tiny_model(&c);
    slm_model *r = save_load(m, SLM_DTYPE_F32, "rt_rope.gguf");
    if (r) {
        CHECK(r->cfg.arch == SLM_ARCH_LLAMA && r->cfg.rope_layout == SLM_ROPE_ADJACENT && r->cfg.attn_bias,
              "written as llama, adjacent, with biases");
        int bad = 0, Dh = c.head_dim, D = c.d_model;
        for (int p = SLM_PROJ_Q; p <= SLM_PROJ_K; p++) {
            const slm_linear *a = &r->blocks[1].lin[p], *b = &m->blocks[1].lin[p];
            int nh = p == SLM_PROJ_Q ? c.n_heads : c.n_kv_heads;
            for (int h = 0; h < nh; h++)
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < Dh / 2; j++) {
                        int ra = h * Dh + 2 * j + i, rb = h * Dh + i * Dh / 2 + j;
                        bad += memcmp(a->w + (size_t)ra * D, b->w + (size_t)rb * D, (size_t)D * 4) != 0;
                        bad += a->bias[ra] != b->bias[rb];
                    }
        }
        CHECK(bad == 0, "%d q/k rows or biases not where llama.cpp puts them", bad);
        CHECK_CLOSE("v bias unpermuted", r->blocks[1].lin[SLM_PROJ_V].bias, m->blocks[1].lin[SLM_PROJ_V].bias,
                    (size_t)(c.n_kv_heads * Dh), 0.0);
        slm_model_free(r);
    }
    slm_model_free(m);
}

/* Files made with the raw writer: each broken one fails naming the problem. */
static void test_loader_errors(void) {
    const char *path = tmp_path("bad_model.gguf");
    static float zeros[96 * 64];
    for (int k = 0; k < 4; k++) {
        slm_gguf_writer *w = slm_gguf_writer_new();
        slm_gguf_set_str(w, "general.architecture", k == 0 ? "gpt2" : "llama");
        slm_gguf_set_u32(w, "llama.context_length", 256);
        slm_gguf_set_u32(w, "llama.embedding_length", 64);
        slm_gguf_set_u32(w, "llama.block_count", 1);
        slm_gguf_set_u32(w, "llama.feed_forward_length", 96);
        slm_gguf_set_u32(w, "llama.attention.head_count", 4);
        if (k != 3) slm_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
        slm_gguf_add_tensor_f32(w, "token_embd.weight", SLM_DTYPE_F32, 2, 64, 96, zeros, 64);
        slm_gguf_add_tensor_f32(w, "output_norm.weight", SLM_DTYPE_F32, 1, 64, 1, zeros, 64);
        slm_gguf_add_tensor_f32(w, "blk.0.attn_norm.weight", SLM_DTYPE_F32, 1, 64, 1, zeros, 64);
        slm_gguf_add_tensor_f32(w, "blk.0.ffn_norm.weight", SLM_DTYPE_F32, 1, 64, 1, zeros, 64);
        if (k == 2) slm_gguf_add_tensor_f32(w, "blk.0.attn_q.weight", SLM_DTYPE_F32, 2, 64, 32, zeros, 64);
        CHECK(slm_gguf_writer_write(w, path) == SLM_OK, "write: %s", slm_last_error());
        slm_gguf_writer_free(w);
        static const char *const want[] = {"unknown architecture 'gpt2'", "missing tensor 'blk.0.attn_q.weight'",
                                           "tensor 'blk.0.attn_q.weight' has shape [64, 32, 1, 1], expected [64, 64]",
                                           "missing metadata key 'llama.attention.layer_norm_rms_epsilon'"};
        slm_model *m = NULL;
        slm_load_params lp = {.load_tokenizer = false};
        slm_status st = slm_model_load_gguf(path, &lp, &m);
        CHECK(st != SLM_OK && !m && strstr(slm_last_error(), want[k]) && strstr(slm_last_error(), path),
              "case %d: '%s' (want '%s')", k, slm_last_error(), want[k]);
    }
    slm_save_params sp = {.dtype = SLM_DTYPE_Q4_K};
    slm_config c = tiny_config();
    slm_model *m = tiny_model(&c);
    CHECK(slm_model_save_gguf(m, path, &sp) == SLM_ERR_ARG && strstr(slm_last_error(), "Q4_K"), "Q4_K refused");
    slm_model_free(m);
}

/* first/last 64 values of a tensor from the gguf-py golden */
static bool golden_values(const char *tensor, float first[64], float last[64]) {
    FILE *fp = fopen(slm_test_path(slm_test_env("SLM_GOLDEN_DIR", "tests/golden"), "gguf_smollm2.txt"), "r");
    static char line[1 << 14];
    char want[256];
    snprintf(want, sizeof want, "values %s ", tensor);
    int state = 0;
    while (fp && fgets(line, sizeof line, fp) && state < 3) {
        if (state == 0 && !strncmp(line, want, strlen(want))) state = 1;
        else if (state >= 1) {
            float *dst = state == 1 ? first : last;
            char *s = strchr(line, ' ');
            for (int i = 0; i < 64 && s; i++) {
                char *e;
                uint32_t u = (uint32_t)strtoul(s, &e, 16);
                memcpy(&dst[i], &u, 4);
                s = e;
            }
            state++;
        }
    }
    if (fp) fclose(fp);
    return state == 3;
}

static void test_smollm2(void) {
    const char *path = slm_test_env("SLM_TEST_MODEL", "");
    slm_load_params lp = {.load_tokenizer = false};
    slm_model *m = NULL;
    if (!CHECK(slm_model_load_gguf(path, &lp, &m) == SLM_OK, "load '%s': %s", path, slm_last_error())) return;
    const slm_config *c = &m->cfg;
    CHECK(c->arch == SLM_ARCH_LLAMA && c->n_vocab == 49152 && c->d_model == 576 && c->n_layers == 30 &&
          c->n_heads == 9 && c->n_kv_heads == 3 && c->head_dim == 64 && c->d_ff == 1536 && c->max_ctx == 8192 &&
          c->tied_embeddings && !c->attn_bias && c->rope_layout == SLM_ROPE_ADJACENT && c->rope_theta == 100000.0f &&
          c->norm_eps == 1e-5f && c->bos_id == 1 && c->eos_id == 2, "SmolLM2 config");
    slm_model_stats s = slm_model_get_stats(m, 1);
    printf("SmolLM2: %lld params, format %s, dominant type %d\n", (long long)s.n_params, m->format, m->src_dtype);
    CHECK(s.n_params == 134515008, "#params %lld", (long long)s.n_params);
    CHECK(!strcmp(m->format, "GGUF v3") && m->src_dtype == SLM_DTYPE_Q4_1 && m->src_type_counts[SLM_DTYPE_Q4_1] == 210 &&
          m->src_type_counts[SLM_DTYPE_Q8_0] == 1 && m->src_type_counts[SLM_DTYPE_F32] == 61, "source types");
    float first[64], last[64];
    if (CHECK(golden_values("blk.0.attn_q.weight", first, last), "golden blk.0.attn_q"))
        CHECK_CLOSE("model blk.0 q (Q4_1) vs gguf-py", m->blocks[0].lin[SLM_PROJ_Q].w, first, 64, 0.0);
    if (CHECK(golden_values("blk.29.ffn_down.weight", first, last), "golden blk.29.ffn_down"))
        CHECK_CLOSE("model blk.29 down tail vs gguf-py", m->blocks[29].lin[SLM_PROJ_DOWN].w + 576 * 1536 - 64, last, 64, 0.0);
    if (CHECK(golden_values("token_embd.weight", first, last), "golden token_embd"))
        CHECK_CLOSE("model lm head tail (tied, Q8_0) vs gguf-py", m->lm_head + (size_t)49152 * 576 - 64, last, 64, 0.0);
    /* SmolLM2 -> Q8_0 GGUF -> model: every matrix equals the reference quantisation */
    slm_model *r = save_load(m, SLM_DTYPE_Q8_0, "smollm2_q8.gguf");
    if (r) {
        CHECK(cfg_equal(&r->cfg, c), "config survives");
        float *ref = through(SLM_DTYPE_Q8_0, m->tok_embd, c->n_vocab, c->d_model, c->d_model);
        CHECK_CLOSE("SmolLM2 token_embd via Q8_0", r->tok_embd, ref, (size_t)c->n_vocab * c->d_model, 0.0);
        free(ref);
        for (int i = 0; i < c->n_layers; i += 7)
            for (int p = 0; p < SLM_PROJ_COUNT; p++) {
                const slm_linear *a = &r->blocks[i].lin[p], *b = &m->blocks[i].lin[p];
                ref = through(SLM_DTYPE_Q8_0, b->w, b->n_out, b->n_in, b->ld_w);
                char nm[64];
                snprintf(nm, sizeof nm, "SmolLM2 blk.%d.%s via Q8_0", i, slm_proj_gguf_name((slm_proj)p));
                CHECK_CLOSE(nm, a->w, ref, (size_t)b->n_out * b->n_in, 0.0);
                free(ref);
            }
        slm_model_free(r);
    }
    remove(tmp_path("smollm2_q8.gguf"));
    slm_model_free(m);
}

int main(void) {
    test_types();
    test_plan();
    test_rope_permute();
    test_loader_errors();
    test_smollm2();
    return slm_test_finish();
}
