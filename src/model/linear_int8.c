/* The INT8 linear kind (linear_int8.h): quantised matrices and the
 * forward product.
 *
 * One product y = beta y + x W^T over T rows (legend: K = n_in rounded up
 * to SLM_I8_KALIGN, n_o = outlier columns below n_in, n_g = scales per
 * row: 1, or ceil(K / G) with the matrix's activation group G):
 *   1. quantise x per row (or per row and group) into the scratch: xq
 *      [T][K] int8, xs [T][n_g] scales, xsum [T][n_g] their sums (for the
 *      AVX-512 VNNI kernel), xo [T][n_o] the outlier columns' fp32 values
 *   2. the int8 GEMM (kernels/cpu/int8.h, the kernel this CPU runs best):
 *      decode (T = 1): OpenMP splits the rows evenly between threads;
 *      prefill: OpenMP over tiles of TILE_ROWS rows x TILE_TOKS tokens, so
 *      a tile's weights (TILE_ROWS x K bytes) and activations
 *      (TILE_TOKS x K bytes) stay in L2 while its micro-kernels run
 *   3. y += xo W_o^T with OpenBLAS when the matrix has outlier columns.
 * Low-rank: z = x B^T [T][r] (fp32, in the scratch) by steps 1-3, then
 * y = beta y + z A^T by steps 1-3 again.
 */
#include "model/linear_int8.h"
#include "kernels/cpu/int8.h"
#include "model/forward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef SLM_OPENMP
#include <omp.h>
#endif

/* 48 rows x 60 tokens (multiples of the micro-kernels' 2 or 4 rows and 3
 * or 4 tokens): for SmolLM2's widest input (K = 1536) 72 KB of weights +
 * 90 KB of activations, well inside a 512 KB L2; a 512-token prefill of a
 * 576-row linear gives 108 tiles for the threads to share. The AVX-512
 * VNNI kernel packs a tile's 48 rows (one strip) before using them, so
 * its tiles are 256 tokens long to spread that pass thin. */
enum { TILE_ROWS = 48, TILE_TOKS = 60, TILE_TOKS_PACKED = 256 };

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* ---- matrices ------------------------------------------------------------------ */

/* One allocation: the struct, then q, scales, outlier indices and weights,
 * each 64-byte aligned. q is NULL-sized when borrowed. */
static slm_i8_matrix *matrix_alloc(slm_model *m, int rows, int cols, int n_outl, bool own_q, const char *name) {
    if (rows <= 0 || cols <= 0 || cols > SLM_I8_MAX_K || n_outl < 0 || n_outl > cols) {
        slm_fail(SLM_ERR_ARG, "tensor '%s': int8 matrix [%d x %d] with %d outlier columns out of range (columns <= %d)",
                 name, rows, cols, n_outl, (int)SLM_I8_MAX_K);
        return NULL;
    }
    const int64_t ld = round_up(cols, SLM_I8_KALIGN);
    const int64_t o_q = 64, o_s = o_q + (own_q ? round_up((int64_t)rows * ld, 64) : 0);
    const int64_t o_i = o_s + round_up((int64_t)rows * 4, 64), o_w = o_i + round_up((int64_t)n_outl * 4, 64);
    const int64_t total = o_w + round_up((int64_t)rows * n_outl * 4, 64);
    uint8_t *p = slm_model_own(m, slm_aligned_alloc((size_t)total, name));
    if (!p) return NULL;
    memset(p, 0, (size_t)(own_q ? o_s : o_q));
    slm_i8_matrix *q = (slm_i8_matrix *)p;
    q->rows = rows;
    q->cols = cols;
    q->ld = ld;
    q->q = own_q ? (const int8_t *)(p + o_q) : NULL;
    q->scale = (const float *)(p + o_s);
    q->n_outl = n_outl;
    q->outl_idx = n_outl ? (const int32_t *)(p + o_i) : NULL;
    q->outl_w = n_outl ? (const float *)(p + o_w) : NULL;
    return q;
}

static bool outliers_ok(const int32_t *idx, int n, int cols) {
    for (int j = 0; j < n; j++)
        if (idx[j] < 0 || idx[j] >= cols || (j > 0 && idx[j] <= idx[j - 1])) return false;
    return true;
}

slm_status slm_i8_matrix_quantize(slm_model *m, const float *w, int rows, int cols, int64_t ldw, const int32_t *outl,
                                  int n_outl, const char *name, const slm_i8_matrix **out) {
    *out = NULL;
    if (n_outl > 0 && !outliers_ok(outl, n_outl, cols))
        return slm_fail(SLM_ERR_ARG, "tensor '%s': outlier columns not ascending in [0, %d)", name, cols);
    slm_i8_matrix *q = matrix_alloc(m, rows, cols, n_outl, true, name);
    if (!q) return SLM_ERR_NOMEM;
    int8_t *qv = (int8_t *)q->q;
    float *sc = (float *)q->scale, *ow = (float *)q->outl_w;
    if (n_outl) memcpy((int32_t *)q->outl_idx, outl, (size_t)n_outl * sizeof *outl);
    bool finite = true;
#pragma omp parallel for if (rows >= 256) schedule(static) reduction(&& : finite)
    for (int r = 0; r < rows; r++) {
        const float *wr = w + (int64_t)r * ldw;
        int8_t *qr = qv + (int64_t)r * q->ld;
        float amax = 0.0f;
        for (int c = 0, j = 0; c < cols; c++) {
            if (j < n_outl && outl[j] == c) {
                ow[(int64_t)r * n_outl + j++] = wr[c];
                continue;
            }
            finite = finite && isfinite(wr[c]);
            amax = fabsf(wr[c]) > amax ? fabsf(wr[c]) : amax;
        }
        const float s = amax / 127.0f;
        sc[r] = s;
        /* nearest integer to w / s, in double so |w - s q| <= s/2 holds for the stored float s */
        for (int c = 0, j = 0; c < cols; c++) {
            if (j < n_outl && outl[j] == c) {
                qr[c] = 0;
                j++;
                continue;
            }
            double v = s > 0.0f ? nearbyint((double)wr[c] / (double)s) : 0.0;
            qr[c] = (int8_t)(v > 127.0 ? 127.0 : v < -127.0 ? -127.0 : v);
        }
    }
    if (!finite) return slm_fail(SLM_ERR_NUMERIC, "tensor '%s': NaN or Inf in the weights", name);
    *out = q;
    return SLM_OK;
}

slm_status slm_i8_matrix_from_parts(slm_model *m, const int8_t *qsrc, int64_t ldq, const float *scale, int rows,
                                    int cols, const int32_t *outl_idx, int n_outl, const float *outl_w,
                                    const char *name, const slm_i8_matrix **out) {
    *out = NULL;
    if (ldq < cols) return slm_fail(SLM_ERR_ARG, "tensor '%s': row stride %lld below %d columns", name, (long long)ldq, cols);
    if (n_outl > 0 && !outliers_ok(outl_idx, n_outl, cols))
        return slm_fail(SLM_ERR_FORMAT, "tensor '%s': outlier columns not ascending in [0, %d)", name, cols);
    for (int r = 0; r < rows; r++) {
        if (!(scale[r] >= 0.0f) || !isfinite(scale[r]))
            return slm_fail(SLM_ERR_FORMAT, "tensor '%s': scale of row %d is %g (finite, >= 0 expected)", name, r,
                            (double)scale[r]);
        for (int j = 0; j < n_outl; j++) {
            if (qsrc[(int64_t)r * ldq + outl_idx[j]] != 0)
                return slm_fail(SLM_ERR_FORMAT, "tensor '%s': row %d: outlier column %d is not 0 in the int8 part", name,
                                r, outl_idx[j]);
            if (!isfinite(outl_w[(int64_t)r * n_outl + j]))
                return slm_fail(SLM_ERR_FORMAT, "tensor '%s': NaN or Inf in the outlier weights", name);
        }
    }
    const bool in_place = ldq == cols && cols % SLM_I8_KALIGN == 0; /* no padding to add */
    slm_i8_matrix *q = matrix_alloc(m, rows, cols, n_outl, !in_place, name);
    if (!q) return SLM_ERR_NOMEM;
    if (in_place) q->q = qsrc;
    else
        for (int r = 0; r < rows; r++) memcpy((int8_t *)q->q + (int64_t)r * q->ld, qsrc + (int64_t)r * ldq, (size_t)cols);
    memcpy((float *)q->scale, scale, (size_t)rows * sizeof *scale);
    if (n_outl) {
        memcpy((int32_t *)q->outl_idx, outl_idx, (size_t)n_outl * sizeof *outl_idx);
        memcpy((float *)q->outl_w, outl_w, (size_t)rows * n_outl * sizeof *outl_w);
    }
    *out = q;
    return SLM_OK;
}

void slm_i8_matrix_dequantize_row(const slm_i8_matrix *q, int r, float *w) {
    const int8_t *qr = q->q + (int64_t)r * q->ld;
    for (int c = 0; c < q->cols; c++) w[c] = q->scale[r] * (float)qr[c];
    for (int j = 0; j < q->n_outl; j++) w[q->outl_idx[j]] = q->outl_w[(int64_t)r * q->n_outl + j];
}

void slm_i8_matrix_dequantize(const slm_i8_matrix *q, float *w, int64_t ldw) {
    for (int r = 0; r < q->rows; r++) slm_i8_matrix_dequantize_row(q, r, w + (int64_t)r * ldw);
}

int64_t slm_i8_matrix_bytes(const slm_i8_matrix *q) {
    return (int64_t)q->rows * q->cols + 4 * (int64_t)q->rows + 4 * (int64_t)q->n_outl +
           4 * (int64_t)q->rows * q->n_outl;
}

static void set_group(const slm_i8_matrix *q, int G) {
    if (q) ((slm_i8_matrix *)q)->act_group = G; /* owned by the model (matrix_alloc), const only to readers */
}

slm_status slm_model_set_int8_act_group(slm_model *m, int G) {
    if (G != 0 && !slm_i8_group_ok(G))
        return slm_fail(SLM_ERR_ARG, "int8 activation group %d: 0 or a multiple of 32 in [32, 1024] expected", G);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int p = 0; p < SLM_PROJ_COUNT; p++) {
            const slm_linear *lin = &m->blocks[l].lin[p];
            if (lin->kind != SLM_LINEAR_INT8) continue;
            set_group(lin->i8[0], G);
            set_group(lin->i8[1], G);
        }
    if (m->lm_head_q.kind == SLM_LINEAR_INT8) set_group(m->lm_head_q.i8[0], G);
    return SLM_OK;
}

int slm_model_int8_act_group(const slm_model *m) {
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int p = 0; p < SLM_PROJ_COUNT; p++) {
            const slm_linear *lin = &m->blocks[l].lin[p];
            if (m->blocks[l].kept && lin->kind == SLM_LINEAR_INT8 && lin->i8[0]) return lin->i8[0]->act_group;
        }
    if (m->lm_head_q.kind == SLM_LINEAR_INT8 && m->lm_head_q.i8[0]) return m->lm_head_q.i8[0]->act_group;
    return 0;
}

/* ---- the linear kind ------------------------------------------------------------- */

slm_status slm_linear_set_int8(slm_linear *l, const slm_i8_matrix *w, const slm_i8_matrix *a, int n_out, int n_in) {
    const float *bias = l->bias;
    memset(l, 0, sizeof *l);
    l->kind = SLM_LINEAR_INT8;
    l->n_out = n_out;
    l->n_in = n_in;
    l->bias = bias;
    l->i8[0] = w;
    l->i8[1] = a;
    l->rank = a ? w->rows : 0;
    l->qw = w ? w->q : NULL;
    if (!slm_linear_int8_valid(l))
        return slm_fail(SLM_ERR_ARG, "int8 linear [%d x %d]: matrices do not cover the shape", n_out, n_in);
    return SLM_OK;
}

bool slm_linear_int8_valid(const slm_linear *l) {
    const slm_i8_matrix *w = l->i8[0], *a = l->i8[1];
    if (!w || !w->q || l->n_out <= 0 || l->n_in <= 0 || w->cols < l->n_in) return false;
    if (l->rank == 0) return !a && w->rows >= l->n_out;
    return a && a->q && w->rows == l->rank && a->cols == l->rank && a->rows >= l->n_out;
}

int64_t slm_linear_int8_bytes(const slm_linear *l) {
    return slm_i8_matrix_bytes(l->i8[0]) + (l->i8[1] ? slm_i8_matrix_bytes(l->i8[1]) : 0);
}

/* Outlier columns of q below n (the first ones: the list is ascending). */
static int outliers_below(const slm_i8_matrix *q, int n) {
    int j = 0;
    while (j < q->n_outl && q->outl_idx[j] < n) j++;
    return j;
}

/* Activation scales per token row of a product with K inner columns. */
static int scales_per_row(const slm_i8_matrix *q, int K) {
    return q->act_group > 0 ? (K + q->act_group - 1) / q->act_group : 1;
}

/* Scratch bytes of one product with n_in inputs over T rows. */
static int64_t product_bytes(const slm_i8_matrix *q, int n_in, int T) {
    const int K = (int)round_up(n_in, SLM_I8_KALIGN);
    return round_up((int64_t)T * K, 64) + 2 * round_up(4 * (int64_t)T * scales_per_row(q, K), 64) +
           round_up(4 * (int64_t)T * outliers_below(q, n_in), 64);
}

/* Rows [o0, o1) x tokens [t0, t1) of the product. */
static void gemm_block(slm_i8_gemm_fn fn, const slm_i8_gemm *g, int t0, int t1, int o0, int o1) {
    slm_i8_gemm b = *g;
    b.T = t1 - t0;
    b.N = o1 - o0;
    b.a = g->a + (int64_t)t0 * g->lda;
    b.a_scale = g->a_scale + (g->group > 0 ? (int64_t)t0 * g->lds : t0);
    if (g->a_sum) b.a_sum = g->a_sum + (g->group > 0 ? (int64_t)t0 * g->lds : t0);
    b.w = g->w + (int64_t)o0 * g->ldw;
    b.w_scale = g->w_scale + o0;
    b.y = g->y + (int64_t)t0 * g->ldy + o0;
    fn(&b);
}

/* y [T][ldy] = beta y + x [T][ldx] (n_in used) . q[0..n_out)^T; scratch at tmp. */
static void product(const slm_i8_matrix *q, int n_out, int n_in, int T, const float *x, int64_t ldx, float *y,
                    int64_t ldy, float beta, uint8_t *tmp) {
    const int K = (int)round_up(n_in, SLM_I8_KALIGN), n_o = outliers_below(q, n_in);
    const int G = q->act_group, n_g = scales_per_row(q, K);
    int8_t *xq = (int8_t *)tmp;
    float *xs = (float *)(tmp + round_up((int64_t)T * K, 64));
    int32_t *xsum = (int32_t *)((uint8_t *)xs + round_up(4 * (int64_t)T * n_g, 64));
    float *xo = (float *)((uint8_t *)xsum + round_up(4 * (int64_t)T * n_g, 64));
    const slm_i8_gemm_fn fn = slm_i8_gemm_for(G);
    /* the AVX-512 VNNI kernel subtracts 128 x the activation sums (int8.h):
     * taken per row right after its quantisation, while it is in cache */
    const bool vnni = fn == slm_i8_gemm_avx512vnni;
#pragma omp parallel for if (T > 1) schedule(static)
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * ldx;
        slm_i8_quantize_groups(1, xt, ldx, n_in, q->outl_idx, n_o, K, G, xq + (int64_t)t * K, K, xs + (int64_t)t * n_g,
                               n_g);
        if (vnni) slm_i8_act_sums(1, xq + (int64_t)t * K, K, K, G, xsum + (int64_t)t * n_g, n_g);
        for (int j = 0; j < n_o; j++) xo[(int64_t)t * n_o + j] = xt[q->outl_idx[j]];
    }
    const slm_i8_gemm g = {.T = T, .N = n_out, .K = K, .a = xq, .lda = K, .a_scale = xs, .w = q->q, .ldw = q->ld,
                           .w_scale = q->scale, .y = y, .ldy = ldy, .beta = beta, .group = G, .lds = n_g,
                           .a_sum = vnni ? xsum : NULL};
    if (T == 1) {
        /* decode: each thread one contiguous run of rows (multiples of 4) */
#pragma omp parallel if (n_out >= 256)
        {
            int tid = 0, nth = 1;
#ifdef SLM_OPENMP
            tid = omp_get_thread_num();
            nth = omp_get_num_threads();
#endif
            const int per = (int)round_up((n_out + nth - 1) / nth, 4);
            const int o0 = tid * per < n_out ? tid * per : n_out, o1 = o0 + per < n_out ? o0 + per : n_out;
            if (o1 > o0) gemm_block(fn, &g, 0, 1, o0, o1);
        }
    } else {
        /* the VNNI kernel packs a tile's rows once and walks them over its tokens: long token tiles */
        const int tt = vnni ? TILE_TOKS_PACKED : TILE_TOKS;
        const int n_rt = (n_out + TILE_ROWS - 1) / TILE_ROWS, n_tt = (T + tt - 1) / tt;
#pragma omp parallel for schedule(static)
        for (int task = 0; task < n_rt * n_tt; task++) {
            const int o0 = (task % n_rt) * TILE_ROWS, t0 = (task / n_rt) * tt;
            gemm_block(fn, &g, t0, t0 + tt < T ? t0 + tt : T, o0, o0 + TILE_ROWS < n_out ? o0 + TILE_ROWS : n_out);
        }
    }
    if (n_o == 0) return;
    /* the fp32 outlier columns: y += xo W_o^T (W_o [rows][n_outl], first n_o columns) */
    if (T == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n_out, n_o, 1.0f, q->outl_w, q->n_outl, xo, 1, 1.0f, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, n_out, n_o, 1.0f, xo, n_o, q->outl_w, q->n_outl, 1.0f,
                    y, (int)ldy);
}

static uint8_t *align64(float *p) { return (uint8_t *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

void slm_linear_int8_apply(const slm_linear *l, int T, const float *x, int64_t ldx, float *y, int64_t ldy, float beta,
                           float *tmp) {
    uint8_t *s = align64(tmp);
    if (l->rank == 0) {
        product(l->i8[0], l->n_out, l->n_in, T, x, ldx, y, ldy, beta, s);
        return;
    }
    float *z = (float *)s; /* [T][rank] */
    s += round_up(4 * (int64_t)T * l->rank, 64);
    product(l->i8[0], l->rank, l->n_in, T, x, ldx, z, l->rank, 0.0f, s);
    product(l->i8[1], l->n_out, l->rank, T, z, l->rank, y, ldy, beta, s);
}

int64_t slm_linear_int8_tmp_floats(const slm_linear *l, int T) {
    int64_t b = product_bytes(l->i8[0], l->n_in, T);
    if (l->rank > 0) {
        int64_t b2 = product_bytes(l->i8[1], l->rank, T);
        b = round_up(4 * (int64_t)T * l->rank, 64) + (b2 > b ? b2 : b);
    }
    return (b + 64) / 4 + 1; /* + room to align the scratch to 64 bytes */
}

/* [rows][cols] fp32 copy of q, malloc'd. */
static float *dequantized_copy(const slm_i8_matrix *q) {
    size_t n;
    if (!slm_mul_ok((size_t)q->rows, (size_t)q->cols, &n) || !slm_mul_ok(n, sizeof(float), &n)) {
        slm_fail(SLM_ERR_NOMEM, "size overflow dequantising an int8 matrix");
        return NULL;
    }
    float *w = slm_malloc(n, "dequantised int8 matrix");
    if (w) slm_i8_matrix_dequantize(q, w, q->cols);
    return w;
}

slm_status slm_linear_int8_dequantized(const slm_linear *l, slm_linear *out, float **buf0, float **buf1) {
    *out = *l;
    *buf0 = *buf1 = NULL;
    if (l->kind != SLM_LINEAR_INT8) return SLM_OK;
    float *w = dequantized_copy(l->i8[0]);
    float *a = w && l->rank > 0 ? dequantized_copy(l->i8[1]) : NULL;
    if (!w || (l->rank > 0 && !a)) {
        free(w);
        return SLM_ERR_NOMEM;
    }
    out->qw = NULL;
    out->i8[0] = out->i8[1] = NULL;
    if (l->rank == 0) {
        out->kind = SLM_LINEAR_DENSE;
        out->w = w;
        out->ld_w = l->i8[0]->cols;
    } else {
        out->kind = SLM_LINEAR_LOWRANK;
        out->b = w;
        out->ld_b = l->i8[0]->cols;
        out->a = a; /* [n_out][rank]: A's rows are rank long */
    }
    *buf0 = w;
    *buf1 = a;
    return SLM_OK;
}
