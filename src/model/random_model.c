/* A model with reproducible random weights, for tests and benchmarks that
 * must not depend on a checkpoint (plans, KV cache, kernels at any shape). */
#include "model/forward.h"

#include <math.h>

static float rnd(uint64_t *s) {
    /* xorshift64*: uniform in [-1, 1) */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    uint64_t z = *s * 0x2545F4914F6CDD1Dull;
    return (float)(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static const float *fill(slm_model *m, size_t n, float scale, float offset, uint64_t *s, const char *what) {
    float *p = slm_model_alloc_f32(m, n, what);
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = offset + scale * rnd(s);
    return p;
}

slm_status slm_model_new_random(const slm_config *cfg, uint64_t seed, slm_model **out) {
    *out = NULL;
    slm_status st = slm_config_validate(cfg, "random model");
    if (st) return st;
    slm_model *m;
    st = slm_model_create(cfg, &m);
    if (st) return st;
    uint64_t s = seed * 2654435761u + 0x9E3779B97F4A7C15ull;
    size_t V = (size_t)cfg->n_vocab, D = (size_t)cfg->d_model;
    bool ok = true;
    /* Uniform[-1,1) has variance 1/3: scale sqrt(3/n_in) gives unit-variance
     * outputs for unit-variance inputs. */
    m->tok_embd = fill(m, V * D, 1.0f, 0.0f, &s, "token embedding");
    m->out_norm = fill(m, D, 0.2f, 1.0f, &s, "output norm");
    m->lm_head = cfg->tied_embeddings ? m->tok_embd : fill(m, V * D, sqrtf(3.0f / D), 0.0f, &s, "lm head");
    ok = m->tok_embd && m->out_norm && m->lm_head;
    for (int i = 0; ok && i < cfg->n_layers; i++) {
        slm_block *b = &m->blocks[i];
        b->attn_norm = fill(m, D, 0.2f, 1.0f, &s, "attn norm");
        b->ffn_norm = fill(m, D, 0.2f, 1.0f, &s, "ffn norm");
        ok = b->attn_norm && b->ffn_norm;
        for (int p = 0; ok && p < SLM_PROJ_COUNT; p++) {
            slm_linear *l = &b->lin[p];
            l->w = fill(m, (size_t)l->n_out * (size_t)l->ld_w, sqrtf(3.0f / (float)l->n_in), 0.0f, &s, "weight");
            ok = l->w != NULL;
            if (ok && cfg->attn_bias && p <= SLM_PROJ_V) {
                l->bias = fill(m, (size_t)l->n_out, 0.5f, 0.0f, &s, "bias");
                ok = l->bias != NULL;
            }
        }
    }
    if (!ok) {
        slm_model_free(m);
        return SLM_ERR_NOMEM;
    }
    *out = m;
    return SLM_OK;
}
