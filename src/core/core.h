/* Core helpers every module uses: error reporting, checked allocation,
 * memory-mapped files, atomic output files, progress display.
 *
 * Errors: slm_fail(status, "<file>: <what>", ...) records the message in a
 * thread-local buffer and returns the status, so the idiom is
 *     if (bad) return slm_fail(SLM_ERR_FORMAT, "%s: tensor '%s' past end of file", path, name);
 */
#ifndef SLM_CORE_H
#define SLM_CORE_H

#include "slimlm.h"
#include <stdio.h>

/* Records the message for slm_last_error() and returns st. */
slm_status slm_fail(slm_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with "prefix: " (adds context on the way out). */
void slm_error_prefix(const char *prefix);
void slm_error_clear(void);

/* Allocation with overflow checks; NULL + message on failure. what names the buffer. */
void *slm_malloc(size_t n, const char *what);
void *slm_calloc(size_t count, size_t size, const char *what);
/* 64-byte aligned; free with free(). */
void *slm_aligned_alloc(size_t n, const char *what);
/* a*b with overflow check: returns false on overflow. */
static inline bool slm_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool slm_add_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* A file mapped read-only. */
typedef struct slm_mapped_file {
    const uint8_t *data;
    size_t size;
    char *path; /* owned copy */
} slm_mapped_file;
slm_status slm_map_file(const char *path, slm_mapped_file *out);
void slm_unmap_file(slm_mapped_file *f);

/* Output written to "<path>.tmp.<pid>" and renamed onto path on commit. */
typedef struct slm_atomic_file {
    FILE *f;
    char *path;
    char *tmp_path;
} slm_atomic_file;
slm_status slm_atomic_open(const char *path, slm_atomic_file *out);
/* Flushes, fsyncs and renames; closes in every case. */
slm_status slm_atomic_commit(slm_atomic_file *af);
/* Closes and removes the temporary file. */
void slm_atomic_abort(slm_atomic_file *af);
/* fwrite that reports failures with the file name. */
slm_status slm_atomic_write(slm_atomic_file *af, const void *buf, size_t n);

/* Progress: a bar with rate and ETA on a terminal, a line every few
 * seconds otherwise. Writes to stderr. quiet disables it. */
typedef struct slm_progress {
    const char *label;
    const char *unit;
    int64_t total;
    int64_t done;
    double t_start;
    double t_last_print;
    bool tty;
    bool quiet;
} slm_progress;
void slm_progress_begin(slm_progress *p, const char *label, const char *unit, int64_t total);
void slm_progress_update(slm_progress *p, int64_t done);
void slm_progress_end(slm_progress *p);

/* Wall-clock seconds (monotonic). */
double slm_time_now(void);

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
slm_status slm_read_file(const char *path, char **out, size_t *len);

/* fp16 / bf16 conversions (scalar reference, round to nearest even). */
float slm_fp16_to_fp32(uint16_t h);
uint16_t slm_fp32_to_fp16(float f);
float slm_bf16_to_fp32(uint16_t h);
uint16_t slm_fp32_to_bf16(float f);

#endif
