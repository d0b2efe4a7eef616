/* Internals shared by the files of the rom engine (not API: rom.h is).
 *
 *   cov.c     the fp64 covariance accumulator (fp32 syrk in slabs, fp64 sums)
 *   rom.c     drivers, factoring a block's linears into the model, the
 *             reference multi-pass engine, svd-llm and svd
 *   stream.c  the cached one-pass rom engine
 *   spill.c   X on disk while gate and up are factored at once
 *
 * Legend: S sequences, T tokens each, N = S*T rows, D model dim, Q = H*Dh,
 * F MLP width, r rank.
 */
#ifndef SLM_COMPRESS_ROM_ENGINE_H
#define SLM_COMPRESS_ROM_ENGINE_H

#include "compress/rom/rom.h"

/* ---- covariance accumulator (cov.c) --------------------------------------------------- */

/* sum_t x_t x_t^T over every row added. Rows are folded in with ssyrk over
 * slabs of up to SLM_ROM_COV_SLAB rows (fp32, accumulated in tmp), and tmp
 * is added to the fp64 sum every SLM_ROM_COV_FOLD rows, so the sum over all
 * tokens is fp64 while each BLAS call is large enough to run at speed. */
enum { SLM_ROM_COV_SLAB = 1024, SLM_ROM_COV_FOLD = 2048 };

typedef struct slm_rom_cov {
    int n;         /* row width */
    double *c;     /* [n][n] sum (upper triangle; full after slm_rom_cov_finish) */
    float *tmp;    /* [n][n] fp32 partial sum since the last fold (upper) */
    float *rows;   /* [SLM_ROM_COV_SLAB][n] pending rows given a few at a time */
    int pending;   /* rows in `rows` */
    int in_tmp;    /* rows summed in tmp */
    double flop;   /* of the syrk calls */
} slm_rom_cov;

slm_status slm_rom_cov_init(slm_rom_cov *a, int n);
/* Adds n_rows rows of width a->n (row stride ld). */
void slm_rom_cov_add(slm_rom_cov *a, const float *rows, int64_t n_rows, int64_t ld);
/* Folds everything in and fills the lower triangle. */
void slm_rom_cov_finish(slm_rom_cov *a);
void slm_rom_cov_free(slm_rom_cov *a);

/* ---- eigenpairs (basis.c) ---------------------------------------------------------------- */

/* From this size on, rom's eigenproblems tridiagonalise in fp32 (basis.c). */
enum { SLM_ROM_EIG_FP32_MIN = 1024 };
/* Top-r eigenpairs of the symmetric s [n][n] (upper triangle read, destroyed):
 * vecs [r][n] by descending eigenvalue, vals [r]; *flop += its FLOP. */
slm_status slm_rom_top_eigen(double *s, int n, int r, double *vecs, double *vals, bool fp32_reduction,
                             double *flop);

/* ---- X on disk for a while (spill.c) ------------------------------------------------- */

/* X's bytes in an unlinked temporary file ($TMPDIR, default /tmp) while X's
 * pages are given back to the system. */
typedef struct slm_rom_spill {
    int fd;     /* -1: none */
    char *path; /* for error messages (the file itself is unlinked) */
    float *x;
    size_t bytes;
} slm_rom_spill;
/* Writes x [bytes] to a new temporary file, releasing x's pages as they are
 * written (their contents are undefined until slm_rom_spill_in). On
 * failure the part written is read back, so x is intact unless the message
 * says that failed too, and nothing is left open. */
slm_status slm_rom_spill_out(slm_rom_spill *sp, float *x, size_t bytes);
/* Reads every byte back into x and closes the file (also on failure). */
slm_status slm_rom_spill_in(slm_rom_spill *sp);
void slm_rom_spill_close(slm_rom_spill *sp);

/* ---- shared by the engines (rom.c) ---------------------------------------------------- */

/* CPU seconds of the process, all threads (CLOCK_PROCESS_CPUTIME_ID); of
 * the calling thread inside an OpenMP parallel region. */
double slm_rom_cpu_now(void);

typedef struct slm_rom_stream {
    slm_model *m;
    const slm_rom_params *p;
    slm_rom_report *rep;
    slm_context *ctx; /* n_ctx = n_batch = T */
    float *X;         /* [N][D] */
    int S, T;
    float *cache;     /* [N][cache_w] (stream.c), NULL until needed */
    int64_t cache_w;
    slm_progress pr;
    int64_t done;
} slm_rom_stream;

/* Which point feeds each projection. */
extern const slm_fwd_point slm_rom_input_of[SLM_PROJ_COUNT];

/* Rank the plan gives linear k of block `layer` (0: left as it is). */
int slm_rom_stream_rank(const slm_rom_stream *s, int layer, int k);
/* Factors linear k of block `layer` at rank r from C_X (cx, or NULL for
 * svd) or, when cy is given, from down's output covariance (destroyed), and
 * puts the factors in the model. */
slm_status slm_rom_stream_factor(slm_rom_stream *s, int layer, int k, int r, const double *cx, double *cy);
/* The same in three steps, so that independent linears (those sharing one
 * input covariance) can be factored at once: begin allocates the factors
 * (not thread-safe), run computes them (touches only the job's linear and
 * its report: one job per thread), end installs the low-rank linear. */
typedef struct slm_rom_factor_job {
    int layer, k, r;
    const double *cx;
    double *cy;
    float *fa, *fb;
} slm_rom_factor_job;
slm_status slm_rom_factor_begin(slm_rom_stream *s, int layer, int k, int r, const double *cx, double *cy,
                                slm_rom_factor_job *job);
slm_status slm_rom_factor_run(slm_rom_stream *s, slm_rom_factor_job *job);
void slm_rom_factor_end(slm_rom_stream *s, const slm_rom_factor_job *job);
/* FLOP of T rows through linear l (dense or block-quantised: 2 T n_out n_in;
 * low-rank: 2 T r (n_out + n_in)). */
double slm_rom_linear_flop(const slm_linear *l, int64_t T);
/* FLOP of one block's attention for one sequence of T tokens (causal). */
double slm_rom_attention_flop(const slm_config *cfg, int64_t T);

/* ---- the cached rom engine (stream.c) ------------------------------------------------- */

/* Gathers, factors and moves X through compressed block `layer`; with
 * need_output false the last step (X through the factored down) is left
 * out, for the model's last block. */
slm_status slm_rom_stream_block(slm_rom_stream *s, int layer, bool need_output);
/* Progress units slm_rom_stream_block reports for one block. */
int64_t slm_rom_stream_units(const slm_rom_stream *s);

#endif
