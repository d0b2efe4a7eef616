/* What a training run needs besides a checkpoint: a tokenizer on its own,
 * a config.json for a model trained from scratch, a freshly initialised
 * model, and the block map a pruned GGUF carries (trainer.h).
 *
 * Initialisation follows transformers' LlamaPreTrainedModel._init_weights:
 * nn.Linear and nn.Embedding weights ~ N(0, initializer_range^2), biases
 * zero, RMSNorm weights one. Normal draws: Box-Muller over a xorshift64*
 * stream, so a seed gives the same model on every machine.
 */
#define _POSIX_C_SOURCE 200809L
#include "formats/gguf.h"
#include "formats/hf_config.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

slm_status slm_train_config_load(const char *path, slm_config *cfg, float *init_std) {
    char *text = NULL;
    size_t len = 0;
    slm_status st = slm_read_file(path, &text, &len);
    if (st) return st;
    st = slm_hf_config_parse(text, len, path, cfg);
    *init_std = 0.02f;
    cJSON *j = st ? NULL : cJSON_ParseWithLength(text, len);
    const cJSON *r = j ? cJSON_GetObjectItemCaseSensitive(j, "initializer_range") : NULL;
    if (r && !cJSON_IsNumber(r)) st = slm_fail(SLM_ERR_FORMAT, "%s: initializer_range must be a number", path);
    else if (r && !(r->valuedouble > 0 && r->valuedouble < 10))
        st = slm_fail(SLM_ERR_FORMAT, "%s: initializer_range %g out of range (0, 10)", path, r->valuedouble);
    else if (r) *init_std = (float)r->valuedouble;
    cJSON_Delete(j);
    free(text);
    return st;
}

/* ---- initialisation ------------------------------------------------------------------------------ */

typedef struct normal_rng {
    uint64_t s;
    double spare;
    bool has_spare;
} normal_rng;

static double uniform01(normal_rng *r) { /* (0, 1] */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return ((double)((r->s * 0x2545F4914F6CDD1Dull) >> 11) + 1.0) / 9007199254740992.0;
}

static double normal(normal_rng *r) {
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double u = uniform01(r), v = uniform01(r), rad = sqrt(-2.0 * log(u)), ang = 6.283185307179586 * v;
    r->spare = rad * sin(ang);
    r->has_spare = true;
    return rad * cos(ang);
}

static float *fill(slm_model *m, size_t n, float std, float one, normal_rng *r, const char *what) {
    float *p = slm_model_alloc_f32(m, n, what);
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = std > 0 ? (float)(std * normal(r)) : one;
    return p;
}

slm_status slm_train_model_init(const slm_config *cfg, float std, uint64_t seed, slm_model **out) {
    *out = NULL;
    if (!(std > 0)) return slm_fail(SLM_ERR_ARG, "initialisation: standard deviation %g", (double)std);
    slm_status st = slm_config_validate(cfg, "config");
    if (st) return st;
    slm_model *m;
    if ((st = slm_model_create(cfg, &m))) return st;
    normal_rng r = {.s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull};
    if (!r.s) r.s = 1;
    const size_t V = (size_t)cfg->n_vocab, D = (size_t)cfg->d_model;
    bool ok = (m->tok_embd = fill(m, V * D, std, 0, &r, "token embedding")) &&
              (m->out_norm = fill(m, D, 0, 1.0f, &r, "output norm"));
    m->lm_head = cfg->tied_embeddings ? m->tok_embd : (ok ? fill(m, V * D, std, 0, &r, "lm head") : NULL);
    ok = ok && m->lm_head;
    for (int i = 0; ok && i < cfg->n_layers; i++) {
        slm_block *b = &m->blocks[i];
        ok = (b->attn_norm = fill(m, D, 0, 1.0f, &r, "attention norm")) &&
             (b->ffn_norm = fill(m, D, 0, 1.0f, &r, "MLP norm"));
        for (int p = 0; ok && p < SLM_PROJ_COUNT; p++) {
            slm_linear *l = &b->lin[p];
            ok = (l->w = fill(m, (size_t)l->n_out * (size_t)l->ld_w, std, 0, &r, "weight")) != NULL;
            if (ok && cfg->attn_bias && p <= SLM_PROJ_V) ok = (l->bias = fill(m, (size_t)l->n_out, 0, 0.0f, &r, "bias"));
        }
    }
    if (!ok) {
        slm_model_free(m);
        return SLM_ERR_NOMEM;
    }
    snprintf(m->format, sizeof m->format, "initialised N(0, %g)", (double)std);
    *out = m;
    return SLM_OK;
}

slm_status slm_train_source_blocks(const char *path, int32_t *out, int cap, int *n) {
    *n = 0;
    struct stat st;
    if (stat(path, &st) != 0 || S_ISDIR(st.st_mode)) return SLM_OK;
    slm_gguf *g = NULL;
    if (slm_gguf_open(path, &g) != SLM_OK) { /* not a GGUF: no map, not an error here */
        slm_error_clear();
        return SLM_OK;
    }
    const slm_gguf_kv *kv = slm_gguf_find(g, "slimlm.source_blocks");
    slm_status s = SLM_OK;
    if (kv && kv->type == SLM_GGUF_ARRAY) {
        if (kv->arr_n > (uint64_t)cap) s = slm_fail(SLM_ERR_FORMAT, "%s: slimlm.source_blocks has %llu entries, the "
                                                    "model %d blocks", path, (unsigned long long)kv->arr_n, cap);
        for (uint64_t i = 0; !s && i < kv->arr_n; i++) {
            int64_t v;
            if (!slm_gguf_arr_i64(kv, i, &v) || v < 0 || v > (1 << 20))
                s = slm_fail(SLM_ERR_FORMAT, "%s: slimlm.source_blocks[%llu] is not a block index", path,
                             (unsigned long long)i);
            else out[i] = (int32_t)v;
        }
        if (!s) *n = (int)kv->arr_n;
    }
    slm_gguf_close(g);
    return s;
}
