/* Every backward kernel of the training engine against central finite
 * differences of a double-precision forward written here from the op's
 * definition. For each op, L = sum(c * y) with fixed random c, so dL/dy = c
 * is what the fp32 backward kernel gets; every input element is perturbed
 * (eps 1e-4 in double, where the truncation error is ~1e-9) and
 *   err = max |analytic - fd| / (|fd| + 1e-3 * max|fd|)
 * is printed and checked against 1e-4 (fp32 kernels measure ~1e-6).
 * Ops: RMSNorm (x, w), SwiGLU (g, u), RoPE (both pair layouts), causal GQA
 * attention (q, k, v; by query blocks, also checked against one block),
 * dense and low-rank linears with bias (x, W, A, B, b), and the CE / KD loss
 * row (logits), including logits of size 1e4. */
#include "kernels/cpu/kernels.h"
#include "train/ops.h"
#include "train/train.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double k_eps = 1e-4, k_tol = 1e-4;
static uint64_t g_rng = 88172645463325252ull;

static double urand(void) { /* uniform [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 4503599627370496.0 - 1.0;
}

static float *rnd(int64_t n, double scale, double offset) {
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) p[i] = (float)(offset + scale * urand());
    return p;
}

/* A forward in double: reads the fp32 inputs (one of them may be perturbed
 * through the hook), returns sum(c * y). */
typedef double (*fwd_fn)(void *ctx);

/* Finite differences of f over the n floats of x, compared with analytic g. */
static double fd_check(const char *name, fwd_fn f, void *ctx, float *x, int64_t n, const float *g) {
    double *fd = malloc(sizeof(double) * (size_t)n), mx = 0.0, err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float x0 = x[i];
        /* the perturbed value is a float: use the step actually taken */
        double h = fmax(k_eps, 4.0 * fabs(x0) * 1.2e-7); /* at least a few ulp of x0 */
        float xp = (float)(x0 + h), xm = (float)(x0 - h);
        x[i] = xp;
        double lp = f(ctx);
        x[i] = xm;
        double lm = f(ctx);
        x[i] = x0;
        fd[i] = (lp - lm) / ((double)xp - (double)xm);
        mx = fmax(mx, fabs(fd[i]));
    }
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(g[i] - fd[i]) / (fabs(fd[i]) + 1e-3 * mx + 1e-30);
        if (e > err) err = e, at = i;
    }
    if (err > k_tol) printf("  worst at %lld: analytic %.9g fd %.9g\n", (long long)at, g[at], fd[at]);
    printf("  %-34s n=%-5lld max|fd|=%-9.3g err=%.2e (tol %.0e)\n", name, (long long)n, mx, err, k_tol);
    CHECK(err <= k_tol && mx > 0, "%s: finite-difference error %.3g (max |fd| %g)", name, err, mx);
    free(fd);
    return err;
}

/* ---- RMSNorm ---------------------------------------------------------------------------- */

typedef struct { int N, D; float *x, *w, *c; float eps; } rms_ctx;

static double rms_fwd(void *p) {
    rms_ctx *r = p;
    double s = 0;
    for (int n = 0; n < r->N; n++) {
        const float *x = r->x + n * r->D;
        double ss = 0;
        for (int i = 0; i < r->D; i++) ss += (double)x[i] * x[i];
        double k = 1.0 / sqrt(ss / r->D + r->eps);
        for (int i = 0; i < r->D; i++) s += (double)r->c[n * r->D + i] * x[i] * k * r->w[i];
    }
    return s;
}

static void test_rmsnorm(void) {
    printf("rmsnorm\n");
    rms_ctx r = {5, 24, rnd(120, 2, 0), rnd(24, 0.3, 1), rnd(120, 1, 0), 1e-5f};
    float *y = malloc(sizeof(float) * 120), *rr = malloc(sizeof(float) * 5), *dx = malloc(sizeof(float) * 120);
    float *dw = calloc(24, sizeof(float));
    slm_rmsnorm_fwd_rows(y, rr, r.x, r.w, 5, 24, r.eps);
    slm_rmsnorm_bwd_rows(dx, dw, r.c, r.x, rr, r.w, 5, 24, false);
    fd_check("rmsnorm dx", rms_fwd, &r, r.x, 120, dx);
    fd_check("rmsnorm dw", rms_fwd, &r, r.w, 24, dw);
    /* accumulate adds onto what dx holds */
    float *acc = malloc(sizeof(float) * 120);
    for (int i = 0; i < 120; i++) acc[i] = 1.0f;
    slm_rmsnorm_bwd_rows(acc, NULL, r.c, r.x, rr, r.w, 5, 24, true);
    double d = 0;
    for (int i = 0; i < 120; i++) d = fmax(d, fabs(acc[i] - 1.0f - dx[i]));
    CHECK(d < 1e-6, "rmsnorm accumulate: %g", d);
    free(y), free(rr), free(dx), free(dw), free(acc), free(r.x), free(r.w), free(r.c);
}

/* ---- SwiGLU ----------------------------------------------------------------------------- */

typedef struct { int n; float *g, *u, *c; } swi_ctx;

static double swi_fwd(void *p) {
    swi_ctx *s = p;
    double t = 0;
    for (int i = 0; i < s->n; i++) t += s->c[i] * (s->g[i] / (1.0 + exp(-(double)s->g[i]))) * s->u[i];
    return t;
}

static void test_swiglu(void) {
    printf("swiglu\n");
    enum { N = 4, F = 20 };
    swi_ctx s = {N * F, rnd(N * F, 6, 0), rnd(N * F, 2, 0), rnd(N * F, 1, 0)};
    s.g[0] = 15.0f, s.g[1] = -15.0f; /* saturated ends of the sigmoid */
    float *h = malloc(sizeof(float) * N * F), *dg = malloc(sizeof(float) * N * F), *du = malloc(sizeof(float) * N * F);
    slm_swiglu_fwd_rows(h, s.g, s.u, N, F);
    slm_swiglu_bwd_rows(dg, du, s.c, s.g, s.u, N, F);
    fd_check("swiglu dg", swi_fwd, &s, s.g, N * F, dg);
    fd_check("swiglu du", swi_fwd, &s, s.u, N * F, du);
    free(h), free(dg), free(du), free(s.g), free(s.u), free(s.c);
}

/* ---- RoPE ------------------------------------------------------------------------------- */

typedef struct { int N, T, H, Dh; bool adj; float *x, *c; double *inv; } rope_ctx;

static double rope_fwd(void *p) {
    rope_ctx *r = p;
    double s = 0;
    for (int n = 0; n < r->N; n++)
        for (int h = 0; h < r->H; h++)
            for (int i = 0; i < r->Dh / 2; i++) {
                int a = r->adj ? 2 * i : i, b = r->adj ? 2 * i + 1 : i + r->Dh / 2;
                int64_t o = ((int64_t)n * r->H + h) * r->Dh;
                double ang = (n % r->T) * r->inv[i], x0 = r->x[o + a], x1 = r->x[o + b];
                s += r->c[o + a] * (x0 * cos(ang) - x1 * sin(ang)) + r->c[o + b] * (x0 * sin(ang) + x1 * cos(ang));
            }
    return s;
}

static void test_rope(bool adj) {
    printf("rope (%s)\n", adj ? "adjacent pairs" : "halves");
    enum { N = 6, T = 3, H = 2, Dh = 8, W = H * Dh };
    double inv[Dh / 2];
    slm_rope_freq_params rp = {.head_dim = Dh, .theta = 10000.0f};
    slm_rope_inv_freq(&rp, inv);
    for (int i = 0; i < Dh / 2; i++) inv[i] *= 300.0; /* large angles at these few positions */
    float cs[T * Dh], csb[T * Dh];
    slm_rope_table(inv, Dh, T, cs);
    for (int i = 0; i < T * Dh; i += 2) csb[i] = cs[i], csb[i + 1] = -cs[i + 1];
    rope_ctx r = {N, T, H, Dh, adj, rnd(N * W, 1, 0), rnd(N * W, 1, 0), inv};
    float *dx = malloc(sizeof(float) * N * W);
    memcpy(dx, r.c, sizeof(float) * N * W);
    slm_rope_rows(dx, N, T, H, Dh, W, csb, adj ? SLM_ROPE_MODE_ADJACENT : SLM_ROPE_MODE_HALVES);
    fd_check(adj ? "rope adjacent dx" : "rope halves dx", rope_fwd, &r, r.x, N * W, dx);
    free(dx), free(r.x), free(r.c);
}

/* ---- attention -------------------------------------------------------------------------- */

typedef struct { slm_attn_shape s; float *q, *k, *v, *c; } attn_ctx;

static double attn_fwd(void *p) {
    attn_ctx *a = p;
    const slm_attn_shape *s = &a->s;
    int Q = s->H * s->Dh, KV = s->Hkv * s->Dh, rep = s->H / s->Hkv;
    double tot = 0, sc[64];
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++)
            for (int t = 0; t < s->T; t++) {
                int g = h / rep;
                const float *qr = a->q + ((int64_t)b * s->T + t) * Q + h * s->Dh;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const float *kr = a->k + ((int64_t)b * s->T + j) * KV + g * s->Dh;
                    double d = 0;
                    for (int i = 0; i < s->Dh; i++) d += (double)qr[i] * kr[i];
                    sc[j] = d / sqrt((double)s->Dh);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j <= t; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int i = 0; i < s->Dh; i++) {
                    double o = 0;
                    for (int j = 0; j <= t; j++) o += sc[j] / sum * a->v[((int64_t)b * s->T + j) * KV + g * s->Dh + i];
                    tot += a->c[((int64_t)b * s->T + t) * Q + h * s->Dh + i] * o;
                }
            }
    return tot;
}

static void test_attention(slm_attn_shape sh) {
    printf("attention (B %d, T %d, H %d, Hkv %d, Dh %d, query blocks of %d)\n", sh.B, sh.T, sh.H, sh.Hkv, sh.Dh,
           sh.q_block ? sh.q_block : SLM_ATTN_QBLOCK);
    attn_ctx a = {.s = sh};
    int N = sh.B * sh.T, Q = sh.H * sh.Dh, KV = sh.Hkv * sh.Dh;
    a.q = rnd(N * Q, 1.5, 0), a.k = rnd(N * KV, 1.5, 0), a.v = rnd(N * KV, 1, 0), a.c = rnd(N * Q, 1, 0);
    float *p = malloc(sizeof(float) * sh.B * sh.H * sh.T * sh.T), *out = malloc(sizeof(float) * N * Q);
    float *dq = malloc(sizeof(float) * N * Q), *dk = malloc(sizeof(float) * N * KV), *dv = malloc(sizeof(float) * N * KV);
    int nt = slm_attn_threads();
    float *scr = malloc(sizeof(float) * (size_t)slm_attn_bwd_scratch_floats(&sh, nt));
    slm_attn_fwd(&a.s, a.q, a.k, a.v, p, out);
    /* the forward itself against the double reference: sum(c * out) */
    double ref = attn_fwd(&a), got = 0;
    for (int i = 0; i < N * Q; i++) got += (double)a.c[i] * out[i];
    printf("  attention forward: sum(c*out) %.9f vs reference %.9f\n", got, ref);
    CHECK(fabs(got - ref) < 1e-5 * fmax(1, fabs(ref)), "attention forward %g vs %g", got, ref);
    slm_attn_bwd(&a.s, a.q, a.k, a.v, p, a.c, dq, dk, dv, scr, nt);
    fd_check("attention dq", attn_fwd, &a, a.q, N * Q, dq);
    fd_check("attention dk", attn_fwd, &a, a.k, N * KV, dk);
    fd_check("attention dv", attn_fwd, &a, a.v, N * KV, dv);
    free(p), free(out), free(dq), free(dk), free(dv), free(scr), free(a.q), free(a.k), free(a.v), free(a.c);
}

/* max |x - y| / max |y| */
static double rel_diff(const float *x, const float *y, int64_t n) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)x[i] - y[i])), m = fmax(m, fabs((double)y[i]));
    return d / (m + 1e-30);
}

/* At a length where the default blocks split the products (T 300: blocks of
 * 128, 128, 44): the same results as one block of all T rows (the full
 * T x T products with the masked half zeroed), on every thread count. */
static void test_attention_blocks(void) {
    slm_attn_shape sb = {2, 300, 4, 2, 16, 0}, s1 = sb;
    s1.q_block = sb.T;
    int N = sb.B * sb.T, Q = sb.H * sb.Dh, KV = sb.Hkv * sb.Dh, nt = slm_attn_threads();
    printf("attention blocks (B %d, T %d, H %d, Hkv %d, Dh %d): blocks of %d vs one block, %d and 1 thread(s)\n",
           sb.B, sb.T, sb.H, sb.Hkv, sb.Dh, SLM_ATTN_QBLOCK, nt);
    float *q = rnd(N * Q, 1.5, 0), *k = rnd(N * KV, 1.5, 0), *v = rnd(N * KV, 1, 0), *c = rnd(N * Q, 1, 0);
    float *o[3], *dq[3], *dk[3], *dv[3], *p = malloc(sizeof(float) * sb.B * sb.H * sb.T * sb.T);
    int64_t ns = slm_attn_bwd_scratch_floats(&s1, nt); /* the larger of the two */
    float *scr = malloc(sizeof(float) * (size_t)ns);
    for (int r = 0; r < 3; r++) { /* 0: blocks, 1: one block, 2: blocks on one thread */
        const slm_attn_shape *s = r == 1 ? &s1 : &sb;
        o[r] = malloc(sizeof(float) * N * Q), dq[r] = malloc(sizeof(float) * N * Q);
        dk[r] = malloc(sizeof(float) * N * KV), dv[r] = malloc(sizeof(float) * N * KV);
        slm_attn_fwd(s, q, k, v, p, o[r]);
        slm_attn_bwd(s, q, k, v, p, c, dq[r], dk[r], dv[r], scr, r == 2 ? 1 : nt);
    }
    double e[4] = {rel_diff(o[0], o[1], N * Q), rel_diff(dq[0], dq[1], N * Q), rel_diff(dk[0], dk[1], N * KV),
                   rel_diff(dv[0], dv[1], N * KV)};
    double e1 = fmax(fmax(rel_diff(o[0], o[2], N * Q), rel_diff(dq[0], dq[2], N * Q)),
                     fmax(rel_diff(dk[0], dk[2], N * KV), rel_diff(dv[0], dv[2], N * KV)));
    printf("  blocks vs one block: out %.1e, dq %.1e, dk %.1e, dv %.1e (tol 1e-6); 1 thread vs %d: %.1e (tol 1e-6)\n",
           e[0], e[1], e[2], e[3], nt, e1);
    for (int i = 0; i < 4; i++) CHECK(e[i] <= 1e-6, "attention blocks vs one block: %g", e[i]);
    CHECK(e1 <= 1e-6, "attention on 1 thread vs %d: %g", nt, e1);
    for (int r = 0; r < 3; r++) free(o[r]), free(dq[r]), free(dk[r]), free(dv[r]);
    free(q), free(k), free(v), free(c), free(p), free(scr);
}

/* ---- linears ----------------------------------------------------------------------------- */

typedef struct { slm_linear l; int N; float *x, *c; } lin_ctx;

static double lin_fwd(void *p) {
    lin_ctx *a = p;
    const slm_linear *l = &a->l;
    double s = 0;
    for (int n = 0; n < a->N; n++) {
        const float *x = a->x + (int64_t)n * l->n_in;
        for (int o = 0; o < l->n_out; o++) {
            double y = 0;
            if (l->kind == SLM_LINEAR_DENSE) {
                for (int i = 0; i < l->n_in; i++) y += (double)l->w[(int64_t)o * l->ld_w + i] * x[i];
            } else {
                for (int r = 0; r < l->rank; r++) {
                    double t = 0;
                    for (int i = 0; i < l->n_in; i++) t += (double)l->b[(int64_t)r * l->ld_b + i] * x[i];
                    y += (double)l->a[(int64_t)o * l->rank + r] * t;
                }
            }
            if (l->bias) y += l->bias[o];
            s += a->c[(int64_t)n * l->n_out + o] * y;
        }
    }
    return s;
}

static void test_linear(bool lowrank) {
    enum { N = 7, NI = 12, NO = 9, R = 4 };
    printf("linear (%s, bias)\n", lowrank ? "low-rank A.B" : "dense");
    lin_ctx a = {{0}, N, rnd(N * NI, 1, 0), rnd(N * NO, 1, 0)};
    slm_linear *l = &a.l;
    l->n_out = NO, l->n_in = NI, l->bias = rnd(NO, 0.5, 0);
    float *w = rnd(NO * NI, 0.5, 0), *fa = rnd(NO * R, 0.5, 0), *fb = rnd(R * NI, 0.5, 0);
    if (lowrank) l->kind = SLM_LINEAR_LOWRANK, l->rank = R, l->a = fa, l->b = fb, l->ld_b = NI;
    else l->kind = SLM_LINEAR_DENSE, l->w = w, l->ld_w = NI;
    float *dx = malloc(sizeof(float) * N * NI), *tmp = malloc(sizeof(float) * N * R), *dtmp = malloc(sizeof(float) * N * R);
    slm_linear_grads g = {calloc(NO * NI, 4), calloc(NO * R, 4), calloc(R * NI, 4), calloc(NO, 4), 0, 0};
    slm_linear_backward(l, &g, N, a.x, NI, a.c, NO, dx, NI, 0.0f, tmp, dtmp);
    fd_check(lowrank ? "low-rank dx" : "dense dx", lin_fwd, &a, a.x, N * NI, dx);
    if (lowrank) {
        fd_check("low-rank dA", lin_fwd, &a, fa, NO * R, g.a);
        fd_check("low-rank dB", lin_fwd, &a, fb, R * NI, g.b);
    } else {
        fd_check("dense dW", lin_fwd, &a, w, NO * NI, g.w);
    }
    fd_check(lowrank ? "low-rank dbias" : "dense dbias", lin_fwd, &a, (float *)l->bias, NO, g.bias);
    free(dx), free(tmp), free(dtmp), free(g.w), free(g.a), free(g.b), free(g.bias);
    free(w), free(fa), free(fb), free((void *)l->bias), free(a.x), free(a.c);
}

/* ---- loss row ------------------------------------------------------------------------------ */

typedef struct { int V, y; float *z, *zt; float cw, kw, tau; } loss_ctx;

static double lse(const double *v, int n) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, v[i]);
    for (int i = 0; i < n; i++) s += exp(v[i] - mx);
    return mx + log(s);
}

static double loss_fwd(void *p) {
    loss_ctx *a = p;
    double zs[256] = {0}, zt[256] = {0};
    for (int i = 0; i < a->V; i++) zs[i] = a->z[i];
    double ce = lse(zs, a->V) - zs[a->y], kd = 0;
    if (a->zt) {
        for (int i = 0; i < a->V; i++) zs[i] = a->z[i] / a->tau, zt[i] = a->zt[i] / a->tau;
        double ls = lse(zs, a->V), lt = lse(zt, a->V);
        for (int i = 0; i < a->V; i++) kd += exp(zt[i] - lt) * ((zt[i] - lt) - (zs[i] - ls));
        kd *= a->tau * a->tau;
    }
    return a->cw * ce + a->kw * kd;
}

static void test_loss_row(const char *name, float zscale, bool kd) {
    enum { V = 150 };
    printf("loss row: %s\n", name);
    loss_ctx a = {V, 17, rnd(V, zscale, 0), kd ? rnd(V, zscale, 0) : NULL, 0.7f, kd ? 1.3f : 0.0f, 2.0f};
    slm_loss_params lp = {.ce_weight = a.cw, .kd_weight = a.kw, .kd_temperature = a.tau};
    float *g = malloc(sizeof(float) * V), *zt = kd ? malloc(sizeof(float) * V) : NULL, *scr = malloc(sizeof(float) * 3 * V);
    memcpy(g, a.z, sizeof(float) * V);
    if (kd) memcpy(zt, a.zt, sizeof(float) * V);
    double ce, kdv;
    slm_loss_row(g, zt, V, a.y, &lp, 1.0f, true, scr, &ce, &kdv);
    double want = loss_fwd(&a), got = a.cw * ce + a.kw * kdv;
    printf("  loss %.12g vs reference %.12g\n", got, want);
    CHECK(fabs(got - want) <= 1e-6 * fmax(1.0, fabs(want)), "%s: loss %.9g vs %.9g", name, got, want);
    fd_check(name, loss_fwd, &a, a.z, V, g);
    /* grad = false leaves z alone; a row without target has no loss and a zero gradient */
    memcpy(g, a.z, sizeof(float) * V);
    if (kd) memcpy(zt, a.zt, sizeof(float) * V);
    slm_loss_row(g, zt, V, a.y, &lp, 1.0f, false, scr, &ce, &kdv);
    CHECK(memcmp(g, a.z, sizeof(float) * V) == 0, "no-grad call keeps the logits");
    slm_loss_row(g, NULL, V, -1, &lp, 1.0f, true, scr, &ce, &kdv);
    bool zero = ce == 0 && kdv == 0;
    for (int i = 0; i < V; i++) zero = zero && g[i] == 0.0f;
    CHECK(zero, "ignored row: zero loss and gradient");
    free(g), free(zt), free(scr), free(a.z), free(a.zt);
}

int main(void) {
    slm_set_threads(2);
    test_rmsnorm();
    test_swiglu();
    test_rope(false);
    test_rope(true);
    test_attention((slm_attn_shape){2, 5, 4, 2, 8, 0});
    test_attention((slm_attn_shape){2, 5, 4, 2, 8, 2}); /* blocks of 2, 2, 1 query rows */
    test_attention((slm_attn_shape){1, 7, 3, 3, 8, 3}); /* no grouping: dk, dv written directly */
    test_attention_blocks();
    test_linear(false);
    test_linear(true);
    test_loss_row("CE dz", 3.0f, false);
    test_loss_row("CE + KD (tau 2) dz", 3.0f, true);
    test_loss_row("CE + KD dz, logits ~1e4", 1e4f, true);
    return slm_test_finish();
}
