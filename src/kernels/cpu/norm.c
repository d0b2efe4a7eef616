/* RMSNorm (LLaMA): y = x / sqrt(mean(x^2) + eps) * w. The reference sums
 * squares in double like llama.cpp (ggml_float); the AVX2 version keeps 16
 * float partial sums, which is within a few ulp for D in the thousands. */
#include "kernels/cpu/kernels.h"

#include <math.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

void slm_rmsnorm_ref(float *y, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

void slm_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
#ifdef __AVX2__
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
    }
    a0 = _mm256_add_ps(a0, a1);
    float part[8];
    _mm256_storeu_ps(part, a0);
    double ss = 0.0;
    for (int k = 0; k < 8; k++) ss += part[k];
    for (; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    __m256 vs = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
    for (; i < n; i++) y[i] = x[i] * scale * w[i];
#else
    slm_rmsnorm_ref(y, x, w, n, eps);
#endif
}

bool slm_all_finite(const float *x, int64_t n) {
    /* An exponent field of all ones is Inf or NaN; OR-ing the test over the
     * array is an integer reduction the compiler vectorises. */
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}
