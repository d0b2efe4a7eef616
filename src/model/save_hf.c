/* model -> Hugging Face directory: model.safetensors + config.json (+ the
 * tokenizer files of an HF source), loadable by transformers'
 * LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM.
 *
 * What the plan becomes (see docs/format-hf.md):
 *   dropped blocks      omitted; kept blocks renumbered 0..; num_hidden_layers = kept
 *   MLP width           intermediate_size = the kept blocks' common width; HF has
 *                       one width per model, so differing widths are refused
 *   low-rank linears    <proj>.lr_a.weight [n_out, r] and <proj>.lr_b.weight [r, n_in]
 *                       (W = A . B) and __metadata__ "slimlm.lowrank" = "1";
 *                       load_hf.c reads them back, transformers does not
 *   q/k rows            un-permuted to HF's half-split layout when the model
 *                       holds llama.cpp's adjacent-pair layout
 *   dtype               every tensor in F32, F16 or BF16 (as transformers saves)
 *
 * Written atomically: everything goes into "<dir>.tmp.<pid>" which is then
 * renamed onto dir. When dir already exists with content, each finished file
 * is renamed into it instead (every file replaced whole, never half).
 */
#define _POSIX_C_SOURCE 200809L
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "model/loaders.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Files copied from an HF source directory when present. */
static const char *const k_tokenizer_files[] = {"tokenizer.json", "tokenizer_config.json",
                                                "special_tokens_map.json", "generation_config.json"};
#define N_TOKENIZER_FILES (sizeof k_tokenizer_files / sizeof k_tokenizer_files[0])
/* Everything this writer may put in the directory (for the move step). */
static const char *const k_model_files[] = {"model.safetensors", "config.json"};

#define HF_NAME_MAX 256

static const char *torch_dtype_name(int dtype) {
    switch (dtype) {
    case SLM_DTYPE_F32: return "float32";
    case SLM_DTYPE_F16: return "float16";
    case SLM_DTYPE_BF16: return "bfloat16";
    }
    return NULL;
}

/* ---- tensors ----------------------------------------------------------- */

typedef struct hf_writer {
    slm_st_writer *st;
    slm_dtype dtype;
    const slm_model *m;
} hf_writer;

static slm_status add_1d(hf_writer *w, const char *name, const float *v, int64_t n) {
    return slm_st_writer_add(w->st, name, w->dtype, 1, &n, v, n, false);
}

static slm_status add_2d(hf_writer *w, const char *name, const float *v, int64_t rows, int64_t cols, int64_t ld,
                         bool owned) {
    const int64_t shape[2] = {rows, cols};
    return slm_st_writer_add(w->st, name, w->dtype, 2, shape, v, ld, owned);
}

/* rows x ld floats with the q/k rows moved from adjacent pairs to halves;
 * NULL on allocation failure. n_head: H for q, Hkv for k. */
static float *unpermute(const float *src, int n_head, int head_dim, int64_t ld, const char *name) {
    size_t n;
    if (!slm_mul_ok((size_t)n_head * (size_t)head_dim, (size_t)ld, &n) || !slm_mul_ok(n, sizeof(float), &n)) {
        slm_fail(SLM_ERR_NOMEM, "size overflow un-permuting %s", name);
        return NULL;
    }
    float *dst = slm_aligned_alloc(n, name);
    if (dst) slm_rope_permute_rows(src, dst, n_head, head_dim, ld, false);
    return dst;
}

/* One linear: dense W, or the two low-rank factors. For q/k of an
 * adjacent-layout model the output rows (W's rows, A's rows, the bias) are
 * put back into HF order. */
static slm_status add_linear(hf_writer *w, const slm_linear *l, const char *prefix, int n_head_perm) {
    char name[HF_NAME_MAX + 16];
    /* a QBLOCK linear is written from its dequantised values (dq_buf: given
     * to the writer, or freed once un-permuted) */
    slm_linear dq;
    float *dq_buf;
    slm_status st = slm_linear_dequantized(l, &dq, &dq_buf);
    if (st) return st;
    l = &dq;
    const int Dh = w->m->cfg.head_dim;
    bool perm = n_head_perm > 0;
    bool lr = l->kind == SLM_LINEAR_LOWRANK;
    const float *rows_src = lr ? l->a : l->w;
    int64_t cols = lr ? l->rank : l->n_in, ld = lr ? l->rank : l->ld_w;
    snprintf(name, sizeof name, lr ? "%s.lr_a.weight" : "%s.weight", prefix);
    if (l->kind != SLM_LINEAR_DENSE && !lr)
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: linear kind %d cannot be written to safetensors", prefix, (int)l->kind);
    if (perm) {
        float *p = unpermute(rows_src, n_head_perm, Dh, ld, name);
        free(dq_buf);
        st = p ? add_2d(w, name, p, l->n_out, cols, ld, true) : SLM_ERR_NOMEM;
    } else {
        st = add_2d(w, name, rows_src, l->n_out, cols, ld, dq_buf != NULL);
    }
    if (!st && lr) {
        snprintf(name, sizeof name, "%s.lr_b.weight", prefix);
        st = add_2d(w, name, l->b, l->rank, l->n_in, l->ld_b, false);
    }
    if (st || !l->bias) return st;
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (!perm) return add_1d(w, name, l->bias, l->n_out);
    float *pb = unpermute(l->bias, n_head_perm, Dh, 1, name);
    int64_t n = l->n_out;
    return pb ? slm_st_writer_add(w->st, name, w->dtype, 1, &n, pb, n, true) : SLM_ERR_NOMEM;
}

static slm_status add_tensors(hf_writer *w, bool *any_lowrank) {
    const slm_model *m = w->m;
    const slm_config *c = &m->cfg;
    slm_status st;
    const int64_t V = c->n_vocab, D = c->d_model;
    if (m->tok_embd_i8) /* as for int8 linears: safetensors holds float weights */
        return slm_fail(SLM_ERR_UNSUPPORTED, "the int8 token embedding cannot be written to safetensors");
    if ((st = add_2d(w, "model.embed_tokens.weight", m->tok_embd, V, D, D, false))) return st;
    int out = 0;
    char name[HF_NAME_MAX];
    for (int i = 0; i < c->n_layers; i++) {
        const slm_block *b = &m->blocks[i];
        if (!b->kept) continue;
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", out);
        if ((st = add_1d(w, name, b->attn_norm, D))) return st;
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", out);
        if ((st = add_1d(w, name, b->ffn_norm, D))) return st;
        for (int p = 0; p < SLM_PROJ_COUNT; p++) {
            int n_head_perm = 0;
            if (c->rope_layout == SLM_ROPE_ADJACENT && p == SLM_PROJ_Q) n_head_perm = c->n_heads;
            if (c->rope_layout == SLM_ROPE_ADJACENT && p == SLM_PROJ_K) n_head_perm = c->n_kv_heads;
            snprintf(name, sizeof name, "model.layers.%d.%s", out, slm_proj_hf_name((slm_proj)p));
            if ((st = add_linear(w, &b->lin[p], name, n_head_perm))) return st;
            if (b->lin[p].kind == SLM_LINEAR_LOWRANK) *any_lowrank = true;
        }
        out++;
    }
    if ((st = add_1d(w, "model.norm.weight", m->out_norm, D))) return st;
    if (!c->tied_embeddings) st = add_2d(w, "lm_head.weight", m->lm_head, V, D, D, false);
    return st;
}

/* The config as HF sees the plan: kept blocks only, their common MLP width. */
static slm_status plan_config(const slm_model *m, const char *dir, slm_config *out) {
    *out = m->cfg;
    int kept = 0, width = 0;
    for (int i = 0; i < m->cfg.n_layers; i++) {
        const slm_block *b = &m->blocks[i];
        if (!b->kept) continue;
        if (kept && b->d_ff != width)
            return slm_fail(SLM_ERR_UNSUPPORTED,
                            "%s: blocks have different MLP widths (%d and %d); an HF Llama config has one "
                            "intermediate_size (save as GGUF instead)", dir, width, b->d_ff);
        width = b->d_ff;
        kept++;
    }
    if (!kept) return slm_fail(SLM_ERR_ARG, "%s: the model keeps no blocks", dir);
    /* GGUF llama3 models carry their frequency factors as a tensor; config.json
     * can only say so through llama3 rope_scaling parameters. */
    if (m->rope_freqs && m->cfg.rope_scaling != SLM_ROPE_SCALING_LLAMA3)
        return slm_fail(SLM_ERR_UNSUPPORTED,
                        "%s: the model's per-frequency RoPE factors (rope_freqs) have no llama3 rope_scaling "
                        "parameters to write to config.json", dir);
    out->n_layers = kept;
    out->d_ff = width;
    out->rope_layout = SLM_ROPE_HALVES;
    return SLM_OK;
}

/* ---- files and directories --------------------------------------------- */

static char *join_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = slm_malloc(n, "path");
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static slm_status write_text(const char *dir, const char *name, const char *text) {
    char *path = join_path(dir, name);
    if (!path) return SLM_ERR_NOMEM;
    slm_atomic_file af;
    slm_status st = slm_atomic_open(path, &af);
    if (!st) st = slm_atomic_write(&af, text, strlen(text));
    if (!st) st = slm_atomic_commit(&af);
    else if (af.f) slm_atomic_abort(&af);
    free(path);
    return st;
}

static slm_status copy_file(const char *from, const char *dir, const char *name) {
    char *text = NULL;
    size_t len = 0;
    slm_status st = slm_read_file(from, &text, &len);
    if (st) return st;
    char *path = join_path(dir, name);
    slm_atomic_file af;
    st = path ? slm_atomic_open(path, &af) : SLM_ERR_NOMEM;
    if (!st) {
        st = slm_atomic_write(&af, text, len);
        if (!st) st = slm_atomic_commit(&af);
        else slm_atomic_abort(&af);
    }
    free(path);
    free(text);
    return st;
}

/* The directory an HF-loaded model came from, or NULL (GGUF or unknown). */
static char *source_dir(const slm_model *m) {
    if (!m->path || strncmp(m->format, "safetensors", 11) != 0) return NULL;
    struct stat st;
    if (stat(m->path, &st) != 0) return NULL;
    if (S_ISDIR(st.st_mode)) return strdup(m->path);
    const char *slash = strrchr(m->path, '/');
    return slash ? strndup(m->path, (size_t)(slash - m->path)) : strdup(".");
}

static slm_status copy_tokenizer_files(const slm_model *m, const char *tmp) {
    char *src = source_dir(m);
    slm_status st = SLM_OK;
    for (size_t i = 0; src && i < N_TOKENIZER_FILES && !st; i++) {
        char *from = join_path(src, k_tokenizer_files[i]);
        if (!from) st = SLM_ERR_NOMEM;
        else if (access(from, R_OK) == 0) st = copy_file(from, tmp, k_tokenizer_files[i]);
        free(from);
    }
    free(src);
    return st;
}

/* Removes the files this writer may have created in tmp, then tmp itself. */
static void remove_tmp_dir(const char *tmp) {
    for (size_t i = 0; i < 2 + N_TOKENIZER_FILES; i++) {
        char *p = join_path(tmp, i < 2 ? k_model_files[i] : k_tokenizer_files[i - 2]);
        if (p) remove(p);
        free(p);
    }
    rmdir(tmp);
}

static bool dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return false;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = false;
    closedir(d);
    return empty;
}

/* Puts the finished tmp dir at dir: one rename when dir is absent or empty,
 * else file by file (each rename atomic). */
static slm_status publish(const char *tmp, const char *dir) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return slm_fail(SLM_ERR_IO, "%s: exists and is not a directory", dir);
        if (dir_is_empty(dir)) rmdir(dir);
    }
    if (rename(tmp, dir) == 0) return SLM_OK;
    if (errno != ENOTEMPTY && errno != EEXIST) return slm_fail(SLM_ERR_IO, "%s: rename failed: %s", dir, strerror(errno));
    for (size_t i = 0; i < 2 + N_TOKENIZER_FILES; i++) {
        const char *nm = i < 2 ? k_model_files[i] : k_tokenizer_files[i - 2];
        char *from = join_path(tmp, nm), *to = join_path(dir, nm);
        slm_status s = (from && to) ? SLM_OK : SLM_ERR_NOMEM;
        if (!s && access(from, F_OK) == 0 && rename(from, to) != 0)
            s = slm_fail(SLM_ERR_IO, "%s: rename failed: %s", to, strerror(errno));
        free(from);
        free(to);
        if (s) return s;
    }
    rmdir(tmp);
    return SLM_OK;
}

slm_status slm_model_save_hf(const slm_model *m, const char *dir, const slm_save_params *p) {
    const char *tdt = torch_dtype_name(p->dtype);
    if (!tdt)
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: safetensors output supports dtypes f32, f16, bf16 (q8_0 is GGUF only)",
                        dir);
    struct stat sb;
    if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
        return slm_fail(SLM_ERR_IO, "%s: exists and is not a directory", dir);
    slm_config cfg;
    slm_status st = slm_model_validate(m);
    if (!st) st = plan_config(m, dir, &cfg);
    if (st) return st;

    size_t n = strlen(dir) + 32;
    char *tmp = slm_malloc(n, "path");
    if (!tmp) return SLM_ERR_NOMEM;
    snprintf(tmp, n, "%s.tmp.%ld", dir, (long)getpid());
    remove_tmp_dir(tmp); /* a leftover of an earlier crash with the same pid */
    if (mkdir(tmp, 0755) != 0) {
        st = slm_fail(SLM_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    hf_writer w = {.st = slm_st_writer_new(), .dtype = (slm_dtype)p->dtype, .m = m};
    bool any_lowrank = false;
    st = w.st ? SLM_OK : SLM_ERR_NOMEM;
    if (!st) st = slm_st_writer_meta(w.st, "format", "pt");
    if (!st) st = add_tensors(&w, &any_lowrank);
    if (!st && any_lowrank) st = slm_st_writer_meta(w.st, "slimlm.lowrank", "1");
    char *path = st ? NULL : join_path(tmp, "model.safetensors");
    if (!st) st = path ? slm_st_writer_write(w.st, path) : SLM_ERR_NOMEM;
    free(path);
    slm_st_writer_free(w.st);
    if (!st) {
        char *text = slm_hf_config_write(&cfg, tdt);
        st = text ? write_text(tmp, "config.json", text) : SLM_ERR_NOMEM;
        free(text);
    }
    if (!st) st = copy_tokenizer_files(m, tmp);
    if (!st) st = publish(tmp, dir);
    remove_tmp_dir(tmp); /* no-op after a whole-directory rename */
    free(tmp);
    return st;
}
