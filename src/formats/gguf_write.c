/* GGUF writer: collects metadata (serialised at once, so the caller's
 * buffers need not outlive the call) and tensors (fp32 rows, borrowed until
 * slm_gguf_writer_write), then writes a GGUF v3 file with the layout in
 * gguf.c's header: header, kvs in insertion order, tensor infos, zero
 * padding to the alignment (32), tensor data each at an aligned offset.
 * Tensors are converted row by row with the dtype table's from_float, so
 * a strided source (ld > ne0) is written compactly, and a source smaller
 * than the tensor is padded with zeros (a narrowed MLP written at the full
 * width llama.cpp's llama graph requires).
 * slm_gguf_add_tensor_raw takes rows already in the type's bytes (the
 * INT8 linear kind's I8 weights), copied as they are.
 * Setting a key twice replaces the earlier value (as ggml's gguf_set_*).
 */
#define _POSIX_C_SOURCE 200809L
#include "formats/gguf.h"

#include <stdlib.h>
#include <string.h>

#define GGUF_WRITE_ALIGNMENT 32

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
} wbuf;

typedef struct wkv {
    char *key;
    uint32_t type;
    wbuf val; /* the value bytes as they go in the file (after the type) */
} wkv;

typedef struct wtensor {
    char *name;
    slm_dtype type;
    int n_dims;
    int64_t ne0, ne1, ld;
    int64_t src_ne0, src_ne1; /* the part of [ne1][ne0] read from src; the rest is zeros */
    const float *src;
    const void *raw;   /* slm_gguf_add_tensor_raw: rows already in the type's bytes, raw_stride apart */
    size_t raw_stride;
    size_t nbytes;
    uint64_t offset;
} wtensor;

struct slm_gguf_writer {
    wkv *kvs;
    int64_t n_kv, cap_kv;
    wtensor *ts;
    int64_t n_t, cap_t;
};

static slm_status wb_put(wbuf *b, const void *x, size_t n) {
    if (n > SIZE_MAX / 2 - b->n) return slm_fail(SLM_ERR_NOMEM, "gguf writer: value too large");
    if (b->n + n > b->cap) {
        size_t cap = (b->n + n) * 2 + 64;
        uint8_t *q = realloc(b->p, cap);
        if (!q) return slm_fail(SLM_ERR_NOMEM, "gguf writer: out of memory");
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, x, n);
    b->n += n;
    return SLM_OK;
}

static slm_status wb_u32(wbuf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return wb_put(b, x, 4);
}
static slm_status wb_u64(wbuf *b, uint64_t v) {
    slm_status st = wb_u32(b, (uint32_t)v);
    return st ? st : wb_u32(b, (uint32_t)(v >> 32));
}
static slm_status wb_str(wbuf *b, const char *s, uint64_t n) {
    slm_status st = wb_u64(b, n);
    return st ? st : wb_put(b, s, (size_t)n);
}

slm_gguf_writer *slm_gguf_writer_new(void) { return slm_calloc(1, sizeof(slm_gguf_writer), "gguf writer"); }

void slm_gguf_writer_free(slm_gguf_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].val.p);
    }
    for (int64_t i = 0; i < w->n_t; i++) free(w->ts[i].name);
    free(w->kvs);
    free(w->ts);
    free(w);
}

/* The slot for key: the existing one (value cleared) or a new one. */
static slm_status kv_slot(slm_gguf_writer *w, const char *key, uint32_t type, wkv **out) {
    if (!key || !*key) return slm_fail(SLM_ERR_ARG, "gguf writer: empty key");
    for (int64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kvs[i].key, key)) {
            w->kvs[i].type = type;
            w->kvs[i].val.n = 0;
            *out = &w->kvs[i];
            return SLM_OK;
        }
    if (w->n_kv == w->cap_kv) {
        int64_t cap = w->cap_kv ? w->cap_kv * 2 : 64;
        wkv *n = realloc(w->kvs, (size_t)cap * sizeof *n);
        if (!n) return slm_fail(SLM_ERR_NOMEM, "gguf writer: out of memory");
        w->kvs = n;
        w->cap_kv = cap;
    }
    wkv *kv = &w->kvs[w->n_kv];
    memset(kv, 0, sizeof *kv);
    kv->key = strdup(key);
    if (!kv->key) return slm_fail(SLM_ERR_NOMEM, "gguf writer: out of memory");
    kv->type = type;
    w->n_kv++;
    *out = kv;
    return SLM_OK;
}

static slm_status set_raw(slm_gguf_writer *w, const char *key, slm_gguf_type t, const void *v, size_t n) {
    wkv *kv;
    slm_status st = kv_slot(w, key, t, &kv);
    return st ? st : wb_put(&kv->val, v, n);
}

/* Scalars go in little-endian; the build targets are little-endian hosts
 * (as ggml assumes), so the in-memory bytes are the file bytes. */
slm_status slm_gguf_set_u32(slm_gguf_writer *w, const char *key, uint32_t v) { return set_raw(w, key, SLM_GGUF_UINT32, &v, 4); }
slm_status slm_gguf_set_i32(slm_gguf_writer *w, const char *key, int32_t v) { return set_raw(w, key, SLM_GGUF_INT32, &v, 4); }
slm_status slm_gguf_set_f32(slm_gguf_writer *w, const char *key, float v) { return set_raw(w, key, SLM_GGUF_FLOAT32, &v, 4); }
slm_status slm_gguf_set_bool(slm_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return set_raw(w, key, SLM_GGUF_BOOL, &b, 1);
}

slm_status slm_gguf_set_str(slm_gguf_writer *w, const char *key, const char *v) {
    wkv *kv;
    slm_status st = kv_slot(w, key, SLM_GGUF_STRING, &kv);
    return st ? st : wb_str(&kv->val, v, strlen(v));
}

slm_status slm_gguf_set_arr(slm_gguf_writer *w, const char *key, slm_gguf_type elem, const void *data, uint64_t n) {
    size_t es = slm_gguf_type_size(elem), bytes;
    if (!es) return slm_fail(SLM_ERR_ARG, "gguf writer: key '%s': array element type %s is not fixed-size", key,
                             slm_gguf_type_name(elem));
    if (n > SIZE_MAX || !slm_mul_ok((size_t)n, es, &bytes))
        return slm_fail(SLM_ERR_NOMEM, "gguf writer: key '%s': array too large", key);
    wkv *kv;
    slm_status st = kv_slot(w, key, SLM_GGUF_ARRAY, &kv);
    if (!st) st = wb_u32(&kv->val, elem);
    if (!st) st = wb_u64(&kv->val, n);
    if (!st) st = wb_put(&kv->val, data, bytes);
    return st;
}

slm_status slm_gguf_set_arr_str(slm_gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens,
                                uint64_t n) {
    wkv *kv;
    slm_status st = kv_slot(w, key, SLM_GGUF_ARRAY, &kv);
    if (!st) st = wb_u32(&kv->val, SLM_GGUF_STRING);
    if (!st) st = wb_u64(&kv->val, n);
    for (uint64_t i = 0; i < n && !st; i++) st = wb_str(&kv->val, strs[i], lens ? lens[i] : strlen(strs[i]));
    return st;
}

slm_status slm_gguf_copy_kvs(slm_gguf_writer *w, const slm_gguf *g, const char *prefix) {
    size_t pl = strlen(prefix);
    for (int64_t i = 0; i < g->n_kv; i++) {
        const slm_gguf_kv *kv = &g->kvs[i];
        if (kv->key.len < pl || memcmp(kv->key.ptr, prefix, pl) != 0) continue;
        char *key = slm_malloc((size_t)kv->key.len + 1, "gguf key");
        if (!key) return SLM_ERR_NOMEM;
        memcpy(key, kv->key.ptr, (size_t)kv->key.len);
        key[kv->key.len] = 0;
        slm_status st = set_raw(w, key, kv->type, kv->raw, (size_t)kv->raw_len);
        free(key);
        if (st) return st;
    }
    return SLM_OK;
}

slm_status slm_gguf_add_tensor_f32(slm_gguf_writer *w, const char *name, slm_dtype type, int n_dims, int64_t ne0,
                                   int64_t ne1, const float *src, int64_t ld) {
    return slm_gguf_add_tensor_f32_padded(w, name, type, n_dims, ne0, ne1, src, ld, ne0, ne1);
}

/* Checks the name and appends t (which takes ownership of nothing yet). */
static slm_status push_tensor(slm_gguf_writer *w, wtensor t) {
    if (strlen(t.name) == 0 || strlen(t.name) >= 256)
        return slm_fail(SLM_ERR_ARG, "gguf writer: tensor name '%s' empty or too long", t.name);
    for (int64_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->ts[i].name, t.name)) return slm_fail(SLM_ERR_ARG, "gguf writer: duplicate tensor '%s'", t.name);
    if (w->n_t == w->cap_t) {
        int64_t cap = w->cap_t ? w->cap_t * 2 : 256;
        wtensor *n = realloc(w->ts, (size_t)cap * sizeof *n);
        if (!n) return slm_fail(SLM_ERR_NOMEM, "gguf writer: out of memory");
        w->ts = n;
        w->cap_t = cap;
    }
    t.name = strdup(t.name);
    if (!t.name) return slm_fail(SLM_ERR_NOMEM, "gguf writer: out of memory");
    w->ts[w->n_t++] = t;
    return SLM_OK;
}

slm_status slm_gguf_add_tensor_f32_padded(slm_gguf_writer *w, const char *name, slm_dtype type, int n_dims,
                                          int64_t ne0, int64_t ne1, const float *src, int64_t ld, int64_t src_ne0,
                                          int64_t src_ne1) {
    const slm_dtype_traits *tr = slm_dtype_get((int)type);
    if (!tr || !tr->from_float)
        return slm_fail(SLM_ERR_UNSUPPORTED, "gguf writer: tensor '%s': cannot write type %d", name, (int)type);
    if (n_dims < 1 || n_dims > 2 || ne0 <= 0 || ne1 <= 0 || (n_dims == 1 && ne1 != 1) || !src ||
        src_ne0 <= 0 || src_ne0 > ne0 || src_ne1 <= 0 || src_ne1 > ne1 || ld < src_ne0)
        return slm_fail(SLM_ERR_ARG, "gguf writer: tensor '%s': bad shape [%lld, %lld] (ld %lld)", name,
                        (long long)ne0, (long long)ne1, (long long)ld);
    if (ne0 % tr->block_size != 0)
        return slm_fail(SLM_ERR_ARG, "gguf writer: tensor '%s': row of %lld is not a multiple of the %s block size %d",
                        name, (long long)ne0, tr->name, tr->block_size);
    size_t row, nbytes;
    if (!slm_dtype_nbytes(type, ne0, &row) || !slm_mul_ok(row, (size_t)ne1, &nbytes))
        return slm_fail(SLM_ERR_NOMEM, "gguf writer: tensor '%s': size overflow", name);
    return push_tensor(w, (wtensor){.name = (char *)name, .type = type, .n_dims = n_dims, .ne0 = ne0, .ne1 = ne1,
                                    .ld = ld, .src_ne0 = src_ne0, .src_ne1 = src_ne1, .src = src, .nbytes = nbytes});
}

slm_status slm_gguf_add_tensor_raw(slm_gguf_writer *w, const char *name, slm_dtype type, int n_dims, int64_t ne0,
                                   int64_t ne1, const void *data, size_t row_stride) {
    const slm_dtype_traits *tr = slm_dtype_get((int)type);
    size_t row, nbytes;
    if (!tr) return slm_fail(SLM_ERR_UNSUPPORTED, "gguf writer: tensor '%s': unknown type %d", name, (int)type);
    if (row_stride == 0 && slm_dtype_nbytes(type, ne0, &row)) row_stride = row; /* compact */
    if (n_dims < 1 || n_dims > 2 || ne0 <= 0 || ne1 <= 0 || (n_dims == 1 && ne1 != 1) || !data ||
        ne0 % tr->block_size != 0 || !slm_dtype_nbytes(type, ne0, &row) || row_stride < row ||
        !slm_mul_ok(row, (size_t)ne1, &nbytes))
        return slm_fail(SLM_ERR_ARG, "gguf writer: tensor '%s': bad shape [%lld, %lld] for %s", name, (long long)ne0,
                        (long long)ne1, tr->name);
    return push_tensor(w, (wtensor){.name = (char *)name, .type = type, .n_dims = n_dims, .ne0 = ne0, .ne1 = ne1,
                                    .src_ne0 = ne0, .src_ne1 = ne1, .raw = data, .raw_stride = row_stride,
                                    .nbytes = nbytes});
}

static uint64_t align_up(uint64_t x) { return (x + GGUF_WRITE_ALIGNMENT - 1) / GGUF_WRITE_ALIGNMENT * GGUF_WRITE_ALIGNMENT; }

/* Header, kvs and tensor infos in one buffer; assigns tensor offsets. */
static slm_status build_head(slm_gguf_writer *w, wbuf *h) {
    slm_status st = wb_put(h, "GGUF", 4);
    if (!st) st = wb_u32(h, 3);
    if (!st) st = wb_u64(h, (uint64_t)w->n_t);
    if (!st) st = wb_u64(h, (uint64_t)w->n_kv);
    for (int64_t i = 0; i < w->n_kv && !st; i++) {
        const wkv *kv = &w->kvs[i];
        st = wb_str(h, kv->key, strlen(kv->key));
        if (!st) st = wb_u32(h, kv->type);
        if (!st) st = wb_put(h, kv->val.p, kv->val.n);
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_t && !st; i++) {
        wtensor *t = &w->ts[i];
        t->offset = off;
        off = align_up(off + t->nbytes);
        st = wb_str(h, t->name, strlen(t->name));
        if (!st) st = wb_u32(h, (uint32_t)t->n_dims);
        if (!st) st = wb_u64(h, (uint64_t)t->ne0);
        if (!st && t->n_dims == 2) st = wb_u64(h, (uint64_t)t->ne1);
        if (!st) st = wb_u32(h, (uint32_t)t->type);
        if (!st) st = wb_u64(h, t->offset);
    }
    static const uint8_t zeros[GGUF_WRITE_ALIGNMENT] = {0};
    if (!st) st = wb_put(h, zeros, (size_t)(align_up(h->n) - h->n));
    return st;
}

/* Converts and writes one tensor in chunks of rows, then pads. Rows or
 * columns beyond the source's extent are converted from zeros (rowbuf has
 * room for the longest row). */
static slm_status write_tensor(slm_atomic_file *af, const wtensor *t, uint8_t *chunk, size_t chunk_bytes,
                               float *rowbuf, slm_progress *pr, int64_t *done) {
    const slm_dtype_traits *tr = slm_dtype_get((int)t->type);
    size_t row = t->nbytes / (size_t)t->ne1;
    int64_t rows_per = (int64_t)(chunk_bytes / row);
    if (rows_per < 1) rows_per = 1;
    slm_status st = SLM_OK;
    for (int64_t r0 = 0; r0 < t->ne1 && !st; r0 += rows_per) {
        int64_t nr = t->ne1 - r0 < rows_per ? t->ne1 - r0 : rows_per;
        for (int64_t r = 0; r < nr; r++) {
            if (t->raw) {
                memcpy(chunk + (size_t)r * row, (const uint8_t *)t->raw + (size_t)(r0 + r) * t->raw_stride, row);
                continue;
            }
            const float *x = t->src + (r0 + r) * t->ld;
            if (r0 + r >= t->src_ne1 || t->src_ne0 < t->ne0) {
                memset(rowbuf, 0, (size_t)t->ne0 * sizeof(float));
                if (r0 + r < t->src_ne1) memcpy(rowbuf, x, (size_t)t->src_ne0 * sizeof(float));
                x = rowbuf;
            }
            tr->from_float(x, chunk + (size_t)r * row, t->ne0);
        }
        st = slm_atomic_write(af, chunk, (size_t)nr * row);
        *done += (int64_t)((size_t)nr * row);
        slm_progress_update(pr, *done);
    }
    static const uint8_t zeros[GGUF_WRITE_ALIGNMENT] = {0};
    if (!st) st = slm_atomic_write(af, zeros, (size_t)(align_up(t->nbytes) - t->nbytes));
    return st;
}

slm_status slm_gguf_writer_write(slm_gguf_writer *w, const char *path) {
    wbuf h = {0};
    slm_status st = build_head(w, &h);
    size_t max_row = 0;
    int64_t total = 0, max_ne0 = 1;
    for (int64_t i = 0; i < w->n_t; i++) {
        size_t row = w->ts[i].nbytes / (size_t)w->ts[i].ne1;
        if (row > max_row) max_row = row;
        if (w->ts[i].ne0 > max_ne0) max_ne0 = w->ts[i].ne0;
        total += (int64_t)w->ts[i].nbytes;
    }
    size_t chunk_bytes = max_row > (1u << 20) ? max_row : (1u << 20);
    uint8_t *chunk = st ? NULL : slm_malloc(chunk_bytes, "gguf write buffer");
    float *rowbuf = st ? NULL : slm_malloc((size_t)max_ne0 * sizeof(float), "gguf row buffer");
    if (!st && (!chunk || !rowbuf)) st = SLM_ERR_NOMEM;
    slm_atomic_file af = {0};
    if (!st) st = slm_atomic_open(path, &af);
    if (st) {
        free(h.p);
        free(chunk);
        free(rowbuf);
        return st;
    }
    st = slm_atomic_write(&af, h.p, h.n);
    slm_progress pr = {0}; /* begin keeps .quiet: not quiet */
    slm_progress_begin(&pr, "writing", "B", total);
    int64_t done = 0;
    for (int64_t i = 0; i < w->n_t && !st; i++) st = write_tensor(&af, &w->ts[i], chunk, chunk_bytes, rowbuf, &pr, &done);
    slm_progress_end(&pr);
    free(h.p);
    free(chunk);
    free(rowbuf);
    if (st) {
        slm_atomic_abort(&af);
        return st;
    }
    return slm_atomic_commit(&af);
}
