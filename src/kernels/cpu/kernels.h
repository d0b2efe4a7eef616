/* CPU kernels of the forward pass that are not GEMMs: RMSNorm, RoPE,
 * softmax, SwiGLU. GEMMs go through OpenBLAS (model/forward.c).
 *
 * Every vectorised kernel has a plain C reference beside it (the *_ref
 * functions) and tests/unit/test_kernels.c compares the two with a stated
 * tolerance; the fast versions use AVX2+FMA when the compiler targets it
 * (SLM_NATIVE) and fall back to the reference otherwise.
 *
 * Legend: T tokens, D model dim, F MLP width, H heads, Dh head dim.
 * Kernels work on one row at a time; callers parallelise over rows.
 */
#ifndef SLM_KERNELS_CPU_H
#define SLM_KERNELS_CPU_H

#include <stdbool.h>
#include <stdint.h>

/* ---- RMSNorm: y[n] = x[n] / sqrt(mean(x^2) + eps) * w[n] (y may equal x) */
void slm_rmsnorm_ref(float *y, const float *x, const float *w, int n, float eps);
void slm_rmsnorm(float *y, const float *x, const float *w, int n, float eps);

/* ---- softmax in place over x[n]; sum accumulated in double in the reference */
void slm_softmax_ref(float *x, int n);
void slm_softmax(float *x, int n);

/* ---- SwiGLU: g[n] = silu(g[n]) * u[n], silu(z) = z / (1 + exp(-z)) */
void slm_swiglu_ref(float *g, const float *u, int n);
void slm_swiglu(float *g, const float *u, int n);

/* exp of n values in place (the vectorised exp shared by softmax/SwiGLU);
 * relative error below 2e-7 over the float range, exp(-inf) = 0. */
void slm_vexp(float *x, int n);

/* ---- RoPE ---------------------------------------------------------------- */

typedef enum slm_rope_mode {
    SLM_ROPE_MODE_HALVES = 0, /* pairs (x_i, x_{i+Dh/2}) (HF, NEOX) */
    SLM_ROPE_MODE_ADJACENT    /* pairs (x_{2i}, x_{2i+1}) (llama.cpp GGUF llama) */
} slm_rope_mode;

typedef struct slm_rope_freq_params {
    int head_dim;
    float theta;
    int scaling;             /* 0 none, 1 linear, 2 llama3 (= slm_rope_scaling) */
    float factor;
    float low_freq_factor, high_freq_factor;
    int orig_ctx;
} slm_rope_freq_params;

/* inv_freq[Dh/2]: theta^(-2i/Dh), adjusted by the scaling (linear scaling
 * divides every frequency by factor, i.e. positions by factor; llama3
 * scaling divides only the low frequencies, blending in between). */
void slm_rope_inv_freq(const slm_rope_freq_params *p, double *inv_freq);

/* Table of cos/sin for positions [0, n_pos): cs[pos][Dh/2][2] = (cos, sin)
 * of pos * inv_freq[i], computed in double. */
void slm_rope_table(const double *inv_freq, int head_dim, int n_pos, float *cs);

/* Rotates n_heads heads of x (head h at x + h*Dh) by one position's row
 * of the table (cs_row = cs + pos*Dh). */
void slm_rope_apply(float *x, int n_heads, int head_dim, const float *cs_row, slm_rope_mode mode);
/* Reference: computes cos/sin from inv_freq and pos directly (double). */
void slm_rope_apply_ref(float *x, int n_heads, int head_dim, const double *inv_freq, int pos,
                        slm_rope_mode mode);

/* ---- checks ---------------------------------------------------------------- */

/* True when all n values are finite (integer test of the exponent bits, so
 * it vectorises without -ffast-math). */
bool slm_all_finite(const float *x, int64_t n);

#endif
