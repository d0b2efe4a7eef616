/* Plans on SmolLM2-135M: the forward pass of a model whose plan differs from
 * the checkpoint must equal the same computation set up explicitly.
 *  - block 7 dropped == a 29-block model built without it (same pointers)
 *  - block 15 with all seven linears replaced by full-rank SVD factors
 *    (W = (U S) V^T, LAPACKE_dgesdd in double, factors rounded to float, rank
 *    min(n_out, n_in)) == dense within 1e-4 (logits are O(20); the rounding
 *    of the factors is what differs: three such blocks measured 1.3e-4)
 *  - blocks 3 and 20 at MLP widths 1000 and 517 (first channels, sharing the
 *    weights through ld_w) == explicitly copied k-channel matrices */
#include "model/forward.h"
#include "test_util.h"

#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NTOK = 48 };
static int32_t g_tok[NTOK];

static float *run(const slm_model *m) {
    slm_context_params cp = {.n_ctx = 64, .n_batch = 64};
    slm_context *c;
    float *lg = malloc(sizeof(float) * NTOK * m->cfg.n_vocab);
    if (!CHECK(slm_context_new(m, &cp, &c) == SLM_OK, "context: %s", slm_last_error())) return lg;
    CHECK(slm_decode(c, g_tok, NTOK, true, lg) == SLM_OK, "decode: %s", slm_last_error());
    slm_context_free(c);
    return lg;
}

/* A model sharing m's tensors, with block `skip` left out (-1: none). */
static slm_model *view(const slm_model *m, int skip) {
    slm_config cfg = m->cfg;
    if (skip >= 0) cfg.n_layers--;
    slm_model *v;
    if (slm_model_create(&cfg, &v)) return NULL;
    for (int i = 0, j = 0; i < m->cfg.n_layers; i++)
        if (i != skip) v->blocks[j++] = m->blocks[i];
    v->tok_embd = m->tok_embd;
    v->out_norm = m->out_norm;
    v->lm_head = m->lm_head;
    v->rope_freqs = m->rope_freqs;
    return v;
}

static void test_drop(slm_model *m, const float *dense) {
    m->blocks[7].kept = false;
    float *a = run(m);
    m->blocks[7].kept = true;
    slm_model *v = view(m, 7);
    float *b = run(v);
    CHECK_CLOSE("block 7 dropped vs 29-block model", a, b, (size_t)NTOK * m->cfg.n_vocab, 1e-6);
    double moved = 0;
    for (size_t i = 0; i < (size_t)NTOK * m->cfg.n_vocab; i++) moved = fmax(moved, fabs(a[i] - dense[i]));
    CHECK(moved > 0.1, "dropping a block must change the logits (max change %g)", moved);
    slm_model_free(v);
    free(a), free(b);
}

/* Replaces a dense linear by full-rank factors A = U S [n_out][r], B = V^T [r][n_in]. */
static bool to_svd(slm_model *m, slm_linear *l) {
    int M = l->n_out, N = l->n_in, r = M < N ? M : N;
    double *w = malloc(sizeof(double) * M * N), *s = malloc(sizeof(double) * r);
    double *u = malloc(sizeof(double) * M * r), *vt = malloc(sizeof(double) * r * N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) w[(size_t)i * N + j] = l->w[(size_t)i * l->ld_w + j];
    int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', M, N, w, N, s, u, r, vt, N);
    float *a = slm_model_alloc_f32(m, (size_t)M * r, "svd a"), *b = slm_model_alloc_f32(m, (size_t)r * N, "svd b");
    bool ok = info == 0 && a && b;
    if (ok) {
        for (int i = 0; i < M; i++)
            for (int k = 0; k < r; k++) a[(size_t)i * r + k] = (float)(u[(size_t)i * r + k] * s[k]);
        for (size_t i = 0; i < (size_t)r * N; i++) b[i] = (float)vt[i];
        l->kind = SLM_LINEAR_LOWRANK;
        l->rank = r;
        l->a = a;
        l->b = b;
        l->ld_b = N;
        l->w = NULL;
    }
    free(w), free(s), free(u), free(vt);
    return ok;
}

static void test_svd(slm_model *m, const float *dense) {
    const int blocks[] = {15};
    slm_block saved[1];
    for (int k = 0; k < 1; k++) {
        saved[k] = m->blocks[blocks[k]];
        for (int p = 0; p < SLM_PROJ_COUNT; p++)
            CHECK(to_svd(m, &m->blocks[blocks[k]].lin[p]), "SVD of block %d %s", blocks[k],
                  slm_proj_gguf_name((slm_proj)p));
    }
    CHECK(slm_model_validate(m) == SLM_OK, "low-rank plan validates: %s", slm_last_error());
    float *a = run(m);
    CHECK_CLOSE("block 15 as full-rank SVD factors vs dense", a, dense, (size_t)NTOK * m->cfg.n_vocab, 1e-4);
    for (int k = 0; k < 1; k++) m->blocks[blocks[k]] = saved[k];
    free(a);
}

/* Copies rows [k][n_in] (gate/up) or columns [n_out][k] (down) into new dense matrices. */
static void copy_narrow(slm_model *v, slm_block *b, int k) {
    for (int p = SLM_PROJ_GATE; p <= SLM_PROJ_DOWN; p++) {
        slm_linear *l = &b->lin[p];
        int rows = p == SLM_PROJ_DOWN ? l->n_out : k, cols = p == SLM_PROJ_DOWN ? k : l->n_in;
        float *w = slm_model_alloc_f32(v, (size_t)rows * cols, "narrow copy");
        for (int i = 0; i < rows; i++) memcpy(w + (size_t)i * cols, l->w + (size_t)i * l->ld_w, sizeof(float) * cols);
        l->w = w;
        l->ld_w = cols;
        l->n_out = rows;
        l->n_in = cols;
    }
    b->d_ff = k;
}

static void test_narrow(slm_model *m, const float *dense) {
    CHECK(slm_block_set_mlp_width(m, 3, 1000) == SLM_OK && slm_block_set_mlp_width(m, 20, 517) == SLM_OK,
          "set widths: %s", slm_last_error());
    float *a = run(m);
    slm_model *v = view(m, -1);
    CHECK(slm_block_set_mlp_width(m, 3, m->cfg.d_ff) == SLM_OK && slm_block_set_mlp_width(m, 20, m->cfg.d_ff) == SLM_OK,
          "restore widths");
    copy_narrow(v, &v->blocks[3], 1000);
    copy_narrow(v, &v->blocks[20], 517);
    CHECK(v->blocks[3].lin[SLM_PROJ_DOWN].ld_w == 1000 && m->blocks[3].lin[SLM_PROJ_DOWN].ld_w == m->cfg.d_ff,
          "the reference really uses copies");
    float *b = run(v);
    CHECK_CLOSE("MLP widths 1000/517 (shared weights) vs copied matrices", a, b, (size_t)NTOK * m->cfg.n_vocab, 1e-5);
    double moved = 0;
    for (size_t i = 0; i < (size_t)NTOK * m->cfg.n_vocab; i++) moved = fmax(moved, fabs(a[i] - dense[i]));
    CHECK(moved > 0.01, "narrowing must change the logits (max change %g)", moved);
    slm_model_free(v);
    free(a), free(b);
}

int main(void) {
    slm_set_threads(2);
    for (int i = 0; i < NTOK; i++) g_tok[i] = (int32_t)((i * 7919 + 13) % 49152);
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = false;
    slm_model *m = NULL;
    const char *path = slm_test_env("SLM_TEST_MODEL", "");
    if (!CHECK(slm_model_load(path, &lp, &m) == SLM_OK, "load %s: %s", path, slm_last_error()))
        return slm_test_finish();
    float *dense = run(m);
    test_drop(m, dense);
    test_narrow(m, dense);
    test_svd(m, dense);
    /* The plan is restored: the dense logits come back exactly. */
    float *again = run(m);
    CHECK_CLOSE("restored plan vs dense", again, dense, (size_t)NTOK * m->cfg.n_vocab, 0.0);
    free(again);
    free(dense);
    slm_model_free(m);
    return slm_test_finish();
}
