/* ref_ops.h */
#include "ref_ops.h"

#include <math.h>
#include <stdlib.h>

void slm_ref_linear(const slm_linear *l, const double *x, double *y) {
    for (int o = 0; o < l->n_out; o++) {
        double s = 0;
        if (l->kind == SLM_LINEAR_DENSE) {
            for (int i = 0; i < l->n_in; i++) s += (double)l->w[(int64_t)o * l->ld_w + i] * x[i];
        } else {
            for (int r = 0; r < l->rank; r++) {
                double br = 0;
                for (int i = 0; i < l->n_in; i++) br += (double)l->b[(int64_t)r * l->ld_b + i] * x[i];
                s += (double)l->a[(int64_t)o * l->rank + r] * br;
            }
        }
        y[o] = s + (l->bias ? l->bias[o] : 0.0);
    }
}

void slm_ref_rmsnorm(const double *x, const float *w, int n, float eps, double *y) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * r * w[i];
}

void slm_ref_rope(double *v, int n_heads, int Dh, const double *inv_freq, int pos, bool adjacent) {
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < Dh / 2; i++) {
            int a = adjacent ? 2 * i : i, b = adjacent ? 2 * i + 1 : i + Dh / 2;
            double ang = pos * inv_freq[i], x0 = v[h * Dh + a], x1 = v[h * Dh + b];
            v[h * Dh + a] = x0 * cos(ang) - x1 * sin(ang);
            v[h * Dh + b] = x0 * sin(ang) + x1 * cos(ang);
        }
}

void slm_ref_attention_row(const double *q, const double *k, const double *v, int ld, int t, int n_heads,
                           int n_kv_heads, int Dh, double *att) {
    double *s = malloc((size_t)(t + 1) * sizeof *s);
    for (int h = 0; h < n_heads; h++) {
        const int kh = h / (n_heads / n_kv_heads);
        double mx = -INFINITY, z = 0;
        for (int j = 0; j <= t; j++) {
            double d = 0;
            for (int i = 0; i < Dh; i++) d += q[h * Dh + i] * k[(size_t)j * ld + kh * Dh + i];
            s[j] = d / sqrt((double)Dh);
            mx = fmax(mx, s[j]);
        }
        for (int j = 0; j <= t; j++) z += (s[j] = exp(s[j] - mx));
        for (int i = 0; i < Dh; i++) {
            double o = 0;
            for (int j = 0; j <= t; j++) o += s[j] / z * v[(size_t)j * ld + kh * Dh + i];
            att[h * Dh + i] = o;
        }
    }
    free(s);
}
