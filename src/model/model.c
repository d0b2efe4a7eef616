/* Model creation, ownership of tensors, validation, statistics. */
#include "model/model.h"
#include "model/linear_int8.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

const char *slm_arch_name(slm_arch a) {
    switch (a) {
    case SLM_ARCH_LLAMA: return "llama";
    case SLM_ARCH_MISTRAL: return "mistral";
    case SLM_ARCH_QWEN2: return "qwen2";
    }
    return "unknown";
}

static const char *const k_gguf_names[SLM_PROJ_COUNT] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
static const char *const k_hf_names[SLM_PROJ_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

const char *slm_proj_gguf_name(slm_proj p) { return (unsigned)p < SLM_PROJ_COUNT ? k_gguf_names[p] : "?"; }
const char *slm_proj_hf_name(slm_proj p) { return (unsigned)p < SLM_PROJ_COUNT ? k_hf_names[p] : "?"; }

slm_load_params slm_load_default_params(void) {
    return (slm_load_params){.load_tokenizer = true, .verbose = false, .keep_quantized = false};
}

slm_status slm_config_validate(const slm_config *c, const char *file) {
    /* Bounds are generous (the largest LLaMA-family models fit) but stop
     * absurd values from turning into huge allocations or overflow. */
    if (c->n_vocab <= 0 || c->n_vocab > (1 << 24))
        return slm_fail(SLM_ERR_FORMAT, "%s: vocabulary size %d out of range", file, c->n_vocab);
    if (c->d_model <= 0 || c->d_model > (1 << 16))
        return slm_fail(SLM_ERR_FORMAT, "%s: hidden size %d out of range", file, c->d_model);
    if (c->n_layers <= 0 || c->n_layers > 1024)
        return slm_fail(SLM_ERR_FORMAT, "%s: layer count %d out of range", file, c->n_layers);
    if (c->n_heads <= 0 || c->n_heads > 1024)
        return slm_fail(SLM_ERR_FORMAT, "%s: head count %d out of range", file, c->n_heads);
    if (c->n_kv_heads <= 0 || c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0)
        return slm_fail(SLM_ERR_FORMAT, "%s: kv head count %d does not divide head count %d", file,
                        c->n_kv_heads, c->n_heads);
    if (c->head_dim <= 0 || c->head_dim > 1024 || c->head_dim % 2 != 0)
        return slm_fail(SLM_ERR_FORMAT, "%s: head dim %d out of range or odd", file, c->head_dim);
    if (c->d_ff <= 0 || c->d_ff > (1 << 20))
        return slm_fail(SLM_ERR_FORMAT, "%s: intermediate size %d out of range", file, c->d_ff);
    if (!(c->norm_eps > 0.0f && c->norm_eps < 1.0f))
        return slm_fail(SLM_ERR_FORMAT, "%s: norm epsilon %g out of range", file, (double)c->norm_eps);
    if (!(c->rope_theta > 0.0f))
        return slm_fail(SLM_ERR_FORMAT, "%s: rope theta %g out of range", file, (double)c->rope_theta);
    if (c->max_ctx <= 0)
        return slm_fail(SLM_ERR_FORMAT, "%s: context length %d out of range", file, c->max_ctx);
    if (c->rope_scaling != SLM_ROPE_SCALING_NONE && !(c->rope_factor > 0.0f))
        return slm_fail(SLM_ERR_FORMAT, "%s: rope scaling factor %g out of range", file,
                        (double)c->rope_factor);
    return SLM_OK;
}

static void linear_init_dense(slm_linear *l, int n_out, int n_in) {
    memset(l, 0, sizeof *l);
    l->kind = SLM_LINEAR_DENSE;
    l->n_out = n_out;
    l->n_in = n_in;
    l->ld_w = n_in;
}

slm_status slm_model_create(const slm_config *cfg, slm_model **out) {
    *out = NULL;
    slm_model *m = slm_calloc(1, sizeof *m, "model");
    if (!m) return SLM_ERR_NOMEM;
    m->cfg = *cfg;
    m->blocks = slm_calloc((size_t)cfg->n_layers, sizeof *m->blocks, "model blocks");
    if (!m->blocks) {
        free(m);
        return SLM_ERR_NOMEM;
    }
    int D = cfg->d_model, q = cfg->n_heads * cfg->head_dim, kv = cfg->n_kv_heads * cfg->head_dim;
    for (int i = 0; i < cfg->n_layers; i++) {
        slm_block *b = &m->blocks[i];
        b->kept = true;
        b->d_ff = cfg->d_ff;
        linear_init_dense(&b->lin[SLM_PROJ_Q], q, D);
        linear_init_dense(&b->lin[SLM_PROJ_K], kv, D);
        linear_init_dense(&b->lin[SLM_PROJ_V], kv, D);
        linear_init_dense(&b->lin[SLM_PROJ_O], D, q);
        linear_init_dense(&b->lin[SLM_PROJ_GATE], cfg->d_ff, D);
        linear_init_dense(&b->lin[SLM_PROJ_UP], cfg->d_ff, D);
        linear_init_dense(&b->lin[SLM_PROJ_DOWN], D, cfg->d_ff);
    }
    m->src_dtype = SLM_DTYPE_F32;
    *out = m;
    return SLM_OK;
}

void *slm_model_own(slm_model *m, void *p) {
    if (!p) return NULL;
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? m->cap_owned * 2 : 64;
        void **n = realloc(m->owned, (size_t)cap * sizeof *n);
        if (!n) {
            free(p);
            slm_fail(SLM_ERR_NOMEM, "out of memory tracking model buffers");
            return NULL;
        }
        m->owned = n;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return p;
}

float *slm_model_alloc_f32(slm_model *m, size_t n, const char *what) {
    size_t bytes;
    if (!slm_mul_ok(n, sizeof(float), &bytes)) {
        slm_fail(SLM_ERR_NOMEM, "size overflow allocating %s", what);
        return NULL;
    }
    return slm_model_own(m, slm_aligned_alloc(bytes, what));
}

slm_status slm_model_add_map(slm_model *m, slm_mapped_file *f) {
    slm_mapped_file *n = realloc(m->maps, (size_t)(m->n_maps + 1) * sizeof *n);
    if (!n) {
        slm_unmap_file(f);
        return slm_fail(SLM_ERR_NOMEM, "out of memory tracking mapped files");
    }
    m->maps = n;
    m->maps[m->n_maps++] = *f;
    memset(f, 0, sizeof *f);
    return SLM_OK;
}

slm_status slm_model_tensor_f32(slm_model *m, const void *src, slm_dtype t, int64_t n,
                                const char *name, const float **out) {
    *out = NULL;
    if (t == SLM_DTYPE_F32 && ((uintptr_t)src % sizeof(float)) == 0) {
        *out = src;
        return SLM_OK;
    }
    const slm_dtype_traits *tr = slm_dtype_get(t);
    if (!tr || !tr->to_float) return slm_fail(SLM_ERR_UNSUPPORTED, "tensor '%s': unsupported type %d", name, (int)t);
    if (n < 0 || n % tr->block_size != 0)
        return slm_fail(SLM_ERR_FORMAT, "tensor '%s': %lld elements is not a multiple of the %s block size %d",
                        name, (long long)n, tr->name, tr->block_size);
    float *dst = slm_model_alloc_f32(m, (size_t)n, name);
    if (!dst) return SLM_ERR_NOMEM;
    if (t == SLM_DTYPE_F32) memcpy(dst, src, (size_t)n * sizeof(float));
    else tr->to_float(src, dst, n);
    *out = dst;
    return SLM_OK;
}

void slm_model_embed_row(const slm_model *m, int32_t id, float *x) {
    const int64_t D = m->cfg.d_model;
    if (m->tok_embd_i8) slm_i8_matrix_dequantize_row(m->tok_embd_i8, id, x);
    else memcpy(x, m->tok_embd + (int64_t)id * D, (size_t)D * sizeof(float));
}

slm_status slm_model_embd_f32(const slm_model *m, const float **out, float **buf) {
    *out = m->tok_embd;
    *buf = NULL;
    if (!m->tok_embd_i8) return SLM_OK;
    size_t n;
    if (!slm_mul_ok((size_t)m->cfg.n_vocab, (size_t)m->cfg.d_model, &n) || !slm_mul_ok(n, sizeof(float), &n))
        return slm_fail(SLM_ERR_NOMEM, "size overflow dequantising the token embedding");
    if (!(*buf = slm_malloc(n, "dequantised token embedding"))) return SLM_ERR_NOMEM;
    slm_i8_matrix_dequantize(m->tok_embd_i8, *buf, m->cfg.d_model);
    *out = *buf;
    return SLM_OK;
}

static slm_status check_linear(const slm_linear *l, int layer, slm_proj p, const char *file) {
    const char *nm = slm_proj_gguf_name(p);
    if (l->kind == SLM_LINEAR_DENSE) {
        if (!l->w) return slm_fail(SLM_ERR_FORMAT, "%s: block %d: missing %s weight", file, layer, nm);
        if (l->ld_w < l->n_in) return slm_fail(SLM_ERR_FORMAT, "%s: block %d: %s stride too small", file, layer, nm);
    } else if (l->kind == SLM_LINEAR_LOWRANK) {
        if (!l->a || !l->b) return slm_fail(SLM_ERR_FORMAT, "%s: block %d: missing %s low-rank factor", file, layer, nm);
        if (l->rank <= 0 || l->ld_b < l->n_in)
            return slm_fail(SLM_ERR_FORMAT, "%s: block %d: %s bad rank %d", file, layer, nm, l->rank);
    } else if (l->kind == SLM_LINEAR_QBLOCK) {
        const slm_dtype_traits *tr = slm_dtype_get(l->qtype);
        if (!l->qw || !slm_linear_qblock_supports(l->qtype) || l->n_in % tr->block_size != 0 ||
            l->q_row_bytes < (size_t)(l->n_in / tr->block_size) * tr->type_size)
            return slm_fail(SLM_ERR_FORMAT, "%s: block %d: %s bad quantised blocks", file, layer, nm);
    } else if (l->kind == SLM_LINEAR_INT8) {
        if (!slm_linear_int8_valid(l))
            return slm_fail(SLM_ERR_FORMAT, "%s: block %d: %s int8 matrices do not cover its shape", file, layer, nm);
    } else {
        return slm_fail(SLM_ERR_FORMAT, "%s: block %d: %s unknown linear kind %d", file, layer, nm, (int)l->kind);
    }
    if (l->n_out <= 0 || l->n_in <= 0)
        return slm_fail(SLM_ERR_FORMAT, "%s: block %d: %s empty shape", file, layer, nm);
    return SLM_OK;
}

slm_status slm_model_validate(const slm_model *m) {
    const char *file = m->path ? m->path : "model";
    const slm_config *c = &m->cfg;
    slm_status st = slm_config_validate(c, file);
    if (st) return st;
    const slm_i8_matrix *e8 = m->tok_embd_i8;
    if (!m->tok_embd && !e8) return slm_fail(SLM_ERR_FORMAT, "%s: missing token embedding", file);
    if (e8 && (m->tok_embd || !e8->q || e8->rows != c->n_vocab || e8->cols != c->d_model))
        return slm_fail(SLM_ERR_FORMAT, "%s: int8 token embedding is not [%d x %d] (or is also float)", file,
                        c->n_vocab, c->d_model);
    /* tied with an int8 embedding: one matrix is the lookup and the head */
    if (e8 && c->tied_embeddings && (m->lm_head_q.kind != SLM_LINEAR_INT8 || m->lm_head_q.i8[0] != e8))
        return slm_fail(SLM_ERR_FORMAT, "%s: tied int8 token embedding without the same int8 lm head", file);
    if (!m->out_norm) return slm_fail(SLM_ERR_FORMAT, "%s: missing output norm", file);
    if (!m->lm_head && !m->lm_head_q.qw) return slm_fail(SLM_ERR_FORMAT, "%s: missing output (lm head) weight", file);
    if (m->lm_head_q.qw &&
        ((m->lm_head_q.kind != SLM_LINEAR_QBLOCK && m->lm_head_q.kind != SLM_LINEAR_INT8) ||
         (m->lm_head_q.kind == SLM_LINEAR_INT8 && !slm_linear_int8_valid(&m->lm_head_q)) ||
         m->lm_head_q.n_out != c->n_vocab || m->lm_head_q.n_in != c->d_model))
        return slm_fail(SLM_ERR_FORMAT, "%s: quantised lm head is not [%d x %d]", file, c->n_vocab, c->d_model);
    int q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim, D = c->d_model;
    for (int i = 0; i < c->n_layers; i++) {
        const slm_block *b = &m->blocks[i];
        if (!b->kept) continue;
        if (!b->attn_norm || !b->ffn_norm) return slm_fail(SLM_ERR_FORMAT, "%s: block %d: missing norm weight", file, i);
        if (b->d_ff <= 0 || b->d_ff > c->d_ff)
            return slm_fail(SLM_ERR_FORMAT, "%s: block %d: MLP width %d out of range", file, i, b->d_ff);
        const int want[SLM_PROJ_COUNT][2] = {{q, D}, {kv, D}, {kv, D}, {D, q},
                                            {b->d_ff, D}, {b->d_ff, D}, {D, b->d_ff}};
        for (int p = 0; p < SLM_PROJ_COUNT; p++) {
            st = check_linear(&b->lin[p], i, (slm_proj)p, file);
            if (st) return st;
            if (b->lin[p].n_out != want[p][0] || b->lin[p].n_in != want[p][1])
                return slm_fail(SLM_ERR_FORMAT, "%s: block %d: %s shape [%d x %d], expected [%d x %d]", file, i,
                                slm_proj_gguf_name((slm_proj)p), b->lin[p].n_out, b->lin[p].n_in, want[p][0], want[p][1]);
        }
    }
    return SLM_OK;
}

slm_status slm_block_set_mlp_width(slm_model *m, int bi, int k) {
    if (bi < 0 || bi >= m->cfg.n_layers) return slm_fail(SLM_ERR_ARG, "block %d out of range", bi);
    if (k <= 0 || k > m->cfg.d_ff) return slm_fail(SLM_ERR_ARG, "MLP width %d out of range (1..%d)", k, m->cfg.d_ff);
    slm_block *b = &m->blocks[bi];
    if (b->lin[SLM_PROJ_DOWN].kind == SLM_LINEAR_QBLOCK && k % 32 != 0)
        return slm_fail(SLM_ERR_UNSUPPORTED, "block %d: MLP width %d of a quantised down projection must be a multiple of 32",
                        bi, k);
    /* gate/up keep their first k rows (same pointers); down keeps its first
     * k columns through the row stride, so nothing is copied. */
    b->d_ff = k;
    b->lin[SLM_PROJ_GATE].n_out = k;
    b->lin[SLM_PROJ_UP].n_out = k;
    b->lin[SLM_PROJ_DOWN].n_in = k;
    return SLM_OK;
}

void slm_rope_permute_rows(const float *src, float *dst, int n_head, int head_dim,
                           int64_t cols, bool to_adjacent) {
    /* llama.cpp's permute: view rows as [n_head][2][Dh/2] and swap the last
     * two axes, so row (h, i, j) -> (h, j, i): halves become adjacent pairs. */
    int half = head_dim / 2;
    for (int h = 0; h < n_head; h++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < half; j++) {
                int64_t halves = (int64_t)h * head_dim + (int64_t)i * half + j;
                int64_t adj = (int64_t)h * head_dim + (int64_t)j * 2 + i;
                int64_t from = to_adjacent ? halves : adj;
                int64_t to = to_adjacent ? adj : halves;
                memcpy(dst + to * cols, src + from * cols, (size_t)cols * sizeof(float));
            }
}

static int64_t linear_params(const slm_linear *l) {
    if (l->kind == SLM_LINEAR_LOWRANK || (l->kind == SLM_LINEAR_INT8 && l->rank > 0))
        return (int64_t)l->rank * (l->n_out + l->n_in);
    return (int64_t)l->n_out * l->n_in;
}

/* Bytes of a linear as held: quantised kinds their blocks / int8 values and
 * scales, the others fp32. */
static int64_t linear_bytes(const slm_linear *l) {
    if (l->kind == SLM_LINEAR_QBLOCK) return slm_linear_qblock_bytes(l);
    if (l->kind == SLM_LINEAR_INT8) return slm_linear_int8_bytes(l);
    return linear_params(l) * (int64_t)sizeof(float);
}

slm_model_stats slm_model_get_stats(const slm_model *m, int ctx) {
    const slm_config *c = &m->cfg;
    slm_model_stats s = {0};
    int64_t D = c->d_model, q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t embd = (int64_t)c->n_vocab * D;
    int64_t dense_block = 2 * D * q + 2 * D * kv + 3 * D * c->d_ff + 2 * D + (c->attn_bias ? q + 2 * kv : 0);
    s.n_params_dense = embd + (c->tied_embeddings ? 0 : embd) + D + (int64_t)c->n_layers * dense_block;
    s.n_params = embd + (c->tied_embeddings ? 0 : embd) + D;
    s.macs_per_token = embd; /* lm head */
    /* bytes as held: fp32 tensors, QBLOCK linears' blocks, INT8 linears'
     * int8 values + scales; the embedding fp32 or int8; a float lm head
     * when it is not the embedding; a quantised lm head unless it is the
     * int8 embedding itself (tied) */
    int64_t bytes = D * (int64_t)sizeof(float);
    bytes += m->tok_embd_i8 ? slm_i8_matrix_bytes(m->tok_embd_i8) : embd * (int64_t)sizeof(float);
    if (m->lm_head && m->lm_head != m->tok_embd) bytes += embd * (int64_t)sizeof(float);
    if (m->lm_head_q.qw && !(m->tok_embd_i8 && m->lm_head_q.i8[0] == m->tok_embd_i8))
        bytes += linear_bytes(&m->lm_head_q);
    for (int i = 0; i < c->n_layers; i++) {
        const slm_block *b = &m->blocks[i];
        if (!b->kept) continue;
        s.n_layers_kept++;
        int64_t lin = 0;
        for (int p = 0; p < SLM_PROJ_COUNT; p++) lin += linear_params(&b->lin[p]);
        s.n_params += lin + 2 * D + (c->attn_bias ? q + 2 * kv : 0);
        for (int p = 0; p < SLM_PROJ_COUNT; p++) bytes += linear_bytes(&b->lin[p]);
        bytes += (2 * D + (c->attn_bias ? q + 2 * kv : 0)) * (int64_t)sizeof(float);
        /* QK^T and AV: each query attends to ctx keys of Dh per head. */
        s.macs_per_token += lin + 2 * (int64_t)ctx * q;
    }
    s.weight_bytes = bytes;
    return s;
}

void slm_model_free(slm_model *m) {
    if (!m) return;
    if (m->tok) slm_tokenizer_free(m->tok);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    for (int i = 0; i < m->n_maps; i++) slm_unmap_file(&m->maps[i]);
    free(m->maps);
    free(m->blocks);
    free(m->path);
    free(m);
}

slm_tokenizer *slm_model_tokenizer(const slm_model *m) { return m->tok; }
