/* The linear-algebra core shared by rom, svd-llm and svd (rom.h): output
 * bases from the calibration covariance, and the factors of one linear.
 * Everything here is fp64 (LAPACK dsytrd + dstemr + dormtr for the top-r
 * eigenpairs, dpotrf, dgesdd); only the final factors are rounded to fp32.
 * The rom paths count their FLOP (rep->flop) from the sizes of the calls:
 * potrf n^3/3, trmm/trsm m n^2, syrk n^2 k, gemm 2mnk, sytrd 4n^3/3,
 * ormtr 2 n^2 r, geqrf = orgqr 2mn^2 - 2n^3/3.
 *
 * Legend: n_out = d2 rows of W, n_in = d1 columns, r the rank.
 */
#include "compress/rom/rom_engine.h"
#include "kernels/cpu/kernels.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Fills the lower triangle of a [n][n] from its upper one. */
static void mirror_upper(double *a, int n) {
#pragma omp parallel for schedule(dynamic, 16) if (n >= 256)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) a[(size_t)i * n + j] = a[(size_t)j * n + i];
}

/* C_Y [n_out][n_out] = W C_X W^T, full. With C_X = L L^T (Cholesky) it is
 * (W L)(W L)^T: one trmm and one syrk, half the FLOP of symm + gemm, and
 * positive semi-definite by construction. A C_X that is not positive
 * definite (fewer tokens than inputs, dead channels) takes symm + gemm. */
static slm_status output_covariance(const double *w, int n_out, int n_in, const double *cx, double *cy,
                                    double *flop) {
    size_t nn = (size_t)n_in * n_in;
    double *l = slm_malloc(nn * sizeof(double), "L");
    double *t = slm_malloc((size_t)n_out * (size_t)n_in * sizeof(double), "W L");
    if (!l || !t) {
        free(l);
        free(t);
        return SLM_ERR_NOMEM;
    }
    memcpy(l, cx, nn * sizeof(double));
    /* column-major 'U' of a row-major matrix is its lower triangle: L L^T */
    if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', n_in, l, n_in) == 0) {
        memcpy(t, w, (size_t)n_out * n_in * sizeof(double));
        cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, n_out, n_in, 1.0, l, n_in, t,
                    n_in);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n_out, n_in, 1.0, t, n_in, 0.0, cy, n_out);
        mirror_upper(cy, n_out);
        *flop += (double)n_in * n_in * n_in / 3 + (double)n_out * n_in * n_in + (double)n_out * n_out * n_in;
    } else {
        cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, n_out, n_in, 1.0, cx, n_in, w, n_in, 0.0, t, n_in);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_out, n_out, n_in, 1.0, t, n_in, w, n_in, 0.0, cy,
                    n_out);
        for (int i = 0; i < n_out; i++)
            for (int j = i + 1; j < n_out; j++) {
                double s = 0.5 * (cy[(size_t)i * n_out + j] + cy[(size_t)j * n_out + i]);
                cy[(size_t)i * n_out + j] = cy[(size_t)j * n_out + i] = s;
            }
        *flop += 2.0 * n_out * n_in * n_in + 2.0 * n_out * n_out * n_in;
    }
    free(l);
    free(t);
    return SLM_OK;
}

/* Top-r eigenpairs of the symmetric s [n][n] (upper triangle read,
 * destroyed): vecs [r][n] rows by descending eigenvalue, vals [r].
 * Householder tridiagonalisation (dsytrd), then MRRR (dstemr) for that
 * index range only and the back-transformation of those r vectors
 * (dormtr). dsyevr itself is not used: for a partial range it falls back
 * to bisection and inverse iteration, whose reorthogonalisation of
 * clustered eigenvalues (every covariance of a wide layer has them) made
 * it 3x slower than dsytrd at n = 4096. Should dstemr fail, the
 * tridiagonal problem is solved whole by divide and conquer (dstedc).
 *
 * The tridiagonalisation is memory-bound (half of it is symv over the
 * trailing matrix) and does not speed up with threads: at n = 4096 it was
 * 5.7 s of one core, two thirds of the eigen step. With fp32_reduction it
 * runs in fp32 (ssytrd, and sormtr for the back-transformation: half the
 * bytes, 2x faster); the tridiagonal problem stays fp64. The captured
 * energy then differs from the fp64 path's by ~1e-7 of the discarded
 * energy (docs/rom.md; tests/unit/test_rom_basis.c bounds it by 1e-5). */
slm_status slm_rom_top_eigen(double *s, int n, int r, double *vecs, double *vals, bool fp32_reduction,
                             double *flop) {
    if (r < 1 || r > n) return slm_fail(SLM_ERR_ARG, "top %d eigenpairs of a %d x %d matrix", r, n, n);
    double *d = slm_malloc((size_t)n * 4 * sizeof(double), "tridiagonal");
    double *z = slm_malloc((size_t)n * (size_t)r * sizeof(double), "eigenvectors");
    lapack_int *isuppz = slm_malloc(2 * (size_t)n * sizeof(lapack_int), "eigen support");
    float *sf = fp32_reduction ? slm_malloc((size_t)n * n * sizeof(float) + (size_t)n * 3 * sizeof(float), "fp32 copy")
                               : NULL;
    slm_status st = SLM_OK;
    if (!d || !z || !isuppz || (fp32_reduction && !sf)) st = SLM_ERR_NOMEM;
    double *e = d + n, *tau = d + 2 * (size_t)n, *w = d + 3 * (size_t)n;
    float *df = sf ? sf + (size_t)n * n : NULL, *ef = df ? df + n : NULL, *tauf = ef ? ef + n : NULL;
    double *d0 = NULL;
    if (!st && fp32_reduction) {
        for (size_t i = 0; i < (size_t)n * n; i++) sf[i] = (float)s[i];
        /* column-major 'L' of a row-major matrix is its upper triangle */
        if (LAPACKE_ssytrd(LAPACK_COL_MAJOR, 'L', n, sf, n, df, ef, tauf) != 0)
            st = slm_fail(SLM_ERR_NUMERIC, "tridiagonalisation (ssytrd) failed");
        for (int i = 0; !st && i < n; i++) {
            d[i] = df[i];
            e[i] = ef[i];
        }
    } else if (!st && LAPACKE_dsytrd(LAPACK_COL_MAJOR, 'L', n, s, n, d, e, tau) != 0) {
        st = slm_fail(SLM_ERR_NUMERIC, "tridiagonalisation (dsytrd) failed");
    }
    if (!st) {
        d0 = slm_malloc((size_t)n * 2 * sizeof(double), "tridiagonal copy");
        if (!d0) st = SLM_ERR_NOMEM;
        else memcpy(d0, d, (size_t)n * 2 * sizeof(double)); /* d and e: dstemr destroys them */
    }
    if (!st) {
        lapack_int found = 0;
        lapack_logical tryrac = 1;
        lapack_int info = n > 1 ? LAPACKE_dstemr(LAPACK_COL_MAJOR, 'V', 'I', n, d, e, 0.0, 0.0, n - r + 1, n, &found,
                                                 w, z, n, r, isuppz, &tryrac)
                                : -1;
        if (info != 0 || found != r) { /* whole tridiagonal problem by divide and conquer */
            double *zf = slm_malloc((size_t)n * (size_t)n * sizeof(double), "all eigenvectors");
            if (!zf) st = SLM_ERR_NOMEM;
            else {
                memcpy(d, d0, (size_t)n * sizeof(double));
                memcpy(e, d0 + n, (size_t)n * sizeof(double));
                info = LAPACKE_dstedc(LAPACK_COL_MAJOR, 'I', n, d, e, zf, n);
                if (info != 0) st = slm_fail(SLM_ERR_NUMERIC, "tridiagonal eigensolver failed (dstemr, dstedc %d)", (int)info);
                else {
                    memcpy(z, zf + (size_t)(n - r) * n, (size_t)n * r * sizeof(double)); /* ascending: last r */
                    memcpy(w, d + (n - r), (size_t)r * sizeof(double));
                }
                free(zf);
            }
        }
    }
    if (!st && fp32_reduction) { /* back-transformation in fp32 */
        float *zs = slm_malloc((size_t)n * r * sizeof(float), "eigenvectors (fp32)");
        if (!zs) st = SLM_ERR_NOMEM;
        else {
            for (size_t i = 0; i < (size_t)n * r; i++) zs[i] = (float)z[i];
            if (LAPACKE_sormtr(LAPACK_COL_MAJOR, 'L', 'L', 'N', n, r, sf, n, tauf, zs, n) != 0)
                st = slm_fail(SLM_ERR_NUMERIC, "eigenvector back-transformation (sormtr) failed");
            for (size_t i = 0; i < (size_t)n * r; i++) z[i] = zs[i];
            free(zs);
        }
    } else if (!st && LAPACKE_dormtr(LAPACK_COL_MAJOR, 'L', 'L', 'N', n, r, s, n, tau, z, n) != 0) {
        st = slm_fail(SLM_ERR_NUMERIC, "eigenvector back-transformation (dormtr) failed");
    }
    if (!st) /* column j of z (column-major n x r) is row j of a row-major [r][n]; ascending -> descending */
        for (int j = 0; j < r; j++) {
            vals[j] = w[r - 1 - j];
            memcpy(vecs + (size_t)j * n, z + (size_t)(r - 1 - j) * n, (size_t)n * sizeof(double));
        }
    *flop += 4.0 / 3.0 * n * n * n + 2.0 * n * n * r;
    free(d);
    free(d0);
    free(z);
    free(isuppz);
    free(sf);
    return st;
}

static slm_status top_eigen(double *s, int n, int r, double *vecs, double *vals, double *flop) {
    return slm_rom_top_eigen(s, n, r, vecs, vals, n >= SLM_ROM_EIG_FP32_MIN, flop);
}

/* Wide outputs (n_out > n_in: gate, up): C_Y has rank <= n_in, so with the
 * thin QR W = Q R (Q [n_out][n_in]) C_Y = Q (R C_X R^T) Q^T and its
 * eigenvectors are Q times those V [r][n_in] of the n_in x n_in core: an
 * n_in-sized eigenproblem instead of an n_out-sized one (5x less work for
 * SmolLM2, 18x for LLaMA-7B's 11008 x 4096). Q is never formed: R is the
 * Cholesky factor of W^T W (R^T R = W^T W; one syrk, a third of Householder
 * QR's FLOP), V_r = V Q^T = (V R^-T) W^T, and W2 = V_r W = V R. Cholesky
 * QR loses orthogonality as cond(W)^2 eps, so when W^T W's reciprocal
 * condition number is below 1e-8 (or it is singular) Householder QR
 * (dgeqrf/dorgqr) gives R and Q instead. w2 [r][n_in] may be NULL. */
static slm_status output_basis_qr(const double *w, int n_out, int n_in, const double *cx, int r, double *vr,
                                  double *eig, double *trace, double *w2, double *flop) {
    size_t nn = (size_t)n_in * n_in;
    double *rm = slm_calloc(nn, sizeof(double), "R");
    double *core = slm_malloc(nn * sizeof(double), "R C_X R^T");
    double *v = slm_malloc((size_t)r * n_in * sizeof(double), "core eigenvectors");
    double *q = NULL, *tau = NULL;
    slm_status st = (!core || !rm || !v) ? SLM_ERR_NOMEM : SLM_OK;
    bool chol = false;
    if (!st) { /* R^T R = W^T W: row-major upper = column-major lower */
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n_in, n_out, 1.0, w, n_in, 0.0, rm, n_in);
        *flop += (double)n_in * n_in * n_out;
        double anorm = 0; /* 1-norm of the symmetric W^T W from its upper triangle */
        double *col = slm_calloc((size_t)n_in, sizeof(double), "column sums");
        if (!col) st = SLM_ERR_NOMEM;
        for (int i = 0; col && i < n_in; i++)
            for (int j = i; j < n_in; j++) {
                double a = fabs(rm[(size_t)i * n_in + j]);
                col[j] += a;
                if (j > i) col[i] += a;
            }
        for (int j = 0; col && j < n_in; j++) anorm = fmax(anorm, col[j]);
        free(col);
        double rcond = 0;
        if (!st && LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n_in, rm, n_in) == 0 &&
            LAPACKE_dpocon(LAPACK_COL_MAJOR, 'L', n_in, rm, n_in, anorm, &rcond) == 0 && rcond >= 1e-8)
            chol = true;
        *flop += (double)n_in * n_in * n_in / 3;
        for (int i = 1; i < n_in; i++) memset(rm + (size_t)i * n_in, 0, (size_t)i * sizeof(double)); /* upper only */
    }
    if (!st && !chol) {
        q = slm_malloc((size_t)n_out * n_in * sizeof(double), "Q");
        tau = slm_malloc((size_t)n_in * sizeof(double), "tau");
        if (!q || !tau) st = SLM_ERR_NOMEM;
        if (!st) {
            memcpy(q, w, (size_t)n_out * n_in * sizeof(double));
            if (LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, n_out, n_in, q, n_in, tau) != 0)
                st = slm_fail(SLM_ERR_NUMERIC, "QR (dgeqrf) of W failed");
            *flop += 2.0 * n_out * n_in * n_in - 2.0 / 3.0 * n_in * nn;
        }
        if (!st) {
            memset(rm, 0, nn * sizeof(double));
            for (int i = 0; i < n_in; i++)
                for (int j = i; j < n_in; j++) rm[(size_t)i * n_in + j] = q[(size_t)i * n_in + j];
        }
    }
    if (!st) {
        memcpy(core, cx, nn * sizeof(double));
        cblas_dtrmm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, n_in, n_in, 1.0, rm, n_in,
                    core, n_in);
        cblas_dtrmm(CblasRowMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, n_in, n_in, 1.0, rm, n_in,
                    core, n_in);
        *flop += 2.0 * n_in * nn;
        double tr = 0;
        for (int i = 0; i < n_in; i++) {
            tr += core[(size_t)i * n_in + i];
            for (int j = i + 1; j < n_in; j++) {
                double s = 0.5 * (core[(size_t)i * n_in + j] + core[(size_t)j * n_in + i]);
                core[(size_t)i * n_in + j] = core[(size_t)j * n_in + i] = s;
            }
        }
        *trace = tr;
        st = top_eigen(core, n_in, r, v, eig, flop);
    }
    if (!st && w2) { /* W2 = V R */
        memcpy(w2, v, (size_t)r * n_in * sizeof(double));
        cblas_dtrmm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, r, n_in, 1.0, rm, n_in, w2,
                    n_in);
        *flop += (double)r * nn;
    }
    if (!st && chol) { /* vr [r][n_out] = (V R^-T) W^T */
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, r, n_in, 1.0, rm, n_in, v, n_in);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, n_out, n_in, 1.0, v, n_in, w, n_in, 0.0, vr, n_out);
        *flop += (double)r * nn + 2.0 * r * n_out * n_in;
    } else if (!st) { /* vr [r][n_out] = V [r][n_in] Q^T */
        if (LAPACKE_dorgqr(LAPACK_ROW_MAJOR, n_out, n_in, n_in, q, n_in, tau) != 0)
            st = slm_fail(SLM_ERR_NUMERIC, "forming Q (dorgqr) failed");
        if (!st)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, n_out, n_in, 1.0, v, n_in, q, n_in, 0.0, vr, n_out);
        *flop += 2.0 * n_out * n_in * n_in - 2.0 / 3.0 * n_in * nn + 2.0 * r * n_out * n_in;
    }
    free(q);
    free(tau);
    free(core);
    free(rm);
    free(v);
    return st;
}

/* rom's basis; w2 [r][n_in] (may be NULL) gets V_r W when the path has it for
 * less than the gemm (*have_w2 tells). */
static slm_status rom_basis(const double *w, int n_out, int n_in, const double *cx, int r, double *vr, double *eig,
                            double *trace, double *w2, bool *have_w2, double *flop) {
    if (have_w2) *have_w2 = false;
    if (r < 1 || r > n_out) return slm_fail(SLM_ERR_ARG, "rank %d for a linear with %d outputs", r, n_out);
    if (n_out > n_in) {
        if (r > n_in) return slm_fail(SLM_ERR_ARG, "rank %d above the %d inputs", r, n_in);
        slm_status st = output_basis_qr(w, n_out, n_in, cx, r, vr, eig, trace, w2, flop);
        if (have_w2) *have_w2 = !st && w2;
        return st;
    }
    double *cy = slm_malloc((size_t)n_out * (size_t)n_out * sizeof(double), "C_Y");
    if (!cy) return SLM_ERR_NOMEM;
    slm_status st = output_covariance(w, n_out, n_in, cx, cy, flop);
    if (!st) {
        double tr = 0;
        for (int i = 0; i < n_out; i++) tr += cy[(size_t)i * n_out + i];
        *trace = tr;
        st = top_eigen(cy, n_out, r, vr, eig, flop);
    }
    free(cy);
    return st;
}

slm_status slm_rom_output_basis(const double *w, int n_out, int n_in, const double *cx, int r, double *vr,
                                double *eig, double *trace) {
    double flop = 0;
    return rom_basis(w, n_out, n_in, cx, r, vr, eig, trace, NULL, NULL, &flop);
}

/* Cholesky C_X = L L^T into l (lower, upper part zeroed). When C_X is not
 * positive definite (fewer calibration tokens than dims, dead channels) it
 * is shifted by |smallest eigenvalue| + 1e-6, as SVD-LLM does. */
static slm_status whiten(const double *cx, int n, double *l, double *shift) {
    memcpy(l, cx, (size_t)n * n * sizeof(double));
    *shift = 0;
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', n, l, n) != 0) {
        double *s = slm_malloc((size_t)n * n * sizeof(double), "C_X copy");
        double vmin, vec_unused;
        if (!s) return SLM_ERR_NOMEM;
        memcpy(s, cx, (size_t)n * n * sizeof(double));
        lapack_int found = 0, isuppz[2];
        lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'N', 'I', 'U', n, s, n, 0.0, 0.0, 1, 1, 0.0, &found,
                                         &vmin, &vec_unused, 1, isuppz);
        free(s);
        if (info != 0 || found != 1) return slm_fail(SLM_ERR_NUMERIC, "smallest eigenvalue of C_X: dsyevr info %d", (int)info);
        *shift = fabs(vmin) + 1e-6;
        memcpy(l, cx, (size_t)n * n * sizeof(double));
        for (int i = 0; i < n; i++) l[(size_t)i * n + i] += *shift;
        if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', n, l, n) != 0)
            return slm_fail(SLM_ERR_NUMERIC, "Cholesky of C_X fails even shifted by %g", *shift);
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) l[(size_t)i * n + j] = 0;
    return SLM_OK;
}

/* Left singular vectors of m [rows][cols] (destroyed): u [r][rows] rows,
 * s2 [r] squared singular values, *total = ||m||_F^2. */
static slm_status left_singular(double *m, int rows, int cols, int r, double *u_rows, double *s2, double *total) {
    int k = rows < cols ? rows : cols;
    if (r > k) return slm_fail(SLM_ERR_ARG, "rank %d above min(%d, %d)", r, rows, cols);
    double *s = slm_malloc((size_t)k * sizeof(double), "singular values");
    double *u = slm_malloc((size_t)rows * k * sizeof(double), "U");
    double *vt = slm_malloc((size_t)k * cols * sizeof(double), "V^T");
    slm_status st = (!s || !u || !vt) ? SLM_ERR_NOMEM : SLM_OK;
    if (!st && LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', rows, cols, m, cols, s, u, k, vt, cols) != 0)
        st = slm_fail(SLM_ERR_NUMERIC, "SVD (dgesdd) did not converge");
    if (!st) {
        double tot = 0;
        for (int i = 0; i < k; i++) tot += s[i] * s[i];
        *total = tot;
        for (int j = 0; j < r; j++) {
            s2[j] = s[j] * s[j];
            for (int i = 0; i < rows; i++) u_rows[(size_t)j * rows + i] = u[(size_t)i * k + j];
        }
    }
    free(s);
    free(u);
    free(vt);
    return st;
}

slm_status slm_rom_whitened_basis(const double *w, int n_out, int n_in, const double *cx, int r, double *vr,
                                  double *eig, double *trace, double *shift) {
    double *l = slm_malloc((size_t)n_in * n_in * sizeof(double), "L");
    double *wl = slm_malloc((size_t)n_out * n_in * sizeof(double), "W L");
    slm_status st = (!l || !wl) ? SLM_ERR_NOMEM : SLM_OK;
    if (!st) st = whiten(cx, n_in, l, shift);
    if (!st) {
        memcpy(wl, w, (size_t)n_out * n_in * sizeof(double));
        cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, n_out, n_in, 1.0, l, n_in, wl,
                    n_in);
        st = left_singular(wl, n_out, n_in, r, vr, eig, trace);
    }
    free(l);
    free(wl);
    return st;
}

/* ---- one linear -------------------------------------------------------------------------- */

/* w [n_out][n_in] in fp64 from any dense-able kind. */
static slm_status linear_to_f64(const slm_linear *l, double **out) {
    slm_linear d;
    float *buf = NULL;
    slm_status st = slm_linear_dequantized(l, &d, &buf);
    if (st) return st;
    if (d.kind != SLM_LINEAR_DENSE) {
        free(buf);
        return slm_fail(SLM_ERR_UNSUPPORTED, "only dense or block-quantised linears can be factored (kind %d)", d.kind);
    }
    double *w = slm_malloc((size_t)d.n_out * d.n_in * sizeof(double), "W (fp64)");
    if (w)
        for (int i = 0; i < d.n_out; i++)
            for (int j = 0; j < d.n_in; j++) w[(size_t)i * d.n_in + j] = d.w[(size_t)i * d.ld_w + j];
    free(buf);
    *out = w;
    return w ? SLM_OK : SLM_ERR_NOMEM;
}

/* a [n_out][r] = V_r^T, b [r][n_in] = w2 (svd: sqrt(S_r) moved from b to a),
 * and the report. */
static slm_status store_factors(const double *vr, const double *w2, const double *eig, double total, int n_out,
                                int n_in, int r, bool svd, float *a, float *b, slm_rom_linear_report *rep) {
    for (int j = 0; j < r; j++) {
        double sa = 1.0, sb = 1.0;
        if (svd) {
            double sv = sqrt(eig[j]);
            sa = sqrt(sv);
            sb = sv > 0 ? 1.0 / sa : 0.0;
        }
        for (int i = 0; i < n_out; i++) a[(size_t)i * r + j] = (float)(sa * vr[(size_t)j * n_out + i]);
        for (int i = 0; i < n_in; i++) b[(size_t)j * n_in + i] = (float)(sb * w2[(size_t)j * n_in + i]);
    }
    double kept = 0;
    for (int j = 0; j < r; j++) kept += eig[j];
    rep->rank = r;
    rep->params_before = (int64_t)n_out * n_in;
    rep->params_after = (int64_t)r * (n_out + n_in);
    rep->rel_err = total > 0 ? fmax(0.0, total - kept) / total : 0.0;
    if (!slm_all_finite(a, (int64_t)n_out * r) || !slm_all_finite(b, (int64_t)r * n_in))
        return slm_fail(SLM_ERR_NUMERIC, "NaN or Inf in the factors");
    return SLM_OK;
}

slm_status slm_rom_factor_linear(const slm_linear *l, slm_rom_method method, const double *cx, int r, float *a,
                                 float *b, slm_rom_linear_report *rep) {
    double t0 = slm_time_now(), c0 = slm_rom_cpu_now(), flop = 0;
    int n_out = l->n_out, n_in = l->n_in;
    int full = n_out < n_in ? n_out : n_in;
    if (r < 1 || r > full) return slm_fail(SLM_ERR_ARG, "rank %d for a %d x %d linear", r, n_out, n_in);
    if (method != SLM_ROM_METHOD_SVD && !cx) return slm_fail(SLM_ERR_ARG, "%s needs calibration statistics", slm_rom_method_name(method));
    double *w = NULL;
    slm_status st = linear_to_f64(l, &w);
    if (st) return st;
    double *vr = slm_malloc((size_t)r * n_out * sizeof(double), "basis");
    double *eig = slm_malloc((size_t)r * sizeof(double), "eigenvalues");
    double *w2 = slm_malloc((size_t)r * n_in * sizeof(double), "W2");
    double total = 0, shift = 0;
    bool have_w2 = false;
    if (!vr || !eig || !w2) st = SLM_ERR_NOMEM;
    if (!st) {
        if (method == SLM_ROM_METHOD_ROM) st = rom_basis(w, n_out, n_in, cx, r, vr, eig, &total, w2, &have_w2, &flop);
        else if (method == SLM_ROM_METHOD_SVD_LLM) st = slm_rom_whitened_basis(w, n_out, n_in, cx, r, vr, eig, &total, &shift);
        else {
            double *wc = slm_malloc((size_t)n_out * n_in * sizeof(double), "W copy");
            if (!wc) st = SLM_ERR_NOMEM;
            else {
                memcpy(wc, w, (size_t)n_out * n_in * sizeof(double));
                st = left_singular(wc, n_out, n_in, r, vr, eig, &total);
                free(wc);
            }
        }
    }
    if (!st && !have_w2) { /* W2 = V_r W [r][n_in]; for svd V_r W = S_r V_r^T (right singular vectors) */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, n_in, n_out, 1.0, vr, n_out, w, n_in, 0.0, w2, n_in);
        if (method == SLM_ROM_METHOD_ROM) flop += 2.0 * r * n_in * n_out;
    }
    if (!st) st = store_factors(vr, w2, eig, total, n_out, n_in, r, method == SLM_ROM_METHOD_SVD, a, b, rep);
    free(w);
    free(vr);
    free(eig);
    free(w2);
    rep->flop = flop;
    rep->seconds = slm_time_now() - t0;
    rep->cpu_seconds = slm_rom_cpu_now() - c0;
    return st;
}

slm_status slm_rom_factor_linear_cy(const slm_linear *l, double *cy, int r, float *a, float *b,
                                    slm_rom_linear_report *rep) {
    double t0 = slm_time_now(), c0 = slm_rom_cpu_now(), flop = 0;
    int n_out = l->n_out, n_in = l->n_in;
    int full = n_out < n_in ? n_out : n_in;
    if (r < 1 || r > full) return slm_fail(SLM_ERR_ARG, "rank %d for a %d x %d linear", r, n_out, n_in);
    slm_linear d;
    float *buf = NULL;
    slm_status st = slm_linear_dequantized(l, &d, &buf);
    if (st) return st;
    if (d.kind != SLM_LINEAR_DENSE) {
        free(buf);
        return slm_fail(SLM_ERR_UNSUPPORTED, "only dense or block-quantised linears can be factored (kind %d)", d.kind);
    }
    enum { PANEL = 256 }; /* rows of W in fp64 at a time: no n_out x n_in fp64 copy */
    double *vr = slm_malloc((size_t)r * n_out * sizeof(double), "basis");
    double *eig = slm_malloc((size_t)r * sizeof(double), "eigenvalues");
    double *w2 = slm_malloc((size_t)r * n_in * sizeof(double), "W2");
    double *wp = slm_malloc((size_t)PANEL * n_in * sizeof(double), "W panel (fp64)");
    if (!vr || !eig || !w2 || !wp) st = SLM_ERR_NOMEM;
    double total = 0;
    for (int i = 0; !st && i < n_out; i++) total += cy[(size_t)i * n_out + i];
    if (!st) st = top_eigen(cy, n_out, r, vr, eig, &flop);
    for (int o0 = 0; !st && o0 < n_out; o0 += PANEL) { /* W2 = V_r W, panel by panel of W's rows */
        int np = n_out - o0 < PANEL ? n_out - o0 : PANEL;
        for (int i = 0; i < np; i++)
            for (int j = 0; j < n_in; j++) wp[(size_t)i * n_in + j] = d.w[(size_t)(o0 + i) * d.ld_w + j];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, n_in, np, 1.0, vr + o0, n_out, wp, n_in,
                    o0 ? 1.0 : 0.0, w2, n_in);
    }
    flop += 2.0 * r * n_in * n_out;
    if (!st) st = store_factors(vr, w2, eig, total, n_out, n_in, r, false, a, b, rep);
    free(buf);
    free(vr);
    free(eig);
    free(w2);
    free(wp);
    rep->flop = flop;
    rep->seconds = slm_time_now() - t0;
    rep->cpu_seconds = slm_rom_cpu_now() - c0;
    return st;
}
