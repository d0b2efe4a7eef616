/* GGUF reader and writer (internal API). The byte layout is documented at
 * the top of gguf.c. The reader mmaps the file, validates every length,
 * offset and count against the file size before use, and never reads past
 * the mapping; strings in the file are not NUL-terminated, so they are
 * handed out as (pointer, length) pairs.
 */
#ifndef SLM_GGUF_H
#define SLM_GGUF_H

#include "core/core.h"
#include "core/dtype.h"

typedef enum slm_gguf_type {
    SLM_GGUF_UINT8 = 0, SLM_GGUF_INT8 = 1, SLM_GGUF_UINT16 = 2, SLM_GGUF_INT16 = 3,
    SLM_GGUF_UINT32 = 4, SLM_GGUF_INT32 = 5, SLM_GGUF_FLOAT32 = 6, SLM_GGUF_BOOL = 7,
    SLM_GGUF_STRING = 8, SLM_GGUF_ARRAY = 9, SLM_GGUF_UINT64 = 10, SLM_GGUF_INT64 = 11,
    SLM_GGUF_FLOAT64 = 12,
    SLM_GGUF_TYPE_COUNT
} slm_gguf_type;

typedef struct slm_gguf_str {
    const char *ptr; /* into the mapping, NOT NUL-terminated */
    uint64_t len;
} slm_gguf_str;

typedef struct slm_gguf_kv {
    slm_gguf_str key;
    slm_gguf_type type;
    /* scalars: value points at the raw little-endian bytes in the mapping.
     * STRING: str. ARRAY: arr_type, arr_n, and arr_data (raw elements for
     * fixed-size types; for string arrays use arr_strs). */
    const void *value;
    slm_gguf_str str;
    slm_gguf_type arr_type;
    uint64_t arr_n;
    const void *arr_data; /* for arrays of arrays: the raw nested bytes (no accessors) */
    slm_gguf_str *arr_strs; /* [arr_n] for string arrays, owned by the reader */
    const void *raw;        /* the value's bytes as stored (after the type), for copying */
    uint64_t raw_len;
} slm_gguf_kv;

typedef struct slm_gguf_tensor {
    char *name;        /* NUL-terminated copy */
    slm_dtype type;
    int n_dims;
    int64_t ne[4];     /* ne[0] fastest-varying (columns); unused dims are 1 */
    int64_t n_elems;
    uint64_t offset;   /* relative to the data section */
    size_t nbytes;
    const void *data;  /* into the mapping */
} slm_gguf_tensor;

typedef struct slm_gguf {
    slm_mapped_file file;
    uint32_t version;  /* 2 or 3 */
    uint64_t alignment;
    slm_gguf_kv *kvs;
    int64_t n_kv;
    slm_gguf_tensor *tensors;
    int64_t n_tensors;
    size_t data_offset; /* start of the tensor data section in the file */
    slm_gguf_kv **kv_sorted;         /* [n_kv] by key, for lookups */
    slm_gguf_tensor **tensor_sorted; /* [n_tensors] by name, for lookups */
} slm_gguf;

/* Opens and validates path. On failure the message names the file and the
 * problem ("x.gguf: tensor 'blk.0.attn_q.weight' data past end of file"). */
slm_status slm_gguf_open(const char *path, slm_gguf **out);
void slm_gguf_close(slm_gguf *g);

/* Lookups: NULL / false when the key is absent or has an incompatible type.
 * Integer getters accept any integer type whose value fits. */
const slm_gguf_kv *slm_gguf_find(const slm_gguf *g, const char *key);
bool slm_gguf_get_i64(const slm_gguf *g, const char *key, int64_t *out);
bool slm_gguf_get_f32(const slm_gguf *g, const char *key, float *out); /* FLOAT32 or FLOAT64 */
bool slm_gguf_get_bool(const slm_gguf *g, const char *key, bool *out);
bool slm_gguf_get_str(const slm_gguf *g, const char *key, slm_gguf_str *out);
/* Element i of a numeric array kv as int64/double (false when out of range). */
bool slm_gguf_arr_i64(const slm_gguf_kv *kv, uint64_t i, int64_t *out);
bool slm_gguf_arr_f64(const slm_gguf_kv *kv, uint64_t i, double *out);
const slm_gguf_tensor *slm_gguf_find_tensor(const slm_gguf *g, const char *name);
/* Size in bytes of one element of a fixed-size type (0 for STRING/ARRAY). */
size_t slm_gguf_type_size(slm_gguf_type t);
const char *slm_gguf_type_name(slm_gguf_type t);

/* ---- writer ------------------------------------------------------------
 * Collects metadata and tensors (data pointers are borrowed until write),
 * then writes a GGUF v3 file atomically (temporary file + rename). */
typedef struct slm_gguf_writer slm_gguf_writer;
slm_gguf_writer *slm_gguf_writer_new(void);
void slm_gguf_writer_free(slm_gguf_writer *w);
slm_status slm_gguf_set_u32(slm_gguf_writer *w, const char *key, uint32_t v);
slm_status slm_gguf_set_i32(slm_gguf_writer *w, const char *key, int32_t v);
slm_status slm_gguf_set_f32(slm_gguf_writer *w, const char *key, float v);
slm_status slm_gguf_set_bool(slm_gguf_writer *w, const char *key, bool v);
slm_status slm_gguf_set_str(slm_gguf_writer *w, const char *key, const char *v);
/* Arrays of fixed-size elements (copied) and of strings (copied). */
slm_status slm_gguf_set_arr(slm_gguf_writer *w, const char *key, slm_gguf_type elem, const void *data, uint64_t n);
slm_status slm_gguf_set_arr_str(slm_gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens, uint64_t n);
/* Copies every kv of a reader whose key starts with prefix (e.g. "tokenizer."). */
slm_status slm_gguf_copy_kvs(slm_gguf_writer *w, const slm_gguf *g, const char *prefix);
/* Adds a tensor from fp32 rows: src is [ne1][ld] (ld >= ne0), converted to
 * type on write (F32, F16, BF16, Q8_0). n_dims 1 or 2. */
slm_status slm_gguf_add_tensor_f32(slm_gguf_writer *w, const char *name, slm_dtype type, int n_dims,
                                   int64_t ne0, int64_t ne1, const float *src, int64_t ld);
/* The same for a tensor of [ne1][ne0] whose first src_ne1 rows and src_ne0
 * columns come from src (stride ld) and the rest are zeros. */
slm_status slm_gguf_add_tensor_f32_padded(slm_gguf_writer *w, const char *name, slm_dtype type, int n_dims,
                                          int64_t ne0, int64_t ne1, const float *src, int64_t ld, int64_t src_ne0,
                                          int64_t src_ne1);
/* Adds a tensor whose rows are already in type's bytes: ne1 rows of ne0
 * elements, row_stride bytes apart in data (0: compact; borrowed until
 * write). */
slm_status slm_gguf_add_tensor_raw(slm_gguf_writer *w, const char *name, slm_dtype type, int n_dims, int64_t ne0,
                                   int64_t ne1, const void *data, size_t row_stride);
slm_status slm_gguf_writer_write(slm_gguf_writer *w, const char *path);

#endif
