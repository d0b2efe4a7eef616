/* safetensors reader and writer (internal API). The byte layout is
 * documented at the top of safetensors.c.
 *
 * The reader mmaps the file, validates the header (length, JSON, dtypes,
 * shapes, offsets, overlaps) against the file size before any tensor is
 * handed out, and never reads past the mapping. Tensor data pointers point
 * into the mapping; a loader that keeps them moves the mapping into the
 * model (slm_model_add_map(m, &st->file)) before closing the reader.
 *
 * The writer collects fp32 sources (row-strided views, so sub-matrices such
 * as a narrowed MLP need no copy) and converts to the output dtype while
 * streaming them into an atomically written file.
 */
#ifndef SLM_SAFETENSORS_H
#define SLM_SAFETENSORS_H

#include "core/core.h"
#include "core/dtype.h"

#define SLM_ST_MAX_DIMS 8
/* Headers above this are refused before allocating anything: real headers
 * are tens of KiB even for 70B checkpoints (the Rust reference allows 100 MB). */
#define SLM_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

typedef struct slm_st_tensor {
    char *name;                     /* NUL-terminated copy */
    slm_dtype type;                 /* F32, F16 or BF16 */
    int n_dims;                     /* 0 (scalar) .. SLM_ST_MAX_DIMS */
    int64_t shape[SLM_ST_MAX_DIMS]; /* HF order: shape[0] slowest-varying */
    int64_t n_elems;
    uint64_t begin, end;            /* data_offsets, relative to the data section */
    const void *data;               /* into the mapping */
} slm_st_tensor;

typedef struct slm_st_file {
    slm_mapped_file file;  /* moved out by loaders that keep tensor pointers */
    size_t data_offset;    /* 8 + header length */
    slm_st_tensor *tensors; /* sorted by name */
    int64_t n_tensors;
    char **meta_keys, **meta_vals; /* __metadata__ (string -> string) */
    int n_meta;
} slm_st_file;

/* Opens and validates path. Errors name the file and the problem, e.g.
 * "x/model.safetensors: tensor 'lm_head.weight' data_offsets [0, 99] past end of data (64 bytes)". */
slm_status slm_st_open(const char *path, slm_st_file **out);
/* Frees the table; unmaps the file unless it was moved out. */
void slm_st_close(slm_st_file *f);
const slm_st_tensor *slm_st_find(const slm_st_file *f, const char *name);
/* __metadata__ value for key, or NULL. */
const char *slm_st_meta(const slm_st_file *f, const char *key);
/* "F32", "F16", "BF16" (safetensors dtype strings). */
const char *slm_st_dtype_name(slm_dtype t);

/* ---- writer ------------------------------------------------------------ */

typedef struct slm_st_writer slm_st_writer;

slm_st_writer *slm_st_writer_new(void);
void slm_st_writer_free(slm_st_writer *w);
/* Adds a tensor of HF shape shape[0..n_dims) stored as dtype. The source is
 * fp32 viewed as rows = prod(shape[0..n_dims-1)) rows of cols = shape[n_dims-1]
 * values with a row stride of ld (>= cols) floats. The source must stay
 * alive until slm_st_writer_write; with take_ownership the writer frees it
 * (a buffer allocated with malloc/posix_memalign). name is copied. */
slm_status slm_st_writer_add(slm_st_writer *w, const char *name, slm_dtype dtype, int n_dims,
                             const int64_t *shape, const float *src, int64_t ld, bool take_ownership);
/* Adds a __metadata__ entry (copied). */
slm_status slm_st_writer_meta(slm_st_writer *w, const char *key, const char *value);
/* Writes every tensor in the order added, atomically (tmp file + rename). */
slm_status slm_st_writer_write(slm_st_writer *w, const char *path);

#endif
