/* Hugging Face checkpoint -> model: config.json plus model.safetensors, or
 * model.safetensors.index.json with its shards (each mmap'd).
 *
 * Accepted paths: the directory; its config.json; a .safetensors file
 * (config.json must be beside it); a *.index.json file.
 *
 * Tensor names (HF shape [n_out, n_in]; N = block index):
 *   model.embed_tokens.weight                         [V, D]
 *   model.norm.weight                                 [D]
 *   lm_head.weight                                    [V, D] (absent when tied)
 *   model.layers.N.input_layernorm.weight             [D]
 *   model.layers.N.post_attention_layernorm.weight    [D]
 *   model.layers.N.self_attn.{q,k,v,o}_proj.weight    [H*Dh, D] [Hkv*Dh, D] x2, [D, H*Dh]
 *   model.layers.N.self_attn.{q,k,v}_proj.bias        qwen2 / attention_bias (o too for llama)
 *   model.layers.N.mlp.{gate,up,down}_proj.weight     [F, D] x2, [D, F]
 * slimlm's low-rank linears (written by save_hf.c), instead of .weight:
 *   <proj>.lr_a.weight [n_out, r] and <proj>.lr_b.weight [r, n_in], W = A . B.
 * Other tensors (e.g. rotary_emb.inv_freq of old checkpoints) are ignored.
 * HF q/k rows rotate half-split pairs: rope_layout HALVES.
 */
#define _POSIX_C_SOURCE 200809L
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "model/loaders.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HF_MAX_SHARDS 4096
#define HF_NAME_MAX 256

typedef struct hf_loader {
    char *dir;            /* the model directory */
    char *weights_path;   /* model.safetensors or the index file (for errors) */
    slm_st_file **files;  /* [n_files]: one, or one per shard */
    char **shard_names;   /* [n_files] file names as the index lists them (NULL: single file) */
    bool *zero_copy;      /* [n_files]: some tensor points into this mapping */
    int n_files;
    cJSON *index;         /* parsed index.json, NULL for a single file */
    const cJSON *weight_map;
    slm_model *m;
} hf_loader;

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static char *join_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = slm_malloc(n, "path");
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static void loader_free(hf_loader *L) {
    for (int i = 0; i < L->n_files; i++) {
        slm_st_close(L->files[i]);
        if (L->shard_names) free(L->shard_names[i]);
    }
    free(L->files);
    free(L->shard_names);
    free(L->zero_copy);
    cJSON_Delete(L->index);
    free(L->dir);
    free(L->weights_path);
}

/* ---- locating and opening the files ------------------------------------ */

/* weights_path for a directory: model.safetensors, else the shard index. */
static slm_status find_weights(hf_loader *L) {
    L->weights_path = join_path(L->dir, "model.safetensors");
    if (L->weights_path && !is_file(L->weights_path)) {
        free(L->weights_path);
        L->weights_path = join_path(L->dir, "model.safetensors.index.json");
        if (L->weights_path && !is_file(L->weights_path))
            return slm_fail(SLM_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", L->dir);
    }
    return L->weights_path ? SLM_OK : SLM_ERR_NOMEM;
}

static slm_status resolve_paths(hf_loader *L, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return slm_fail(SLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    bool is_dir = S_ISDIR(st.st_mode);
    L->dir = is_dir ? strdup(path) : dir_of(path);
    if (!L->dir) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (is_dir || strcmp(base, "config.json") == 0) return find_weights(L);
    if (!has_suffix(path, ".safetensors") && !has_suffix(path, ".index.json"))
        return slm_fail(SLM_ERR_ARG, "%s: not an HF model directory, .safetensors or .index.json file", path);
    L->weights_path = strdup(path);
    return L->weights_path ? SLM_OK : slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
}

static slm_status alloc_files(hf_loader *L, int n) {
    L->files = slm_calloc((size_t)n, sizeof *L->files, "shard table");
    L->zero_copy = slm_calloc((size_t)n, sizeof *L->zero_copy, "shard table");
    L->shard_names = slm_calloc((size_t)n, sizeof *L->shard_names, "shard table");
    return (L->files && L->zero_copy && L->shard_names) ? SLM_OK : SLM_ERR_NOMEM;
}

static int shard_index(const hf_loader *L, const char *name) {
    for (int i = 0; i < L->n_files; i++)
        if (strcmp(L->shard_names[i], name) == 0) return i;
    return -1;
}

/* Shards must be plain file names next to the index: no directories, so an
 * index cannot point the loader anywhere else on the disk. */
static bool shard_name_ok(const char *s) {
    return *s && *s != '.' && !strchr(s, '/') && strlen(s) < HF_NAME_MAX;
}

static slm_status open_sharded(hf_loader *L) {
    const char *ip = L->weights_path;
    char *text = NULL;
    size_t len = 0;
    slm_status st = slm_read_file(ip, &text, &len);
    if (st) return st;
    L->index = cJSON_ParseWithLength(text, len);
    free(text);
    if (!L->index) return slm_fail(SLM_ERR_FORMAT, "%s: not valid JSON", ip);
    L->weight_map = cJSON_GetObjectItemCaseSensitive(L->index, "weight_map");
    if (!cJSON_IsObject(L->weight_map)) return slm_fail(SLM_ERR_FORMAT, "%s: missing object 'weight_map'", ip);
    int n = cJSON_GetArraySize(L->weight_map);
    if ((st = alloc_files(L, n < HF_MAX_SHARDS ? n + 1 : HF_MAX_SHARDS))) return st;
    for (const cJSON *e = L->weight_map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !shard_name_ok(e->valuestring))
            return slm_fail(SLM_ERR_FORMAT, "%s: weight_map entry '%.128s' is not a shard file name in the same directory",
                            ip, e->string);
        if (shard_index(L, e->valuestring) >= 0) continue;
        if (L->n_files == HF_MAX_SHARDS) return slm_fail(SLM_ERR_FORMAT, "%s: more than %d shards", ip, HF_MAX_SHARDS);
        char *sp = join_path(L->dir, e->valuestring);
        L->shard_names[L->n_files] = strdup(e->valuestring);
        if (!sp || !L->shard_names[L->n_files]) {
            free(sp);
            return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", ip);
        }
        st = slm_st_open(sp, &L->files[L->n_files]);
        free(sp);
        L->n_files++; /* counted even on failure so loader_free frees the name */
        if (st) return st;
    }
    return SLM_OK;
}

static slm_status open_files(hf_loader *L) {
    if (has_suffix(L->weights_path, ".index.json")) return open_sharded(L);
    slm_status st = alloc_files(L, 1);
    if (st) return st;
    L->shard_names[0] = strdup("");
    if (!L->shard_names[0]) return slm_fail(SLM_ERR_NOMEM, "out of memory");
    L->n_files = 1;
    return slm_st_open(L->weights_path, &L->files[0]);
}

/* The tensor and the index of the file holding it, or NULL. */
static const slm_st_tensor *find_tensor(const hf_loader *L, const char *name, int *file) {
    *file = 0;
    if (!L->weight_map) return slm_st_find(L->files[0], name);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(L->weight_map, name);
    if (!e) return NULL;
    *file = shard_index(L, e->valuestring);
    return *file >= 0 ? slm_st_find(L->files[*file], name) : NULL;
}

/* ---- tensors ----------------------------------------------------------- */

static void format_shape(const slm_st_tensor *t, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->n_dims && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* Fetches name as fp32 with the expected shape [d0] (d1 < 0) or [d0, d1].
 * Absent: NULL when optional, else an error naming the tensor. */
static slm_status get_tensor(hf_loader *L, const char *name, int64_t d0, int64_t d1, bool optional, const float **out) {
    *out = NULL;
    int fi;
    const slm_st_tensor *t = find_tensor(L, name, &fi);
    if (!t) {
        if (optional) return SLM_OK;
        if (L->weight_map && cJSON_GetObjectItemCaseSensitive(L->weight_map, name))
            return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s' is listed in weight_map but missing from its shard",
                            L->weights_path, name);
        return slm_fail(SLM_ERR_FORMAT, "%s: missing tensor '%s'", L->weights_path, name);
    }
    const char *file = L->files[fi]->file.path;
    int want_dims = d1 < 0 ? 1 : 2;
    if (t->n_dims != want_dims || t->shape[0] != d0 || (d1 >= 0 && t->shape[1] != d1)) {
        char got[128];
        format_shape(t, got, sizeof got);
        if (d1 < 0)
            return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected [%lld]", file, name, got, (long long)d0);
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected [%lld, %lld]", file, name, got,
                        (long long)d0, (long long)d1);
    }
    slm_status st = slm_model_tensor_f32(L->m, t->data, t->type, t->n_elems, name, out);
    if (st) {
        slm_error_prefix(file);
        return st;
    }
    if ((const void *)*out == t->data) L->zero_copy[fi] = true;
    L->m->src_type_counts[t->type]++;
    return SLM_OK;
}

/* Dense <p>.weight, or slimlm's low-rank pair <p>.lr_a.weight / <p>.lr_b.weight. */
static slm_status get_linear(hf_loader *L, slm_linear *l, const char *prefix, bool bias, bool bias_required) {
    char name[HF_NAME_MAX + 16];
    int fi;
    snprintf(name, sizeof name, "%s.weight", prefix);
    slm_status st;
    if (find_tensor(L, name, &fi)) {
        l->kind = SLM_LINEAR_DENSE;
        l->ld_w = l->n_in;
        st = get_tensor(L, name, l->n_out, l->n_in, false, &l->w);
    } else {
        char nb[HF_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s.lr_a.weight", prefix);
        snprintf(nb, sizeof nb, "%s.lr_b.weight", prefix);
        const slm_st_tensor *a = find_tensor(L, name, &fi);
        if (!a) {
            snprintf(name, sizeof name, "%s.weight", prefix);
            return get_tensor(L, name, l->n_out, l->n_in, false, &l->w); /* reports it missing */
        }
        int64_t r = a->n_dims == 2 ? a->shape[1] : 0;
        if (r <= 0 || r > l->n_out || r > l->n_in)
            return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': low-rank factor rank out of range (1..%d)",
                            L->files[fi]->file.path, name, l->n_out < l->n_in ? l->n_out : l->n_in);
        l->kind = SLM_LINEAR_LOWRANK;
        l->rank = (int)r;
        l->ld_b = l->n_in;
        if ((st = get_tensor(L, name, l->n_out, r, false, &l->a))) return st;
        st = get_tensor(L, nb, r, l->n_in, false, &l->b);
    }
    if (st || !bias) return st;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return get_tensor(L, name, l->n_out, -1, !bias_required, &l->bias);
}

static slm_status load_block(hf_loader *L, int i) {
    slm_block *b = &L->m->blocks[i];
    const slm_config *c = &L->m->cfg;
    char name[HF_NAME_MAX];
    slm_status st;
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
    if ((st = get_tensor(L, name, c->d_model, -1, false, &b->attn_norm))) return st;
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", i);
    if ((st = get_tensor(L, name, c->d_model, -1, false, &b->ffn_norm))) return st;
    for (int p = 0; p < SLM_PROJ_COUNT; p++) {
        snprintf(name, sizeof name, "model.layers.%d.%s", i, slm_proj_hf_name((slm_proj)p));
        /* qwen2: q/k/v biases; llama attention_bias: q/k/v/o biases. */
        bool qkv = p == SLM_PROJ_Q || p == SLM_PROJ_K || p == SLM_PROJ_V;
        bool bias = c->attn_bias && (qkv || (p == SLM_PROJ_O && c->arch != SLM_ARCH_QWEN2));
        if ((st = get_linear(L, &b->lin[p], name, bias, bias && qkv))) return st;
    }
    return SLM_OK;
}

static slm_status load_tensors(hf_loader *L) {
    slm_model *m = L->m;
    const slm_config *c = &m->cfg;
    slm_status st;
    if ((st = get_tensor(L, "model.embed_tokens.weight", c->n_vocab, c->d_model, false, &m->tok_embd)) ||
        (st = get_tensor(L, "model.norm.weight", c->d_model, -1, false, &m->out_norm)))
        return st;
    if (c->tied_embeddings) m->lm_head = m->tok_embd; /* a stored copy is ignored, as transformers does */
    else if ((st = get_tensor(L, "lm_head.weight", c->n_vocab, c->d_model, false, &m->lm_head))) return st;
    for (int i = 0; i < c->n_layers; i++)
        if ((st = load_block(L, i))) return st;
    return SLM_OK;
}

/* Moves mappings that tensors point into over to the model; the others
 * (every tensor converted) are released. */
static slm_status hand_over_maps(hf_loader *L) {
    for (int i = 0; i < L->n_files; i++) {
        L->m->src_file_bytes += (int64_t)L->files[i]->file.size;
        if (!L->zero_copy[i]) continue;
        slm_status st = slm_model_add_map(L->m, &L->files[i]->file);
        if (st) return st;
    }
    return SLM_OK;
}

static void set_src_dtype(slm_model *m) {
    int best = SLM_DTYPE_F32;
    for (int t = 0; t < SLM_DTYPE_COUNT_; t++)
        if (m->src_type_counts[t] > m->src_type_counts[best]) best = t;
    m->src_dtype = best;
}

slm_status slm_model_load_hf(const char *path, const slm_load_params *p, slm_model **out) {
    *out = NULL;
    slm_load_params def = slm_load_default_params();
    if (!p) p = &def;
    hf_loader L = {0};
    slm_config cfg;
    char *cfg_path = NULL;
    slm_status st = resolve_paths(&L, path);
    if (!st) {
        cfg_path = join_path(L.dir, "config.json");
        st = cfg_path ? slm_hf_config_load(cfg_path, &cfg) : SLM_ERR_NOMEM;
    }
    if (!st) st = open_files(&L);
    if (!st) st = slm_model_create(&cfg, &L.m);
    if (!st) {
        L.m->path = strdup(path);
        snprintf(L.m->format, sizeof L.m->format, "safetensors%s", L.weight_map ? " (sharded)" : "");
        st = L.m->path ? load_tensors(&L) : slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
    }
    if (!st) st = hand_over_maps(&L);
    if (!st) {
        set_src_dtype(L.m);
        st = slm_model_validate(L.m);
    }
    if (!st && p->load_tokenizer) {
        char *tp = join_path(L.dir, "tokenizer.json");
        if (!tp) st = SLM_ERR_NOMEM;
        else if (is_file(tp)) st = slm_tokenizer_load_hf(L.dir, &L.m->tok);
        free(tp);
    }
    if (!st && p->verbose)
        fprintf(stderr, "loaded %s: %s, %d blocks, %d files, %lld bytes%s\n", path, slm_arch_name(cfg.arch),
                cfg.n_layers, L.n_files, (long long)L.m->src_file_bytes, L.m->tok ? ", tokenizer" : "");
    free(cfg_path);
    if (st) {
        slm_model_free(L.m);
        L.m = NULL;
    }
    *out = L.m;
    loader_free(&L);
    return st;
}
