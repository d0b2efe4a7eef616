/* The linear-algebra core of rom / svd-llm / svd against independent
 * references: on calibration data X, ||Y - V_r^T V_r Y||^2 computed
 * directly equals the sum of the discarded eigenvalues of C_Y from a full
 * eigendecomposition (LAPACKE_dsyev), relative 1e-6, for a tall (n_out <
 * n_in: dsyevr path) and a wide (n_out > n_in: QR path) W; svd-llm's basis
 * spans the same subspace (projectors within 1e-8); factors at full rank
 * reproduce W (svd) and W X (rom). A wide W so ill-conditioned that
 * Cholesky QR of W^T W is refused takes Householder QR (seen in the FLOP
 * count) and meets the same 1e-6; factoring from the output covariance
 * (slm_rom_factor_linear_cy, the engine's path for down) equals factoring
 * from C_X. */
#include "compress/rom/rom_engine.h"
#include "test_util.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double urand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* X [n][d] with decaying channel scales, so the spectrum is not flat. */
static double *make_x(int n, int d, uint64_t *s) {
    double *x = malloc(sizeof(double) * n * d);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) x[i * d + j] = urand(s) * (1.0 + 4.0 * exp(-j / 6.0));
    return x;
}

/* W [n_out][n_in] uniform, column j scaled by 10^(-col_decades * j / (n_in - 1)). */
static double *make_w(int n_out, int n_in, double col_decades) {
    uint64_t s = 0x1234567ull + (uint64_t)n_out * 31 + n_in;
    double *w = malloc(sizeof(double) * n_out * n_in);
    for (int i = 0; i < n_out * n_in; i++) w[i] = urand(&s) * pow(10.0, -col_decades * (i % n_in) / (n_in - 1));
    return w;
}

static double *make_cx(const double *x, int n_tok, int n_in) {
    double *cx = calloc((size_t)n_in * n_in, sizeof(double));
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < n_in; i++)
            for (int j = 0; j < n_in; j++) cx[i * n_in + j] += x[t * n_in + i] * x[t * n_in + j];
    return cx;
}

static void case_dims(int n_out, int n_in, int r, int n_tok, double proj_tol, double col_decades) {
    printf("== W %d x %d (columns over %g decades), rank %d, %d tokens\n", n_out, n_in, col_decades, r, n_tok);
    double *w = make_w(n_out, n_in, col_decades);
    uint64_t s = 0x7654321ull + (uint64_t)n_out * 31 + n_in;
    double *x = make_x(n_tok, n_in, &s);
    double *cx = make_cx(x, n_tok, n_in);
    /* Y [n_tok][n_out] and the full spectrum of C_Y = Y^T Y (independent path). */
    double *y = calloc((size_t)n_tok * n_out, sizeof(double));
    for (int t = 0; t < n_tok; t++)
        for (int o = 0; o < n_out; o++)
            for (int i = 0; i < n_in; i++) y[t * n_out + o] += w[o * n_in + i] * x[t * n_in + i];
    double *cy = calloc((size_t)n_out * n_out, sizeof(double));
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < n_out; i++)
            for (int j = 0; j < n_out; j++) cy[i * n_out + j] += y[t * n_out + i] * y[t * n_out + j];
    double *ev = malloc(sizeof(double) * n_out);
    CHECK(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', n_out, cy, n_out, ev) == 0, "dsyev");
    double discarded = 0; /* ascending: all but the top r */
    for (int i = 0; i < n_out - r; i++) discarded += ev[i] > 0 ? ev[i] : 0;

    double *vr = malloc(sizeof(double) * r * n_out), *eig = malloc(sizeof(double) * r), trace;
    CHECK(slm_rom_output_basis(w, n_out, n_in, cx, r, vr, eig, &trace) == SLM_OK, "basis: %s", slm_last_error());
    /* ||Y - V_r^T V_r Y||^2 directly. */
    double err = 0;
    double *c = malloc(sizeof(double) * r);
    for (int t = 0; t < n_tok; t++) {
        for (int j = 0; j < r; j++) {
            c[j] = 0;
            for (int o = 0; o < n_out; o++) c[j] += vr[j * n_out + o] * y[t * n_out + o];
        }
        for (int o = 0; o < n_out; o++) {
            double p = 0;
            for (int j = 0; j < r; j++) p += vr[j * n_out + o] * c[j];
            err += (y[t * n_out + o] - p) * (y[t * n_out + o] - p);
        }
    }
    double kept = 0;
    for (int j = 0; j < r; j++) kept += eig[j];
    double rel = fabs(err - discarded) / discarded, rel2 = fabs((trace - kept) - discarded) / discarded;
    printf("||Y - VrT Vr Y||^2 = %.10g, discarded eigenvalues = %.10g, rel diff %.3g; trace - kept rel diff %.3g\n",
           err, discarded, rel, rel2);
    CHECK(rel < 1e-6, "reconstruction error vs discarded eigenvalues: rel %.3g", rel);
    CHECK(rel2 < 1e-6, "trace - kept vs discarded: rel %.3g", rel2);

    /* svd-llm: the same subspace; compare projectors P = Vr^T Vr. */
    double *vw = malloc(sizeof(double) * r * n_out), *ew = malloc(sizeof(double) * r), tw, shift;
    CHECK(slm_rom_whitened_basis(w, n_out, n_in, cx, r, vw, ew, &tw, &shift) == SLM_OK, "whitened: %s",
          slm_last_error());
    double dp = 0;
    for (int a = 0; a < n_out; a++)
        for (int b = 0; b < n_out; b++) {
            double p1 = 0, p2 = 0;
            for (int j = 0; j < r; j++) {
                p1 += vr[j * n_out + a] * vr[j * n_out + b];
                p2 += vw[j * n_out + a] * vw[j * n_out + b];
            }
            dp = fmax(dp, fabs(p1 - p2));
        }
    printf("svd-llm vs rom projector: max|d| = %.3g (tol %.0e), trace rel diff %.3g, shift %.3g\n", dp, proj_tol,
           fabs(tw - trace) / trace, shift);
    CHECK(dp < proj_tol, "svd-llm subspace differs: %.3g", dp);
    CHECK(fabs(tw - trace) / trace < proj_tol, "||W L||^2 != tr(C_Y)");
    free(vw);
    free(ew);
    free(c);
    free(vr);
    free(eig);
    free(ev);
    free(cy);
    free(y);
    free(cx);
    free(x);
    free(w);
}

/* Full-rank factors through slm_rom_factor_linear: svd gives W back. */
static void case_full_rank_svd(void) {
    int n_out = 24, n_in = 40, r = 24;
    uint64_t s = 99;
    float *w = malloc(sizeof(float) * n_out * n_in), *a = malloc(sizeof(float) * n_out * r);
    float *b = malloc(sizeof(float) * r * n_in), *ab = malloc(sizeof(float) * n_out * n_in);
    for (int i = 0; i < n_out * n_in; i++) w[i] = (float)urand(&s);
    slm_linear l = {.kind = SLM_LINEAR_DENSE, .n_out = n_out, .n_in = n_in, .w = w, .ld_w = n_in};
    slm_rom_linear_report rep;
    CHECK(slm_rom_factor_linear(&l, SLM_ROM_METHOD_SVD, NULL, r, a, b, &rep) == SLM_OK, "svd: %s", slm_last_error());
    for (int i = 0; i < n_out; i++)
        for (int j = 0; j < n_in; j++) {
            double acc = 0;
            for (int k = 0; k < r; k++) acc += (double)a[i * r + k] * b[k * n_in + j];
            ab[i * n_in + j] = (float)acc;
        }
    CHECK_CLOSE("svd full rank A B vs W", ab, w, (size_t)n_out * n_in, 1e-5);
    CHECK(rep.rel_err < 1e-12, "full-rank svd error %.3g", rep.rel_err);
    free(w);
    free(a);
    free(b);
    free(ab);
}

/* fp32 linear from an fp64 W (kept alive by the caller through *buf). */
static slm_linear dense_of(const double *w, int n_out, int n_in, float **buf) {
    *buf = malloc(sizeof(float) * n_out * n_in);
    for (int i = 0; i < n_out * n_in; i++) (*buf)[i] = (float)w[i];
    return (slm_linear){.kind = SLM_LINEAR_DENSE, .n_out = n_out, .n_in = n_in, .w = *buf, .ld_w = n_in};
}

/* The wide path's FLOP with Cholesky QR and with Householder QR differ by
 * geqrf + orgqr - trsm: the count tells which one ran. */
static void case_qr_paths(void) {
    int n_out = 96, n_in = 40, r = 10, n_tok = 300;
    double m = n_out, n = n_in;
    double hh_minus_chol = 2 * (2 * m * n * n - 2.0 / 3.0 * n * n * n) - r * n * n;
    uint64_t s = 4242;
    double *x = make_x(n_tok, n_in, &s), *cx = make_cx(x, n_tok, n_in);
    double fl[2];
    for (int ill = 0; ill < 2; ill++) {
        double *w = make_w(n_out, n_in, ill ? 6.0 : 0.0);
        float *buf, *a = malloc(sizeof(float) * n_out * r), *b = malloc(sizeof(float) * r * n_in);
        slm_linear l = dense_of(w, n_out, n_in, &buf);
        slm_rom_linear_report rep;
        CHECK(slm_rom_factor_linear(&l, SLM_ROM_METHOD_ROM, cx, r, a, b, &rep) == SLM_OK, "factor: %s", slm_last_error());
        fl[ill] = rep.flop;
        free(w), free(buf), free(a), free(b);
    }
    printf("wide W FLOP: well-conditioned %.0f, cond 1e6 %.0f, difference %.0f (geqrf + orgqr - trsm = %.0f)\n", fl[0],
           fl[1], fl[1] - fl[0], hh_minus_chol);
    CHECK(fabs(fl[1] - fl[0] - hh_minus_chol) < 1, "the ill-conditioned W did not take Householder QR");
    free(x), free(cx);
}

/* slm_rom_factor_linear_cy with C_Y = W C_X W^T equals slm_rom_factor_linear with C_X. */
static void case_from_cy(int n_out, int n_in, int r) {
    int n_tok = 400;
    uint64_t s = 5150;
    double *w = make_w(n_out, n_in, 1.0), *x = make_x(n_tok, n_in, &s), *cx = make_cx(x, n_tok, n_in);
    double *cy = calloc((size_t)n_out * n_out, sizeof(double));
    for (int i = 0; i < n_out; i++)
        for (int j = 0; j < n_out; j++)
            for (int p = 0; p < n_in; p++)
                for (int q = 0; q < n_in; q++) cy[i * n_out + j] += w[i * n_in + p] * cx[p * n_in + q] * w[j * n_in + q];
    float *buf, *a1 = malloc(sizeof(float) * n_out * r), *b1 = malloc(sizeof(float) * r * n_in);
    float *a2 = malloc(sizeof(float) * n_out * r), *b2 = malloc(sizeof(float) * r * n_in);
    slm_linear l = dense_of(w, n_out, n_in, &buf);
    slm_rom_linear_report r1, r2;
    CHECK(slm_rom_factor_linear(&l, SLM_ROM_METHOD_ROM, cx, r, a1, b1, &r1) == SLM_OK, "from C_X: %s", slm_last_error());
    CHECK(slm_rom_factor_linear_cy(&l, cy, r, a2, b2, &r2) == SLM_OK, "from C_Y: %s", slm_last_error());
    double d = 0, mx = 0;
    for (int i = 0; i < n_out; i++)
        for (int j = 0; j < n_in; j++) {
            double p1 = 0, p2 = 0;
            for (int k = 0; k < r; k++) {
                p1 += (double)a1[i * r + k] * b1[k * n_in + j];
                p2 += (double)a2[i * r + k] * b2[k * n_in + j];
            }
            d = fmax(d, fabs(p1 - p2));
            mx = fmax(mx, fabs(p1));
        }
    printf("W %d x %d rank %d from C_Y vs from C_X: W1W2 max|d| %.2e of %.3g, discarded energy %.10g vs %.10g\n", n_out,
           n_in, r, d, mx, r2.rel_err, r1.rel_err);
    CHECK(d < 1e-5 * mx, "factors from C_Y differ: %.3g", d);
    CHECK(fabs(r1.rel_err - r2.rel_err) < 1e-7 * r1.rel_err, "discarded energy differs"); /* a difference of near-equal sums */
    CHECK(r2.rank == r && r2.params_after == (int64_t)r * (n_out + n_in), "report");
    free(w), free(x), free(cx), free(cy), free(buf), free(a1), free(b1), free(a2), free(b2);
}

/* Above SLM_ROM_EIG_FP32_MIN the tridiagonalisation runs in fp32: against
 * the fp64 path on a covariance of that size, the discarded energy
 * tr(C) - tr(V^T C V) (computed in fp64 from the vectors) and the discarded
 * eigenvalue sum agree within 1e-5 relative, and the vectors are orthonormal
 * within 1e-5. */
static void case_eig_fp32(int n, int r) {
    int m = 2 * n;
    uint64_t s = 31337;
    double *a = malloc(sizeof(double) * n * m), *c = calloc((size_t)n * n, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) a[(size_t)i * m + j] = urand(&s) * (1.0 + 3.0 * exp(-i / 50.0));
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, m, 1.0, a, m, 0.0, c, n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) c[(size_t)i * n + j] = c[(size_t)j * n + i];
    double tr = 0;
    for (int i = 0; i < n; i++) tr += c[(size_t)i * n + i];
    double disc[2], disc_val[2], orth[2];
    double *sc = malloc(sizeof(double) * n * n), *v = malloc(sizeof(double) * r * n), *ev = malloc(sizeof(double) * r);
    double *cv = malloc(sizeof(double) * r * n);
    for (int p = 0; p < 2; p++) {
        memcpy(sc, c, sizeof(double) * n * n);
        double flop = 0;
        CHECK(slm_rom_top_eigen(sc, n, r, v, ev, p == 1, &flop) == SLM_OK, "eigen: %s", slm_last_error());
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, n, n, 1.0, v, n, c, n, 0.0, cv, n); /* V C */
        double cap = 0, kept = 0, o = 0;
        for (size_t i = 0; i < (size_t)r * n; i++) cap += cv[i] * v[i];
        for (int j = 0; j < r; j++) kept += ev[j];
        for (int i = 0; i < r; i++)
            for (int j = 0; j <= i; j++) {
                double d = cblas_ddot(n, v + (size_t)i * n, 1, v + (size_t)j * n, 1) - (i == j);
                o = fmax(o, fabs(d));
            }
        disc[p] = tr - cap;
        disc_val[p] = tr - kept;
        orth[p] = o;
    }
    printf("top %d of %d: discarded energy fp64 %.10g, fp32 reduction %.10g (rel %.2e; by eigenvalues rel %.2e); "
           "orthonormality %.1e / %.1e\n",
           r, n, disc[0], disc[1], fabs(disc[1] - disc[0]) / disc[0], fabs(disc_val[1] - disc[0]) / disc[0], orth[0],
           orth[1]);
    CHECK(fabs(disc[1] - disc[0]) < 1e-5 * disc[0], "fp32 reduction: discarded energy off");
    CHECK(fabs(disc_val[1] - disc[0]) < 1e-5 * disc[0], "fp32 reduction: eigenvalues off");
    CHECK(orth[0] < 1e-12 && orth[1] < 1e-5, "orthonormality %.3g / %.3g", orth[0], orth[1]);
    free(a), free(c), free(sc), free(v), free(ev), free(cv);
}

int main(void) {
    case_dims(48, 80, 12, 300, 1e-8, 0.0); /* tall: eigenproblem of the 48 x 48 C_Y */
    case_dims(96, 40, 10, 300, 1e-8, 0.0); /* wide: Cholesky QR core */
    case_dims(96, 40, 10, 300, 1e-6, 6.0); /* wide, cond(W) ~ 1e6: Householder QR core */
    /* Fewer tokens than inputs: C_X singular, svd-llm shifts its diagonal
     * (by |lambda_min| + 1e-6), which moves the subspace by about that much. */
    case_dims(40, 60, 20, 30, 1e-5, 0.0);
    case_qr_paths();
    case_from_cy(40, 96, 12);  /* down-like: narrower outputs */
    case_from_cy(300, 90, 40); /* C_Y of rank 90 < 300 */
    case_eig_fp32(SLM_ROM_EIG_FP32_MIN + 76, 300);
    case_full_rank_svd();
    return slm_test_finish();
}
