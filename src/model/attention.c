/* Causal multi-head attention with grouped KV heads, over the KV cache.
 *
 * For query head h (KV head g = h / (H / Hkv), as HF's repeat_kv and
 * ggml's broadcast) and a tile of up to SLM_ATTN_TILE query rows t0..t1:
 *   S[tq][nk] = Q_h[t0..t1] . K_g[0..nk)^T / sqrt(Dh)     (one sgemm)
 *   row i: softmax over the nk_i = P + t0 + i + 1 visible keys, 0 beyond
 *   O_h[t0..t1] = S . V_g[0..nk)                          (one sgemm)
 * where nk = P + t1 + 1 keys, the most any row of the tile sees, so tiles
 * skip most of the causal upper triangle. Tasks (head, tile) are spread
 * over OpenMP threads; each thread has its own S in the context scratch.
 * Decode (T = 1) is the same with one row: two matrix-vector products.
 */
#include "model/forward.h"
#include "kernels/cpu/kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#ifdef SLM_OPENMP
#include <omp.h>
#endif

void slm_attention_forward(slm_context *c, int layer, int T, const float *q, float *out) {
    const slm_config *cfg = &c->m->cfg;
    const int H = cfg->n_heads, Dh = cfg->head_dim, KV = c->kv_dim, Q = H * Dh;
    const int rep = H / cfg->n_kv_heads, P = c->n_past;
    const float *K = slm_context_k(c, layer), *Vc = slm_context_v(c, layer);
    const float scale = 1.0f / sqrtf((float)Dh);
    const int n_tiles = (T + SLM_ATTN_TILE - 1) / SLM_ATTN_TILE;
    const int n_tasks = H * n_tiles;
    int nt = c->n_threads;
    if (nt > n_tasks) nt = n_tasks;

#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int task = 0; task < n_tasks; task++) {
        /* Tiles first: the last (widest) tiles of all heads start early. */
        int tile = n_tiles - 1 - task / H, h = task % H, g = h / rep;
        int t0 = tile * SLM_ATTN_TILE;
        int tq = T - t0 < SLM_ATTN_TILE ? T - t0 : SLM_ATTN_TILE;
        int nk = P + t0 + tq;
#ifdef SLM_OPENMP
        int tid = omp_get_thread_num();
#else
        int tid = 0;
#endif
        float *S = c->scores + (int64_t)tid * SLM_ATTN_TILE * c->n_ctx; /* [tq][nk] */
        const float *qh = q + (int64_t)t0 * Q + (int64_t)h * Dh;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tq, nk, Dh, scale, qh, Q, K + (int64_t)g * Dh, KV,
                    0.0f, S, nk);
        for (int i = 0; i < tq; i++) {
            int vis = P + t0 + i + 1;
            float *row = S + (int64_t)i * nk;
            slm_softmax(row, vis);
            if (vis < nk) memset(row + vis, 0, (size_t)(nk - vis) * sizeof(float));
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tq, Dh, nk, 1.0f, S, nk, Vc + (int64_t)g * Dh, KV,
                    0.0f, out + (int64_t)t0 * Q + (int64_t)h * Dh, Q);
    }
}
