/* LLM-ROM (arXiv 2312.07046): training-free layer-wise reduced-order
 * compression, and the two baselines that share its core (docs/rom.md).
 *
 * For a linear Y = W X (W [d2][d1], d2 = n_out, d1 = n_in) and calibration
 * inputs with covariance C_X = sum_t x_t x_t^T [d1][d1] (fp64):
 *   rom      C_Y = W C_X W^T [d2][d2]; V_r [r][d2] = its top-r eigenvectors;
 *            W ~= W1 W2 with W1 = V_r^T [d2][r] (the linear's a) and
 *            W2 = V_r W [r][d1] (its b). Inputs come from the model whose
 *            earlier linears are already compressed (sequential).
 *   svd-llm  C_X = L L^T (Cholesky, shifted when not positive definite);
 *            V_r = top-r left singular vectors of W L: the same subspace as
 *            rom's, but from the ORIGINAL model's inputs (non-sequential).
 *            W1 = V_r^T, W2 = V_r W, which equals SVD-LLM's
 *            U_r S_r V_r^T L^-1 without inverting L.
 *   svd      data-free: W = U S V^T, W1 = U_r sqrt(S_r), W2 = sqrt(S_r) V_r^T.
 * Rank rule (the paper's): r = floor(b d1 d2 / (d1 + d2)) for a module
 * budget b, so r (d1 + d2) ~= b d1 d2; a linear is factored only when
 * r (d1 + d2) < d1 d2. Plans compress the last N blocks (first_block = L-N).
 *
 * Calibration is streamed block by block: the residual stream of every
 * calibration sequence at the current block's input is all that is held
 * ([S][T][D] fp32), plus one [S*T][max(Q, D)] fp32 cache (the attention
 * output, then down's outputs) and the one fp64 covariance being gathered.
 * Statistics come through the forward pass's hook (model/forward.h) and the
 * same linear kinds and kernels; docs/rom.md has the plan of the arithmetic.
 * slm_rom_compress_rows starts from activations instead of tokens, so a
 * caller can hold one block of a huge model at a time.
 */
#ifndef SLM_COMPRESS_ROM_H
#define SLM_COMPRESS_ROM_H

#include "compress/calib.h"
#include "model/forward.h"

typedef enum slm_rom_method {
    SLM_ROM_METHOD_ROM = 0,
    SLM_ROM_METHOD_SVD_LLM,
    SLM_ROM_METHOD_SVD,
    SLM_ROM_METHOD_COUNT
} slm_rom_method;
const char *slm_rom_method_name(slm_rom_method m); /* "rom", "svd-llm", "svd" */
slm_status slm_rom_method_parse(const char *s, slm_rom_method *out);

/* ---- ranks and plans (rank.c) ------------------------------------------------------ */

/* floor(b * d1 * d2 / (d1 + d2)), at least 0. */
int slm_rom_rank(double b, int d1, int d2);
/* Whether rank r factors of a d2 x d1 matrix have fewer parameters than it. */
bool slm_rom_rank_saves(int r, int d1, int d2);

typedef struct slm_rom_plan {
    int first_block;      /* blocks first_block..L-1 are compressed ("last:N": L - N) */
    double module_budget; /* b of the rank rule */
    int rank_override;    /* > 0: every compressed linear gets min(this, d1, d2) and is factored
                             even when that saves nothing (tests: full-rank round trip) */
} slm_rom_plan;

/* Rank a linear of the plan gets (0: left dense). */
int slm_rom_plan_rank(const slm_rom_plan *p, int n_out, int n_in);
/* Parameters of the whole model (as slm_model_get_stats counts them) after the plan. */
int64_t slm_rom_plan_params(const slm_model *m, const slm_rom_plan *p);
/* The largest module budget (to 1e-4) for the last n_blocks blocks whose
 * model has at most budget * (dense parameters); SLM_ERR_ARG when even
 * rank 1 everywhere is too large. */
slm_status slm_rom_plan_for_budget(const slm_model *m, double budget, int n_blocks, slm_rom_plan *out);

/* ---- the linear-algebra core (basis.c) ------------------------------------------------ */

/* rom: vr [r][n_out] = the top-r eigenvectors of C_Y = W C_X W^T (rows, by
 * descending eigenvalue; tridiagonalisation, then MRRR for that index range
 * only; for n_out > n_in through the n_in x n_in core of W's QR),
 * eig [r] their eigenvalues, *trace = tr(C_Y) = ||Y||_F^2 on the calibration
 * data, so ||Y - V_r^T V_r Y||^2 = trace - sum(eig). w [n_out][n_in], cx [n_in][n_in]. */
slm_status slm_rom_output_basis(const double *w, int n_out, int n_in, const double *cx, int r, double *vr,
                                double *eig, double *trace);
/* svd-llm: the same outputs from the left singular vectors of W L, C_X = L L^T
 * (eig = squared singular values). *shift gets the diagonal shift used (0 when
 * C_X was positive definite). */
slm_status slm_rom_whitened_basis(const double *w, int n_out, int n_in, const double *cx, int r, double *vr,
                                  double *eig, double *trace, double *shift);

typedef struct slm_rom_linear_report {
    int rank;                  /* 0: left as it was */
    int64_t params_before, params_after;
    double rel_err;            /* rom/svd-llm: discarded output energy on the calibration data,
                                  ||Y - W1 W2 X||^2 / ||Y||^2; svd: ||W - W1 W2||_F^2 / ||W||_F^2 */
    double seconds;            /* factoring (basis and factors; the data passes are the block's) */
    double cpu_seconds;        /* CPU time of the process (all threads) over the same */
    double flop;               /* of the factoring, counted from the LAPACK/BLAS calls' sizes
                                  (fp64; rom only, 0 for svd-llm and svd) */
} slm_rom_linear_report;

/* Factors l (dense or QBLOCK, n_out x n_in) at rank r: a [n_out][r], b [r][n_in]
 * (fp32, caller's buffers). cx [n_in][n_in] full symmetric, NULL for svd. */
slm_status slm_rom_factor_linear(const slm_linear *l, slm_rom_method method, const double *cx, int r, float *a,
                                 float *b, slm_rom_linear_report *rep);
/* rom from the output covariance itself: cy [n_out][n_out] = sum_t y_t y_t^T
 * with y = W x (no bias), upper triangle read, destroyed. Equals
 * slm_rom_factor_linear with C_X when cy = W C_X W^T; the engine uses it for
 * down (n_out < n_in), whose outputs are 2.7x narrower than its inputs. */
slm_status slm_rom_factor_linear_cy(const slm_linear *l, double *cy, int r, float *a, float *b,
                                    slm_rom_linear_report *rep);

/* ---- compression (rom.c) ----------------------------------------------------------------- */

/* How rom moves the calibration data through a block (the results agree
 * to rounding; tests/unit/test_rom_model.c compares them). */
typedef enum slm_rom_engine {
    SLM_ROM_ENGINE_CACHED = 0, /* one pass: the attention output and the post-attention
                                  residual are kept, down's statistics come from its
                                  outputs (about 0.8 forward passes of the dense block) */
    SLM_ROM_ENGINE_PASSES      /* the reference: four gathering passes through the model's
                                  forward, each ending the block at its point, then a full
                                  pass (about 1.5 dense forward passes) */
} slm_rom_engine;

typedef struct slm_rom_params {
    slm_rom_method method;
    slm_rom_engine engine; /* rom only */
    slm_rom_plan plan;
    bool quiet;          /* no progress bars */
    bool detached;       /* factors malloc'd and listed in the report (freed by
                            slm_rom_report_free) instead of owned by the model: the
                            planner tries a plan and puts the dense linears back */
    slm_fwd_hook observe; /* NULL, or sees every calibration input the method
                             gathers statistics from (return value ignored) */
    void *observe_user;
    int64_t spill_min_bytes; /* cached rom engine: when gate and up are factored at once
                                (2+ threads) and the calibration activations X are at least
                                this large, X waits in an unlinked file in $TMPDIR meanwhile,
                                since the two factorings need about X's room more than one
                                (default 256 MiB; <= 0: never). The results are the same. */
} slm_rom_params;
slm_rom_params slm_rom_default_params(void);

/* Parts of a block's data passes, as the cached engine books them (the
 * reference engine and svd-llm book everything under PASSES). */
typedef enum slm_rom_part {
    SLM_ROM_PART_ATTN_IN = 0, /* rmsnorm + C_X of q/k/v's input */
    SLM_ROM_PART_ATTENTION,   /* factored q/k/v, attention, kept output, C_X of o's input */
    SLM_ROM_PART_O,           /* X += the factored o's output */
    SLM_ROM_PART_MLP_IN,      /* rmsnorm + C_X of gate/up's input */
    SLM_ROM_PART_MLP,         /* factored gate/up, SwiGLU, down's outputs, C_Y */
    SLM_ROM_PART_DOWN,        /* X += the factored down's output */
    SLM_ROM_PART_PASSES,      /* whole passes through the model's forward */
    SLM_ROM_PART_COUNT
} slm_rom_part;
const char *slm_rom_part_name(slm_rom_part p);

typedef struct slm_rom_block_report {
    int layer;
    bool compressed;
    slm_rom_linear_report lin[SLM_PROJ_COUNT];
    double seconds;      /* the whole block */
    double pass_seconds; /* moving and gathering data (everything but the factoring) */
    double pass_flop;    /* fp32 FLOP of that: linears, covariance syrk, attention, projections */
    double part_seconds[SLM_ROM_PART_COUNT], part_flop[SLM_ROM_PART_COUNT]; /* the same by part */
    double cpu_seconds, part_cpu_seconds[SLM_ROM_PART_COUNT]; /* CPU time of the process (all threads):
                                                                 the work, on a shared machine */
    double factor_seconds; /* wall time of the factoring (linears factored at once count once;
                              spill_seconds included) */
    double spill_seconds;  /* writing X to disk and reading it back (spill_min_bytes) */
} slm_rom_block_report;

typedef struct slm_rom_report {
    slm_rom_block_report *blocks; /* [L] */
    int n_blocks;
    int64_t params_before, params_after; /* whole model */
    double seconds;
    void **bufs; /* detached factors */
    int n_bufs;
} slm_rom_report;
void slm_rom_report_free(slm_rom_report *r);

/* Compresses m in place by p's plan, streaming cal block by block (cal may
 * be NULL for svd). On failure the model may be partly compressed. Embeds
 * the tokens and runs slm_rom_compress_rows (without moving the data
 * through the last block, which nothing reads). */
slm_status slm_rom_compress(slm_model *m, const slm_calib *cal, const slm_rom_params *p, slm_rom_report *out);

/* The same from activations: X [n_seqs][seq_len][D] is block 0's input (the
 * residual stream; sequences of seq_len tokens at positions 0..seq_len-1)
 * and is left as the last block's output, through the compressed blocks,
 * so a caller can compress a model one block at a time: a one-block model
 * per call, X carried from call to call. Every block of m is visited (those
 * before plan.first_block only move X). X may be NULL for svd (then blocks
 * before first_block are skipped). out->blocks has one entry per block of m. */
slm_status slm_rom_compress_rows(slm_model *m, float *X, int n_seqs, int seq_len, const slm_rom_params *p,
                                 slm_rom_report *out);

/* ---- automatic planner (planner.c) ----------------------------------------------------- */

typedef struct slm_rom_candidate {
    slm_rom_plan plan;
    int64_t params;
    double heldout_nll;
} slm_rom_candidate;

typedef struct slm_rom_auto_report {
    slm_rom_candidate cand[8];
    int n_cand;
    int chosen;
    int n_fit, n_heldout; /* calibration sequences used to fit / score each candidate */
} slm_rom_auto_report;

/* Chooses N (blocks from the end) and the module budget b that meet budget
 * (fraction of the dense model's parameters, embeddings included, as the
 * paper counts): a few N from the smallest feasible to L, b the largest that
 * fits for each, each tried on a proxy (the method on up to 32 calibration
 * sequences) and scored by the next-token NLL of held-out calibration
 * sequences (the last eighth, at least 2). m is left as it was. */
slm_status slm_rom_auto_plan(slm_model *m, const slm_calib *cal, double budget, const slm_rom_params *base,
                             slm_rom_plan *out, slm_rom_auto_report *rep);

#endif
