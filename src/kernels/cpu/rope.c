/* Rotary position embedding. Frequencies follow HF's
 * _compute_default_rope_parameters / _compute_llama3_parameters and
 * llama.cpp's rope (theta_i = pos * base^(-2i/Dh)); positions are rotated
 * from a cos/sin table built once per context, in double. */
#include "kernels/cpu/kernels.h"

#include <math.h>

static const double k_pi = 3.14159265358979323846;

void slm_rope_inv_freq(const slm_rope_freq_params *p, double *inv_freq) {
    int half = p->head_dim / 2;
    for (int i = 0; i < half; i++) {
        double f = pow((double)p->theta, -2.0 * i / p->head_dim);
        if (p->scaling == 1) {
            f /= p->factor;
        } else if (p->scaling == 2) {
            /* LLaMA 3.1: wavelengths longer than orig_ctx/low_freq_factor are
             * stretched by factor, shorter than orig_ctx/high_freq_factor kept,
             * and the band between blended linearly in orig_ctx/wavelen. */
            double wavelen = 2.0 * k_pi / f;
            double low_wl = p->orig_ctx / p->low_freq_factor, high_wl = p->orig_ctx / p->high_freq_factor;
            if (wavelen > low_wl) {
                f /= p->factor;
            } else if (wavelen >= high_wl) {
                double smooth = (p->orig_ctx / wavelen - p->low_freq_factor) /
                                (p->high_freq_factor - p->low_freq_factor);
                f = (1.0 - smooth) * f / p->factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}

void slm_rope_table(const double *inv_freq, int head_dim, int n_pos, float *cs) {
    int half = head_dim / 2;
    for (int pos = 0; pos < n_pos; pos++)
        for (int i = 0; i < half; i++) {
            double a = pos * inv_freq[i];
            cs[((int64_t)pos * half + i) * 2] = (float)cos(a);
            cs[((int64_t)pos * half + i) * 2 + 1] = (float)sin(a);
        }
}

/* Index of the pair partner: halves pair i with i+Dh/2, adjacent 2i with 2i+1. */
static inline void pair_index(int i, int half, slm_rope_mode mode, int *a, int *b) {
    if (mode == SLM_ROPE_MODE_HALVES) {
        *a = i;
        *b = i + half;
    } else {
        *a = 2 * i;
        *b = 2 * i + 1;
    }
}

void slm_rope_apply(float *x, int n_heads, int head_dim, const float *cs_row, slm_rope_mode mode) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *xh = x + (int64_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            int a, b;
            pair_index(i, half, mode, &a, &b);
            float c = cs_row[2 * i], s = cs_row[2 * i + 1];
            float x0 = xh[a], x1 = xh[b];
            xh[a] = x0 * c - x1 * s;
            xh[b] = x0 * s + x1 * c;
        }
    }
}

void slm_rope_apply_ref(float *x, int n_heads, int head_dim, const double *inv_freq, int pos,
                        slm_rope_mode mode) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *xh = x + (int64_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            int a, b;
            pair_index(i, half, mode, &a, &b);
            double ang = pos * inv_freq[i];
            double x0 = xh[a], x1 = xh[b];
            xh[a] = (float)(x0 * cos(ang) - x1 * sin(ang));
            xh[b] = (float)(x0 * sin(ang) + x1 * cos(ang));
        }
    }
}
