/* safetensors: read (validated, mmap'd) and write (streamed, atomic).
 *
 * Layout (https://github.com/huggingface/safetensors, all little-endian):
 *
 *   offset 0        u64  N: length of the JSON header in bytes
 *   offset 8        N bytes of UTF-8 JSON, may be padded with trailing spaces
 *   offset 8 + N    data section: the raw tensor bytes, row-major (C order)
 *
 *   header = {
 *     "__metadata__": {"key": "string value", ...},      (optional)
 *     "<tensor name>": {
 *        "dtype": "F32" | "F16" | "BF16" | (others: refused here),
 *        "shape": [d0, d1, ...],            d0 slowest-varying, as in torch
 *        "data_offsets": [begin, end]       bytes, relative to the data section
 *     }, ...
 *   }
 *
 * Checks made before a tensor is handed out: header length at least 2,
 * at most SLM_ST_MAX_HEADER and inside the file; valid JSON object; every
 * tensor entry an object with a known dtype, a shape of non-negative
 * integers and two integer offsets with begin <= end <= data size;
 * end - begin == prod(shape) * dtype size (with overflow checks); no two
 * tensors overlap; no duplicate names; __metadata__ values are strings.
 *
 * The writer pads the header with spaces so the data section starts at a
 * multiple of 8 (as the reference implementation does), which keeps every
 * F32 tensor 4-byte aligned in the mapping, so loaders use it zero-copy.
 *
 * Our own metadata keys (written by model/save_hf.c, see docs/format-hf.md):
 *   "format": "pt"          what transformers expects
 *   "slimlm.lowrank": "1"   some linears are stored as two factors
 */
#define _POSIX_C_SOURCE 200809L
#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- dtypes ------------------------------------------------------------ */

typedef struct st_dtype_row {
    const char *name;
    slm_dtype type;
    size_t size;
} st_dtype_row;

static const st_dtype_row k_dtypes[] = {
    {"F32", SLM_DTYPE_F32, 4},
    {"F16", SLM_DTYPE_F16, 2},
    {"BF16", SLM_DTYPE_BF16, 2},
};
#define N_DTYPES (sizeof k_dtypes / sizeof k_dtypes[0])

static const st_dtype_row *dtype_by_name(const char *s) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (strcmp(k_dtypes[i].name, s) == 0) return &k_dtypes[i];
    return NULL;
}

static const st_dtype_row *dtype_by_type(slm_dtype t) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (k_dtypes[i].type == t) return &k_dtypes[i];
    return NULL;
}

const char *slm_st_dtype_name(slm_dtype t) {
    const st_dtype_row *r = dtype_by_type(t);
    return r ? r->name : "?";
}

/* ---- reader ------------------------------------------------------------ */

/* A JSON number that is a non-negative integer below 2^53 (exact in a double). */
static bool json_u64(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0.0 && d <= 9007199254740992.0) || floor(d) != d) return false;
    *out = (uint64_t)d;
    return true;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const slm_st_tensor *)a)->name, ((const slm_st_tensor *)b)->name);
}

static int cmp_begin(const void *a, const void *b) {
    const slm_st_tensor *x = *(const slm_st_tensor *const *)a, *y = *(const slm_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

static slm_status parse_metadata(slm_st_file *f, const cJSON *meta, const char *path) {
    if (!cJSON_IsObject(meta)) return slm_fail(SLM_ERR_FORMAT, "%s: __metadata__ is not an object", path);
    int n = cJSON_GetArraySize(meta);
    f->meta_keys = slm_calloc((size_t)n + 1, sizeof(char *), "safetensors metadata");
    f->meta_vals = slm_calloc((size_t)n + 1, sizeof(char *), "safetensors metadata");
    if (!f->meta_keys || !f->meta_vals) return SLM_ERR_NOMEM;
    for (const cJSON *e = meta->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            return slm_fail(SLM_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", path, e->string);
        f->meta_keys[f->n_meta] = strdup(e->string);
        f->meta_vals[f->n_meta] = strdup(e->valuestring);
        if (!f->meta_keys[f->n_meta] || !f->meta_vals[f->n_meta])
            return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
        f->n_meta++;
    }
    return SLM_OK;
}

/* Fills t from one header entry; data_size bounds the offsets. */
static slm_status parse_tensor(slm_st_tensor *t, const cJSON *e, uint64_t data_size, const char *path) {
    const char *nm = e->string;
    if (!cJSON_IsObject(e)) return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': entry is not an object", path, nm);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd)) return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': missing or non-string 'dtype'", path, nm);
    if (!cJSON_IsArray(js)) return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': missing or non-array 'shape'", path, nm);
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': 'data_offsets' is not a pair of integers", path, nm);
    const st_dtype_row *dt = dtype_by_name(jd->valuestring);
    if (!dt)
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: tensor '%s': unsupported dtype '%.32s' (slimlm reads F32, F16, BF16)",
                        path, nm, jd->valuestring);
    t->type = dt->type;
    int nd = cJSON_GetArraySize(js);
    if (nd > SLM_ST_MAX_DIMS)
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': %d dimensions (at most %d)", path, nm, nd, SLM_ST_MAX_DIMS);
    t->n_dims = nd;
    size_t n = 1;
    int i = 0;
    for (const cJSON *d = js->child; d; d = d->next, i++) {
        uint64_t v;
        if (!json_u64(d, &v) || v > INT64_MAX)
            return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': shape entry %d is not a non-negative integer", path, nm, i);
        if (!slm_mul_ok(n, (size_t)v, &n))
            return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': element count overflows", path, nm);
        t->shape[i] = (int64_t)v;
    }
    size_t nbytes;
    if (n > INT64_MAX || !slm_mul_ok(n, dt->size, &nbytes))
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': byte size overflows", path, nm);
    t->n_elems = (int64_t)n;
    if (!json_u64(jo->child, &t->begin) || !json_u64(jo->child->next, &t->end))
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': 'data_offsets' is not a pair of non-negative integers",
                        path, nm);
    if (t->begin > t->end)
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] begin after end", path, nm,
                        (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > data_size)
        return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] past end of data (%llu bytes)",
                        path, nm, (unsigned long long)t->begin, (unsigned long long)t->end,
                        (unsigned long long)data_size);
    if (t->end - t->begin != nbytes)
        return slm_fail(SLM_ERR_FORMAT,
                        "%s: tensor '%s': shape needs %zu bytes of %s but data_offsets [%llu, %llu] hold %llu",
                        path, nm, nbytes, dt->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                        (unsigned long long)(t->end - t->begin));
    return SLM_OK;
}

/* Sorts by name (duplicates refused) and checks that no two tensors share bytes. */
static slm_status check_table(slm_st_file *f, const char *path) {
    int64_t n = f->n_tensors;
    if (n == 0) return SLM_OK;
    qsort(f->tensors, (size_t)n, sizeof *f->tensors, cmp_name);
    for (int64_t i = 1; i < n; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return slm_fail(SLM_ERR_FORMAT, "%s: duplicate tensor '%s'", path, f->tensors[i].name);
    slm_st_tensor **by = slm_malloc((size_t)n * sizeof *by, "safetensors overlap check");
    if (!by) return SLM_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) by[i] = &f->tensors[i];
    qsort(by, (size_t)n, sizeof *by, cmp_begin);
    slm_status st = SLM_OK;
    const slm_st_tensor *prev = NULL; /* the non-empty tensor reaching furthest so far */
    for (int64_t i = 0; i < n && !st; i++) {
        const slm_st_tensor *t = by[i];
        if (t->begin == t->end) continue;
        if (prev && t->begin < prev->end)
            st = slm_fail(SLM_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap (bytes %llu..%llu and %llu..%llu)", path,
                          prev->name, t->name, (unsigned long long)prev->begin, (unsigned long long)prev->end,
                          (unsigned long long)t->begin, (unsigned long long)t->end);
        if (!prev || t->end > prev->end) prev = t;
    }
    free(by);
    return st;
}

static slm_status parse_header(slm_st_file *f, const char *path) {
    const uint8_t *d = f->file.data;
    size_t size = f->file.size;
    if (size < 8)
        return slm_fail(SLM_ERR_FORMAT, "%s: file too small for a safetensors header (%zu bytes)", path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | d[i];
    if (hlen > SLM_ST_MAX_HEADER)
        return slm_fail(SLM_ERR_FORMAT, "%s: header length %llu exceeds the %llu byte limit (corrupt or not safetensors)",
                        path, (unsigned long long)hlen, (unsigned long long)SLM_ST_MAX_HEADER);
    if (hlen > size - 8)
        return slm_fail(SLM_ERR_FORMAT, "%s: header length %llu past end of file (%zu bytes)", path,
                        (unsigned long long)hlen, size);
    if (hlen < 2) return slm_fail(SLM_ERR_FORMAT, "%s: header too short (%llu bytes)", path, (unsigned long long)hlen);
    f->data_offset = 8 + (size_t)hlen;
    uint64_t data_size = size - f->data_offset;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)d + 8, (size_t)hlen, &end, false);
    if (!root) {
        const char *ep = cJSON_GetErrorPtr();
        long at = ep ? (long)(ep - (const char *)d) : -1;
        return slm_fail(SLM_ERR_FORMAT, "%s: header is not valid JSON (error near byte %ld)", path, at);
    }
    slm_status st = SLM_OK;
    for (const char *p = end; p && p < (const char *)d + 8 + hlen && !st; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0)
            st = slm_fail(SLM_ERR_FORMAT, "%s: header has trailing bytes after the JSON object", path);
    if (!st && !cJSON_IsObject(root)) st = slm_fail(SLM_ERR_FORMAT, "%s: header is not a JSON object", path);
    int n = st ? 0 : cJSON_GetArraySize(root);
    if (!st) {
        f->tensors = slm_calloc((size_t)n + 1, sizeof *f->tensors, "safetensors tensor table");
        if (!f->tensors) st = SLM_ERR_NOMEM;
    }
    for (const cJSON *e = st ? NULL : root->child; e && !st; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (f->meta_keys) st = slm_fail(SLM_ERR_FORMAT, "%s: duplicate __metadata__", path);
            else st = parse_metadata(f, e, path);
            continue;
        }
        slm_st_tensor *t = &f->tensors[f->n_tensors];
        t->name = strdup(e->string);
        if (!t->name) {
            st = slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        f->n_tensors++;
        st = parse_tensor(t, e, data_size, path);
        if (!st) t->data = d + f->data_offset + t->begin;
    }
    cJSON_Delete(root);
    if (!st) st = check_table(f, path);
    return st;
}

slm_status slm_st_open(const char *path, slm_st_file **out) {
    *out = NULL;
    slm_st_file *f = slm_calloc(1, sizeof *f, "safetensors reader");
    if (!f) return SLM_ERR_NOMEM;
    slm_status st = slm_map_file(path, &f->file);
    if (!st) st = parse_header(f, path);
    if (st) {
        slm_st_close(f);
        return st;
    }
    *out = f;
    return SLM_OK;
}

void slm_st_close(slm_st_file *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    slm_unmap_file(&f->file);
    free(f);
}

const slm_st_tensor *slm_st_find(const slm_st_file *f, const char *name) {
    if (!f->n_tensors) return NULL;
    slm_st_tensor key = {.name = (char *)name};
    return bsearch(&key, f->tensors, (size_t)f->n_tensors, sizeof key, cmp_name);
}

const char *slm_st_meta(const slm_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

/* ---- writer ------------------------------------------------------------ */

typedef struct st_entry {
    char *name;
    const st_dtype_row *dt;
    int n_dims;
    int64_t shape[SLM_ST_MAX_DIMS];
    const float *src;
    int64_t rows, cols, ld;
    bool owned;
} st_entry;

struct slm_st_writer {
    st_entry *e;
    int n, cap;
    cJSON *meta;
};

slm_st_writer *slm_st_writer_new(void) {
    slm_st_writer *w = slm_calloc(1, sizeof *w, "safetensors writer");
    if (!w) return NULL;
    w->meta = cJSON_CreateObject();
    if (!w->meta) {
        free(w);
        slm_fail(SLM_ERR_NOMEM, "out of memory creating safetensors metadata");
        return NULL;
    }
    return w;
}

void slm_st_writer_free(slm_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->e[i].name);
        if (w->e[i].owned) free((void *)w->e[i].src);
    }
    free(w->e);
    cJSON_Delete(w->meta);
    free(w);
}

slm_status slm_st_writer_add(slm_st_writer *w, const char *name, slm_dtype dtype, int n_dims,
                             const int64_t *shape, const float *src, int64_t ld, bool take_ownership) {
    slm_status st = SLM_OK;
    const st_dtype_row *dt = dtype_by_type(dtype);
    int64_t rows = 1, cols = n_dims ? shape[n_dims - 1] : 1;
    for (int i = 0; i + 1 < n_dims; i++) rows *= shape[i];
    if (!dt) st = slm_fail(SLM_ERR_UNSUPPORTED, "%s: safetensors output supports F32, F16, BF16", name);
    else if (n_dims < 0 || n_dims > SLM_ST_MAX_DIMS || ld < cols || !src)
        st = slm_fail(SLM_ERR_ARG, "%s: bad tensor view for safetensors output", name);
    if (!st && w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        st_entry *ne = realloc(w->e, (size_t)cap * sizeof *ne);
        if (!ne) st = slm_fail(SLM_ERR_NOMEM, "out of memory adding tensor '%s'", name);
        else {
            w->e = ne;
            w->cap = cap;
        }
    }
    char *nm = st ? NULL : strdup(name);
    if (!st && !nm) st = slm_fail(SLM_ERR_NOMEM, "out of memory adding tensor '%s'", name);
    if (st) {
        if (take_ownership) free((void *)src);
        return st;
    }
    st_entry *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    e->name = nm;
    e->dt = dt;
    e->n_dims = n_dims;
    if (n_dims) memcpy(e->shape, shape, (size_t)n_dims * sizeof *shape);
    e->src = src;
    e->rows = rows;
    e->cols = cols;
    e->ld = ld;
    e->owned = take_ownership;
    return SLM_OK;
}

slm_status slm_st_writer_meta(slm_st_writer *w, const char *key, const char *value) {
    cJSON_DeleteItemFromObjectCaseSensitive(w->meta, key);
    if (!cJSON_AddStringToObject(w->meta, key, value))
        return slm_fail(SLM_ERR_NOMEM, "out of memory adding metadata '%s'", key);
    return SLM_OK;
}

/* The JSON header, padded with spaces so 8 + length is a multiple of 8.
 * Shapes and offsets go in as raw text: cJSON prints numbers above 2^31
 * through "%g", which would lose digits of large offsets. */
static char *build_header(const slm_st_writer *w, size_t *len) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    bool ok = true;
    if (w->meta->child) ok = cJSON_AddItemToObject(root, "__metadata__", cJSON_Duplicate(w->meta, true));
    uint64_t off = 0;
    char buf[64 * (SLM_ST_MAX_DIMS + 1)];
    for (int i = 0; i < w->n && ok; i++) {
        const st_entry *e = &w->e[i];
        cJSON *jt = cJSON_CreateObject();
        ok = jt && cJSON_AddItemToObject(root, e->name, jt) && cJSON_AddStringToObject(jt, "dtype", e->dt->name);
        int k = snprintf(buf, sizeof buf, "[");
        uint64_t n = 1;
        for (int d = 0; d < e->n_dims; d++) {
            k += snprintf(buf + k, sizeof buf - (size_t)k, "%s%lld", d ? "," : "", (long long)e->shape[d]);
            n *= (uint64_t)e->shape[d];
        }
        snprintf(buf + k, sizeof buf - (size_t)k, "]");
        ok = ok && cJSON_AddRawToObject(jt, "shape", buf);
        uint64_t end = off + n * e->dt->size;
        snprintf(buf, sizeof buf, "[%llu,%llu]", (unsigned long long)off, (unsigned long long)end);
        ok = ok && cJSON_AddRawToObject(jt, "data_offsets", buf);
        off = end;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return NULL;
    size_t n = strlen(text), padded = n + (8 - (8 + n) % 8) % 8;
    char *out = realloc(text, padded + 1);
    if (!out) {
        free(text);
        return NULL;
    }
    memset(out + n, ' ', padded - n);
    out[padded] = 0;
    *len = padded;
    return out;
}

/* Converts rows of one tensor into buf and writes them. */
static slm_status write_tensor(slm_atomic_file *af, const st_entry *e, uint8_t *buf, size_t buf_bytes) {
    if (e->rows == 0 || e->cols == 0) return SLM_OK;
    size_t row_bytes = (size_t)e->cols * e->dt->size;
    int64_t rows_per = (int64_t)(buf_bytes / row_bytes);
    if (rows_per < 1) rows_per = 1;
    for (int64_t r0 = 0; r0 < e->rows; r0 += rows_per) {
        int64_t nr = e->rows - r0 < rows_per ? e->rows - r0 : rows_per;
        for (int64_t r = 0; r < nr; r++) {
            const float *s = e->src + (r0 + r) * e->ld;
            uint8_t *o = buf + (size_t)r * row_bytes;
            if (e->dt->type == SLM_DTYPE_F32) {
                memcpy(o, s, row_bytes);
            } else {
                uint16_t *h = (uint16_t *)(void *)o;
                bool f16 = e->dt->type == SLM_DTYPE_F16;
                for (int64_t c = 0; c < e->cols; c++) h[c] = f16 ? slm_fp32_to_fp16(s[c]) : slm_fp32_to_bf16(s[c]);
            }
        }
        slm_status st = slm_atomic_write(af, buf, (size_t)nr * row_bytes);
        if (st) return st;
    }
    return SLM_OK;
}

slm_status slm_st_writer_write(slm_st_writer *w, const char *path) {
    size_t hlen = 0;
    char *header = build_header(w, &hlen);
    if (!header) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory building the header", path);
    /* Large enough for the widest row we write (one embedding row is at most
     * 2^16 floats) and small enough to stay in cache-friendly chunks. */
    size_t buf_bytes = (size_t)1 << 20;
    for (int i = 0; i < w->n; i++) {
        size_t rb = (size_t)w->e[i].cols * w->e[i].dt->size;
        if (rb > buf_bytes) buf_bytes = rb;
    }
    uint8_t *buf = slm_malloc(buf_bytes, "safetensors write buffer");
    slm_atomic_file af;
    slm_status st = buf ? slm_atomic_open(path, &af) : SLM_ERR_NOMEM;
    if (st) {
        free(header);
        free(buf);
        return st;
    }
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    st = slm_atomic_write(&af, lenb, 8);
    if (!st) st = slm_atomic_write(&af, header, hlen);
    for (int i = 0; i < w->n && !st; i++) st = write_tensor(&af, &w->e[i], buf, buf_bytes);
    free(header);
    free(buf);
    if (st) {
        slm_atomic_abort(&af);
        return st;
    }
    return slm_atomic_commit(&af);
}
