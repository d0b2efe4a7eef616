/* The fp64 covariance accumulator of the rom engines (rom_engine.h).
 *
 * Rows arrive either a sequence at a time (T rows from the forward hook:
 * copied into a slab buffer) or as large contiguous blocks (the engine's
 * caches: folded in straight from the caller's memory). Each slab goes
 * through one ssyrk into an fp32 partial sum; the partial sum is added to
 * the fp64 total every SLM_ROM_COV_FOLD rows. At LLaMA-7B's width (4096)
 * one ssyrk over a 1024-row slab runs near the sgemm rate, while the fold
 * (a pass over 128 MiB of fp64) is memory-bound: folding every 2048 rows
 * keeps it a few percent of the syrk time, and an fp32 sum over 2048 rows
 * (a blocked dot product inside the BLAS) loses about 1e-6 relative.
 */
#include "compress/rom/rom_engine.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

slm_status slm_rom_cov_init(slm_rom_cov *a, int n) {
    memset(a, 0, sizeof *a);
    a->n = n;
    size_t nn = (size_t)n * (size_t)n;
    a->c = slm_calloc(nn, sizeof(double), "C_X (fp64)");
    a->tmp = slm_aligned_alloc(nn * sizeof(float), "C_X slab sum");
    if (!a->c || !a->tmp) {
        slm_rom_cov_free(a);
        return SLM_ERR_NOMEM;
    }
    return SLM_OK;
}

void slm_rom_cov_free(slm_rom_cov *a) {
    free(a->c);
    free(a->tmp);
    free(a->rows);
    memset(a, 0, sizeof *a);
}

/* c += tmp (upper triangles); tmp restarts. */
static void cov_fold(slm_rom_cov *a) {
    if (!a->in_tmp) return;
    int n = a->n;
    double *c = a->c;
    const float *t = a->tmp;
#pragma omp parallel for schedule(dynamic, 16) if (n >= 256)
    for (int i = 0; i < n; i++) {
        double *ci = c + (size_t)i * n;
        const float *ti = t + (size_t)i * n;
        for (int j = i; j < n; j++) ci[j] += ti[j];
    }
    a->in_tmp = 0;
}

/* tmp += rows^T rows for k rows (stride ld). */
static void cov_syrk(slm_rom_cov *a, const float *rows, int k, int64_t ld) {
    int n = a->n;
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, 1.0f, rows, (int)ld, a->in_tmp ? 1.0f : 0.0f, a->tmp, n);
    a->flop += (double)k * n * (n + 1);
    a->in_tmp += k;
    if (a->in_tmp >= SLM_ROM_COV_FOLD) cov_fold(a);
}

static void cov_flush(slm_rom_cov *a) {
    if (!a->pending) return;
    cov_syrk(a, a->rows, a->pending, a->n);
    a->pending = 0;
}

void slm_rom_cov_add(slm_rom_cov *a, const float *rows, int64_t n_rows, int64_t ld) {
    int n = a->n;
    int64_t t = 0;
    /* Large blocks go straight to ssyrk once the slab buffer is empty. */
    while (a->pending == 0 && n_rows - t >= SLM_ROM_COV_SLAB / 2) {
        int k = n_rows - t < SLM_ROM_COV_SLAB ? (int)(n_rows - t) : SLM_ROM_COV_SLAB;
        cov_syrk(a, rows + t * ld, k, ld);
        t += k;
    }
    if (t == n_rows) return;
    if (!a->rows) {
        a->rows = slm_aligned_alloc((size_t)SLM_ROM_COV_SLAB * n * sizeof(float), "C_X rows");
        if (!a->rows) { /* no slab buffer: fold these rows in as they are (slower, still exact) */
            for (; t < n_rows; t += SLM_ROM_COV_SLAB) {
                int k = n_rows - t < SLM_ROM_COV_SLAB ? (int)(n_rows - t) : SLM_ROM_COV_SLAB;
                cov_syrk(a, rows + t * ld, k, ld);
            }
            return;
        }
    }
    for (; t < n_rows; t++) {
        memcpy(a->rows + (size_t)a->pending * n, rows + t * ld, (size_t)n * sizeof(float));
        if (++a->pending == SLM_ROM_COV_SLAB) cov_flush(a);
    }
}

void slm_rom_cov_finish(slm_rom_cov *a) {
    cov_flush(a);
    cov_fold(a);
    int n = a->n;
    double *c = a->c;
#pragma omp parallel for schedule(dynamic, 16) if (n >= 256)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) c[(size_t)i * n + j] = c[(size_t)j * n + i];
}
