/* Layer pruning (src/compress/prune):
 *  - the five truncation configurations for L = 30, K = 15 and L = 24,
 *    K = 12 against block lists written out by hand from their definitions
 *    (prune.h), first and last block always kept, bad K refused;
 *  - block influence on a random model against an independent computation:
 *    with every attn_norm weight 1, the normed attention input a block's q/k/v
 *    read is x / rms(x), whose cosine with the next block's equals that of
 *    the raw residual streams; a forward hook on the ordinary decode path (KV
 *    cache, whole sequence) collects them, while slm_prune_block_influence
 *    streams block by block. Must agree within 1e-6;
 *  - a block made an identity (o and down weights zero) has BI 0 (1e-6) and
 *    is the one block-influence pruning drops;
 *  - the pruned model written as GGUF and as safetensors and read back gives
 *    the in-memory pruned model's logits, with L - K blocks: safetensors
 *    within 1e-6; GGUF within 1e-4, since GGUF keeps q/k rows in llama.cpp's
 *    adjacent-pair RoPE order and the rotation then runs in that layout
 *    (same arithmetic, other float order: measured 9.5e-6 on logits O(3)).
 *    tools/check_prune_llamacpp.py checks that llama.cpp reads them right. */
#define _POSIX_C_SOURCE 200809L
#include "compress/prune/prune.h"
#include "model/forward.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void check_list(int L, int K, slm_prune_strategy s, const char *want) {
    bool drop[64];
    if (!CHECK(slm_prune_select(L, K, s, NULL, drop) == SLM_OK, "%s: %s", slm_prune_strategy_name(s), slm_last_error()))
        return;
    char got[512] = "";
    for (int i = 0; i < L; i++)
        if (drop[i]) snprintf(got + strlen(got), sizeof got - strlen(got), "%s%d", got[0] ? "," : "", i);
    CHECK(strcmp(got, want) == 0, "L=%d K=%d %s: dropped %s, want %s", L, K, slm_prune_strategy_name(s), got, want);
    CHECK(!drop[0] && !drop[L - 1], "%s drops the first or last block", slm_prune_strategy_name(s));
}

static void test_truncation(void) {
    check_list(30, 15, SLM_PRUNE_MAX_GAP, "1,3,5,7,9,11,13,14,16,18,20,22,24,26,28");
    check_list(30, 15, SLM_PRUNE_INPUT, "14,15,16,17,18,19,20,21,22,23,24,25,26,27,28");
    check_list(30, 15, SLM_PRUNE_OUTPUT, "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15");
    check_list(30, 15, SLM_PRUNE_MIDDLE, "7,8,9,10,11,12,13,14,15,16,17,18,19,20,21");
    check_list(30, 15, SLM_PRUNE_BOTH, "1,2,3,4,5,6,7,8,22,23,24,25,26,27,28");
    check_list(24, 12, SLM_PRUNE_MAX_GAP, "1,3,5,7,9,11,12,14,16,18,20,22");
    check_list(24, 12, SLM_PRUNE_MIDDLE, "6,7,8,9,10,11,12,13,14,15,16,17");
    check_list(24, 12, SLM_PRUNE_BOTH, "1,2,3,4,5,6,17,18,19,20,21,22");
    check_list(24, 22, SLM_PRUNE_MAX_GAP, "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22");
    bool drop[30];
    CHECK(slm_prune_select(30, 29, SLM_PRUNE_INPUT, NULL, drop) != SLM_OK, "K = L - 1 must be refused (ends kept)");
    CHECK(slm_prune_select(30, -1, SLM_PRUNE_MAX_GAP, NULL, drop) != SLM_OK, "negative K must be refused");
    CHECK(slm_prune_select(30, 3, SLM_PRUNE_BLOCK_INFLUENCE, NULL, drop) != SLM_OK, "BI needs scores");
    slm_prune_strategy s;
    CHECK(slm_prune_strategy_parse("sideways", &s) != SLM_OK && strstr(slm_last_error(), "max-gap"),
          "an unknown strategy lists the known ones: %s", slm_last_error());
}

/* ---- block influence -------------------------------------------------------------- */

enum { L = 6, T = 24, NSEQ = 3 };

typedef struct {
    float rows[L][T][64]; /* normed attention input of every block */
    bool seen[L];
} hook_rows;

static bool grab(void *user, int layer, slm_fwd_point pt, int n, const float *rows, int64_t ld) {
    hook_rows *h = user;
    if (pt == SLM_FWD_ATTN_IN && n == T) {
        for (int t = 0; t < T; t++) memcpy(h->rows[layer][t], rows + t * ld, sizeof h->rows[layer][t]);
        h->seen[layer] = true;
    }
    return false;
}

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

static slm_model *random_model(void) {
    slm_config c = {.n_vocab = 97, .d_model = 64, .n_layers = L, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16,
                    .d_ff = 96, .max_ctx = 64, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .tied_embeddings = true,
                    .bos_id = 1, .eos_id = 2};
    slm_model *m = NULL;
    CHECK(slm_model_new_random(&c, 7, &m) == SLM_OK, "random model: %s", slm_last_error());
    return m;
}

static void test_block_influence(void) {
    slm_model *m = random_model();
    if (!m) return;
    float *ones = slm_model_alloc_f32(m, 64, "ones");
    for (int i = 0; i < 64; i++) ones[i] = 1.0f;
    for (int l = 0; l < L; l++) m->blocks[l].attn_norm = ones;
    slm_calib cal = {.n_seqs = NSEQ, .seq_len = T};
    cal.tokens = malloc(sizeof(int32_t) * NSEQ * T);
    for (int i = 0; i < NSEQ * T; i++) cal.tokens[i] = (i * 37 + 11) % 97;
    double bi[L];
    CHECK(slm_prune_block_influence(m, &cal, true, bi) == SLM_OK, "block influence: %s", slm_last_error());

    /* Independent: cosines of consecutive blocks' normed inputs on the decode path. */
    double ref[L] = {0};
    hook_rows *h = calloc(1, sizeof *h);
    slm_context_params cp = {.n_ctx = T, .n_batch = T};
    slm_context *ctx;
    CHECK(slm_context_new(m, &cp, &ctx) == SLM_OK, "context");
    ctx->hook = grab;
    ctx->hook_user = h;
    for (int s = 0; s < NSEQ; s++) {
        slm_context_truncate(ctx, 0);
        CHECK(slm_decode(ctx, cal.tokens + s * T, T, false, NULL) == SLM_OK, "decode: %s", slm_last_error());
        for (int l = 0; l + 1 < L; l++)
            for (int t = 0; t < T; t++) ref[l] += cosine(h->rows[l][t], h->rows[l + 1][t], 64);
    }
    double worst = 0;
    for (int l = 0; l + 1 < L; l++) {
        ref[l] = 1.0 - ref[l] / (NSEQ * T);
        worst = fmax(worst, fabs(ref[l] - bi[l]));
        printf("block %d: BI %.6f, via normed inputs on the decode path %.6f\n", l, bi[l], ref[l]);
    }
    CHECK(worst <= 1e-6, "block influence differs from the decode-path computation by %g", worst);
    slm_context_free(ctx);

    /* Block 3 as an identity: its residual stream passes through unchanged. */
    float *zero = slm_model_alloc_f32(m, 96 * 64, "zeros");
    memset(zero, 0, sizeof(float) * 96 * 64);
    m->blocks[3].lin[SLM_PROJ_O].w = zero;
    m->blocks[3].lin[SLM_PROJ_DOWN].w = zero;
    CHECK(slm_prune_block_influence(m, &cal, true, bi) == SLM_OK, "block influence: %s", slm_last_error());
    printf("identity block 3: BI %.3g\n", bi[3]);
    CHECK(fabs(bi[3]) <= 1e-6, "an identity block has BI %g, want 0", bi[3]);
    bool drop[L];
    CHECK(slm_prune_select(L, 1, SLM_PRUNE_BLOCK_INFLUENCE, bi, drop) == SLM_OK && drop[3], "BI must drop block 3");
    free(h);
    free(cal.tokens);
    slm_model_free(m);
}

/* ---- writing the pruned model -------------------------------------------------------- */

static float *logits(const slm_model *m, const int32_t *tok) {
    slm_context_params cp = {.n_ctx = T, .n_batch = T};
    slm_context *c;
    float *lg = malloc(sizeof(float) * T * m->cfg.n_vocab);
    if (slm_context_new(m, &cp, &c) == SLM_OK) {
        CHECK(slm_decode(c, tok, T, true, lg) == SLM_OK, "decode: %s", slm_last_error());
        slm_context_free(c);
    }
    return lg;
}

static void test_write(void) {
    slm_model *m = random_model();
    if (!m) return;
    bool drop[L];
    CHECK(slm_prune_select(L, 3, SLM_PRUNE_MAX_GAP, NULL, drop) == SLM_OK, "select");
    CHECK(slm_prune_apply(m, drop) == SLM_OK, "apply: %s", slm_last_error());
    CHECK(slm_prune_apply(m, drop) != SLM_OK, "dropping a dropped block again must fail");
    int32_t tok[T];
    for (int i = 0; i < T; i++) tok[i] = (i * 13 + 5) % 97;
    float *want = logits(m, tok);
    char dir[] = "/tmp/slm_test_prune_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    const char *names[2] = {"pruned.gguf", "pruned_hf"};
    for (int f = 0; f < 2; f++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        slm_save_params sp = slm_save_default_params();
        sp.format = f == 0 ? SLM_SAVE_GGUF : SLM_SAVE_SAFETENSORS;
        if (!CHECK(slm_model_save(m, path, &sp) == SLM_OK, "save %s: %s", path, slm_last_error())) continue;
        slm_load_params lp = slm_load_default_params();
        lp.load_tokenizer = false;
        slm_model *r = NULL;
        if (!CHECK(slm_model_load(path, &lp, &r) == SLM_OK, "load %s: %s", path, slm_last_error())) continue;
        CHECK(r->cfg.n_layers == L - 3, "%s: %d blocks, want %d", names[f], r->cfg.n_layers, L - 3);
        float *got = logits(r, tok);
        CHECK_CLOSE(names[f], got, want, (size_t)T * 97, f == 0 ? 1e-4 : 1e-6);
        free(got);
        slm_model_free(r);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
    free(want);
    slm_model_free(m);
}

int main(void) {
    slm_set_threads(2);
    test_truncation();
    test_block_influence();
    test_write();
    return slm_test_finish();
}
