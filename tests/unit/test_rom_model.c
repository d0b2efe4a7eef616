/* LLM-ROM on whole (small random) models:
 *  1. full rank: every linear factored at rank min(d1, d2) by rom, svd-llm
 *     and svd gives the original logits within 1e-4;
 *  2. sequential propagation is real: the calibration inputs rom gathers at
 *     every point of block i equal the rows the FINAL compressed model feeds
 *     there (captured by the forward hook during slm_decode), and differ
 *     from the original model's rows for blocks after the first compressed
 *     one, while at the first compressed block's attention input they equal
 *     the original's (nothing before it is compressed); svd-llm's gathered
 *     inputs equal the original model's everywhere;
 *  3. the compressed model survives a GGUF round trip (same logits);
 *  4. the automatic planner's choice meets the budget, is the candidate with
 *     the lowest held-out NLL, and leaves the model as it was. */
#include "compress/rom/rom.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S = 6, T = 24, L = 4 };

static slm_config config(void) {
    slm_config c = {.arch = SLM_ARCH_LLAMA, .n_vocab = 97, .d_model = 48, .n_layers = L, .n_heads = 4,
                    .n_kv_heads = 2, .head_dim = 12, .d_ff = 80, .max_ctx = 64, .norm_eps = 1e-5f,
                    .rope_theta = 10000.0f, .rope_layout = SLM_ROPE_HALVES, .tied_embeddings = true,
                    .bos_id = -1, .eos_id = -1};
    return c;
}

static void make_calib(slm_calib *c, int32_t *tok) {
    for (int i = 0; i < S * T; i++) tok[i] = (int32_t)((i * 37 + (i / T) * 11 + 5) % 97);
    *c = (slm_calib){.tokens = tok, .n_seqs = S, .seq_len = T};
}

static void logits_of(const slm_model *m, const int32_t *tok, float *out) {
    slm_context_params cp = {.n_ctx = T, .n_batch = T};
    slm_context *ctx;
    CHECK(slm_context_new(m, &cp, &ctx) == SLM_OK, "context: %s", slm_last_error());
    CHECK(slm_decode(ctx, tok, T, true, out) == SLM_OK, "decode: %s", slm_last_error());
    slm_context_free(ctx);
}

static void full_rank(slm_rom_method method) {
    slm_config cfg = config();
    slm_model *m0, *m1;
    slm_model_new_random(&cfg, 5, &m0);
    slm_model_new_random(&cfg, 5, &m1);
    int32_t tok[S * T];
    slm_calib cal;
    make_calib(&cal, tok);
    slm_rom_params p = slm_rom_default_params();
    p.method = method;
    p.quiet = true;
    p.plan.first_block = 0;
    p.plan.rank_override = 1 << 20; /* min(d1, d2) */
    slm_rom_report r;
    CHECK(slm_rom_compress(m1, &cal, &p, &r) == SLM_OK, "%s: %s", slm_rom_method_name(method), slm_last_error());
    int n_lr = 0;
    for (int i = 0; i < L; i++)
        for (int k = 0; k < SLM_PROJ_COUNT; k++) n_lr += m1->blocks[i].lin[k].kind == SLM_LINEAR_LOWRANK;
    CHECK(n_lr == L * SLM_PROJ_COUNT, "%d of %d linears factored", n_lr, L * SLM_PROJ_COUNT);
    float *a = malloc(sizeof(float) * T * 97), *b = malloc(sizeof(float) * T * 97);
    int32_t *probe = tok + T; /* a calibration sequence; rom is exact on any input at full rank */
    logits_of(m0, probe, a);
    logits_of(m1, probe, b);
    char name[64];
    snprintf(name, sizeof name, "%s full-rank logits", slm_rom_method_name(method));
    CHECK_CLOSE(name, b, a, (size_t)T * 97, 1e-4);
    free(a);
    free(b);
    slm_rom_report_free(&r);
    slm_model_free(m0);
    slm_model_free(m1);
}

/* ---- sequential propagation ------------------------------------------------------------- */

typedef struct capture {
    float *rows[L][SLM_FWD_POINT_COUNT]; /* [S*T][n] */
    int n[L][SLM_FWD_POINT_COUNT];
    int seq[L][SLM_FWD_POINT_COUNT];     /* next sequence to fill */
} capture;

static bool capture_hook(void *user, int layer, slm_fwd_point pt, int n_rows, const float *rows, int64_t ld) {
    capture *c = user;
    int n = c->n[layer][pt];
    if (!c->rows[layer][pt]) return false;
    int s = c->seq[layer][pt]++;
    if (s >= S || n_rows != T) return false;
    for (int t = 0; t < T; t++)
        memcpy(c->rows[layer][pt] + ((size_t)s * T + t) * n, rows + t * ld, (size_t)n * sizeof(float));
    return false;
}

static void capture_init(capture *c, const slm_model *m) {
    memset(c, 0, sizeof *c);
    for (int l = 0; l < L; l++) {
        int dims[SLM_FWD_POINT_COUNT] = {m->cfg.d_model, m->cfg.n_heads * m->cfg.head_dim, m->cfg.d_model,
                                         m->blocks[l].d_ff};
        for (int p = 0; p < SLM_FWD_POINT_COUNT; p++) {
            c->n[l][p] = dims[p];
            c->rows[l][p] = calloc((size_t)S * T * dims[p], sizeof(float));
        }
    }
}

static void capture_free(capture *c) {
    for (int l = 0; l < L; l++)
        for (int p = 0; p < SLM_FWD_POINT_COUNT; p++) free(c->rows[l][p]);
}

/* Every point of every block, as slm_decode of m feeds it, per sequence. */
static void capture_decode(const slm_model *m, const slm_calib *cal, capture *c) {
    slm_context_params cp = {.n_ctx = T, .n_batch = T};
    slm_context *ctx;
    CHECK(slm_context_new(m, &cp, &ctx) == SLM_OK, "context: %s", slm_last_error());
    ctx->hook = capture_hook;
    ctx->hook_user = c;
    for (int s = 0; s < S; s++) {
        slm_context_truncate(ctx, 0);
        CHECK(slm_decode(ctx, cal->tokens + s * T, T, false, NULL) == SLM_OK, "decode: %s", slm_last_error());
    }
    slm_context_free(ctx);
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void sequential(slm_rom_method method) {
    slm_config cfg = config();
    slm_model *m0, *m1;
    slm_model_new_random(&cfg, 9, &m0);
    slm_model_new_random(&cfg, 9, &m1);
    int32_t tok[S * T];
    slm_calib cal;
    make_calib(&cal, tok);
    capture seen, orig, fin;
    capture_init(&seen, m0);
    capture_init(&orig, m0);
    capture_init(&fin, m0);
    slm_rom_params p = slm_rom_default_params();
    p.method = method;
    p.quiet = true;
    p.plan.first_block = 1; /* blocks 1..3 compressed hard */
    p.plan.module_budget = 0.3;
    p.observe = capture_hook;
    p.observe_user = &seen;
    slm_rom_report r;
    CHECK(slm_rom_compress(m1, &cal, &p, &r) == SLM_OK, "compress: %s", slm_last_error());
    capture_decode(m0, &cal, &orig);
    capture_decode(m1, &cal, &fin);
    static const char *pn[] = {"attn-in", "o-in", "mlp-in", "down-in"};
    for (int l = 1; l < L; l++)
        for (int pt = 0; pt < SLM_FWD_POINT_COUNT; pt++) {
            size_t n = (size_t)S * T * seen.n[l][pt];
            CHECK(seen.seq[l][pt] == S, "block %d %s: %d sequences gathered", l, pn[pt], seen.seq[l][pt]);
            double d_fin = max_diff(seen.rows[l][pt], fin.rows[l][pt], n);
            double d_orig = max_diff(seen.rows[l][pt], orig.rows[l][pt], n);
            printf("%s block %d %-7s: gathered vs compressed model max|d| %.2e, vs original %.2e\n",
                   slm_rom_method_name(method), l, pn[pt], d_fin, d_orig);
            if (method == SLM_ROM_METHOD_ROM) {
                CHECK(d_fin < 1e-4, "block %d %s: rom inputs are not the compressed model's (%.3g)", l, pn[pt], d_fin);
                if (l == 1 && pt == SLM_FWD_ATTN_IN)
                    CHECK(d_orig < 1e-5, "first compressed block's input differs from the original (%.3g)", d_orig);
                else
                    CHECK(d_orig > 1e-3, "block %d %s: rom inputs equal the original model's (%.3g)", l, pn[pt], d_orig);
            } else {
                CHECK(d_orig < 1e-4, "block %d %s: svd-llm inputs are not the original's (%.3g)", l, pn[pt], d_orig);
            }
        }
    /* GGUF round trip of the compressed model. */
    const char *path = slm_test_path(slm_test_env("SLM_TEST_TMP", "/tmp"), "rom_model.gguf");
    slm_save_params sp = slm_save_default_params();
    CHECK(slm_model_save(m1, path, &sp) == SLM_OK, "save: %s", slm_last_error());
    slm_model *m2 = NULL;
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = false;
    if (CHECK(slm_model_load(path, &lp, &m2) == SLM_OK, "load: %s", slm_last_error())) {
        CHECK(m2->blocks[2].lin[SLM_PROJ_GATE].kind == SLM_LINEAR_LOWRANK &&
                  m2->blocks[2].lin[SLM_PROJ_GATE].rank == m1->blocks[2].lin[SLM_PROJ_GATE].rank,
              "reloaded plan lost the low-rank gate");
        CHECK(slm_model_get_stats(m2, 1).n_params == r.params_after, "reloaded #params %lld vs %lld",
              (long long)slm_model_get_stats(m2, 1).n_params, (long long)r.params_after);
        float *a = malloc(sizeof(float) * T * 97), *b = malloc(sizeof(float) * T * 97);
        logits_of(m1, tok, a);
        logits_of(m2, tok, b);
        CHECK_CLOSE("GGUF round trip logits", b, a, (size_t)T * 97, 1e-5);
        free(a);
        free(b);
        slm_model_free(m2);
    }
    remove(path);
    slm_rom_report_free(&r);
    capture_free(&seen);
    capture_free(&orig);
    capture_free(&fin);
    slm_model_free(m0);
    slm_model_free(m1);
}

static void planner(void) {
    slm_config cfg = config();
    slm_model *m;
    slm_model_new_random(&cfg, 13, &m);
    int32_t tok[S * T];
    slm_calib cal;
    make_calib(&cal, tok);
    float *a = malloc(sizeof(float) * T * 97), *b = malloc(sizeof(float) * T * 97);
    logits_of(m, tok, a);
    slm_rom_params p = slm_rom_default_params();
    p.quiet = true;
    slm_rom_plan plan;
    slm_rom_auto_report ar;
    if (CHECK(slm_rom_auto_plan(m, &cal, 0.85, &p, &plan, &ar) == SLM_OK, "planner: %s", slm_last_error())) {
        double dense = (double)slm_model_get_stats(m, 1).n_params_dense;
        for (int i = 0; i < ar.n_cand; i++) {
            printf("planner candidate last %d at b %.4f: %.4f of dense, held-out NLL %.5f%s\n",
                   L - ar.cand[i].plan.first_block, ar.cand[i].plan.module_budget, (double)ar.cand[i].params / dense,
                   ar.cand[i].heldout_nll, i == ar.chosen ? "  <- chosen" : "");
            CHECK((double)ar.cand[i].params <= 0.85 * dense, "candidate %d over budget", i);
            CHECK(ar.cand[i].heldout_nll >= ar.cand[ar.chosen].heldout_nll, "chosen is not the lowest NLL");
        }
        CHECK(ar.n_cand >= 2 && plan.first_block == ar.cand[ar.chosen].plan.first_block, "%d candidates", ar.n_cand);
    }
    logits_of(m, tok, b);
    CHECK_CLOSE("model after planning vs before", b, a, (size_t)T * 97, 0.0);
    free(a);
    free(b);
    slm_model_free(m);
}

int main(void) {
    planner();
    full_rank(SLM_ROM_METHOD_ROM);
    full_rank(SLM_ROM_METHOD_SVD_LLM);
    full_rank(SLM_ROM_METHOD_SVD);
    sequential(SLM_ROM_METHOD_ROM);
    sequential(SLM_ROM_METHOD_SVD_LLM);
    return slm_test_finish();
}
