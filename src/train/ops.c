/* Training kernels: RMSNorm, SwiGLU, RoPE and attention forward with what
 * their backward needs, and the backward of each, plus the linear backward.
 *
 * Derivations (per row; r = 1/sqrt(mean(x^2) + eps), sigma = sigmoid):
 *   RMSNorm  y = x r w:       gy = dy*w;  dx = r gy - x r^3 (gy.x) / D;  dw += dy x r
 *   SwiGLU   h = g sigma(g) u: du = dh g sigma;  dg = dh u sigma (1 + g (1 - sigma))
 *   RoPE     y = R x (a rotation): dx = R^T dy, the rotation by -angle
 *   softmax  p = softmax(s):   ds = p * (dp - p.dp)
 *   linear   y = x W^T + b:    dx = dy W;  dW += dy^T x;  db += sum dy
 *            W = A B:          t = x B^T;  dA += dy^T t;  dt = dy A;  dB += dt^T x;  dx = dt B
 * Legend as in ops.h.
 */
#include "train/ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#ifdef SLM_OPENMP
#include <omp.h>
#endif

/* ---- RMSNorm ------------------------------------------------------------------------- */

void slm_rmsnorm_fwd_rows(float *y, float *r, const float *x, const float *w, int N, int D, float eps) {
#pragma omp parallel for if ((int64_t)N * D >= SLM_TRAIN_PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (int64_t)n * D;
        float *yr = y + (int64_t)n * D;
        double ss = 0.0;
        for (int i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
        float s = (float)(1.0 / sqrt(ss / D + eps));
        r[n] = s;
        for (int i = 0; i < D; i++) yr[i] = xr[i] * s * w[i];
    }
}

void slm_rmsnorm_bwd_rows(float *dx, float *dw, const float *dy, const float *x, const float *r, const float *w,
                          int N, int D, bool accumulate) {
#pragma omp parallel for if ((int64_t)N * D >= SLM_TRAIN_PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) {
        const float *dyr = dy + (int64_t)n * D, *xr = x + (int64_t)n * D;
        float *dxr = dx + (int64_t)n * D;
        double dot = 0.0;
        for (int i = 0; i < D; i++) dot += (double)dyr[i] * w[i] * xr[i];
        float s = r[n], c = (float)(dot * s * s * s / D);
        if (accumulate)
            for (int i = 0; i < D; i++) dxr[i] += s * dyr[i] * w[i] - c * xr[i];
        else
            for (int i = 0; i < D; i++) dxr[i] = s * dyr[i] * w[i] - c * xr[i];
    }
    if (!dw) return;
    /* Column chunks per thread: no two threads add into the same dw[i]. */
    enum { CHUNK = 64 };
    int n_chunks = (D + CHUNK - 1) / CHUNK;
#pragma omp parallel for if (n_chunks > 1 && (int64_t)N * D >= SLM_TRAIN_PAR_MIN) schedule(static)
    for (int ch = 0; ch < n_chunks; ch++) {
        int i0 = ch * CHUNK, i1 = i0 + CHUNK < D ? i0 + CHUNK : D;
        float acc[CHUNK] = {0};
        for (int n = 0; n < N; n++) {
            const float *dyr = dy + (int64_t)n * D, *xr = x + (int64_t)n * D;
            float s = r[n];
            for (int i = i0; i < i1; i++) acc[i - i0] += dyr[i] * xr[i] * s;
        }
        for (int i = i0; i < i1; i++) dw[i] += acc[i - i0];
    }
}

/* ---- SwiGLU -------------------------------------------------------------------------- */

void slm_swiglu_fwd_rows(float *h, const float *g, const float *u, int N, int F) {
#pragma omp parallel for if ((int64_t)N * F >= SLM_TRAIN_PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) {
        float *hr = h + (int64_t)n * F;
        memcpy(hr, g + (int64_t)n * F, (size_t)F * sizeof(float));
        slm_swiglu(hr, u + (int64_t)n * F, F);
    }
}

void slm_swiglu_bwd_rows(float *dg, float *du, const float *dh, const float *g, const float *u, int N, int F) {
#pragma omp parallel for if ((int64_t)N * F >= SLM_TRAIN_PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) {
        const float *gr = g + (int64_t)n * F, *ur = u + (int64_t)n * F, *dhr = dh + (int64_t)n * F;
        float *dgr = dg + (int64_t)n * F, *dur = du + (int64_t)n * F;
        /* exp(-g) through the vectorised exp, in dg's row as scratch */
        for (int i = 0; i < F; i++) dgr[i] = -gr[i];
        slm_vexp(dgr, F);
        for (int i = 0; i < F; i++) {
            float sg = 1.0f / (1.0f + dgr[i]);
            float z = gr[i];
            dur[i] = dhr[i] * z * sg;
            dgr[i] = dhr[i] * ur[i] * sg * (1.0f + z * (1.0f - sg));
        }
    }
}

/* ---- RoPE -------------------------------------------------------------------------- */

void slm_rope_rows(float *x, int N, int T, int n_heads, int Dh, int64_t ld, const float *cs, slm_rope_mode mode) {
#pragma omp parallel for if ((int64_t)N * n_heads * Dh >= SLM_TRAIN_PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) slm_rope_apply(x + (int64_t)n * ld, n_heads, Dh, cs + (int64_t)(n % T) * Dh, mode);
}

/* ---- attention ------------------------------------------------------------------------ */

int slm_attn_threads(void) {
#ifdef SLM_OPENMP
    int n = omp_get_max_threads();
#else
    int n = 1;
#endif
    return n > slm_get_threads() ? n : slm_get_threads();
}

/* Causal attention by blocks of query rows: block [r0, r1) sees keys 0 ..
 * r1-1 only, so each product covers the blocks on and below the diagonal
 * (at T = 512 and blocks of 128, 10 of 16) and the masked part inside the
 * diagonal block is computed and zeroed. One task per (sequence, query
 * head). */
static int attn_block(const slm_attn_shape *s) {
    int blk = s->q_block > 0 ? s->q_block : SLM_ATTN_QBLOCK;
    return blk < s->T ? blk : s->T;
}

void slm_attn_fwd(const slm_attn_shape *s, const float *q, const float *k, const float *v, float *p, float *out) {
    const int B = s->B, T = s->T, H = s->H, Dh = s->Dh, rep = s->H / s->Hkv, blk = attn_block(s);
    const int64_t Q = (int64_t)H * Dh, KV = (int64_t)s->Hkv * Dh;
    const float scale = 1.0f / sqrtf((float)Dh);
#pragma omp parallel for schedule(dynamic, 1) if (B * H > 1 && (int64_t)B * H * T * T * Dh >= SLM_TRAIN_PAR_MIN)
    for (int task = 0; task < B * H; task++) {
        int b = task / H, h = task % H, g = h / rep;
        const float *qh = q + (int64_t)b * T * Q + (int64_t)h * Dh;
        const float *kg = k + (int64_t)b * T * KV + (int64_t)g * Dh;
        const float *vg = v + (int64_t)b * T * KV + (int64_t)g * Dh;
        float *P = p + ((int64_t)b * H + h) * T * T, *oh = out + (int64_t)b * T * Q + (int64_t)h * Dh;
        for (int r0 = 0; r0 < T; r0 += blk) {
            int r1 = r0 + blk < T ? r0 + blk : T, nr = r1 - r0;
            float *Pb = P + (int64_t)r0 * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, r1, Dh, scale, qh + r0 * Q, (int)Q, kg, (int)KV,
                        0.0f, Pb, T);
            for (int i = r0; i < r1; i++) {
                float *row = P + (int64_t)i * T;
                slm_softmax(row, i + 1);
                if (i + 1 < T) memset(row + i + 1, 0, (size_t)(T - i - 1) * sizeof(float));
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, Dh, r1, 1.0f, Pb, T, vg, (int)KV, 0.0f,
                        oh + r0 * Q, (int)Q);
        }
    }
}

int64_t slm_attn_bwd_scratch_floats(const slm_attn_shape *s, int n_threads) {
    int64_t per_head = s->H > s->Hkv ? 2 * (int64_t)s->B * s->H * s->T * s->Dh : 0;
    return (int64_t)n_threads * attn_block(s) * s->T + per_head;
}

/* Per (sequence, query head) task, query block by block (keys 0 .. r1-1):
 *   dP = dO V^T;  dV += P^T dO;  dS = softmax'(dP) * scale;  dQ = dS K;  dK += dS^T Q
 * With grouped heads (H > Hkv) each head's dK, dV go to its own slice of
 * the scratch and are summed over the group afterwards, in head order, so
 * the result does not depend on the threads. */
void slm_attn_bwd(const slm_attn_shape *s, const float *q, const float *k, const float *v, const float *p,
                  const float *dout, float *dq, float *dk, float *dv, float *scratch, int n_threads) {
    const int B = s->B, T = s->T, H = s->H, Hkv = s->Hkv, Dh = s->Dh, rep = s->H / s->Hkv, blk = attn_block(s);
    const int64_t Q = (int64_t)H * Dh, KV = (int64_t)Hkv * Dh;
    const float scale = 1.0f / sqrtf((float)Dh);
    float *part_k = rep > 1 ? scratch + (int64_t)n_threads * blk * T : NULL;
    float *part_v = rep > 1 ? part_k + (int64_t)B * H * T * Dh : NULL;
    int nt = n_threads < B * H ? n_threads : B * H;
    if (nt < 1 || (int64_t)B * H * T * T * Dh < SLM_TRAIN_PAR_MIN) nt = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int task = 0; task < B * H; task++) {
        int b = task / H, h = task % H, g = h / rep;
#ifdef SLM_OPENMP
        int tid = omp_get_thread_num();
#else
        int tid = 0;
#endif
        float *dS = scratch + (int64_t)tid * blk * T;
        const float *qh = q + (int64_t)b * T * Q + (int64_t)h * Dh;
        const float *kg = k + (int64_t)b * T * KV + (int64_t)g * Dh;
        const float *vg = v + (int64_t)b * T * KV + (int64_t)g * Dh;
        const float *doh = dout + (int64_t)b * T * Q + (int64_t)h * Dh;
        const float *P = p + ((int64_t)b * H + h) * T * T;
        float *dqh = dq + (int64_t)b * T * Q + (int64_t)h * Dh;
        int64_t ld = rep > 1 ? Dh : KV; /* dK, dV rows: the head's slice, or dk/dv themselves */
        float *dkh = rep > 1 ? part_k + ((int64_t)b * H + h) * T * Dh : dk + (int64_t)b * T * KV + (int64_t)g * Dh;
        float *dvh = rep > 1 ? part_v + ((int64_t)b * H + h) * T * Dh : dv + (int64_t)b * T * KV + (int64_t)g * Dh;
        for (int t = 0; t < T; t++) {
            memset(dkh + t * ld, 0, (size_t)Dh * sizeof(float));
            memset(dvh + t * ld, 0, (size_t)Dh * sizeof(float));
        }
        for (int r0 = 0; r0 < T; r0 += blk) {
            int r1 = r0 + blk < T ? r0 + blk : T, nr = r1 - r0;
            const float *Pb = P + (int64_t)r0 * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, r1, Dh, 1.0f, doh + r0 * Q, (int)Q, vg, (int)KV,
                        0.0f, dS, r1);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, Dh, nr, 1.0f, Pb, T, doh + r0 * Q, (int)Q, 1.0f,
                        dvh, (int)ld);
            /* softmax backward over the visible keys, times the score scale */
            for (int i = r0; i < r1; i++) {
                const float *pr = P + (int64_t)i * T;
                float *dr = dS + (int64_t)(i - r0) * r1;
                double dot = 0.0;
                for (int j = 0; j <= i; j++) dot += (double)pr[j] * dr[j];
                float fd = (float)dot;
                for (int j = 0; j <= i; j++) dr[j] = pr[j] * (dr[j] - fd) * scale;
                for (int j = i + 1; j < r1; j++) dr[j] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, Dh, r1, 1.0f, dS, r1, kg, (int)KV, 0.0f,
                        dqh + r0 * Q, (int)Q);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, Dh, nr, 1.0f, dS, r1, qh + r0 * Q, (int)Q, 1.0f,
                        dkh, (int)ld);
        }
    }
    if (rep == 1) return;
    /* dk, dv rows = the sum of their group's head slices */
#pragma omp parallel for schedule(static) if ((int64_t)B * T * H * Dh >= SLM_TRAIN_PAR_MIN)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        for (int g = 0; g < Hkv; g++) {
            float *dkr = dk + (int64_t)bt * KV + (int64_t)g * Dh, *dvr = dv + (int64_t)bt * KV + (int64_t)g * Dh;
            for (int i = 0; i < Dh; i++) dkr[i] = dvr[i] = 0.0f;
            for (int j = 0; j < rep; j++) {
                int64_t off = (((int64_t)b * H + g * rep + j) * T + t) * Dh;
                for (int i = 0; i < Dh; i++) {
                    dkr[i] += part_k[off + i];
                    dvr[i] += part_v[off + i];
                }
            }
        }
    }
}

/* ---- linear ------------------------------------------------------------------------- */

void slm_linear_backward(const slm_linear *l, const slm_linear_grads *g, int N, const float *x, int64_t ldx,
                         const float *dy, int64_t lddy, float *dx, int64_t lddx, float beta, float *tmp,
                         float *dtmp) {
    const int n_out = l->n_out, n_in = l->n_in;
    const int ldgw = g->ld_w > 0 ? (int)g->ld_w : n_in, ldgb = g->ld_b > 0 ? (int)g->ld_b : n_in;
    if (l->kind == SLM_LINEAR_DENSE) {
        if (dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, n_in, n_out, 1.0f, dy, (int)lddy, l->w,
                        (int)l->ld_w, beta, dx, (int)lddx);
        if (g->w)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_out, n_in, N, 1.0f, dy, (int)lddy, x, (int)ldx,
                        1.0f, g->w, ldgw);
    } else { /* SLM_LINEAR_LOWRANK (the caller refuses other kinds) */
        const int r = l->rank;
        if (g->a) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, n_in, 1.0f, x, (int)ldx, l->b, (int)l->ld_b,
                        0.0f, tmp, r);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_out, r, N, 1.0f, dy, (int)lddy, tmp, r, 1.0f,
                        g->a, r);
        }
        if (g->b || dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, n_out, 1.0f, dy, (int)lddy, l->a, r, 0.0f,
                        dtmp, r);
        if (g->b)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, n_in, N, 1.0f, dtmp, r, x, (int)ldx, 1.0f, g->b,
                        ldgb);
        if (dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, n_in, r, 1.0f, dtmp, r, l->b, (int)l->ld_b,
                        beta, dx, (int)lddx);
    }
    if (g->bias && l->bias)
        for (int n = 0; n < N; n++) {
            const float *dyr = dy + (int64_t)n * lddy;
            for (int o = 0; o < n_out; o++) g->bias[o] += dyr[o];
        }
}
