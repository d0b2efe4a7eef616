/* Row-wise operations of the training forward and their backward kernels,
 * over N rows (callers: forward_train.c, backward.c; tests compare each
 * backward with finite differences of a double-precision forward).
 *
 * Legend: N rows, D model dim, F MLP width, B sequences, T tokens per
 * sequence, H / Hkv query / key-value heads, Dh head dim.
 * Backward kernels take dy (the gradient of the op's output) and write dx;
 * parameter gradients are added into (+=), NULL meaning "not wanted".
 */
#ifndef SLM_TRAIN_OPS_H
#define SLM_TRAIN_OPS_H

#include "kernels/cpu/kernels.h"
#include "model/model.h"

/* Loops over fewer elements than this run on one thread: a parallel region
 * costs microseconds (far more on a loaded machine, where spinning threads
 * wait for a core), more than the tiny shapes of tests and small models. */
enum { SLM_TRAIN_PAR_MIN = 1 << 15 };

/* ---- RMSNorm: y = x * r * w, r = 1/sqrt(mean(x^2) + eps) (sum in double) ---- */
void slm_rmsnorm_fwd_rows(float *y, float *r, const float *x, const float *w, int N, int D, float eps);
/* dx = (accumulate ? dx : 0) + d/dx; dw += sum over rows of dy * x * r. */
void slm_rmsnorm_bwd_rows(float *dx, float *dw, const float *dy, const float *x, const float *r, const float *w,
                          int N, int D, bool accumulate);

/* ---- SwiGLU: h = silu(g) * u over [N][F] ---- */
void slm_swiglu_fwd_rows(float *h, const float *g, const float *u, int N, int F);
/* dg, du from dh (dg may not alias anything else). */
void slm_swiglu_bwd_rows(float *dg, float *du, const float *dh, const float *g, const float *u, int N, int F);

/* ---- RoPE over rows: row n is at position n % T; x rows have stride ld.
 * cs is a table [T][Dh/2][2] of (cos, sin); the backward rotates by the
 * opposite angle, i.e. the same kernel with a (cos, -sin) table. */
void slm_rope_rows(float *x, int N, int T, int n_heads, int Dh, int64_t ld, const float *cs, slm_rope_mode mode);

/* ---- causal attention with grouped KV heads, per sequence ---- */
/* Query rows per block (q_block 0): block [r0, r1) multiplies with keys
 * 0 .. r1-1 only, skipping the masked blocks above the diagonal; 128 rows
 * keep every GEMM large enough for OpenBLAS to run near its peak. */
enum { SLM_ATTN_QBLOCK = 128 };
typedef struct slm_attn_shape {
    int B, T, H, Hkv, Dh;
    int q_block; /* query rows per block, 0: SLM_ATTN_QBLOCK (T or more: one block) */
} slm_attn_shape;
/* q [N][H*Dh], k, v [N][Hkv*Dh] -> p [B][H][T][T] (probabilities, zero above
 * the diagonal), out [N][H*Dh]. */
void slm_attn_fwd(const slm_attn_shape *s, const float *q, const float *k, const float *v, float *p, float *out);
/* dq [N][H*Dh], dk, dv [N][Hkv*Dh] (overwritten) from dout; scratch holds
 * slm_attn_bwd_scratch_floats(s, n_threads) floats. */
void slm_attn_bwd(const slm_attn_shape *s, const float *q, const float *k, const float *v, const float *p,
                  const float *dout, float *dq, float *dk, float *dv, float *scratch, int n_threads);
/* Threads slm_attn_bwd may use (size its scratch with this). */
int slm_attn_threads(void);
/* Floats of slm_attn_bwd's scratch for n_threads: a block of scores per
 * thread, and with grouped heads (H > Hkv) each head's dK and dV. */
int64_t slm_attn_bwd_scratch_floats(const slm_attn_shape *s, int n_threads);

/* ---- linear backward (dense W or low-rank A.B, optional bias) ---- */
typedef struct slm_linear_grads {
    float *w, *a, *b, *bias; /* [n_out][n_in], [n_out][r], [r][n_in], [n_out]; NULL: not wanted */
    int64_t ld_w, ld_b;      /* row strides of w and b (0: n_in). An elastic view's down projection
                                is narrowed to its first n_in columns of a wider gradient */
} slm_linear_grads;
/* For y = x W^T + bias over N rows: dx = beta * dx + dy W (dx NULL: skip),
 * and the parameter gradients. tmp, dtmp: N * rank floats each (low-rank). */
void slm_linear_backward(const slm_linear *l, const slm_linear_grads *g, int N, const float *x, int64_t ldx,
                         const float *dy, int64_t lddy, float *dx, int64_t lddx, float beta, float *tmp, float *dtmp);

#endif
