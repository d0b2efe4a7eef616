/* GGUF reader.
 *
 * Byte layout (all integers little-endian; see docs/format-gguf.md):
 *
 *   offset  size  field
 *   0       4     magic "GGUF" (bytes 47 47 55 46)
 *   4       4     u32 version: 2 or 3 (v1 used u32 counts and is rejected;
 *                 v2 and v3 share a layout, v3 only promised endianness)
 *   8       8     u64 n_tensors
 *   16      8     u64 n_kv
 *   24      ...   n_kv key/values:
 *                   string key            (u64 length + bytes, no NUL, UTF-8)
 *                   u32 value type        (slm_gguf_type: 0..12)
 *                   value:
 *                     UINT8/INT8/BOOL 1 B, UINT16/INT16 2 B,
 *                     UINT32/INT32/FLOAT32 4 B, UINT64/INT64/FLOAT64 8 B,
 *                     STRING  u64 length + bytes,
 *                     ARRAY   u32 element type, u64 count, count elements
 *                             (elements may themselves be arrays: read up
 *                             to GGUF_MAX_DEPTH levels, kept as raw bytes)
 *           ...   n_tensors tensor infos:
 *                   string name, u32 n_dims (1..4), u64 ne[n_dims] (ne[0]
 *                   is the fastest-varying dimension), u32 ggml type,
 *                   u64 offset (relative to the data section, a multiple
 *                   of the alignment)
 *           ...   zero padding to a multiple of the alignment
 *   data    ...   tensor data; data = align_up(end of infos, alignment)
 *
 * general.alignment (u32 or any integer kv, a power of two) overrides the
 * default alignment of 32.
 *
 * Keys slimlm itself writes (gguf_write.c / model/save_gguf.c):
 *   slimlm.format_version   u32   1
 *   slimlm.source_blocks    i32[] original index of each written block
 *   slimlm.lowrank          bool  true when some linears are factored; such
 *     a linear W [n_out x n_in] ~= A.B is stored as two tensors
 *       blk.N.<proj>.lr_a.weight  dims [rank, n_out]  (A, n_out rows of rank)
 *       blk.N.<proj>.lr_b.weight  dims [n_in, rank]   (B, rank rows of n_in)
 *     instead of blk.N.<proj>.weight.
 *
 * Validation, in the order the bytes arrive: every count is bounded by the
 * bytes left in the file before anything is allocated for it (a header
 * claiming 2^60 tensors fails at once); strings lie inside the file; keys
 * are non-empty valid UTF-8 and unique; tensor names are non-empty, free of
 * NUL, unique; dims positive and their product (and the byte size) free of
 * overflow; the type known; ne[0] a multiple of the block size; offsets
 * aligned; data inside the file; no two tensors overlap.
 */
#include "formats/gguf.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DEPTH 8          /* arrays of arrays: nesting bound */
#define GGUF_MAX_NAME 256         /* tensor name bytes (ggml allows 63) */
#define GGUF_MAX_DIMS 4

/* A bounded cursor over the mapping: every read checks the bytes left. */
typedef struct cursor {
    const uint8_t *data;
    size_t size, pos;
    const char *path;
} cursor;

/* Bytes of a file string shown in messages (keys can be long or hostile). */
static int plen(uint64_t n) { return n > 80 ? 80 : (int)n; }

static size_t left(const cursor *c) { return c->size - c->pos; }

static slm_status need(cursor *c, uint64_t n, const char *what) {
    if (n > left(c))
        return slm_fail(SLM_ERR_FORMAT, "%s: truncated: %s at offset %zu needs %llu bytes, %zu left", c->path, what,
                        c->pos, (unsigned long long)n, left(c));
    return SLM_OK;
}

static slm_status rd_u32(cursor *c, uint32_t *v, const char *what) {
    slm_status st = need(c, 4, what);
    if (st) return st;
    const uint8_t *p = c->data + c->pos;
    *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    c->pos += 4;
    return SLM_OK;
}

static slm_status rd_u64(cursor *c, uint64_t *v, const char *what) {
    slm_status st = need(c, 8, what);
    if (st) return st;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u |= (uint64_t)c->data[c->pos + i] << (8 * i);
    c->pos += 8;
    *v = u;
    return SLM_OK;
}

static slm_status rd_str(cursor *c, slm_gguf_str *s, const char *what) {
    uint64_t n;
    slm_status st = rd_u64(c, &n, what);
    if (st) return st;
    if ((st = need(c, n, what))) return st;
    s->ptr = (const char *)c->data + c->pos;
    s->len = n;
    c->pos += (size_t)n;
    return SLM_OK;
}

/* ---- value types ------------------------------------------------------- */

static const size_t k_type_size[SLM_GGUF_TYPE_COUNT] = {
    [SLM_GGUF_UINT8] = 1, [SLM_GGUF_INT8] = 1,    [SLM_GGUF_UINT16] = 2,  [SLM_GGUF_INT16] = 2,
    [SLM_GGUF_UINT32] = 4, [SLM_GGUF_INT32] = 4,  [SLM_GGUF_FLOAT32] = 4, [SLM_GGUF_BOOL] = 1,
    [SLM_GGUF_UINT64] = 8, [SLM_GGUF_INT64] = 8,  [SLM_GGUF_FLOAT64] = 8,
};
static const char *const k_type_name[SLM_GGUF_TYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64"};

size_t slm_gguf_type_size(slm_gguf_type t) { return (unsigned)t < SLM_GGUF_TYPE_COUNT ? k_type_size[t] : 0; }
const char *slm_gguf_type_name(slm_gguf_type t) { return (unsigned)t < SLM_GGUF_TYPE_COUNT ? k_type_name[t] : "?"; }

/* Reads raw little-endian scalar of type t at p as int64 (false if not an
 * integer type or an unsigned 64-bit value above INT64_MAX). */
static bool scalar_i64(slm_gguf_type t, const uint8_t *p, int64_t *out) {
    uint64_t u = 0;
    size_t n = slm_gguf_type_size(t);
    for (size_t i = 0; i < n; i++) u |= (uint64_t)p[i] << (8 * i);
    switch (t) {
    case SLM_GGUF_UINT8: case SLM_GGUF_UINT16: case SLM_GGUF_UINT32: case SLM_GGUF_BOOL:
        *out = (int64_t)u; return true;
    case SLM_GGUF_INT8: *out = (int8_t)u; return true;
    case SLM_GGUF_INT16: *out = (int16_t)u; return true;
    case SLM_GGUF_INT32: *out = (int32_t)u; return true;
    case SLM_GGUF_INT64: *out = (int64_t)u; return true;
    case SLM_GGUF_UINT64:
        if (u > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)u;
        return true;
    default: return false;
    }
}

static bool scalar_f64(slm_gguf_type t, const uint8_t *p, double *out) {
    if (t == SLM_GGUF_FLOAT32) {
        float f;
        uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&f, &u, 4);
        *out = f;
        return true;
    }
    if (t == SLM_GGUF_FLOAT64) {
        double d;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u |= (uint64_t)p[i] << (8 * i);
        memcpy(&d, &u, 8);
        *out = d;
        return true;
    }
    int64_t i;
    if (!scalar_i64(t, p, &i)) return false;
    *out = (double)i;
    return true;
}

/* ---- metadata ---------------------------------------------------------- */

static slm_status too_long(cursor *c, uint64_t n, const slm_gguf_str *key) {
    return slm_fail(SLM_ERR_FORMAT, "%s: key '%.*s': array of %llu elements is larger than the rest of the file",
                    c->path, plen(key->len), key->ptr, (unsigned long long)n);
}

static slm_status bad_type(cursor *c, uint32_t t, const slm_gguf_str *key) {
    return slm_fail(SLM_ERR_FORMAT, "%s: key '%.*s': unknown value type %u", c->path, plen(key->len), key->ptr, t);
}

/* Skips one array body (element type and count already read) nested at
 * depth; used for arrays of arrays, which slimlm keeps only as raw bytes. */
static slm_status skip_array(cursor *c, uint32_t et, uint64_t n, int depth, const slm_gguf_str *key) {
    if (depth > GGUF_MAX_DEPTH)
        return slm_fail(SLM_ERR_FORMAT, "%s: key '%.*s': arrays nested deeper than %d", c->path, (int)key->len,
                        key->ptr, GGUF_MAX_DEPTH);
    if (et >= SLM_GGUF_TYPE_COUNT) return bad_type(c, et, key);
    size_t es = k_type_size[et];
    if (es) {
        if (n > left(c) / es) return too_long(c, n, key);
        c->pos += (size_t)(n * es);
        return SLM_OK;
    }
    /* strings need >= 8 bytes each, arrays >= 12: bounds the loop */
    if (n > left(c) / 8) return too_long(c, n, key);
    for (uint64_t i = 0; i < n; i++) {
        slm_status st;
        if (et == SLM_GGUF_STRING) {
            slm_gguf_str s;
            st = rd_str(c, &s, "array string");
        } else {
            uint32_t t2;
            uint64_t n2;
            if ((st = rd_u32(c, &t2, "array type")) || (st = rd_u64(c, &n2, "array length"))) return st;
            st = skip_array(c, t2, n2, depth + 1, key);
        }
        if (st) return st;
    }
    return SLM_OK;
}

static slm_status read_value(cursor *c, slm_gguf_kv *kv) {
    slm_status st;
    if (kv->type == SLM_GGUF_STRING) return rd_str(c, &kv->str, "string value");
    if (kv->type != SLM_GGUF_ARRAY) {
        size_t n = k_type_size[kv->type];
        if ((st = need(c, n, "value"))) return st;
        kv->value = c->data + c->pos;
        c->pos += n;
        return SLM_OK;
    }
    uint32_t et;
    if ((st = rd_u32(c, &et, "array type")) || (st = rd_u64(c, &kv->arr_n, "array length"))) return st;
    if (et >= SLM_GGUF_TYPE_COUNT) return bad_type(c, et, &kv->key);
    kv->arr_type = (slm_gguf_type)et;
    kv->arr_data = c->data + c->pos;
    if (et != SLM_GGUF_STRING) return skip_array(c, et, kv->arr_n, 1, &kv->key);
    /* a string array: each needs >= 8 bytes, so the count is bounded by the
     * file before the (pointer, length) table is allocated */
    if (kv->arr_n > left(c) / 8) return too_long(c, kv->arr_n, &kv->key);
    kv->arr_strs = slm_calloc((size_t)kv->arr_n ? (size_t)kv->arr_n : 1, sizeof *kv->arr_strs, "string array");
    if (!kv->arr_strs) return SLM_ERR_NOMEM;
    for (uint64_t i = 0; i < kv->arr_n; i++)
        if ((st = rd_str(c, &kv->arr_strs[i], "array string"))) return st;
    return SLM_OK;
}

static bool valid_utf8(const slm_gguf_str *s) {
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s->ptr;
    utf8proc_ssize_t n = (utf8proc_ssize_t)s->len;
    while (n > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, n, &cp);
        if (k <= 0 || cp == 0) return false;
        p += k;
        n -= k;
    }
    return true;
}

static int str_cmp(const slm_gguf_str *a, const slm_gguf_str *b) {
    size_t n = a->len < b->len ? (size_t)a->len : (size_t)b->len;
    int r = memcmp(a->ptr, b->ptr, n);
    if (r) return r;
    return (a->len > b->len) - (a->len < b->len);
}

/* qsort has no context argument: sort arrays of pointers instead. */
static int kvp_cmp(const void *x, const void *y) {
    return str_cmp(&(*(slm_gguf_kv *const *)x)->key, &(*(slm_gguf_kv *const *)y)->key);
}
static int tnp_cmp(const void *x, const void *y) {
    return strcmp((*(slm_gguf_tensor *const *)x)->name, (*(slm_gguf_tensor *const *)y)->name);
}
static int tno_cmp(const void *x, const void *y) {
    uint64_t a = (*(slm_gguf_tensor *const *)x)->offset, b = (*(slm_gguf_tensor *const *)y)->offset;
    return (a > b) - (a < b);
}

static slm_status read_kvs(cursor *c, slm_gguf *g) {
    slm_status st;
    for (int64_t i = 0; i < g->n_kv; i++) {
        slm_gguf_kv *kv = &g->kvs[i];
        uint32_t t;
        if ((st = rd_str(c, &kv->key, "key"))) return st;
        if (kv->key.len == 0) return slm_fail(SLM_ERR_FORMAT, "%s: key %lld is empty", c->path, (long long)i);
        if (!valid_utf8(&kv->key))
            return slm_fail(SLM_ERR_FORMAT, "%s: key %lld at offset %zu is not valid UTF-8", c->path, (long long)i,
                            c->pos - (size_t)kv->key.len);
        if ((st = rd_u32(c, &t, "value type"))) return st;
        if (t >= SLM_GGUF_TYPE_COUNT) return bad_type(c, t, &kv->key);
        kv->type = (slm_gguf_type)t;
        kv->raw = c->data + c->pos;
        if ((st = read_value(c, kv))) return st;
        kv->raw_len = (uint64_t)(c->data + c->pos - (const uint8_t *)kv->raw);
    }
    g->kv_sorted = slm_calloc((size_t)g->n_kv + 1, sizeof *g->kv_sorted, "kv index");
    if (!g->kv_sorted) return SLM_ERR_NOMEM;
    for (int64_t i = 0; i < g->n_kv; i++) g->kv_sorted[i] = &g->kvs[i];
    qsort(g->kv_sorted, (size_t)g->n_kv, sizeof *g->kv_sorted, kvp_cmp);
    for (int64_t i = 1; i < g->n_kv; i++)
        if (!kvp_cmp(&g->kv_sorted[i - 1], &g->kv_sorted[i]))
            return slm_fail(SLM_ERR_FORMAT, "%s: duplicate key '%.*s'", c->path, plen(g->kv_sorted[i]->key.len),
                            g->kv_sorted[i]->key.ptr);
    return SLM_OK;
}

/* ---- tensor infos ------------------------------------------------------ */

static slm_status read_tensor_info(cursor *c, slm_gguf *g, slm_gguf_tensor *t) {
    slm_gguf_str name;
    uint32_t nd, type;
    slm_status st = rd_str(c, &name, "tensor name");
    if (st) return st;
    if (name.len == 0 || name.len >= GGUF_MAX_NAME || memchr(name.ptr, 0, (size_t)name.len))
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor name at offset %zu is empty, too long or contains NUL", c->path,
                        c->pos - (size_t)name.len);
    t->name = slm_malloc((size_t)name.len + 1, "tensor name");
    if (!t->name) return SLM_ERR_NOMEM;
    memcpy(t->name, name.ptr, (size_t)name.len);
    t->name[name.len] = 0;
    if ((st = rd_u32(c, &nd, "tensor n_dims"))) return st;
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': %u dimensions (1..%d allowed)", c->path, t->name, nd,
                        GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    int64_t n = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t v = 1;
        if (d < (int)nd && (st = rd_u64(c, &v, "tensor dims"))) return st;
        if (v == 0)
            return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': dimension %d is zero", c->path, t->name, d);
        if (v > (uint64_t)INT64_MAX || __builtin_mul_overflow(n, (int64_t)v, &n))
            return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': element count overflows at dimension %d (%llu)",
                            c->path, t->name, d, (unsigned long long)v);
        t->ne[d] = (int64_t)v;
    }
    t->n_elems = n;
    if ((st = rd_u32(c, &type, "tensor type"))) return st;
    const slm_dtype_traits *tr = slm_dtype_get((int)type);
    if (!tr) return slm_fail(SLM_ERR_UNSUPPORTED, "%s: tensor '%s': unknown or unsupported type %u", c->path, t->name, type);
    t->type = (slm_dtype)type;
    if (t->ne[0] % tr->block_size != 0 || !slm_dtype_nbytes(t->type, n, &t->nbytes))
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': row of %lld is not a multiple of the %s block size %d",
                        c->path, t->name, (long long)t->ne[0], tr->name, tr->block_size);
    if ((st = rd_u64(c, &t->offset, "tensor offset"))) return st;
    if (t->offset % g->alignment != 0)
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': offset %llu is not a multiple of the alignment %llu", c->path,
                        t->name, (unsigned long long)t->offset, (unsigned long long)g->alignment);
    return SLM_OK;
}

static slm_status read_alignment(const char *path, slm_gguf *g) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const slm_gguf_kv *kv = slm_gguf_find(g, "general.alignment");
    if (!kv) return SLM_OK;
    int64_t a;
    if (!slm_gguf_get_i64(g, "general.alignment", &a) || a <= 0 || a > (1 << 30) || (a & (a - 1)) != 0)
        return slm_fail(SLM_ERR_FORMAT, "%s: general.alignment must be a power of two up to 2^30", path);
    g->alignment = (uint64_t)a;
    return SLM_OK;
}

/* Places every tensor inside the data section and checks none overlap. */
static slm_status place_tensors(cursor *c, slm_gguf *g) {
    uint64_t data = (c->pos + g->alignment - 1) / g->alignment * g->alignment;
    if (g->n_tensors > 0 && data > c->size)
        return slm_fail(SLM_ERR_FORMAT, "%s: truncated: data section starts past end of file", c->path);
    g->data_offset = (size_t)(data < c->size ? data : c->size);
    uint64_t avail = c->size - g->data_offset;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        slm_gguf_tensor *t = &g->tensors[i];
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': data (offset %llu, %zu bytes) past end of file", c->path,
                            t->name, (unsigned long long)t->offset, t->nbytes);
        t->data = c->data + g->data_offset + t->offset;
    }
    slm_gguf_tensor **by_off = slm_calloc((size_t)g->n_tensors + 1, sizeof *by_off, "tensor index");
    if (!by_off) return SLM_ERR_NOMEM;
    for (int64_t i = 0; i < g->n_tensors; i++) by_off[i] = &g->tensors[i];
    qsort(by_off, (size_t)g->n_tensors, sizeof *by_off, tno_cmp);
    slm_status st = SLM_OK;
    for (int64_t i = 1; i < g->n_tensors && !st; i++)
        if (by_off[i - 1]->offset + by_off[i - 1]->nbytes > by_off[i]->offset)
            st = slm_fail(SLM_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", c->path, by_off[i - 1]->name,
                          by_off[i]->name);
    free(by_off);
    return st;
}

static slm_status parse(slm_gguf *g) {
    cursor c = {g->file.data, g->file.size, 0, g->file.path};
    bool magic_ok = c.size >= 4 && memcmp(c.data, GGUF_MAGIC, 4) == 0;
    if (!magic_ok) return slm_fail(SLM_ERR_FORMAT, "%s: not a GGUF file (bad magic)", c.path);
    c.pos = 4;
    slm_status st = rd_u32(&c, &g->version, "version");
    if (st) return st;
    if (g->version == 1) return slm_fail(SLM_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported (only 2 and 3)", c.path);
    if ((g->version & 0xffff) == 0 && g->version != 0)
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: big-endian GGUF is not supported", c.path);
    if (g->version != 2 && g->version != 3)
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: unsupported GGUF version %u (only 2 and 3)", c.path, g->version);
    uint64_t nt, nkv;
    if ((st = rd_u64(&c, &nt, "tensor count")) || (st = rd_u64(&c, &nkv, "kv count"))) return st;
    /* a kv takes >= 14 bytes (8 key length, 1 key byte, 4 type, 1 value),
     * a tensor info >= 33 (8 + 1 name, 4 n_dims, 8 dim, 4 type, 8 offset) */
    if (nkv > left(&c) / 14)
        return slm_fail(SLM_ERR_FORMAT, "%s: header claims %llu metadata entries, more than the file can hold", c.path,
                        (unsigned long long)nkv);
    if (nt > left(&c) / 33)
        return slm_fail(SLM_ERR_FORMAT, "%s: header claims %llu tensors, more than the file can hold", c.path,
                        (unsigned long long)nt);
    g->n_kv = (int64_t)nkv;
    g->n_tensors = (int64_t)nt;
    g->kvs = slm_calloc((size_t)nkv + 1, sizeof *g->kvs, "metadata");
    g->tensors = slm_calloc((size_t)nt + 1, sizeof *g->tensors, "tensor infos");
    if (!g->kvs || !g->tensors) return SLM_ERR_NOMEM;
    if ((st = read_kvs(&c, g)) || (st = read_alignment(c.path, g))) return st;
    for (int64_t i = 0; i < g->n_tensors; i++)
        if ((st = read_tensor_info(&c, g, &g->tensors[i]))) return st;
    g->tensor_sorted = slm_calloc((size_t)nt + 1, sizeof *g->tensor_sorted, "tensor index");
    if (!g->tensor_sorted) return SLM_ERR_NOMEM;
    for (int64_t i = 0; i < g->n_tensors; i++) g->tensor_sorted[i] = &g->tensors[i];
    qsort(g->tensor_sorted, (size_t)nt, sizeof *g->tensor_sorted, tnp_cmp);
    for (int64_t i = 1; i < g->n_tensors; i++)
        if (!strcmp(g->tensor_sorted[i - 1]->name, g->tensor_sorted[i]->name))
            return slm_fail(SLM_ERR_FORMAT, "%s: duplicate tensor '%s'", c.path, g->tensor_sorted[i]->name);
    return place_tensors(&c, g);
}

slm_status slm_gguf_open(const char *path, slm_gguf **out) {
    *out = NULL;
    slm_gguf *g = slm_calloc(1, sizeof *g, "gguf reader");
    if (!g) return SLM_ERR_NOMEM;
    slm_status st = slm_map_file(path, &g->file);
    if (!st) st = parse(g);
    if (st) {
        slm_gguf_close(g);
        return st;
    }
    *out = g;
    return SLM_OK;
}

void slm_gguf_close(slm_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; g->kvs && i < g->n_kv; i++) free(g->kvs[i].arr_strs);
    for (int64_t i = 0; g->tensors && i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kvs);
    free(g->tensors);
    free(g->kv_sorted);
    free(g->tensor_sorted);
    slm_unmap_file(&g->file);
    free(g);
}

/* ---- lookups ----------------------------------------------------------- */

const slm_gguf_kv *slm_gguf_find(const slm_gguf *g, const char *key) {
    if (!g->kv_sorted) return NULL;
    slm_gguf_str k = {key, strlen(key)};
    int64_t lo = 0, hi = g->n_kv;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = str_cmp(&g->kv_sorted[mid]->key, &k);
        if (r == 0) return g->kv_sorted[mid];
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const slm_gguf_tensor *slm_gguf_find_tensor(const slm_gguf *g, const char *name) {
    if (!g->tensor_sorted) return NULL;
    int64_t lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = strcmp(g->tensor_sorted[mid]->name, name);
        if (r == 0) return g->tensor_sorted[mid];
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

bool slm_gguf_get_i64(const slm_gguf *g, const char *key, int64_t *out) {
    const slm_gguf_kv *kv = slm_gguf_find(g, key);
    return kv && kv->type != SLM_GGUF_BOOL && kv->value && scalar_i64(kv->type, kv->value, out);
}

bool slm_gguf_get_f32(const slm_gguf *g, const char *key, float *out) {
    const slm_gguf_kv *kv = slm_gguf_find(g, key);
    double d;
    if (!kv || !kv->value || (kv->type != SLM_GGUF_FLOAT32 && kv->type != SLM_GGUF_FLOAT64)) return false;
    scalar_f64(kv->type, kv->value, &d);
    *out = (float)d;
    return true;
}

bool slm_gguf_get_bool(const slm_gguf *g, const char *key, bool *out) {
    const slm_gguf_kv *kv = slm_gguf_find(g, key);
    if (!kv || kv->type != SLM_GGUF_BOOL) return false;
    *out = *(const uint8_t *)kv->value != 0;
    return true;
}

bool slm_gguf_get_str(const slm_gguf *g, const char *key, slm_gguf_str *out) {
    const slm_gguf_kv *kv = slm_gguf_find(g, key);
    if (!kv || kv->type != SLM_GGUF_STRING) return false;
    *out = kv->str;
    return true;
}

static const uint8_t *arr_elem(const slm_gguf_kv *kv, uint64_t i) {
    if (!kv || kv->type != SLM_GGUF_ARRAY || i >= kv->arr_n || !k_type_size[kv->arr_type]) return NULL;
    return (const uint8_t *)kv->arr_data + i * k_type_size[kv->arr_type];
}

bool slm_gguf_arr_i64(const slm_gguf_kv *kv, uint64_t i, int64_t *out) {
    const uint8_t *p = arr_elem(kv, i);
    return p && kv->arr_type != SLM_GGUF_BOOL && scalar_i64(kv->arr_type, p, out);
}

bool slm_gguf_arr_f64(const slm_gguf_kv *kv, uint64_t i, double *out) {
    const uint8_t *p = arr_elem(kv, i);
    return p && kv->arr_type != SLM_GGUF_BOOL && scalar_f64(kv->arr_type, p, out);
}
