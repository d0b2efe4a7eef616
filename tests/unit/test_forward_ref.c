/* The forward pass against a naive reference written from the model's
 * definition (HF LlamaForCausalLM / Qwen2): per token, per head, plain loops
 * with double accumulation. Random models cover what the SmolLM2 golden
 * test cannot: both RoPE layouts, linear and LLaMA 3 RoPE scaling, q/k/v
 * biases, an untied lm head, MHA / GQA / MQA, several query tiles and
 * n_batch steps. Also the KV cache (token-by-token decode and truncate +
 * re-decode against one batched prefill) and the error paths. */
#include "kernels/cpu/kernels.h"
#include "model/forward.h"
#include "ref_ops.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* logits [T][V] for tokens at positions 0..T-1. */
static void ref_forward(const slm_model *m, const int32_t *tok, int T, float *logits) {
    const slm_config *c = &m->cfg;
    int D = c->d_model, H = c->n_heads, Hkv = c->n_kv_heads, Dh = c->head_dim, V = c->n_vocab;
    int Q = H * Dh, KV = Hkv * Dh, L = c->n_layers;
    double *x = calloc((size_t)T * D, sizeof *x), *xn = calloc(D, sizeof *xn);
    double *q = calloc((size_t)T * Q, sizeof *q), *att = calloc(Q, sizeof *att), *y = calloc(D, sizeof *y);
    double *k = calloc((size_t)T * KV, sizeof *k), *v = calloc((size_t)T * KV, sizeof *v);
    double *g = calloc(c->d_ff, sizeof *g), *u = calloc(c->d_ff, sizeof *u), *sc = calloc(T, sizeof *sc);
    double *inv = calloc(Dh / 2, sizeof *inv);
    slm_rope_freq_params rp = {Dh, c->rope_theta, (int)c->rope_scaling, c->rope_factor, c->rope_low_freq_factor,
                               c->rope_high_freq_factor, c->rope_orig_ctx};
    slm_rope_inv_freq(&rp, inv);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D; i++) x[(size_t)t * D + i] = m->tok_embd[(size_t)tok[t] * D + i];
    for (int l = 0; l < L; l++) {
        const slm_block *b = &m->blocks[l];
        if (!b->kept) continue;
        for (int t = 0; t < T; t++) {
            slm_ref_rmsnorm(x + (size_t)t * D, b->attn_norm, D, c->norm_eps, xn);
            slm_ref_linear(&b->lin[SLM_PROJ_Q], xn, q + (size_t)t * Q);
            slm_ref_linear(&b->lin[SLM_PROJ_K], xn, k + (size_t)t * KV);
            slm_ref_linear(&b->lin[SLM_PROJ_V], xn, v + (size_t)t * KV);
            bool adj = c->rope_layout == SLM_ROPE_ADJACENT;
            slm_ref_rope(q + (size_t)t * Q, H, Dh, inv, t, adj);
            slm_ref_rope(k + (size_t)t * KV, Hkv, Dh, inv, t, adj);
        }
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < H; h++) {
                int gk = h / (H / Hkv);
                double mx = -INFINITY, sum = 0;
                for (int s = 0; s <= t; s++) {
                    double d = 0;
                    for (int i = 0; i < Dh; i++) d += q[(size_t)t * Q + h * Dh + i] * k[(size_t)s * KV + gk * Dh + i];
                    sc[s] = d / sqrt((double)Dh);
                    mx = fmax(mx, sc[s]);
                }
                for (int s = 0; s <= t; s++) sum += (sc[s] = exp(sc[s] - mx));
                for (int i = 0; i < Dh; i++) {
                    double o = 0;
                    for (int s = 0; s <= t; s++) o += sc[s] / sum * v[(size_t)s * KV + gk * Dh + i];
                    att[h * Dh + i] = o;
                }
            }
            slm_ref_linear(&b->lin[SLM_PROJ_O], att, y);
            double *xt = x + (size_t)t * D;
            for (int i = 0; i < D; i++) xt[i] += y[i];
            slm_ref_rmsnorm(xt, b->ffn_norm, D, c->norm_eps, xn);
            slm_ref_linear(&b->lin[SLM_PROJ_GATE], xn, g);
            slm_ref_linear(&b->lin[SLM_PROJ_UP], xn, u);
            for (int i = 0; i < b->d_ff; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            slm_ref_linear(&b->lin[SLM_PROJ_DOWN], g, y);
            for (int i = 0; i < D; i++) xt[i] += y[i];
        }
    }
    for (int t = 0; t < T; t++) {
        slm_ref_rmsnorm(x + (size_t)t * D, m->out_norm, D, c->norm_eps, xn);
        for (int o = 0; o < V; o++) {
            double s = 0;
            for (int i = 0; i < D; i++) s += (double)m->lm_head[(size_t)o * D + i] * xn[i];
            logits[(size_t)t * V + o] = (float)s;
        }
    }
    free(x), free(xn), free(q), free(att), free(y), free(k), free(v), free(g), free(u), free(sc), free(inv);
}

static slm_config base_config(void) {
    slm_config c = {.arch = SLM_ARCH_LLAMA, .n_vocab = 101, .d_model = 64, .n_layers = 3, .n_heads = 4,
                    .n_kv_heads = 2, .head_dim = 16, .d_ff = 96, .max_ctx = 512, .norm_eps = 1e-5f,
                    .rope_theta = 10000.0f, .rope_layout = SLM_ROPE_ADJACENT, .tied_embeddings = true,
                    .bos_id = -1, .eos_id = -1};
    return c;
}

enum { T_ALL = 150 };

static void run_case(const char *name, const slm_config *cfg, float tol) {
    printf("== %s\n", name);
    slm_model *m;
    if (!CHECK(slm_model_new_random(cfg, 7, &m) == SLM_OK, "%s: model: %s", name, slm_last_error())) return;
    int32_t tok[T_ALL];
    for (int t = 0; t < T_ALL; t++) tok[t] = (t * 37 + 11) % cfg->n_vocab;
    size_t V = (size_t)cfg->n_vocab;
    float *ref = malloc(sizeof(float) * T_ALL * V), *got = malloc(sizeof(float) * T_ALL * V);
    float *one = malloc(sizeof(float) * T_ALL * V);
    ref_forward(m, tok, T_ALL, ref);

    /* Batched prefill in n_batch = 50 steps (several attention tiles each). */
    slm_context_params cp = slm_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = 50;
    slm_context *c;
    CHECK(slm_context_new(m, &cp, &c) == SLM_OK, "context: %s", slm_last_error());
    CHECK(slm_decode(c, tok, T_ALL, true, got) == SLM_OK, "decode: %s", slm_last_error());
    char label[128];
    snprintf(label, sizeof label, "%s: batched logits vs reference", name);
    CHECK_CLOSE(label, ref, got, T_ALL * V, tol);
    CHECK(slm_context_n_past(c) == T_ALL, "n_past %d", slm_context_n_past(c));

    /* Token by token through the KV cache, last-token logits only. */
    slm_context_truncate(c, 0);
    for (int t = 0; t < T_ALL; t++)
        if (!CHECK(slm_decode(c, tok + t, 1, false, one + (size_t)t * V) == SLM_OK, "step %d: %s", t,
                   slm_last_error()))
            break;
    snprintf(label, sizeof label, "%s: token-by-token vs batched", name);
    CHECK_CLOSE(label, got, one, T_ALL * V, 5e-5); /* logits are O(10): ~5e-6 relative */

    /* Truncate to 80 and re-decode the rest in uneven pieces. */
    slm_context_truncate(c, 80);
    CHECK(slm_context_n_past(c) == 80, "truncate");
    CHECK(slm_decode(c, tok + 80, 7, true, one) == SLM_OK, "redecode 1");
    CHECK(slm_decode(c, tok + 87, T_ALL - 87, true, one + 7 * V) == SLM_OK, "redecode 2");
    snprintf(label, sizeof label, "%s: truncate(80) + re-decode vs batched", name);
    CHECK_CLOSE(label, got + 80 * V, one, (T_ALL - 80) * V, 5e-5);
    slm_context_free(c);
    slm_model_free(m);
    free(ref), free(got), free(one);
}

static void test_errors(void) {
    slm_config cfg = base_config();
    slm_model *m;
    slm_model_new_random(&cfg, 3, &m);
    m->path = NULL;
    slm_context_params cp = {.n_ctx = 16, .n_batch = 8};
    slm_context *c;
    CHECK(slm_context_new(m, &cp, &c) == SLM_OK, "context");
    float *lg = malloc(sizeof(float) * 32 * cfg.n_vocab);
    int32_t bad[2] = {1, 101};
    CHECK(slm_decode(c, bad, 2, false, lg) == SLM_ERR_ARG, "token out of range");
    printf("error: %s\n", slm_last_error());
    int32_t many[17] = {0};
    CHECK(slm_decode(c, many, 17, false, lg) == SLM_ERR_STATE, "context overflow");
    printf("error: %s\n", slm_last_error());
    CHECK(slm_context_n_past(c) == 0, "failed decodes leave the cache alone");
    /* A NaN weight in block 1 is reported with the block's index. */
    ((float *)m->blocks[1].ffn_norm)[5] = NAN;
    CHECK(slm_decode(c, many, 4, false, lg) == SLM_ERR_NUMERIC, "NaN detected");
    printf("error: %s\n", slm_last_error());
    CHECK(strstr(slm_last_error(), "block 1") != NULL, "error names the block: %s", slm_last_error());
    CHECK(slm_context_n_past(c) == 0, "failed decode rolls back n_past");
    slm_context_free(c);
    slm_model_free(m);
    free(lg);
}

int main(void) {
    slm_set_threads(2);
    slm_config c1 = base_config(); /* GQA, adjacent pairs, tied */
    run_case("llama gqa adjacent", &c1, 1e-4f);

    slm_config c2 = base_config(); /* qwen2-like: biases, halves, untied, MHA, llama3 scaling */
    c2.arch = SLM_ARCH_QWEN2;
    c2.attn_bias = true;
    c2.tied_embeddings = false;
    c2.rope_layout = SLM_ROPE_HALVES;
    c2.n_heads = c2.n_kv_heads = 8;
    c2.head_dim = 8;
    c2.rope_scaling = SLM_ROPE_SCALING_LLAMA3;
    c2.rope_theta = 500000.0f;
    c2.rope_factor = 8.0f;
    c2.rope_low_freq_factor = 1.0f;
    c2.rope_high_freq_factor = 4.0f;
    c2.rope_orig_ctx = 64;
    run_case("bias halves untied mha llama3", &c2, 1e-4f);

    slm_config c3 = base_config(); /* MQA, linear scaling, head_dim != D/H */
    c3.n_heads = 6;
    c3.n_kv_heads = 1;
    c3.head_dim = 12;
    c3.rope_scaling = SLM_ROPE_SCALING_LINEAR;
    c3.rope_factor = 2.0f;
    run_case("mqa linear-scaling", &c3, 1e-4f);

    test_errors();
    return slm_test_finish();
}
