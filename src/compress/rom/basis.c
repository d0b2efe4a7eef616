/* The linear-algebra core shared by rom, svd-llm and svd (rom.h): output
 * bases from the calibration covariance, and the factors of one linear.
 * Everything here is fp64 (LAPACK dsyevr / dpotrf / dgesdd); only the final
 * factors are rounded to fp32.
 *
 * Legend: n_out = d2 rows of W, n_in = d1 columns, r the rank.
 */
#include "compress/rom/rom.h"
#include "kernels/cpu/kernels.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* C_Y [n_out][n_out] = W C_X W^T, symmetrised. */
static slm_status output_covariance(const double *w, int n_out, int n_in, const double *cx, double *cy) {
    double *t = slm_malloc((size_t)n_out * (size_t)n_in * sizeof(double), "W C_X");
    if (!t) return SLM_ERR_NOMEM;
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, n_out, n_in, 1.0, cx, n_in, w, n_in, 0.0, t, n_in);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_out, n_out, n_in, 1.0, t, n_in, w, n_in, 0.0, cy, n_out);
    free(t);
    for (int i = 0; i < n_out; i++)
        for (int j = i + 1; j < n_out; j++) {
            double s = 0.5 * (cy[(size_t)i * n_out + j] + cy[(size_t)j * n_out + i]);
            cy[(size_t)i * n_out + j] = cy[(size_t)j * n_out + i] = s;
        }
    return SLM_OK;
}

/* Top-r eigenpairs of the symmetric s [n][n] (destroyed): vecs [r][n] rows
 * by descending eigenvalue. Only that index range is computed (dsyevr). */
static slm_status top_eigen(double *s, int n, int r, double *vecs, double *vals) {
    double *w = slm_malloc((size_t)n * sizeof(double), "eigenvalues");
    double *z = slm_malloc((size_t)n * (size_t)r * sizeof(double), "eigenvectors");
    lapack_int *isuppz = slm_malloc(2 * (size_t)n * sizeof(lapack_int), "eigen support");
    slm_status st = SLM_OK;
    if (!w || !z || !isuppz) st = SLM_ERR_NOMEM;
    lapack_int found = 0;
    if (!st) {
        lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', n, s, n, 0.0, 0.0, n - r + 1, n, 0.0,
                                         &found, w, z, r, isuppz);
        if (info != 0 || found != r)
            st = slm_fail(SLM_ERR_NUMERIC, "dsyevr failed (info %d, %d of %d eigenpairs)", (int)info, (int)found, r);
    }
    if (!st)
        for (int j = 0; j < r; j++) { /* ascending -> descending; column r-1-j of z */
            vals[j] = w[r - 1 - j];
            for (int i = 0; i < n; i++) vecs[(size_t)j * n + i] = z[(size_t)i * r + (r - 1 - j)];
        }
    free(w);
    free(z);
    free(isuppz);
    return st;
}

/* Wide outputs (n_out > n_in: gate, up): C_Y has rank <= n_in, so with the
 * thin QR W = Q R (Q [n_out][n_in]) C_Y = Q (R C_X R^T) Q^T and its
 * eigenvectors are Q times those of the n_in x n_in core: an n_in-sized
 * eigenproblem instead of an n_out-sized one (5x less work for SmolLM2). */
static slm_status output_basis_qr(const double *w, int n_out, int n_in, const double *cx, int r, double *vr,
                                  double *eig, double *trace) {
    size_t nn = (size_t)n_in * n_in;
    double *q = slm_malloc((size_t)n_out * n_in * sizeof(double), "Q");
    double *tau = slm_malloc((size_t)n_in * sizeof(double), "tau");
    double *core = slm_malloc(nn * sizeof(double), "R C_X R^T");
    double *rm = slm_calloc(nn, sizeof(double), "R");
    double *v = slm_malloc((size_t)r * n_in * sizeof(double), "core eigenvectors");
    slm_status st = (!q || !tau || !core || !rm || !v) ? SLM_ERR_NOMEM : SLM_OK;
    if (!st) {
        memcpy(q, w, (size_t)n_out * n_in * sizeof(double));
        if (LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, n_out, n_in, q, n_in, tau) != 0)
            st = slm_fail(SLM_ERR_NUMERIC, "QR (dgeqrf) of W failed");
    }
    if (!st) {
        for (int i = 0; i < n_in; i++)
            for (int j = i; j < n_in; j++) rm[(size_t)i * n_in + j] = q[(size_t)i * n_in + j];
        memcpy(core, cx, nn * sizeof(double));
        cblas_dtrmm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, n_in, n_in, 1.0, rm, n_in,
                    core, n_in);
        cblas_dtrmm(CblasRowMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, n_in, n_in, 1.0, rm, n_in,
                    core, n_in);
        double tr = 0;
        for (int i = 0; i < n_in; i++) {
            tr += core[(size_t)i * n_in + i];
            for (int j = i + 1; j < n_in; j++) {
                double s = 0.5 * (core[(size_t)i * n_in + j] + core[(size_t)j * n_in + i]);
                core[(size_t)i * n_in + j] = core[(size_t)j * n_in + i] = s;
            }
        }
        *trace = tr;
        st = top_eigen(core, n_in, r, v, eig);
    }
    if (!st && LAPACKE_dorgqr(LAPACK_ROW_MAJOR, n_out, n_in, n_in, q, n_in, tau) != 0)
        st = slm_fail(SLM_ERR_NUMERIC, "forming Q (dorgqr) failed");
    if (!st) /* vr [r][n_out] = V [r][n_in] Q^T */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, n_out, n_in, 1.0, v, n_in, q, n_in, 0.0, vr, n_out);
    free(q);
    free(tau);
    free(core);
    free(rm);
    free(v);
    return st;
}

slm_status slm_rom_output_basis(const double *w, int n_out, int n_in, const double *cx, int r, double *vr,
                                double *eig, double *trace) {
    if (r < 1 || r > n_out) return slm_fail(SLM_ERR_ARG, "rank %d for a linear with %d outputs", r, n_out);
    if (n_out > n_in) {
        if (r > n_in) return slm_fail(SLM_ERR_ARG, "rank %d above the %d inputs", r, n_in);
        return output_basis_qr(w, n_out, n_in, cx, r, vr, eig, trace);
    }
    double *cy = slm_malloc((size_t)n_out * (size_t)n_out * sizeof(double), "C_Y");
    if (!cy) return SLM_ERR_NOMEM;
    slm_status st = output_covariance(w, n_out, n_in, cx, cy);
    if (!st) {
        double tr = 0;
        for (int i = 0; i < n_out; i++) tr += cy[(size_t)i * n_out + i];
        *trace = tr;
        st = top_eigen(cy, n_out, r, vr, eig);
    }
    free(cy);
    return st;
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

slm_status slm_rom_factor_linear(const slm_linear *l, slm_rom_method method, const double *cx, int r, float *a,
                                 float *b, slm_rom_linear_report *rep) {
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
    if (!vr || !eig || !w2) st = SLM_ERR_NOMEM;
    if (!st) {
        if (method == SLM_ROM_METHOD_ROM) st = slm_rom_output_basis(w, n_out, n_in, cx, r, vr, eig, &total);
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
    if (!st) {
        /* W2 = V_r W [r][n_in]; W1 = V_r^T [n_out][r]. For svd, V_r W = S_r V_r^T
         * (right singular vectors), and sqrt(S_r) moves from W2 to W1. */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, n_in, n_out, 1.0, vr, n_out, w, n_in, 0.0, w2, n_in);
        for (int j = 0; j < r; j++) {
            double sa = 1.0, sb = 1.0;
            if (method == SLM_ROM_METHOD_SVD) {
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
            st = slm_fail(SLM_ERR_NUMERIC, "NaN or Inf in the factors");
    }
    free(w);
    free(vr);
    free(eig);
    free(w2);
    return st;
}
