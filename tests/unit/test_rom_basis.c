/* The linear-algebra core of rom / svd-llm / svd against independent
 * references: on calibration data X, ||Y - V_r^T V_r Y||^2 computed
 * directly equals the sum of the discarded eigenvalues of C_Y from a full
 * eigendecomposition (LAPACKE_dsyev), relative 1e-6, for a tall (n_out <
 * n_in: dsyevr path) and a wide (n_out > n_in: QR path) W; svd-llm's basis
 * spans the same subspace (projectors within 1e-8); factors at full rank
 * reproduce W (svd) and W X (rom). */
#include "compress/rom/rom.h"
#include "test_util.h"

#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

static void case_dims(int n_out, int n_in, int r, int n_tok, double proj_tol) {
    printf("== W %d x %d, rank %d, %d tokens\n", n_out, n_in, r, n_tok);
    uint64_t s = 0x1234567ull + (uint64_t)n_out * 31 + n_in;
    double *w = malloc(sizeof(double) * n_out * n_in);
    for (int i = 0; i < n_out * n_in; i++) w[i] = urand(&s);
    double *x = make_x(n_tok, n_in, &s);
    double *cx = calloc((size_t)n_in * n_in, sizeof(double));
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < n_in; i++)
            for (int j = 0; j < n_in; j++) cx[i * n_in + j] += x[t * n_in + i] * x[t * n_in + j];
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

int main(void) {
    case_dims(48, 80, 12, 300, 1e-8); /* tall: dsyevr on the 48 x 48 C_Y */
    case_dims(96, 40, 10, 300, 1e-8); /* wide: QR core */
    /* Fewer tokens than inputs: C_X singular, svd-llm shifts its diagonal
     * (by |lambda_min| + 1e-6), which moves the subspace by about that much. */
    case_dims(40, 60, 20, 30, 1e-5);
    case_full_rank_svd();
    return slm_test_finish();
}
