/* Double-precision reference operations of the LLaMA block, written
 * straight from their definitions, for tests that check the fp32 forward
 * and backward passes against an independent computation. */
#ifndef SLM_TEST_REF_OPS_H
#define SLM_TEST_REF_OPS_H

#include "model/model.h"

#include <stdbool.h>

/* y[n_out] = W x (+ bias) for a dense or low-rank (W = A B) linear. */
void slm_ref_linear(const slm_linear *l, const double *x, double *y);
/* y = x / sqrt(mean(x^2) + eps) * w. */
void slm_ref_rmsnorm(const double *x, const float *w, int n, float eps, double *y);
/* Rotates n_heads heads of Dh in place at position pos: pairs (2i, 2i+1)
 * when adjacent, else (i, i + Dh/2); angle pos * inv_freq[i]. */
void slm_ref_rope(double *v, int n_heads, int Dh, const double *inv_freq, int pos, bool adjacent);
/* Causal softmax attention of the query row q (n_heads x Dh) at position t
 * over key and value rows 0..t (row stride ld doubles), grouped-query:
 * head h reads kv head h / (n_heads / n_kv_heads). att gets n_heads x Dh. */
void slm_ref_attention_row(const double *q, const double *k, const double *v, int ld, int t, int n_heads,
                           int n_kv_heads, int Dh, double *att);

#endif
