/* The rom engines against each other and the streaming entry point:
 *  1. the covariance accumulator (slabs of fp32 syrk folded into fp64, rows
 *     given a sequence at a time and in large blocks) equals a plain fp64
 *     sum within 1e-6 of its largest entry;
 *  2. the cached one-pass engine (SLM_ROM_ENGINE_CACHED: kept attention
 *     output, down's statistics from its outputs) gives the same factors as
 *     the reference multi-pass engine (SLM_ROM_ENGINE_PASSES): every
 *     W1 W2 within 1e-4 of max|W1 W2|, the same ranks and discarded
 *     energies (1e-4 relative), logits within 1e-4; on a LLaMA-like shape
 *     (down from its outputs, more rows than one chunk and one slab), on a
 *     block whose MLP is narrower than the model (down from its inputs,
 *     recomputed), and with GQA and q/k/v biases;
 *  3. streaming: compressing one-block models one after the other with
 *     slm_rom_compress_rows, X carried from call to call, gives the same
 *     factors as the whole-model slm_rom_compress (1e-6 of max|W1 W2|), and
 *     the X it leaves is the compressed model's last residual: its logits
 *     equal slm_decode's within 1e-4. */
#include "compress/rom/rom_engine.h"
#include "kernels/cpu/kernels.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static slm_config config(int d_ff, int n_kv, bool bias) {
    slm_config c = {.arch = bias ? SLM_ARCH_QWEN2 : SLM_ARCH_LLAMA, .n_vocab = 97, .d_model = 48, .n_layers = 3,
                    .n_heads = 4, .n_kv_heads = n_kv, .head_dim = 12, .d_ff = d_ff, .max_ctx = 64,
                    .norm_eps = 1e-5f, .rope_theta = 10000.0f, .rope_layout = SLM_ROPE_HALVES,
                    .tied_embeddings = true, .attn_bias = bias, .bos_id = -1, .eos_id = -1};
    return c;
}

static int32_t *make_tokens(int S, int T) {
    int32_t *tok = malloc(sizeof(int32_t) * S * T);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < S * T; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tok[i] = (int32_t)(x % 97);
    }
    return tok;
}

/* W1 W2 (or W) of a linear as fp64 [n_out][n_in]. */
static double *product(const slm_linear *l) {
    double *p = calloc((size_t)l->n_out * l->n_in, sizeof(double));
    for (int o = 0; o < l->n_out; o++)
        for (int i = 0; i < l->n_in; i++) {
            double acc = 0;
            if (l->kind == SLM_LINEAR_LOWRANK)
                for (int k = 0; k < l->rank; k++) acc += (double)l->a[(size_t)o * l->rank + k] * l->b[(size_t)k * l->ld_b + i];
            else acc = l->w[(size_t)o * l->ld_w + i];
            p[(size_t)o * l->n_in + i] = acc;
        }
    return p;
}

/* max |W1W2(a) - W1W2(b)| / max |W1W2(b)| */
static double linear_diff(const slm_linear *a, const slm_linear *b) {
    double *pa = product(a), *pb = product(b), d = 0, mx = 0;
    for (size_t i = 0; i < (size_t)a->n_out * a->n_in; i++) {
        d = fmax(d, fabs(pa[i] - pb[i]));
        mx = fmax(mx, fabs(pb[i]));
    }
    free(pa);
    free(pb);
    return mx > 0 ? d / mx : d;
}

static void logits_of(const slm_model *m, const int32_t *tok, int T, float *out) {
    slm_context_params cp = {.n_ctx = T, .n_batch = T};
    slm_context *ctx;
    CHECK(slm_context_new(m, &cp, &ctx) == SLM_OK, "context: %s", slm_last_error());
    CHECK(slm_decode(ctx, tok, T, true, out) == SLM_OK, "decode: %s", slm_last_error());
    slm_context_free(ctx);
}

/* ---- 1. covariance accumulator ------------------------------------------------------------ */

static void cov_case(int n, int T, int n_seq_rows, int n_block_rows) {
    int rows = n_seq_rows + n_block_rows;
    float *x = malloc(sizeof(float) * (size_t)rows * (n + 3)); /* row stride n + 3 */
    uint64_t s = 77;
    for (size_t i = 0; i < (size_t)rows * (n + 3); i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0) * (1.0f + (float)(i % (n + 3)) / 8.0f);
    }
    slm_rom_cov c;
    CHECK(slm_rom_cov_init(&c, n) == SLM_OK, "cov init");
    int64_t r = 0;
    for (; r + T <= n_seq_rows; r += T) slm_rom_cov_add(&c, x + r * (n + 3), T, n + 3); /* a sequence at a time */
    slm_rom_cov_add(&c, x + r * (n + 3), rows - r, n + 3);                             /* then one block */
    slm_rom_cov_finish(&c);
    double d = 0, mx = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double ref = 0;
            for (int t = 0; t < rows; t++) ref += (double)x[(size_t)t * (n + 3) + i] * x[(size_t)t * (n + 3) + j];
            d = fmax(d, fabs(ref - c.c[(size_t)i * n + j]));
            mx = fmax(mx, fabs(ref));
        }
    printf("cov n %d, %d rows (%d by sequence of %d, then %d at once): max|d| / max|C| = %.2e, %.3g GFLOP counted\n", n,
           rows, n_seq_rows, T, n_block_rows, d / mx, c.flop / 1e9);
    CHECK(d / mx < 1e-6, "covariance differs from the fp64 sum: %.3g", d / mx);
    CHECK(fabs(c.flop - (double)rows * n * (n + 1)) < 1, "syrk FLOP %.0f", c.flop);
    slm_rom_cov_free(&c);
    free(x);
}

/* ---- 2. cached vs reference engine -------------------------------------------------------- */

static void engines_agree(const char *name, slm_config cfg, int S, int T, int first, double b) {
    slm_model *m1, *m2;
    CHECK(slm_model_new_random(&cfg, 21, &m1) == SLM_OK && slm_model_new_random(&cfg, 21, &m2) == SLM_OK, "models");
    int32_t *tok = make_tokens(S, T);
    slm_calib cal = {.tokens = tok, .n_seqs = S, .seq_len = T};
    slm_rom_params p = slm_rom_default_params();
    p.quiet = true;
    p.plan.first_block = first;
    p.plan.module_budget = b;
    slm_rom_report r1, r2;
    p.engine = SLM_ROM_ENGINE_CACHED;
    CHECK(slm_rom_compress(m1, &cal, &p, &r1) == SLM_OK, "%s cached: %s", name, slm_last_error());
    p.engine = SLM_ROM_ENGINE_PASSES;
    CHECK(slm_rom_compress(m2, &cal, &p, &r2) == SLM_OK, "%s passes: %s", name, slm_last_error());
    double worst = 0, worst_err = 0;
    int n_lr = 0;
    for (int l = 0; l < cfg.n_layers; l++)
        for (int k = 0; k < SLM_PROJ_COUNT; k++) {
            const slm_linear *a = &m1->blocks[l].lin[k], *c = &m2->blocks[l].lin[k];
            CHECK(a->kind == c->kind && a->rank == c->rank, "%s block %d %s: kind/rank differ", name, l,
                  slm_proj_gguf_name((slm_proj)k));
            if (a->kind != SLM_LINEAR_LOWRANK || a->kind != c->kind) continue;
            n_lr++;
            worst = fmax(worst, linear_diff(a, c));
            double e1 = r1.blocks[l].lin[k].rel_err, e2 = r2.blocks[l].lin[k].rel_err;
            worst_err = fmax(worst_err, fabs(e1 - e2) / fmax(e2, 1e-30));
        }
    float *la = malloc(sizeof(float) * T * 97), *lb = malloc(sizeof(float) * T * 97);
    logits_of(m1, tok + T, T, la);
    logits_of(m2, tok + T, T, lb);
    printf("%s: %d linears factored; cached vs passes: max W1W2 diff %.2e of max|W1W2|, discarded energy rel diff "
           "%.2e; pass GFLOP %.4f vs %.4f\n",
           name, n_lr, worst, worst_err, r1.blocks[cfg.n_layers - 1].pass_flop / 1e9,
           r2.blocks[cfg.n_layers - 1].pass_flop / 1e9);
    CHECK(n_lr == (cfg.n_layers - first) * SLM_PROJ_COUNT, "%s: %d linears factored", name, n_lr);
    CHECK(worst < 1e-4, "%s: factors differ by %.3g", name, worst);
    CHECK(worst_err < 1e-4, "%s: discarded energies differ by %.3g", name, worst_err);
    char what[96];
    snprintf(what, sizeof what, "%s logits cached vs passes", name);
    CHECK_CLOSE(what, la, lb, (size_t)T * 97, 1e-4);
    free(la);
    free(lb);
    free(tok);
    slm_rom_report_free(&r1);
    slm_rom_report_free(&r2);
    slm_model_free(m1);
    slm_model_free(m2);
}

/* ---- 3. one block at a time --------------------------------------------------------------- */

static void streaming(void) {
    slm_config cfg = config(80, 2, false);
    cfg.n_layers = 4;
    enum { S = 12, T = 16 };
    slm_model *whole, *parts;
    CHECK(slm_model_new_random(&cfg, 33, &whole) == SLM_OK && slm_model_new_random(&cfg, 33, &parts) == SLM_OK,
          "models");
    int32_t *tok = make_tokens(S, T);
    slm_calib cal = {.tokens = tok, .n_seqs = S, .seq_len = T};
    slm_rom_params p = slm_rom_default_params();
    p.quiet = true;
    p.plan.first_block = 1;
    p.plan.module_budget = 0.35;
    slm_rom_report rw;
    CHECK(slm_rom_compress(whole, &cal, &p, &rw) == SLM_OK, "whole: %s", slm_last_error());

    /* X = the embeddings; then each block of `parts` as its own one-block model */
    int D = cfg.d_model;
    float *X = malloc(sizeof(float) * S * T * D);
    for (int t = 0; t < S * T; t++) memcpy(X + (size_t)t * D, parts->tok_embd + (size_t)tok[t] * D, sizeof(float) * D);
    slm_config c1 = cfg;
    c1.n_layers = 1;
    double worst = 0;
    for (int l = 0; l < cfg.n_layers; l++) {
        slm_model *one;
        CHECK(slm_model_create(&c1, &one) == SLM_OK, "one-block model");
        one->tok_embd = parts->tok_embd; /* borrowed, not owned */
        one->out_norm = parts->out_norm;
        one->lm_head = parts->lm_head;
        one->blocks[0] = parts->blocks[l];
        slm_rom_params p1 = p;
        p1.plan.first_block = l >= p.plan.first_block ? 0 : 1; /* 1 of 1: only move X */
        slm_rom_report r1;
        CHECK(slm_rom_compress_rows(one, X, S, T, &p1, &r1) == SLM_OK, "block %d: %s", l, slm_last_error());
        CHECK(r1.n_blocks == 1 && r1.blocks[0].compressed == (l >= p.plan.first_block), "block %d report", l);
        for (int k = 0; k < SLM_PROJ_COUNT; k++) {
            const slm_linear *a = &one->blocks[0].lin[k], *c = &whole->blocks[l].lin[k];
            CHECK(a->kind == c->kind && a->rank == c->rank, "block %d %s: kind/rank differ", l,
                  slm_proj_gguf_name((slm_proj)k));
            if (a->kind == c->kind) worst = fmax(worst, linear_diff(a, c));
        }
        slm_rom_report_free(&r1);
        slm_model_free(one); /* its factors go with it; parts' dense weights stay */
    }
    printf("streaming one-block models vs the whole model: max W1W2 diff %.2e of max|W1W2|\n", worst);
    CHECK(worst < 1e-6, "streamed factors differ by %.3g", worst);

    /* X is now the compressed model's last residual: its logits are slm_decode's */
    float *lx = malloc(sizeof(float) * T * 97), *ld = malloc(sizeof(float) * T * 97), *xn = malloc(sizeof(float) * D);
    double dmax = 0;
    for (int sq = 0; sq < S; sq += 5) {
        logits_of(whole, tok + sq * T, T, ld);
        for (int t = 0; t < T; t++) {
            slm_rmsnorm(xn, X + ((size_t)sq * T + t) * D, whole->out_norm, D, cfg.norm_eps);
            for (int v = 0; v < 97; v++) {
                double acc = 0;
                for (int i = 0; i < D; i++) acc += (double)xn[i] * whole->lm_head[(size_t)v * D + i];
                lx[t * 97 + v] = (float)acc;
            }
        }
        for (int i = 0; i < T * 97; i++) dmax = fmax(dmax, fabs((double)lx[i] - ld[i]));
    }
    printf("logits from the streamed X vs slm_decode of the compressed model: max|d| %.2e\n", dmax);
    CHECK(dmax < 1e-4, "streamed X is not the compressed model's residual (%.3g)", dmax);
    free(lx);
    free(ld);
    free(xn);
    free(X);
    free(tok);
    slm_rom_report_free(&rw);
    slm_model_free(whole);
    slm_model_free(parts);
}

int main(void) {
    cov_case(40, 16, 160, 0);     /* sequences only: slab buffer */
    cov_case(64, 24, 48, 3000);   /* then a block larger than a fold */
    cov_case(33, 7, 0, 700);      /* one block, odd sizes */
    slm_set_threads(2);
    /* 80 x 16 = 1280 rows: more than one chunk (1024) and one slab */
    engines_agree("llama-like", config(80, 2, false), 80, 16, 1, 0.3);
    engines_agree("narrow MLP (down from its inputs)", config(32, 2, false), 12, 16, 0, 0.5);
    engines_agree("GQA 4/1 + q/k/v bias", config(80, 1, true), 10, 16, 1, 0.4);
    streaming();
    return slm_test_finish();
}
