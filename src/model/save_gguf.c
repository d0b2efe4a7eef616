/* model -> GGUF v3 that llama.cpp loads (for dense plans), and that
 * slm_model_load_gguf reads back with every plan (docs/format-gguf.md).
 *
 * Always written as general.architecture = "llama": mistral and qwen2 are
 * the same graph for llama.cpp's llama arch (q/k/v biases are optional
 * there), once q/k rows (and q/k biases) are in the ADJACENT RoPE layout,
 * so a HALVES model is permuted on the way out. Dropped blocks are omitted
 * and the rest renumbered (slimlm.source_blocks keeps the original index).
 * llama.cpp's llama graph has a single MLP width, so blocks narrower than
 * the widest kept one are zero-padded to it (same function) and their true
 * widths go in slimlm.feed_forward_length, which slimlm's loader applies.
 * With slm_save_params.gguf_mlp_per_block such a model is written instead
 * as general.architecture = "deci" (llama.cpp's DeciLM graph: the llama
 * block with per-layer hyper-parameters; same RoPE, norms, SwiGLU): keys
 * deci.* and deci.feed_forward_length an INT32 array of the true widths,
 * tensors unpadded. Matrices go in the
 * requested type (F32/F16/BF16/Q8_0; a Q8_0 matrix whose rows are not a
 * multiple of 32, e.g. a low-rank factor, falls back to F16), norms and
 * biases in F32. Low-rank linears W ~= A.B become blk.N.<proj>.lr_a.weight
 * (dims [rank, n_out]) and .lr_b.weight (dims [n_in, rank]) with
 * slimlm.lowrank = true; llama.cpp does not know those names.
 * Int8 models (dtype I8) add slimlm.int8 = true and, with grouped
 * activation scales, slimlm.int8.act_group = G and format version 2; an
 * int8 token embedding is token_embd.i8.* (no token_embd.weight) with
 * slimlm.int8.embd = true and format version 3, and when tied it is the
 * lm head too (no output.* tensors). Other dtypes write an int8 model's
 * dequantised values (a tied int8 embedding stays tied).
 */
#define _POSIX_C_SOURCE 200809L
#include "formats/gguf.h"
#include "model/linear_int8.h"
#include "model/loaders.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct saver {
    const slm_model *m;
    slm_gguf_writer *w;
    slm_dtype type;
    const char *path;
    const char *arch; /* "llama", or "deci" for per-block MLP widths */
    bool pad_ff;      /* zero-pad narrower MLPs to the widest kept block */
    float **tmp; /* permuted copies, freed after the write */
    int n_tmp, cap_tmp;
} saver;

/* llama.cpp's general.file_type (LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_BF16). */
static int file_type_of(slm_dtype t) {
    switch (t) {
    case SLM_DTYPE_F16: return 1;
    case SLM_DTYPE_Q8_0: return 7;
    case SLM_DTYPE_BF16: return 32;
    default: return 0;
    }
}

/* Registers p to be freed after the write; frees it and returns NULL on failure. */
static float *keep_tmp(saver *s, float *p) {
    if (p && s->n_tmp == s->cap_tmp) {
        int cap = s->cap_tmp ? s->cap_tmp * 2 : 64;
        float **t = realloc(s->tmp, (size_t)cap * sizeof *t);
        if (!t) {
            free(p);
            return NULL;
        }
        s->tmp = t;
        s->cap_tmp = cap;
    }
    if (p) s->tmp[s->n_tmp++] = p;
    return p;
}

static float *tmp_alloc(saver *s, size_t n) { return keep_tmp(s, slm_malloc(n * sizeof(float), "permuted tensor")); }

/* A matrix of rows x cols in the save type (F16 when its rows do not fit
 * the type's blocks), read from src_rows x src_cols at src (stride ld)
 * and zero-padded beyond. */
static bool exact_f16(const float *src, int64_t ld, int64_t rows, int64_t cols);

static slm_status add_matrix_padded(saver *s, const char *name, int64_t rows, int64_t cols, const float *src,
                                    int64_t ld, int64_t src_rows, int64_t src_cols) {
    slm_dtype t = s->type;
    /* int8 files (docs/int8.md): float matrices in F16 when that loses nothing */
    if (t == SLM_DTYPE_I8) t = exact_f16(src, ld, src_rows, src_cols) ? SLM_DTYPE_F16 : SLM_DTYPE_F32;
    if (cols % slm_dtype_get((int)t)->block_size != 0) t = SLM_DTYPE_F16;
    return slm_gguf_add_tensor_f32_padded(s->w, name, t, 2, cols, rows, src, ld, src_cols, src_rows);
}

static slm_status add_matrix(saver *s, const char *name, int64_t rows, int64_t cols, const float *src, int64_t ld) {
    return add_matrix_padded(s, name, rows, cols, src, ld, rows, cols);
}

static slm_status add_vector(saver *s, const char *name, int64_t n, const float *src) {
    return slm_gguf_add_tensor_f32(s->w, name, SLM_DTYPE_F32, 1, n, 1, src, n);
}

/* rows x cols at src (stride ld), q/k rows permuted to ADJACENT when the
 * model holds them as HALVES. Returns the pointer to write and its stride. */
static const float *rope_rows(saver *s, bool qk, int n_head, const float *src, int64_t rows, int64_t cols,
                              int64_t *ld) {
    if (!qk || s->m->cfg.rope_layout == SLM_ROPE_ADJACENT) return src;
    float *packed = tmp_alloc(s, (size_t)rows * (size_t)cols), *dst = tmp_alloc(s, (size_t)rows * (size_t)cols);
    if (!packed || !dst) {
        slm_fail(SLM_ERR_NOMEM, "%s: out of memory permuting q/k rows", s->path);
        return NULL;
    }
    for (int64_t r = 0; r < rows; r++) memcpy(packed + r * cols, src + r * *ld, (size_t)cols * sizeof(float));
    slm_rope_permute_rows(packed, dst, n_head, s->m->cfg.head_dim, cols, true);
    *ld = cols;
    return dst;
}

/* ---- int8 linears (docs/int8.md) ---------------------------------------------------- */

/* Whether every value survives fp16 unchanged. */
static bool exact_f16(const float *src, int64_t ld, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            float v = src[r * ld + c];
            if (slm_fp16_to_fp32(slm_fp32_to_fp16(v)) != v) return false;
        }
    return true;
}

/* Registers a byte buffer to free after the write. */
static void *tmp_bytes(saver *s, size_t n) { return keep_tmp(s, slm_calloc(n ? n : 1, 1, "int8 tensor copy")); }

/* Writes q as <prefix>.i8.* with rows_out x cols_out (zero-padded beyond
 * rows x cols, the part the linear uses); q/k rows permuted to ADJACENT
 * when perm_heads > 0. Copies only when something must change. */
static slm_status add_i8_matrix(saver *s, const char *prefix, const slm_i8_matrix *q, int rows, int cols,
                                int rows_out, int cols_out, int perm_heads) {
    int n_o = 0;
    while (n_o < q->n_outl && q->outl_idx[n_o] < cols) n_o++;
    const int8_t *qv = q->q;
    const float *sc = q->scale, *ow = q->outl_w;
    int64_t ldq = q->ld, ldo = q->n_outl;
    if (perm_heads || rows_out != q->rows || rows != q->rows || cols_out != q->cols || cols != q->cols || n_o != q->n_outl) {
        int8_t *nq = tmp_bytes(s, (size_t)rows_out * cols_out);
        float *nsc = tmp_bytes(s, sizeof(float) * (size_t)rows_out);
        float *now = tmp_bytes(s, sizeof(float) * (size_t)rows_out * (n_o ? n_o : 1));
        if (!nq || !nsc || !now) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory copying %s", s->path, prefix);
        const int Dh = s->m->cfg.head_dim, half = Dh / 2;
        for (int r = 0; r < rows; r++) {
            /* llama.cpp's permute: written row (h, j, i) is source row (h, i, j) of [H][2][Dh/2] */
            int src = perm_heads ? r / Dh * Dh + (r % Dh % 2) * half + (r % Dh) / 2 : r;
            memcpy(nq + (int64_t)r * cols_out, q->q + (int64_t)src * q->ld, (size_t)cols);
            nsc[r] = q->scale[src];
            for (int j = 0; j < n_o; j++) now[(int64_t)r * n_o + j] = q->outl_w[(int64_t)src * q->n_outl + j];
        }
        qv = nq, sc = nsc, ow = now, ldq = cols_out, ldo = n_o;
    }
    char name[192];
    slm_status st;
    snprintf(name, sizeof name, "%s.i8.weight", prefix);
    if ((st = slm_gguf_add_tensor_raw(s->w, name, SLM_DTYPE_I8, 2, cols_out, rows_out, qv, (size_t)ldq))) return st;
    snprintf(name, sizeof name, "%s.i8.scale", prefix);
    if ((st = slm_gguf_add_tensor_raw(s->w, name, SLM_DTYPE_F32, 1, rows_out, 1, sc, 0))) return st;
    if (n_o == 0) return SLM_OK;
    snprintf(name, sizeof name, "%s.i8.outlier_cols", prefix);
    if ((st = slm_gguf_add_tensor_raw(s->w, name, SLM_DTYPE_I32, 1, n_o, 1, q->outl_idx, 0))) return st;
    snprintf(name, sizeof name, "%s.i8.outlier.weight", prefix);
    return slm_gguf_add_tensor_raw(s->w, name, SLM_DTYPE_F32, 2, n_o, rows_out, ow, sizeof(float) * (size_t)ldo);
}

/* An INT8 linear in the int8 layout: W, or the factors A (lr_a) and B
 * (lr_b); padding and q/k row order as add_linear does for fp32. */
static slm_status add_linear_int8(saver *s, int out_b, const slm_linear *l, slm_proj p, int ff_pad) {
    const slm_config *c = &s->m->cfg;
    const int rows = p == SLM_PROJ_GATE || p == SLM_PROJ_UP ? ff_pad : l->n_out;
    const int cols = p == SLM_PROJ_DOWN ? ff_pad : l->n_in;
    const bool qk = (p == SLM_PROJ_Q || p == SLM_PROJ_K) && c->rope_layout == SLM_ROPE_HALVES;
    const int n_head = p == SLM_PROJ_Q ? c->n_heads : c->n_kv_heads;
    const char *pn = slm_proj_gguf_name(p);
    char pre[96];
    slm_status st;
    if (l->rank == 0) {
        snprintf(pre, sizeof pre, "blk.%d.%s", out_b, pn);
        st = add_i8_matrix(s, pre, l->i8[0], l->n_out, l->n_in, rows, cols, qk ? n_head : 0);
    } else {
        snprintf(pre, sizeof pre, "blk.%d.%s.lr_a", out_b, pn);
        st = add_i8_matrix(s, pre, l->i8[1], l->n_out, l->rank, rows, l->rank, qk ? n_head : 0);
        snprintf(pre, sizeof pre, "blk.%d.%s.lr_b", out_b, pn);
        if (!st) st = add_i8_matrix(s, pre, l->i8[0], l->rank, l->n_in, l->rank, cols, 0);
    }
    if (st || !l->bias) return st;
    int64_t one = 1;
    const float *bias = rope_rows(s, qk, n_head, l->bias, l->n_out, 1, &one);
    if (!bias) return SLM_ERR_NOMEM;
    char name[128];
    snprintf(name, sizeof name, "blk.%d.%s.bias", out_b, pn);
    return add_vector(s, name, l->n_out, bias);
}

static bool lm_head_int8(const slm_model *m) { return m->lm_head_q.kind == SLM_LINEAR_INT8 && m->lm_head_q.qw; }

/* An int8 lm head: output.i8.* in an int8 file; otherwise output.weight
 * holding its dequantised values (so the file computes what the int8 model
 * does; the model becomes untied). */
static slm_status add_lm_head_int8(saver *s) {
    const slm_model *m = s->m;
    const int V = m->cfg.n_vocab, D = m->cfg.d_model;
    if (!lm_head_int8(m) || m->lm_head_q.i8[0] == m->tok_embd_i8) return SLM_OK; /* tied: token_embd is the head */
    if (s->type == SLM_DTYPE_I8) return add_i8_matrix(s, "output", m->lm_head_q.i8[0], V, D, V, D, 0);
    float *w = tmp_alloc(s, (size_t)V * D);
    if (!w) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory dequantising the lm head", s->path);
    slm_i8_matrix_dequantize(m->lm_head_q.i8[0], w, D);
    return add_matrix(s, "output.weight", V, D, w, D);
}

/* The token embedding: token_embd.weight, or an int8 one as token_embd.i8.*
 * in an int8 file and its dequantised values in any other. */
static slm_status add_embedding(saver *s) {
    const slm_model *m = s->m;
    const int V = m->cfg.n_vocab, D = m->cfg.d_model;
    if (m->tok_embd_i8 && s->type == SLM_DTYPE_I8) return add_i8_matrix(s, "token_embd", m->tok_embd_i8, V, D, V, D, 0);
    const float *e;
    float *buf;
    slm_status st = slm_model_embd_f32(m, &e, &buf);
    if (st) return st;
    if (buf && !keep_tmp(s, buf)) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", s->path);
    return add_matrix(s, "token_embd.weight", V, D, e, D);
}

/* One projection of a kept block; gate/up rows and down columns are padded
 * with zeros to ff_pad (the written MLP width): the zero channels add
 * nothing (silu(0) * 0 = 0), so the function is unchanged. */
static slm_status add_linear(saver *s, int out_b, const slm_linear *l, slm_proj p, int ff_pad) {
    const slm_config *c = &s->m->cfg;
    /* an INT8 linear: the int8 layout in an int8 file, else its dequantised values */
    slm_linear dq8;
    float *b0, *b1;
    if (l->kind == SLM_LINEAR_INT8 && s->type == SLM_DTYPE_I8) return add_linear_int8(s, out_b, l, p, ff_pad);
    if (l->kind == SLM_LINEAR_INT8) {
        slm_status st8 = slm_linear_int8_dequantized(l, &dq8, &b0, &b1);
        if (st8) return st8;
        if (!keep_tmp(s, b0) || (b1 && !keep_tmp(s, b1))) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", s->path);
        l = &dq8;
    }
    /* a QBLOCK linear is written from its dequantised values (the buffer
     * lives until the file is written, like the permuted copies) */
    slm_linear dq;
    float *dq_buf;
    slm_status st = slm_linear_dequantized(l, &dq, &dq_buf);
    if (st) return st;
    if (dq_buf && !keep_tmp(s, dq_buf)) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", s->path);
    l = &dq;
    int64_t rows = p == SLM_PROJ_GATE || p == SLM_PROJ_UP ? ff_pad : l->n_out;
    int64_t cols = p == SLM_PROJ_DOWN ? ff_pad : l->n_in;
    const char *pn = slm_proj_gguf_name(p);
    bool qk = p == SLM_PROJ_Q || p == SLM_PROJ_K;
    int n_head = p == SLM_PROJ_Q ? c->n_heads : c->n_kv_heads;
    char name[128];
    if (l->kind == SLM_LINEAR_LOWRANK) {
        int64_t lda = l->rank;
        const float *a = rope_rows(s, qk, n_head, l->a, l->n_out, l->rank, &lda);
        if (!a) return SLM_ERR_NOMEM;
        snprintf(name, sizeof name, "blk.%d.%s.lr_a.weight", out_b, pn);
        if ((st = add_matrix_padded(s, name, rows, l->rank, a, lda, l->n_out, l->rank))) return st;
        snprintf(name, sizeof name, "blk.%d.%s.lr_b.weight", out_b, pn);
        st = add_matrix_padded(s, name, l->rank, cols, l->b, l->ld_b, l->rank, l->n_in);
    } else {
        int64_t ld = l->ld_w;
        const float *w = rope_rows(s, qk, n_head, l->w, l->n_out, l->n_in, &ld);
        if (!w) return SLM_ERR_NOMEM;
        snprintf(name, sizeof name, "blk.%d.%s.weight", out_b, pn);
        st = add_matrix_padded(s, name, rows, cols, w, ld, l->n_out, l->n_in);
    }
    if (st || !l->bias) return st;
    int64_t one = 1;
    const float *bias = rope_rows(s, qk, n_head, l->bias, l->n_out, 1, &one);
    if (!bias) return SLM_ERR_NOMEM;
    snprintf(name, sizeof name, "blk.%d.%s.bias", out_b, pn);
    return add_vector(s, name, l->n_out, bias);
}

/* LLaMA 3.1 frequency factors as convert_hf_to_gguf.py computes them, for
 * a model whose config asks for llama3 scaling but has no rope_freqs. */
static const float *llama3_factors(saver *s) {
    const slm_config *c = &s->m->cfg;
    int half = c->head_dim / 2;
    float *f = tmp_alloc(s, (size_t)half);
    if (!f) return NULL;
    double lo_wl = c->rope_orig_ctx / c->rope_low_freq_factor, hi_wl = c->rope_orig_ctx / c->rope_high_freq_factor;
    for (int i = 0; i < half; i++) {
        double freq = 1.0 / pow(c->rope_theta, (2.0 * i) / c->head_dim), wl = 2.0 * 3.14159265358979323846 / freq;
        if (wl < hi_wl) f[i] = 1.0f;
        else if (wl > lo_wl) f[i] = c->rope_factor;
        else {
            double sm = (c->rope_orig_ctx / wl - c->rope_low_freq_factor) /
                        (c->rope_high_freq_factor - c->rope_low_freq_factor);
            f[i] = (float)(1.0 / ((1.0 - sm) / c->rope_factor + sm));
        }
    }
    return f;
}

static int max_width(const int *ff, int n) {
    int mx = 0;
    for (int i = 0; i < n; i++) mx = ff[i] > mx ? ff[i] : mx;
    return mx;
}

/* "<arch>.<suffix>" in a rotating buffer (two live at once at most). */
static const char *akey(const saver *s, const char *suffix) {
    static _Thread_local char buf[2][128];
    static _Thread_local int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s.%s", s->arch, suffix);
    return buf[k];
}

static slm_status add_metadata(saver *s, int n_kept, const int *kept_ff, const int32_t *src_blocks) {
    const slm_model *m = s->m;
    const slm_config *c = &m->cfg;
    slm_gguf_writer *w = s->w;
    const char *base = m->path ? strrchr(m->path, '/') : NULL;
    base = base ? base + 1 : m->path ? m->path : "slimlm model";
    bool same_ff = true, lowrank = false;
    for (int i = 1; i < n_kept; i++) same_ff = same_ff && kept_ff[i] == kept_ff[0];
    for (int i = 0; i < c->n_layers; i++)
        for (int p = 0; p < SLM_PROJ_COUNT; p++) lowrank |= m->blocks[i].kept && m->blocks[i].lin[p].kind == SLM_LINEAR_LOWRANK;
    slm_status st = SLM_OK;
#define SET(call) do { if (!st) st = (call); } while (0)
    SET(slm_gguf_set_str(w, "general.architecture", s->arch));
    SET(slm_gguf_set_str(w, "general.name", base));
    SET(slm_gguf_set_u32(w, "general.file_type", (uint32_t)file_type_of(s->type)));
    if (s->type == SLM_DTYPE_Q8_0) SET(slm_gguf_set_u32(w, "general.quantization_version", 2));
    SET(slm_gguf_set_u32(w, akey(s, "context_length"), (uint32_t)c->max_ctx));
    SET(slm_gguf_set_u32(w, akey(s, "embedding_length"), (uint32_t)c->d_model));
    SET(slm_gguf_set_u32(w, akey(s, "block_count"), (uint32_t)n_kept));
    if (s->pad_ff) {
        /* llama.cpp's llama graph has one MLP width: narrower blocks are padded
         * to the widest and their true widths kept in slimlm.feed_forward_length */
        SET(slm_gguf_set_u32(w, akey(s, "feed_forward_length"), (uint32_t)max_width(kept_ff, n_kept)));
        if (!same_ff) SET(slm_gguf_set_arr(w, "slimlm.feed_forward_length", SLM_GGUF_INT32, kept_ff, (uint64_t)n_kept));
    } else {
        SET(slm_gguf_set_arr(w, akey(s, "feed_forward_length"), SLM_GGUF_INT32, kept_ff, (uint64_t)n_kept));
    }
    SET(slm_gguf_set_u32(w, akey(s, "attention.head_count"), (uint32_t)c->n_heads));
    SET(slm_gguf_set_u32(w, akey(s, "attention.head_count_kv"), (uint32_t)c->n_kv_heads));
    SET(slm_gguf_set_f32(w, akey(s, "attention.layer_norm_rms_epsilon"), c->norm_eps));
    SET(slm_gguf_set_f32(w, akey(s, "rope.freq_base"), c->rope_theta));
    SET(slm_gguf_set_u32(w, akey(s, "rope.dimension_count"), (uint32_t)c->head_dim));
    if (c->head_dim * c->n_heads != c->d_model) {
        SET(slm_gguf_set_u32(w, akey(s, "attention.key_length"), (uint32_t)c->head_dim));
        SET(slm_gguf_set_u32(w, akey(s, "attention.value_length"), (uint32_t)c->head_dim));
    }
    SET(slm_gguf_set_u32(w, akey(s, "vocab_size"), (uint32_t)c->n_vocab));
    if (c->rope_scaling == SLM_ROPE_SCALING_LINEAR) {
        SET(slm_gguf_set_str(w, akey(s, "rope.scaling.type"), "linear"));
        SET(slm_gguf_set_f32(w, akey(s, "rope.scaling.factor"), c->rope_factor));
    }
    /* the tokenizer (written below when present) sets these too; without
     * one they still keep the config's special ids */
    if (c->bos_id >= 0) SET(slm_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos_id));
    if (c->eos_id >= 0) SET(slm_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos_id));
    /* version 2: the int8 linears need grouped activation scales to be
     * computed as made (readers before it ignore the key and quantise per
     * token: the same weights, a coarser product; docs/int8.md) */
    /* version 3: an int8 token embedding (token_embd.i8.*, no float
     * token_embd.weight), which readers before it cannot load */
    const int act_group = s->type == SLM_DTYPE_I8 ? slm_model_int8_act_group(m) : 0;
    const bool embd8 = s->type == SLM_DTYPE_I8 && m->tok_embd_i8;
    SET(slm_gguf_set_u32(w, "slimlm.format_version", embd8 ? 3 : act_group > 0 ? 2 : 1));
    if (act_group > 0) SET(slm_gguf_set_u32(w, "slimlm.int8.act_group", (uint32_t)act_group));
    if (embd8) SET(slm_gguf_set_bool(w, "slimlm.int8.embd", true));
    if (n_kept != c->n_layers) SET(slm_gguf_set_arr(w, "slimlm.source_blocks", SLM_GGUF_INT32, src_blocks, (uint64_t)n_kept));
    if (lowrank) SET(slm_gguf_set_bool(w, "slimlm.lowrank", true));
    if (s->type == SLM_DTYPE_I8) SET(slm_gguf_set_bool(w, "slimlm.int8", true));
#undef SET
    if (!st && m->tok) st = slm_tokenizer_write_gguf(m->tok, w);
    /* slimlm reads such a file, llama.cpp refuses it (tokenizer.ggml.model
     * missing): say so rather than leave a file that fails elsewhere */
    if (!st && !m->tok)
        fprintf(stderr, "warning: %s: the model has no tokenizer, so the GGUF has none; llama.cpp will not load it\n",
                s->path);
    return st;
}

static slm_status add_tensors(saver *s, const int32_t *src_blocks, const int *kept_ff, int n_kept) {
    int ff_pad = max_width(kept_ff, n_kept);
    const slm_model *m = s->m;
    const slm_config *c = &m->cfg;
    slm_status st = add_embedding(s);
    if (!st) st = add_vector(s, "output_norm.weight", c->d_model, m->out_norm);
    if (!st && m->lm_head && m->lm_head != m->tok_embd && !(lm_head_int8(m) && s->type != SLM_DTYPE_I8))
        st = add_matrix(s, "output.weight", c->n_vocab, c->d_model, m->lm_head, c->d_model);
    if (!st) st = add_lm_head_int8(s);
    const float *freqs = m->rope_freqs;
    if (!st && !freqs && c->rope_scaling == SLM_ROPE_SCALING_LLAMA3 &&
        !(c->rope_orig_ctx > 0 && c->rope_low_freq_factor > 0 && c->rope_high_freq_factor > c->rope_low_freq_factor))
        st = slm_fail(SLM_ERR_ARG, "%s: llama3 rope scaling without valid low/high frequency factors", s->path);
    if (!st && !freqs && c->rope_scaling == SLM_ROPE_SCALING_LLAMA3 && !(freqs = llama3_factors(s)))
        st = slm_fail(SLM_ERR_NOMEM, "%s: out of memory", s->path);
    if (!st && freqs) st = add_vector(s, "rope_freqs.weight", c->head_dim / 2, freqs);
    for (int j = 0; j < n_kept && !st; j++) {
        const slm_block *b = &m->blocks[src_blocks[j]];
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", j);
        st = add_vector(s, name, c->d_model, b->attn_norm);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", j);
        if (!st) st = add_vector(s, name, c->d_model, b->ffn_norm);
        int ff = s->pad_ff ? ff_pad : b->d_ff;
        for (int p = 0; p < SLM_PROJ_COUNT && !st; p++) st = add_linear(s, j, &b->lin[p], (slm_proj)p, ff);
    }
    return st;
}

slm_status slm_model_save_gguf(const slm_model *m, const char *path, const slm_save_params *p) {
    slm_save_params def = slm_save_default_params();
    if (!p) p = &def;
    const slm_dtype_traits *tr = slm_dtype_get(p->dtype);
    if (!tr || !tr->from_float)
        return slm_fail(SLM_ERR_ARG, "%s: cannot write weights as %s (F32, F16, BF16 or Q8_0)", path,
                        tr ? tr->name : "an unknown type");
    slm_status st = slm_model_validate(m);
    if (st) return st;
    const slm_config *c = &m->cfg;
    saver s = {.m = m, .type = (slm_dtype)p->dtype, .path = path, .arch = "llama", .pad_ff = true};
    int *kept_ff = slm_calloc((size_t)c->n_layers, sizeof *kept_ff, "block widths");
    int32_t *src_blocks = slm_calloc((size_t)c->n_layers, sizeof *src_blocks, "block map");
    s.w = slm_gguf_writer_new();
    int n_kept = 0;
    if (!kept_ff || !src_blocks || !s.w) st = SLM_ERR_NOMEM;
    for (int i = 0; !st && i < c->n_layers; i++)
        if (m->blocks[i].kept) {
            kept_ff[n_kept] = m->blocks[i].d_ff;
            src_blocks[n_kept++] = i;
        }
    if (!st && n_kept == 0) st = slm_fail(SLM_ERR_ARG, "%s: every block is dropped", path);
    for (int i = 1; !st && p->gguf_mlp_per_block && i < n_kept; i++)
        if (kept_ff[i] != kept_ff[0]) {
            s.arch = "deci";
            s.pad_ff = false;
        }
    if (!st) st = add_metadata(&s, n_kept, kept_ff, src_blocks);
    if (!st) st = add_tensors(&s, src_blocks, kept_ff, n_kept);
    if (!st) st = slm_gguf_writer_write(s.w, path);
    slm_gguf_writer_free(s.w);
    for (int i = 0; i < s.n_tmp; i++) free(s.tmp[i]);
    free(s.tmp);
    free(kept_ff);
    free(src_blocks);
    return st;
}
