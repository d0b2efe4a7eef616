/* CPU kernels: each vectorised kernel against its plain reference, RoPE's
 * table against direct double evaluation, the two RoPE pair layouts against
 * each other through the llama.cpp row permutation, and LLaMA 3.1 frequency
 * scaling against values printed by HF transformers'
 * _compute_llama3_parameters (theta 5e5, Dh 128, factor 8, low 1, high 4,
 * original context 8192). */
#include "kernels/cpu/kernels.h"
#include "model/model.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t g_rng = 88172645463325252ull;
static float urand(float lo, float hi) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)(g_rng >> 40) / 16777216.0f;
}

static void test_rmsnorm(void) {
    const int sizes[] = {1, 7, 64, 576, 1000};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int n = sizes[k];
        float *x = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * n);
        float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
        for (int i = 0; i < n; i++) x[i] = urand(-3, 3), w[i] = urand(0.5f, 1.5f);
        slm_rmsnorm_ref(a, x, w, n, 1e-5f);
        slm_rmsnorm(b, x, w, n, 1e-5f);
        char name[64];
        snprintf(name, sizeof name, "rmsnorm n=%d", n);
        CHECK_CLOSE(name, a, b, (size_t)n, 2e-6); /* outputs are O(1) */
        free(x), free(w), free(a), free(b);
    }
}

static void test_exp_softmax_swiglu(void) {
    /* exp: relative error over the whole useful range. */
    int n = 20000;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) x[i] = -87.0f + 175.0f * (float)i / (float)(n - 1);
    memcpy(y, x, sizeof(float) * n);
    slm_vexp(y, n);
    double maxrel = 0;
    for (int i = 0; i < n; i++) {
        double r = fabs((double)y[i] - exp((double)x[i])) / exp((double)x[i]);
        if (r > maxrel) maxrel = r;
    }
    printf("vexp: max relative error %.3g over [-87, 88] (tol 3e-7)\n", maxrel);
    CHECK(maxrel < 3e-7, "vexp relative error %g", maxrel);
    float ninf[9];
    for (int i = 0; i < 9; i++) ninf[i] = -INFINITY;
    slm_vexp(ninf, 9);
    CHECK(ninf[0] == 0.0f && ninf[8] == 0.0f, "exp(-inf) = 0");

    const int sizes[] = {1, 5, 64, 333, 4096};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int m = sizes[k];
        float *a = malloc(sizeof(float) * m), *b = malloc(sizeof(float) * m), *u = malloc(sizeof(float) * m);
        for (int i = 0; i < m; i++) a[i] = urand(-30, 30), u[i] = urand(-2, 2);
        memcpy(b, a, sizeof(float) * m);
        slm_softmax_ref(a, m);
        slm_softmax(b, m);
        char name[64];
        snprintf(name, sizeof name, "softmax n=%d", m);
        CHECK_CLOSE(name, a, b, (size_t)m, 1e-7); /* probabilities */
        double s = 0;
        for (int i = 0; i < m; i++) s += b[i];
        CHECK(fabs(s - 1.0) < 1e-5, "softmax sums to %g", s);
        /* SwiGLU on [-20, 20]: outputs up to ~40, tolerance relative to that. */
        for (int i = 0; i < m; i++) a[i] = urand(-20, 20);
        memcpy(b, a, sizeof(float) * m);
        slm_swiglu_ref(a, u, m);
        slm_swiglu(b, u, m);
        snprintf(name, sizeof name, "swiglu n=%d", m);
        CHECK_CLOSE(name, a, b, (size_t)m, 1e-5);
        free(a), free(b), free(u);
    }
    free(x), free(y);
    float ok[3] = {1, 2, 3}, bad[3] = {1, NAN, 3}, inf[3] = {INFINITY, 0, 0};
    CHECK(slm_all_finite(ok, 3) && !slm_all_finite(bad, 3) && !slm_all_finite(inf, 3), "all_finite");
}

static void test_rope(void) {
    const int Dh = 64, H = 3, npos = 4100;
    slm_rope_freq_params p = {.head_dim = Dh, .theta = 100000.0f};
    double inv[32];
    slm_rope_inv_freq(&p, inv);
    float *cs = malloc(sizeof(float) * (size_t)npos * Dh);
    slm_rope_table(inv, Dh, npos, cs);
    float x[3 * 64], a[3 * 64], b[3 * 64];
    for (int i = 0; i < H * Dh; i++) x[i] = urand(-2, 2);
    const int positions[] = {0, 1, 17, 511, 4099};
    for (int mode = 0; mode < 2; mode++)
        for (size_t k = 0; k < 5; k++) {
            int pos = positions[k];
            memcpy(a, x, sizeof x);
            memcpy(b, x, sizeof x);
            slm_rope_apply_ref(a, H, Dh, inv, pos, (slm_rope_mode)mode);
            slm_rope_apply(b, H, Dh, cs + (size_t)pos * Dh, (slm_rope_mode)mode);
            char name[64];
            snprintf(name, sizeof name, "rope %s pos=%d", mode ? "adjacent" : "halves", pos);
            CHECK_CLOSE(name, a, b, (size_t)(H * Dh), 2e-6);
        }
    /* Same rotation in both layouts: permute(rope_halves(x)) == rope_adjacent(permute(x)). */
    float px[3 * 64], ph[3 * 64];
    memcpy(a, x, sizeof x);
    slm_rope_apply(a, H, Dh, cs + 777 * Dh, SLM_ROPE_MODE_HALVES);
    slm_rope_permute_rows(a, ph, H, Dh, 1, true);
    slm_rope_permute_rows(x, px, H, Dh, 1, true);
    slm_rope_apply(px, H, Dh, cs + 777 * Dh, SLM_ROPE_MODE_ADJACENT);
    /* Same products, possibly contracted to FMA differently: a few ulp. */
    CHECK_CLOSE("rope layouts agree through the permutation", ph, px, (size_t)(H * Dh), 1e-6);
    /* Norm of every pair is preserved. */
    double n0 = 0, n1 = 0;
    for (int i = 0; i < H * Dh; i++) n0 += (double)x[i] * x[i], n1 += (double)a[i] * a[i];
    CHECK(fabs(n0 - n1) < 1e-4 * n0, "rope preserves the norm (%g vs %g)", n0, n1);
    free(cs);

    /* Linear scaling = positions divided by factor. */
    slm_rope_freq_params pl = {.head_dim = Dh, .theta = 100000.0f, .scaling = 1, .factor = 4.0f};
    double invl[32];
    slm_rope_inv_freq(&pl, invl);
    double worst = 0;
    for (int i = 0; i < 32; i++) worst = fmax(worst, fabs(invl[i] * 4.0 - inv[i]) / inv[i]);
    CHECK(worst < 1e-12, "linear scaling divides frequencies by the factor (%g)", worst);

    slm_rope_freq_params p3 = {.head_dim = 128, .theta = 500000.0f, .scaling = 2, .factor = 8.0f,
                               .low_freq_factor = 1.0f, .high_freq_factor = 4.0f, .orig_ctx = 8192};
    double inv3[64];
    slm_rope_inv_freq(&p3, inv3);
    const int idx[] = {0, 10, 20, 30, 40, 45, 50, 63};
    const double hf[] = {1.0, 0.12868738174438477, 0.016560440883040428, 0.0013718936825171113,
                         3.428102354519069e-05, 1.2297638932068367e-05, 4.411534519022098e-06,
                         3.068925877869333e-07};
    worst = 0;
    for (int k = 0; k < 8; k++) worst = fmax(worst, fabs(inv3[idx[k]] - hf[k]) / hf[k]);
    printf("llama3 rope frequencies vs HF: max relative difference %.3g (tol 1e-6, HF computes in fp32)\n", worst);
    CHECK(worst < 1e-6, "llama3 scaling");
}

int main(void) {
    test_rmsnorm();
    test_exp_softmax_swiglu();
    test_rope();
    return slm_test_finish();
}
