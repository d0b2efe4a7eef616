/* Inference context: KV cache, RoPE table and scratch memory, all sized
 * once at creation so slm_decode allocates nothing (except when the plan is
 * changed after creation to need a larger low-rank scratch).
 *
 * Memory: the KV cache is [L][2][C][KV] floats from one large allocation
 * (mmap'd by malloc, so pages never written cost no RSS); the scratch is one
 * 64-byte-aligned block carved into the buffers below by a bump allocator. */
#include "model/forward.h"
#include "kernels/cpu/kernels.h"

#include <stdlib.h>
#include <string.h>
#ifdef SLM_OPENMP
#include <omp.h>
#endif

slm_context_params slm_context_default_params(void) {
    return (slm_context_params){.n_ctx = 0, .n_batch = 0};
}

/* ---- scratch carving -------------------------------------------------------- */

typedef struct scratch_plan {
    size_t used; /* bytes so far, each buffer 64-byte aligned */
    bool overflow;
} scratch_plan;

/* First pass (base NULL) only measures; second pass hands out pointers. */
static float *carve(scratch_plan *sp, void *base, int64_t n_floats) {
    size_t bytes, off = sp->used;
    if (n_floats < 0 || !slm_mul_ok((size_t)n_floats, sizeof(float), &bytes) ||
        !slm_add_ok(bytes, 63, &bytes)) {
        sp->overflow = true;
        return NULL;
    }
    bytes &= ~(size_t)63;
    if (!slm_add_ok(sp->used, bytes, &sp->used)) sp->overflow = true;
    return base ? (float *)((char *)base + off) : NULL;
}

static void carve_all(slm_context *c, scratch_plan *sp, void *base) {
    const slm_config *cfg = &c->m->cfg;
    int64_t B = c->n_batch, D = cfg->d_model, Q = (int64_t)cfg->n_heads * cfg->head_dim;
    c->x = carve(sp, base, B * D);
    c->xn = carve(sp, base, B * D);
    c->q = carve(sp, base, B * Q);
    c->att = carve(sp, base, B * Q);
    c->ffg = carve(sp, base, B * cfg->d_ff);
    c->ffu = carve(sp, base, B * cfg->d_ff);
    c->scores = carve(sp, base, (int64_t)c->n_threads * SLM_ATTN_TILE * c->n_ctx);
}

/* ---- life cycle ---------------------------------------------------------------- */

slm_status slm_rope_table_fill(const slm_model *m, int n_pos, float *cs) {
    const slm_config *cfg = &m->cfg;
    /* A GGUF rope_freqs tensor already holds LLaMA 3's per-frequency
     * divisors (llama.cpp's freq_factors): apply it instead of the formula. */
    int scaling = (int)cfg->rope_scaling;
    if (m->rope_freqs && scaling == SLM_ROPE_SCALING_LLAMA3) scaling = SLM_ROPE_SCALING_NONE;
    if (scaling == SLM_ROPE_SCALING_LLAMA3 &&
        !(cfg->rope_low_freq_factor > 0 && cfg->rope_high_freq_factor > cfg->rope_low_freq_factor &&
          cfg->rope_orig_ctx > 0))
        return slm_fail(SLM_ERR_FORMAT, "%s: llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor "
                        "and an original context length", m->path ? m->path : "model");
    slm_rope_freq_params rp = {.head_dim = cfg->head_dim, .theta = cfg->rope_theta, .scaling = scaling,
                               .factor = cfg->rope_factor, .low_freq_factor = cfg->rope_low_freq_factor,
                               .high_freq_factor = cfg->rope_high_freq_factor, .orig_ctx = cfg->rope_orig_ctx};
    double *inv_freq = slm_malloc((size_t)cfg->head_dim / 2 * sizeof(double), "RoPE frequencies");
    if (!inv_freq) return SLM_ERR_NOMEM;
    slm_rope_inv_freq(&rp, inv_freq);
    if (m->rope_freqs)
        for (int i = 0; i < cfg->head_dim / 2; i++) inv_freq[i] /= m->rope_freqs[i];
    slm_rope_table(inv_freq, cfg->head_dim, n_pos, cs);
    free(inv_freq);
    return SLM_OK;
}

slm_status slm_context_new(const slm_model *m, const slm_context_params *p, slm_context **out) {
    *out = NULL;
    slm_status st = slm_model_validate(m);
    if (st) return st;
    const slm_config *cfg = &m->cfg;
    slm_context_params dp = slm_context_default_params();
    if (!p) p = &dp;
    int n_ctx = p->n_ctx > 0 ? p->n_ctx : (cfg->max_ctx < 4096 ? cfg->max_ctx : 4096);
    if (n_ctx > (1 << 22)) return slm_fail(SLM_ERR_ARG, "context length %d too large", n_ctx);
    int n_batch = p->n_batch > 0 ? p->n_batch : n_ctx;
    if (n_batch > n_ctx) n_batch = n_ctx;

    slm_context *c = slm_calloc(1, sizeof *c, "context");
    if (!c) return SLM_ERR_NOMEM;
    c->m = m;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->kv_dim = cfg->n_kv_heads * cfg->head_dim;
#ifdef SLM_OPENMP
    c->n_threads = omp_get_max_threads();
#else
    c->n_threads = 1;
#endif
    if (slm_get_threads() > c->n_threads) c->n_threads = slm_get_threads();

    size_t kv_floats;
    if (!slm_mul_ok((size_t)cfg->n_layers * 2 * (size_t)n_ctx, (size_t)c->kv_dim, &kv_floats) ||
        !slm_mul_ok(kv_floats, sizeof(float), &kv_floats)) {
        slm_context_free(c);
        return slm_fail(SLM_ERR_NOMEM, "KV cache size overflows");
    }
    c->kv = slm_aligned_alloc(kv_floats, "KV cache");
    size_t cs_bytes = (size_t)n_ctx * (size_t)cfg->head_dim * sizeof(float);
    c->rope_cs = slm_aligned_alloc(cs_bytes, "RoPE table");
    scratch_plan sp = {0};
    carve_all(c, &sp, NULL);
    if (sp.overflow) {
        slm_context_free(c);
        return slm_fail(SLM_ERR_NOMEM, "scratch size overflows (n_batch %d, n_ctx %d)", n_batch, n_ctx);
    }
    c->scratch_bytes = sp.used;
    c->scratch = slm_aligned_alloc(sp.used, "forward scratch");
    if (!c->kv || !c->rope_cs || !c->scratch) {
        slm_context_free(c);
        return SLM_ERR_NOMEM;
    }
    sp = (scratch_plan){0};
    carve_all(c, &sp, c->scratch);

    c->lin_tmp_floats = slm_plan_tmp_floats(m, n_batch);
    if (c->lin_tmp_floats > 0) {
        c->lin_tmp = slm_aligned_alloc((size_t)c->lin_tmp_floats * sizeof(float), "low-rank scratch");
        if (!c->lin_tmp) {
            slm_context_free(c);
            return SLM_ERR_NOMEM;
        }
    }

    st = slm_rope_table_fill(m, n_ctx, c->rope_cs);
    if (st) {
        slm_context_free(c);
        return st;
    }
    *out = c;
    return SLM_OK;
}

void slm_context_free(slm_context *c) {
    if (!c) return;
    free(c->kv);
    free(c->rope_cs);
    free(c->scratch);
    free(c->lin_tmp);
    free(c);
}

int slm_context_n_past(const slm_context *c) { return c->n_past; }

void slm_context_truncate(slm_context *c, int n) {
    /* Positions >= n are simply overwritten by the next decode. */
    if (n < 0) n = 0;
    if (n < c->n_past) c->n_past = n;
}
