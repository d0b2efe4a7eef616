/* GGUF -> model: the config from <arch>.* metadata, tensors by llama.cpp's
 * names (and slimlm's low-rank names, see formats/gguf.c), each checked
 * against the config and named in errors. F32 tensors are used in place
 * from the mapping; other types are dequantised into owned fp32 buffers.
 *
 * Metadata read (<arch> = general.architecture: llama | mistral | qwen2 |
 * deci, the last as save_gguf.c writes per-block MLP widths: llama blocks):
 *   <arch>.context_length, .embedding_length, .block_count      required
 *   <arch>.feed_forward_length     scalar, or per-layer array -> block d_ff
 *   slimlm.feed_forward_length     true widths of zero-padded blocks (first k channels)
 *   <arch>.attention.head_count    required (scalar, or an array of equal values)
 *   <arch>.attention.head_count_kv default head_count
 *   <arch>.attention.layer_norm_rms_epsilon  required
 *   <arch>.attention.key_length    default D / H
 *   <arch>.rope.freq_base          default 10000
 *   <arch>.rope.scaling.type / .factor / .original_context_length
 *   <arch>.attention.sliding_window (recorded)
 *   tokenizer.ggml.bos_token_id / eos_token_id
 * Tensors: token_embd, output_norm, output (absent = tied), rope_freqs
 * (llama3), blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output,
 * ffn_norm, ffn_gate, ffn_up, ffn_down}.weight, blk.N.attn_{q,k,v}.bias.
 * slimlm's int8 linears (docs/int8.md): <P>.i8.weight (I8 [cols, rows]),
 * <P>.i8.scale (F32 [rows]), optionally <P>.i8.outlier_cols (I32 [n]) and
 * <P>.i8.outlier.weight (F32 [n, rows]), for P = blk.N.<proj>,
 * blk.N.<proj>.lr_a / .lr_b (low-rank factors) or output (the lm head);
 * they always load as INT8 linears, whatever keep_quantized says.
 *   slimlm.int8.act_group  (u32, optional) G > 0: the int8 linears quantise
 *                          their activations per token and G columns
 *                          (docs/int8.md); needs int8 linears in the file
 *   slimlm.int8.embd       (bool, optional) true: the token embedding is
 *                          int8, token_embd.i8.* ([D, V] rows, a scale per
 *                          row) instead of token_embd.weight; with no
 *                          output.weight or output.i8.* the model is tied
 *                          and that one matrix is the int8 lm head too
 *   slimlm.format_version  1, 2 when slimlm.int8.act_group is set, 3 when
 *                          slimlm.int8.embd is; newer versions are refused
 *                          (written by a newer slimlm whose meaning this
 *                          reader cannot honour)
 */
#define _POSIX_C_SOURCE 200809L
#include "formats/gguf.h"
#include "kernels/cpu/int8.h"
#include "model/linear_int8.h"
#include "model/loaders.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct loader {
    slm_gguf *g;
    slm_model *m;
    const char *path;
    char arch[16];
    int *ff;     /* [n_layers] per-block MLP width */
    bool keep_q; /* slm_load_params.keep_quantized */
    bool embd8;  /* slimlm.int8.embd: token_embd.i8.* holds the embedding */
} loader;

/* ---- metadata ---------------------------------------------------------- */

static const char *akey(const loader *ld, const char *suffix) {
    static _Thread_local char buf[256];
    snprintf(buf, sizeof buf, "%s.%s", ld->arch, suffix);
    return buf;
}

/* Integer kv <arch>.suffix in [lo, hi]; def < lo means required. An array
 * is accepted when all its elements are equal (llama.cpp allows per-layer
 * head counts; slimlm does not). */
static slm_status get_int(const loader *ld, const char *suffix, int64_t lo, int64_t hi, int64_t def, int *out) {
    const char *key = akey(ld, suffix);
    const slm_gguf_kv *kv = slm_gguf_find(ld->g, key);
    int64_t v;
    if (!kv) {
        if (def < lo) return slm_fail(SLM_ERR_FORMAT, "%s: missing metadata key '%s'", ld->path, key);
        *out = (int)def;
        return SLM_OK;
    }
    if (kv->type == SLM_GGUF_ARRAY) {
        int64_t v0;
        if (kv->arr_n == 0 || !slm_gguf_arr_i64(kv, 0, &v0))
            return slm_fail(SLM_ERR_FORMAT, "%s: '%s' is not an integer or integer array", ld->path, key);
        for (uint64_t i = 1; i < kv->arr_n; i++)
            if (!slm_gguf_arr_i64(kv, i, &v) || v != v0)
                return slm_fail(SLM_ERR_UNSUPPORTED, "%s: '%s' varies per layer", ld->path, key);
        v = v0;
    } else if (!slm_gguf_get_i64(ld->g, key, &v)) {
        return slm_fail(SLM_ERR_FORMAT, "%s: '%s' is not an integer", ld->path, key);
    }
    if (v < lo || v > hi)
        return slm_fail(SLM_ERR_FORMAT, "%s: '%s' = %lld out of range [%lld, %lld]", ld->path, key, (long long)v,
                        (long long)lo, (long long)hi);
    *out = (int)v;
    return SLM_OK;
}

static slm_status get_float(const loader *ld, const char *suffix, bool required, float def, float *out) {
    const char *key = akey(ld, suffix);
    if (!slm_gguf_find(ld->g, key)) {
        if (required) return slm_fail(SLM_ERR_FORMAT, "%s: missing metadata key '%s'", ld->path, key);
        *out = def;
        return SLM_OK;
    }
    if (!slm_gguf_get_f32(ld->g, key, out)) return slm_fail(SLM_ERR_FORMAT, "%s: '%s' is not a float", ld->path, key);
    return SLM_OK;
}

/* feed_forward_length: one width for all blocks, or one per block. */
static slm_status read_ff(loader *ld, int n_layers, int *d_ff_max) {
    const char *key = akey(ld, "feed_forward_length");
    const slm_gguf_kv *kv = slm_gguf_find(ld->g, key);
    ld->ff = slm_calloc((size_t)n_layers, sizeof *ld->ff, "MLP widths");
    if (!ld->ff) return SLM_ERR_NOMEM;
    if (!kv) return slm_fail(SLM_ERR_FORMAT, "%s: missing metadata key '%s'", ld->path, key);
    if (kv->type == SLM_GGUF_ARRAY && kv->arr_n != (uint64_t)n_layers)
        return slm_fail(SLM_ERR_FORMAT, "%s: '%s' has %llu entries for %d blocks", ld->path, key,
                        (unsigned long long)kv->arr_n, n_layers);
    *d_ff_max = 0;
    for (int i = 0; i < n_layers; i++) {
        int64_t v;
        bool ok = kv->type == SLM_GGUF_ARRAY ? slm_gguf_arr_i64(kv, (uint64_t)i, &v) : slm_gguf_get_i64(ld->g, key, &v);
        if (!ok || v <= 0 || v > (1 << 20))
            return slm_fail(SLM_ERR_FORMAT, "%s: '%s' entry %d missing or out of range", ld->path, key, i);
        ld->ff[i] = (int)v;
        if (ld->ff[i] > *d_ff_max) *d_ff_max = ld->ff[i];
    }
    return SLM_OK;
}

static slm_status read_rope_scaling(loader *ld, slm_config *c) {
    slm_gguf_str s = {"none", 4};
    const char *key = akey(ld, "rope.scaling.type");
    if (slm_gguf_find(ld->g, key) && !slm_gguf_get_str(ld->g, key, &s))
        return slm_fail(SLM_ERR_FORMAT, "%s: '%s' is not a string", ld->path, key);
    slm_status st;
    if (s.len == 4 && !memcmp(s.ptr, "none", 4)) c->rope_scaling = SLM_ROPE_SCALING_NONE;
    else if (s.len == 6 && !memcmp(s.ptr, "linear", 6)) c->rope_scaling = SLM_ROPE_SCALING_LINEAR;
    else if (s.len == 6 && !memcmp(s.ptr, "llama3", 6)) c->rope_scaling = SLM_ROPE_SCALING_LLAMA3;
    else return slm_fail(SLM_ERR_UNSUPPORTED, "%s: rope scaling '%.*s' is not supported", ld->path, (int)s.len, s.ptr);
    if ((st = get_float(ld, "rope.scaling.factor", false, 1.0f, &c->rope_factor))) return st;
    if (c->rope_scaling == SLM_ROPE_SCALING_NONE) c->rope_factor = 1.0f;
    return get_int(ld, "rope.scaling.original_context_length", 0, INT32_MAX, 0, &c->rope_orig_ctx);
}

/* slimlm.int8.embd: a bool; when true the file must not hold a float
 * token_embd.weight as well. */
static slm_status read_embd8(loader *ld) {
    if (!slm_gguf_find(ld->g, "slimlm.int8.embd")) return SLM_OK;
    if (!slm_gguf_get_bool(ld->g, "slimlm.int8.embd", &ld->embd8))
        return slm_fail(SLM_ERR_FORMAT, "%s: 'slimlm.int8.embd' is not a bool", ld->path);
    if (ld->embd8 && slm_gguf_find_tensor(ld->g, "token_embd.weight"))
        return slm_fail(SLM_ERR_FORMAT, "%s: 'slimlm.int8.embd' is set but the file has a float 'token_embd.weight'",
                        ld->path);
    return SLM_OK;
}

static slm_status read_config(loader *ld, slm_config *c) {
    slm_gguf_str a;
    if (!slm_gguf_get_str(ld->g, "general.architecture", &a))
        return slm_fail(SLM_ERR_FORMAT, "%s: missing metadata key 'general.architecture'", ld->path);
    static const struct { const char *name; slm_arch arch; slm_rope_layout rope; } archs[] = {
        {"llama", SLM_ARCH_LLAMA, SLM_ROPE_ADJACENT},  /* converter permuted q/k */
        {"mistral", SLM_ARCH_MISTRAL, SLM_ROPE_ADJACENT},
        {"qwen2", SLM_ARCH_QWEN2, SLM_ROPE_HALVES},    /* NEOX rope, no permute */
        {"deci", SLM_ARCH_LLAMA, SLM_ROPE_ADJACENT},   /* llama blocks of own MLP widths (save_gguf.c) */
    };
    int ai = -1;
    for (int i = 0; i < (int)(sizeof archs / sizeof archs[0]); i++)
        if (a.len == strlen(archs[i].name) && !memcmp(a.ptr, archs[i].name, (size_t)a.len)) ai = i;
    if (ai < 0)
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: unknown architecture '%.*s'", ld->path,
                        (int)(a.len > 64 ? 64 : a.len), a.ptr);
    memset(c, 0, sizeof *c);
    snprintf(ld->arch, sizeof ld->arch, "%s", archs[ai].name);
    c->arch = archs[ai].arch;
    c->rope_layout = archs[ai].rope;
    slm_status st;
    if ((st = get_int(ld, "context_length", 1, INT32_MAX, -1, &c->max_ctx)) ||
        (st = get_int(ld, "embedding_length", 1, 1 << 16, -1, &c->d_model)) ||
        (st = get_int(ld, "block_count", 1, 1024, -1, &c->n_layers)) ||
        (st = get_int(ld, "attention.head_count", 1, 1024, -1, &c->n_heads)) ||
        (st = get_int(ld, "attention.head_count_kv", 1, 1024, c->n_heads, &c->n_kv_heads)) ||
        (st = get_int(ld, "attention.key_length", 1, 1024, c->d_model / c->n_heads, &c->head_dim)) ||
        (st = get_int(ld, "attention.sliding_window", 0, INT32_MAX, 0, &c->sliding_window)) ||
        (st = get_float(ld, "attention.layer_norm_rms_epsilon", true, 0, &c->norm_eps)) ||
        (st = get_float(ld, "rope.freq_base", false, 10000.0f, &c->rope_theta)) ||
        (st = read_rope_scaling(ld, c)) || (st = read_ff(ld, c->n_layers, &c->d_ff)))
        return st;
    int v_len, rope_dims;
    if ((st = get_int(ld, "attention.value_length", 1, 1024, c->head_dim, &v_len)) ||
        (st = get_int(ld, "rope.dimension_count", 1, 1024, c->head_dim, &rope_dims)))
        return st;
    if (v_len != c->head_dim || rope_dims != c->head_dim)
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: value length %d / rope dims %d differ from key length %d", ld->path,
                        v_len, rope_dims, c->head_dim);
    int64_t id;
    c->bos_id = slm_gguf_get_i64(ld->g, "tokenizer.ggml.bos_token_id", &id) && id >= 0 && id <= INT32_MAX ? (int32_t)id : -1;
    c->eos_id = slm_gguf_get_i64(ld->g, "tokenizer.ggml.eos_token_id", &id) && id >= 0 && id <= INT32_MAX ? (int32_t)id : -1;
    if ((st = read_embd8(ld))) return st;
    const char *en = ld->embd8 ? "token_embd.i8.weight" : "token_embd.weight";
    const slm_gguf_tensor *te = slm_gguf_find_tensor(ld->g, en);
    if (!te) return slm_fail(SLM_ERR_FORMAT, "%s: missing tensor '%s'", ld->path, en);
    if (te->n_dims != 2 || te->ne[1] > (1 << 24))
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s' is not a [D, V] matrix", ld->path, en);
    c->n_vocab = (int)te->ne[1];
    /* an int8 embedding's untied head may be int8 only (output.i8.*) */
    c->tied_embeddings = slm_gguf_find_tensor(ld->g, "output.weight") == NULL &&
                         !(ld->embd8 && slm_gguf_find_tensor(ld->g, "output.i8.weight"));
    c->attn_bias = slm_gguf_find_tensor(ld->g, "blk.0.attn_q.bias") != NULL;
    return slm_config_validate(c, ld->path);
}

/* ---- tensors ----------------------------------------------------------- */

/* The fp32 view of tensor `name`, which must have dims [ne0, ne1] (ne1 = 1
 * for a vector). *out stays NULL when the tensor is absent and optional. */
static slm_status check_shape(const loader *ld, const slm_gguf_tensor *t, const char *name, int64_t ne0, int64_t ne1) {
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                        ld->path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                        (long long)t->ne[3], (long long)ne0, (long long)ne1);
    return SLM_OK;
}

static slm_status get_tensor(loader *ld, const char *name, int64_t ne0, int64_t ne1, bool required, const float **out) {
    *out = NULL;
    const slm_gguf_tensor *t = slm_gguf_find_tensor(ld->g, name);
    if (!t) return required ? slm_fail(SLM_ERR_FORMAT, "%s: missing tensor '%s'", ld->path, name) : SLM_OK;
    slm_status st = check_shape(ld, t, name, ne0, ne1);
    if (st) return st;
    st = slm_model_tensor_f32(ld->m, t->data, t->type, t->n_elems, name, out);
    if (st) slm_error_prefix(ld->path);
    return st;
}

/* keep_quantized: a weight [n_in, n_out] of a type the QBLOCK kind
 * multiplies becomes a QBLOCK linear over the mapping (no copy). Sets
 * *kept, false when the tensor is absent or must be dequantised. */
static slm_status get_qblock(loader *ld, const char *name, int n_out, int n_in, slm_linear *l, bool *kept) {
    *kept = false;
    const slm_gguf_tensor *t = slm_gguf_find_tensor(ld->g, name);
    if (!ld->keep_q || !t || !slm_linear_qblock_supports(t->type) || n_in % 32 != 0) return SLM_OK;
    slm_status st = check_shape(ld, t, name, n_in, n_out);
    if (st) return st;
    if ((st = slm_linear_set_qblock(l, t->data, t->type, n_out, n_in, name))) {
        slm_error_prefix(ld->path);
        return st;
    }
    *kept = true;
    return SLM_OK;
}

/* slimlm's int8 matrix <prefix>.i8.* (see the header) of rows x cols;
 * rows or cols < 0: taken from the tensor. *out stays NULL when absent. */
static slm_status get_i8_matrix(loader *ld, const char *prefix, int rows, int cols, const slm_i8_matrix **out) {
    *out = NULL;
    char n_w[160], n_s[160], n_i[160], n_o[160];
    snprintf(n_w, sizeof n_w, "%s.i8.weight", prefix);
    snprintf(n_s, sizeof n_s, "%s.i8.scale", prefix);
    snprintf(n_i, sizeof n_i, "%s.i8.outlier_cols", prefix);
    snprintf(n_o, sizeof n_o, "%s.i8.outlier.weight", prefix);
    const slm_gguf_tensor *tw = slm_gguf_find_tensor(ld->g, n_w);
    if (!tw) return SLM_OK;
    if (tw->type != SLM_DTYPE_I8 || tw->n_dims != 2 || tw->ne[0] > (1 << 20) || tw->ne[1] > (1 << 24))
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s' is not an I8 matrix", ld->path, n_w);
    if (rows < 0) rows = (int)tw->ne[1];
    if (cols < 0) cols = (int)tw->ne[0];
    slm_status st = check_shape(ld, tw, n_w, cols, rows);
    const slm_gguf_tensor *ts = slm_gguf_find_tensor(ld->g, n_s), *ti = slm_gguf_find_tensor(ld->g, n_i);
    const slm_gguf_tensor *to = slm_gguf_find_tensor(ld->g, n_o);
    if (!st && (!ts || ts->type != SLM_DTYPE_F32))
        st = slm_fail(SLM_ERR_FORMAT, "%s: missing F32 tensor '%s'", ld->path, n_s);
    if (!st) st = check_shape(ld, ts, n_s, rows, 1);
    int n_outl = 0;
    if (!st && (ti || to)) {
        if (!ti || !to || ti->type != SLM_DTYPE_I32 || to->type != SLM_DTYPE_F32 || ti->n_dims != 1 ||
            ti->ne[0] > cols)
            return slm_fail(SLM_ERR_FORMAT, "%s: '%s' needs both an I32 '%s' and an F32 '%s'", ld->path, prefix, n_i, n_o);
        n_outl = (int)ti->ne[0];
        st = check_shape(ld, to, n_o, n_outl, rows);
    }
    if (st) return st; /* those messages name the file already */
    st = slm_i8_matrix_from_parts(ld->m, tw->data, cols, ts->data, rows, cols, n_outl ? ti->data : NULL, n_outl,
                                  n_outl ? to->data : NULL, n_w, out);
    if (st) slm_error_prefix(ld->path);
    return st;
}

/* An INT8 linear (dense blk.N.<proj>.i8.* or low-rank .lr_a.i8.* / .lr_b.i8.*)
 * into l; *kept false when the file has none for it. */
static slm_status get_int8_linear(loader *ld, int b, const char *pn, int n_out, int n_in, slm_linear *l, bool *kept) {
    char pre[128];
    const slm_i8_matrix *w = NULL, *a = NULL;
    *kept = false;
    snprintf(pre, sizeof pre, "blk.%d.%s", b, pn);
    slm_status st = get_i8_matrix(ld, pre, n_out, n_in, &w);
    if (!st && !w) {
        snprintf(pre, sizeof pre, "blk.%d.%s.lr_b", b, pn);
        st = get_i8_matrix(ld, pre, -1, n_in, &w);
        if (!st && w) {
            if (w->rows > (n_out < n_in ? n_out : n_in))
                return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s.i8.weight': rank %d out of range", ld->path, pre, w->rows);
            snprintf(pre, sizeof pre, "blk.%d.%s.lr_a", b, pn);
            st = get_i8_matrix(ld, pre, n_out, w->rows, &a);
            if (!st && !a) return slm_fail(SLM_ERR_FORMAT, "%s: missing tensor '%s.i8.weight'", ld->path, pre);
        }
    }
    if (st || !w) return st;
    if ((st = slm_linear_set_int8(l, w, a, n_out, n_in))) {
        slm_error_prefix(ld->path);
        return st;
    }
    *kept = true;
    return SLM_OK;
}

static const char *blk_name(int b, const char *what, const char *suffix) {
    static _Thread_local char buf[128];
    snprintf(buf, sizeof buf, "blk.%d.%s.%s", b, what, suffix);
    return buf;
}

/* One projection: dense blk.N.<p>.weight [n_in, n_out], or slimlm's low-rank
 * pair lr_a [rank, n_out] and lr_b [n_in, rank]. */
static slm_status load_linear(loader *ld, int b, slm_proj p, int n_out, int n_in) {
    slm_linear *l = &ld->m->blocks[b].lin[p];
    const char *pn = slm_proj_gguf_name(p);
    bool kept;
    slm_status st = get_int8_linear(ld, b, pn, n_out, n_in, l, &kept);
    if (!st && !kept) st = get_qblock(ld, blk_name(b, pn, "weight"), n_out, n_in, l, &kept);
    if (!st && !kept) st = get_tensor(ld, blk_name(b, pn, "weight"), n_in, n_out, false, &l->w);
    if (st) return st;
    l->n_out = n_out;
    l->n_in = n_in;
    if (kept) {
        /* QBLOCK, set by get_qblock */
    } else if (l->w) {
        l->kind = SLM_LINEAR_DENSE;
        l->ld_w = n_in;
    } else {
        char an[128];
        snprintf(an, sizeof an, "blk.%d.%s.lr_a.weight", b, pn);
        const slm_gguf_tensor *ta = slm_gguf_find_tensor(ld->g, an);
        if (!ta) return slm_fail(SLM_ERR_FORMAT, "%s: missing tensor '%s'", ld->path, blk_name(b, pn, "weight"));
        if (ta->ne[0] <= 0 || ta->ne[0] > (n_out < n_in ? n_out : n_in))
            return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': rank %lld out of range", ld->path, an, (long long)ta->ne[0]);
        l->kind = SLM_LINEAR_LOWRANK;
        l->rank = (int)ta->ne[0];
        l->ld_b = n_in;
        if ((st = get_tensor(ld, an, l->rank, n_out, true, &l->a))) return st;
        snprintf(an, sizeof an, "blk.%d.%s.lr_b.weight", b, pn);
        if ((st = get_tensor(ld, an, n_in, l->rank, true, &l->b))) return st;
    }
    if (ld->m->cfg.attn_bias && p <= SLM_PROJ_V)
        return get_tensor(ld, blk_name(b, pn, "bias"), n_out, 1, true, &l->bias);
    return SLM_OK;
}

static slm_status load_tensors(loader *ld) {
    slm_model *m = ld->m;
    const slm_config *c = &m->cfg;
    int D = c->d_model, V = c->n_vocab, q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    slm_status st;
    if (ld->embd8) { /* present: read_config found its weight */
        if ((st = get_i8_matrix(ld, "token_embd", V, D, &m->tok_embd_i8))) return st;
    } else if ((st = get_tensor(ld, "token_embd.weight", D, V, true, &m->tok_embd))) {
        return st;
    }
    if ((st = get_tensor(ld, "output_norm.weight", D, 1, true, &m->out_norm)) ||
        (st = get_tensor(ld, "output.weight", D, V, false, &m->lm_head)) ||
        (st = get_tensor(ld, "rope_freqs.weight", c->head_dim / 2, 1, false, &m->rope_freqs)))
        return st;
    if (!m->lm_head) m->lm_head = m->tok_embd;
    bool kept; /* the lm head as a QBLOCK linear too (the fp32 embedding stays for the lookup) */
    if ((st = get_qblock(ld, c->tied_embeddings ? "token_embd.weight" : "output.weight", V, D, &m->lm_head_q, &kept)))
        return st;
    const slm_i8_matrix *head8; /* an int8 lm head (slimlm quantize) replaces a QBLOCK one */
    if ((st = get_i8_matrix(ld, "output", V, D, &head8))) return st;
    if (!head8 && c->tied_embeddings) head8 = m->tok_embd_i8; /* one int8 matrix, lookup and head */
    if (head8) {
        memset(&m->lm_head_q, 0, sizeof m->lm_head_q);
        if ((st = slm_linear_set_int8(&m->lm_head_q, head8, NULL, V, D))) return st;
    }
    for (int b = 0; b < c->n_layers; b++) {
        slm_block *blk = &m->blocks[b];
        int F = ld->ff[b];
        blk->d_ff = F;
        const int shape[SLM_PROJ_COUNT][2] = {{q, D}, {kv, D}, {kv, D}, {D, q}, {F, D}, {F, D}, {D, F}};
        if ((st = get_tensor(ld, blk_name(b, "attn_norm", "weight"), D, 1, true, &blk->attn_norm)) ||
            (st = get_tensor(ld, blk_name(b, "ffn_norm", "weight"), D, 1, true, &blk->ffn_norm)))
            return st;
        for (int p = 0; p < SLM_PROJ_COUNT; p++)
            if ((st = load_linear(ld, b, (slm_proj)p, shape[p][0], shape[p][1]))) return st;
    }
    return SLM_OK;
}

/* slimlm.format_version, checked before the config and the tensors so
 * that a newer file is refused for what it is rather than for a tensor it
 * names (or lacks, as version 3's int8 embedding lacks token_embd.weight). */
enum { FORMAT_VERSION_MAX = 3 };
static slm_status check_version(const loader *ld) {
    int64_t v;
    if (slm_gguf_find(ld->g, "slimlm.format_version")) {
        if (!slm_gguf_get_i64(ld->g, "slimlm.format_version", &v))
            return slm_fail(SLM_ERR_FORMAT, "%s: 'slimlm.format_version' is not an integer", ld->path);
        if (v < 1 || v > FORMAT_VERSION_MAX)
            return slm_fail(SLM_ERR_UNSUPPORTED, "%s: slimlm format version %lld, this slimlm reads up to %d (upgrade it)",
                            ld->path, (long long)v, (int)FORMAT_VERSION_MAX);
    }
    return SLM_OK;
}

/* slimlm.int8.act_group, after the tensors: it applies to the int8 linears. */
static slm_status read_act_group(loader *ld) {
    int64_t v;
    if (!slm_gguf_find(ld->g, "slimlm.int8.act_group")) return SLM_OK;
    if (!slm_gguf_get_i64(ld->g, "slimlm.int8.act_group", &v))
        return slm_fail(SLM_ERR_FORMAT, "%s: 'slimlm.int8.act_group' is not an integer", ld->path);
    if (v != 0 && (v < 0 || v > 1024 || !slm_i8_group_ok((int)v))) /* range first: the cast must not wrap */
        return slm_fail(SLM_ERR_FORMAT, "%s: 'slimlm.int8.act_group' = %lld (0 or a multiple of 32 in [32, 1024] expected)",
                        ld->path, (long long)v);
    bool any = ld->m->lm_head_q.kind == SLM_LINEAR_INT8;
    for (int l = 0; l < ld->m->cfg.n_layers && !any; l++)
        for (int q = 0; q < SLM_PROJ_COUNT; q++) any = any || ld->m->blocks[l].lin[q].kind == SLM_LINEAR_INT8;
    if (v && !any)
        return slm_fail(SLM_ERR_FORMAT, "%s: 'slimlm.int8.act_group' is set but the file has no int8 linears", ld->path);
    return slm_model_set_int8_act_group(ld->m, (int)v);
}

/* slimlm.feed_forward_length: the true MLP widths of blocks that were
 * zero-padded to the file's width (model/save_gguf.c). */
static slm_status apply_true_widths(loader *ld) {
    const slm_gguf_kv *kv = slm_gguf_find(ld->g, "slimlm.feed_forward_length");
    if (!kv) return SLM_OK;
    if (kv->type != SLM_GGUF_ARRAY || kv->arr_n != (uint64_t)ld->m->cfg.n_layers)
        return slm_fail(SLM_ERR_FORMAT, "%s: 'slimlm.feed_forward_length' needs one entry per block", ld->path);
    for (int b = 0; b < ld->m->cfg.n_layers; b++) {
        int64_t v;
        if (!slm_gguf_arr_i64(kv, (uint64_t)b, &v) || v <= 0 || v > ld->ff[b])
            return slm_fail(SLM_ERR_FORMAT, "%s: 'slimlm.feed_forward_length' entry %d out of range", ld->path, b);
        slm_status st = slm_block_set_mlp_width(ld->m, b, (int)v);
        if (st) return st;
    }
    return SLM_OK;
}

/* Tensors per type, and the type holding most matrix elements. */
static void count_types(loader *ld) {
    int64_t elems[SLM_DTYPE_COUNT_] = {0};
    for (int64_t i = 0; i < ld->g->n_tensors; i++) {
        const slm_gguf_tensor *t = &ld->g->tensors[i];
        ld->m->src_type_counts[t->type]++;
        if (t->n_dims >= 2) elems[t->type] += t->n_elems;
    }
    int best = SLM_DTYPE_F32;
    for (int t = 0; t < SLM_DTYPE_COUNT_; t++)
        if (elems[t] > elems[best]) best = t;
    ld->m->src_dtype = best;
}

slm_status slm_model_load_gguf(const char *path, const slm_load_params *p, slm_model **out) {
    *out = NULL;
    slm_load_params def = slm_load_default_params();
    if (!p) p = &def;
    loader ld = {.path = path, .keep_q = p->keep_quantized};
    slm_config cfg;
    slm_status st = slm_gguf_open(path, &ld.g);
    if (!st) st = check_version(&ld);
    if (!st) st = read_config(&ld, &cfg);
    if (!st) st = slm_model_create(&cfg, &ld.m);
    if (!st) {
        slm_model *m = ld.m;
        m->path = strdup(path);
        if (!m->path) st = slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
        snprintf(m->format, sizeof m->format, "GGUF v%u", ld.g->version);
        m->src_file_bytes = (int64_t)ld.g->file.size;
        count_types(&ld);
    }
    if (!st) st = load_tensors(&ld);
    if (!st) st = read_act_group(&ld);
    if (!st) st = apply_true_widths(&ld);
    if (!st && p->load_tokenizer) st = slm_tokenizer_load_gguf(ld.g, path, &ld.m->tok);
    /* the model keeps the mapping (F32 tensors point into it) */
    if (!st) st = slm_model_add_map(ld.m, &ld.g->file);
    if (!st) st = slm_model_validate(ld.m);
    if (!st && p->verbose)
        fprintf(stderr, "loaded %s: %s, %d blocks, D %d, V %d\n", path, ld.m->format, cfg.n_layers, cfg.d_model,
                cfg.n_vocab);
    slm_gguf_close(ld.g);
    free(ld.ff);
    if (st) {
        slm_model_free(ld.m);
        return st;
    }
    *out = ld.m;
    return SLM_OK;
}
