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
 *
 * Packed steps (slm_decode_packed): row i sees only the cache slots of its
 * spans. A tile computes S against keys [k0, nk), the hull of its rows'
 * spans, sets the scores outside a row's spans to -inf (the softmax makes
 * them exactly 0, so they add nothing to S . V) and normalises the whole
 * row. Rows of other sequences in the hull cost wasted dot products, a few
 * percent of a step whose linears dominate.
 */
#include "model/forward.h"
#include "kernels/cpu/kernels.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#ifdef SLM_OPENMP
#include <omp.h>
#endif

/* The hull [*k0, *nk) of the spans of packed rows r0 .. r0+tq-1. */
static void packed_tile_keys(const slm_packed_rows *p, int r0, int tq, int *k0, int *nk) {
    int lo = INT_MAX, hi = 0;
    for (int r = r0; r < r0 + tq; r++) {
        const int32_t *first = p->span + 2 * (int64_t)p->span_off[r], *last = p->span + 2 * (int64_t)p->span_off[r + 1];
        if (first[0] < lo) lo = first[0];
        if (last[-1] > hi) hi = last[-1];
    }
    *k0 = lo;
    *nk = hi;
}

/* Scores of packed row r over keys [k0, k0 + w): -inf outside its spans. */
static void packed_mask_row(const slm_packed_rows *p, int r, int k0, float *row, int w) {
    int at = k0;
    for (int s = p->span_off[r]; s < p->span_off[r + 1]; s++) {
        for (; at < p->span[2 * s]; at++) row[at - k0] = -INFINITY;
        at = p->span[2 * s + 1];
    }
    for (; at < k0 + w; at++) row[at - k0] = -INFINITY;
}

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
        int k0 = 0, nk = P + t0 + tq;
        if (c->pack) packed_tile_keys(c->pack, c->pack_row0 + t0, tq, &k0, &nk);
        int w = nk - k0;
#ifdef SLM_OPENMP
        int tid = omp_get_thread_num();
#else
        int tid = 0;
#endif
        float *S = c->scores + (int64_t)tid * SLM_ATTN_TILE * c->n_ctx; /* [tq][w] */
        const float *qh = q + (int64_t)t0 * Q + (int64_t)h * Dh;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tq, w, Dh, scale, qh, Q,
                    K + (int64_t)k0 * KV + (int64_t)g * Dh, KV, 0.0f, S, w);
        for (int i = 0; i < tq; i++) {
            float *row = S + (int64_t)i * w;
            if (c->pack) {
                packed_mask_row(c->pack, c->pack_row0 + t0 + i, k0, row, w);
                slm_softmax(row, w);
                continue;
            }
            int vis = P + t0 + i + 1;
            slm_softmax(row, vis);
            if (vis < nk) memset(row + vis, 0, (size_t)(nk - vis) * sizeof(float));
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tq, Dh, w, 1.0f, S, w,
                    Vc + (int64_t)k0 * KV + (int64_t)g * Dh, KV, 0.0f, out + (int64_t)t0 * Q + (int64_t)h * Dh, Q);
    }
}
