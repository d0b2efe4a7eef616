/* The INT8 linear kind (src/model/linear_int8.h) and int8 models
 * (src/compress/quant/quant.h) on random weights:
 *  - quantise -> dequantise, per output channel: s = max|w|/127 over the
 *    int8 columns, |w - s q| <= s/2, q = 0 and the weight exact (fp32) at
 *    outlier columns;
 *  - apply (T = 1 decode path, 3, 70, 130 tiled prefill paths; beta 0 and
 *    1; a narrowed input) against an independent double-precision product
 *    of the dequantised weights and the per-token quantised activations
 *    plus the fp32 outlier columns: |y - ref| <= 2e-6 * sum |terms| + 2e-6 |y0|;
 *  - an input that is non-zero only at outlier columns gives exactly the
 *    fp32 product of those columns (the int8 part contributes 0);
 *  - low-rank int8 = its two dense int8 stages composed, bit for bit;
 *  - a random model quantised with calibration (outliers, a low-rank linear,
 *    a narrowed MLP, biases, an untied lm head): saved as an int8 GGUF and
 *    loaded back, its logits are bit-identical; saved as F32 GGUF (the
 *    dequantised values) and loaded, it equals slm_quant_dequantize's
 *    model bit for bit; a HALVES (HF-order) model comes back in llama.cpp's
 *    order within 1e-5; weight bytes are the sum of the parts;
 *  - damaged int8 files (a negative or NaN scale, a non-zero int8 value at
 *    an outlier column, outlier columns out of order, a scale tensor of the
 *    wrong type) fail to load with one message naming the file and tensor;
 *  - the int8 token embedding (SLM_QUANT_EMBD_INT8), tied (one int8 matrix,
 *    the head's, with its outlier columns) and untied (its own matrix):
 *    every looked-up row is scale[r] * q bit for bit and within scale[r] / 2
 *    of the float embedding; bytes count the matrix once; saved as an int8
 *    GGUF (slimlm.int8.embd, version 3, no float token_embd / output) and
 *    loaded, logits identical; as F32 GGUF, the dequantised values, still
 *    tied; damaged files (scales missing, of the wrong type or shape, or
 *    negative; rows not I8 or missing; the key missing) give one message. */
#include "compress/quant/quant.h"
#include "formats/gguf.h"
#include "kernels/cpu/int8.h"
#include "model/linear_int8.h"
#include "model/loaders.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x853C49E6748FEA9Bull;
static float uniform(float lo, float hi) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (float)((rng >> 11) & 0xFFFFFF) / 16777216.0f;
}

static const char *tmp_path(const char *name) { return slm_test_path(slm_test_env("SLM_TEST_TMP", "/tmp"), name); }

static slm_config small_config(void) {
    slm_config c = {.arch = SLM_ARCH_LLAMA, .n_vocab = 97, .d_model = 64, .n_layers = 3, .n_heads = 4,
                    .n_kv_heads = 2, .head_dim = 16, .d_ff = 96, .max_ctx = 256, .norm_eps = 1e-5f,
                    .rope_theta = 10000.0f, .rope_layout = SLM_ROPE_ADJACENT, .tied_embeddings = true,
                    .bos_id = -1, .eos_id = -1};
    return c;
}

/* ---- matrices ------------------------------------------------------------------------- */

static void check_matrix_bounds(slm_model *m) {
    enum { R = 37, C = 100 };
    float *w = malloc(sizeof(float) * R * C), *dq = malloc(sizeof(float) * R * C);
    for (int i = 0; i < R * C; i++) w[i] = uniform(-1, 1) * (1 + i % 7);
    for (int r = 0; r < R; r++) w[r * C + 17] = 50.0f * (r % 2 ? 1 : -1); /* an outlier column */
    memset(w + 5 * C, 0, sizeof(float) * C);                             /* an all-zero row */
    const int32_t outl[2] = {17, 99};
    const slm_i8_matrix *q;
    if (!CHECK(slm_i8_matrix_quantize(m, w, R, C, C, outl, 2, "bounds", &q) == SLM_OK, "quantize: %s", slm_last_error()))
        return;
    slm_i8_matrix_dequantize(q, dq, C);
    int bad_bound = 0, bad_scale = 0, bad_outl = 0;
    double worst = 0;
    for (int r = 0; r < R; r++) {
        float amax = 0;
        for (int c = 0; c < C; c++)
            if (c != 17 && c != 99) amax = fmaxf(amax, fabsf(w[r * C + c]));
        bad_scale += q->scale[r] != amax / 127.0f;
        for (int c = 0; c < C; c++) {
            int8_t v = q->q[(int64_t)r * q->ld + c];
            if (c == 17 || c == 99) {
                bad_outl += v != 0 || dq[r * C + c] != w[r * C + c];
                continue;
            }
            double err = fabs((double)w[r * C + c] - (double)q->scale[r] * v);
            if (q->scale[r] > 0 && err / q->scale[r] > worst) worst = err / q->scale[r];
            bad_bound += err > 0.5 * q->scale[r] || (int)v < -127 || dq[r * C + c] != q->scale[r] * (float)v;
        }
        for (int64_t c = C; c < q->ld; c++) bad_outl += q->q[(int64_t)r * q->ld + c] != 0; /* padding */
    }
    printf("quantize -> dequantize: %d x %d, max |w - s q| / s = %.6f (bound 0.5), bad scales %d, bound violations %d, "
           "outlier/padding errors %d\n", R, C, worst, bad_scale, bad_bound, bad_outl);
    CHECK(bad_bound == 0 && bad_scale == 0 && bad_outl == 0 && worst <= 0.5, "per-channel bounds");
    CHECK(slm_i8_matrix_bytes(q) == (int64_t)R * C + 4 * R + 4 * 2 + 4 * R * 2, "matrix bytes");
    free(w), free(dq);
}

/* ---- apply vs double --------------------------------------------------------------------- */

/* y_ref [T][n_out] in double: beta y0 + int8 part + fp32 outlier columns; mag = sum |terms|. */
static void reference(const slm_i8_matrix *q, int n_out, int n_in, int T, const float *x, const float *y0, float beta,
                      double *ref, double *mag) {
    const int K = (n_in + SLM_I8_KALIGN - 1) / SLM_I8_KALIGN * SLM_I8_KALIGN;
    int n_o = 0;
    while (n_o < q->n_outl && q->outl_idx[n_o] < n_in) n_o++;
    int8_t *xq = malloc((size_t)K);
    for (int t = 0; t < T; t++) {
        float xs;
        slm_i8_quantize_rows_ref(1, x + (int64_t)t * n_in, n_in, n_in, q->outl_idx, n_o, K, xq, K, &xs);
        for (int o = 0; o < n_out; o++) {
            double acc = beta * (double)y0[(int64_t)t * n_out + o], m = fabs(acc);
            for (int k = 0; k < n_in; k++) {
                double v = ((double)q->scale[o] * q->q[(int64_t)o * q->ld + k]) * ((double)xs * xq[k]);
                acc += v, m += fabs(v);
            }
            for (int j = 0; j < n_o; j++) {
                double v = (double)q->outl_w[(int64_t)o * q->n_outl + j] * x[(int64_t)t * n_in + q->outl_idx[j]];
                acc += v, m += fabs(v);
            }
            ref[(int64_t)t * n_out + o] = acc;
            mag[(int64_t)t * n_out + o] = m;
        }
    }
    free(xq);
}

static void check_apply(slm_model *m) {
    enum { N = 75, C = 200 };
    float *w = malloc(sizeof(float) * N * C);
    for (int i = 0; i < N * C; i++) w[i] = uniform(-0.1f, 0.1f);
    const int32_t outl[3] = {3, 64, 190};
    const slm_i8_matrix *q;
    if (!CHECK(slm_i8_matrix_quantize(m, w, N, C, C, outl, 3, "apply", &q) == SLM_OK, "quantize: %s", slm_last_error()))
        return;
    const int Ts[] = {1, 3, 70, 130};
    double worst = 0;
    for (int ti = 0; ti < 4; ti++)
        for (int narrow = 0; narrow < 2; narrow++)
            for (int b = 0; b < 2; b++) {
                const int T = Ts[ti], n_in = narrow ? 150 : C; /* 150: a narrowed input (outlier 190 unused) */
                slm_linear l = {0};
                CHECK(slm_linear_set_int8(&l, q, NULL, N, n_in) == SLM_OK, "set int8");
                float *x = malloc(sizeof(float) * T * n_in), *y = malloc(sizeof(float) * T * N);
                float *y0 = malloc(sizeof(float) * T * N);
                double *ref = malloc(sizeof(double) * T * N), *mag = malloc(sizeof(double) * T * N);
                for (int i = 0; i < T * n_in; i++) x[i] = uniform(-1, 1);
                for (int t = 0; t < T; t++) x[t * n_in + 64] = 30.0f; /* the outlier column is large */
                for (int i = 0; i < T * N; i++) y0[i] = y[i] = uniform(-1, 1);
                float *tmp = malloc(sizeof(float) * (size_t)slm_linear_int8_tmp_floats(&l, T));
                slm_linear_int8_apply(&l, T, x, n_in, y, N, (float)b, tmp);
                reference(q, N, n_in, T, x, y0, (float)b, ref, mag);
                for (int i = 0; i < T * N; i++) {
                    double e = fabs(y[i] - ref[i]) / (mag[i] + 1e-30);
                    if (e > worst) worst = e;
                }
                free(x), free(y), free(y0), free(ref), free(mag), free(tmp);
            }
    printf("int8 apply vs double (T 1/3/70/130, beta 0/1, full and narrowed input): max |y - ref| / sum|terms| = %.3g "
           "(bound 2e-6)\n", worst);
    CHECK(worst <= 2e-6, "apply within 2e-6 of sum |terms|");

    /* only the outlier columns non-zero: the fp32 product of those columns */
    const int T = 5;
    float x[5 * C], y[5 * N];
    memset(x, 0, sizeof x);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < 3; j++) x[t * C + outl[j]] = uniform(-100, 100);
    slm_linear l = {0};
    slm_linear_set_int8(&l, q, NULL, N, C);
    float *tmp = malloc(sizeof(float) * (size_t)slm_linear_int8_tmp_floats(&l, T));
    slm_linear_int8_apply(&l, T, x, C, y, N, 0.0f, tmp);
    double worst_o = 0;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < N; o++) {
            double r = 0, mg = 0;
            for (int j = 0; j < 3; j++) {
                double v = (double)w[o * C + outl[j]] * x[t * C + outl[j]];
                r += v, mg += fabs(v);
            }
            worst_o = fmax(worst_o, fabs(y[t * N + o] - r) / (mg + 1e-30));
        }
    printf("outlier columns alone: max |y - W_o x_o| / sum|terms| = %.3g (fp32 rounding: bound 1e-6)\n", worst_o);
    CHECK(worst_o <= 1e-6, "outlier columns multiplied in fp32");
    free(tmp);
    free(w);
}

static void check_lowrank(slm_model *m) {
    enum { N = 50, C = 130, R = 19, T = 9 };
    float *a = malloc(sizeof(float) * N * R), *b = malloc(sizeof(float) * R * C);
    for (int i = 0; i < N * R; i++) a[i] = uniform(-0.3f, 0.3f);
    for (int i = 0; i < R * C; i++) b[i] = uniform(-0.1f, 0.1f);
    const int32_t ob[1] = {7}, oa[1] = {2};
    const slm_i8_matrix *qa, *qb;
    slm_i8_matrix_quantize(m, a, N, R, R, oa, 1, "A", &qa);
    slm_i8_matrix_quantize(m, b, R, C, C, ob, 1, "B", &qb);
    slm_linear lr = {0}, lb = {0}, la = {0};
    CHECK(slm_linear_set_int8(&lr, qb, qa, N, C) == SLM_OK && lr.rank == R, "low-rank int8 linear");
    slm_linear_set_int8(&lb, qb, NULL, R, C);
    slm_linear_set_int8(&la, qa, NULL, N, R);
    float x[T * C], z[T * R], y1[T * N], y2[T * N];
    for (int i = 0; i < T * C; i++) x[i] = uniform(-1, 1);
    int64_t nt = slm_linear_int8_tmp_floats(&lr, T);
    float *tmp = malloc(sizeof(float) * (size_t)nt);
    slm_linear_int8_apply(&lr, T, x, C, y1, N, 0.0f, tmp);
    slm_linear_int8_apply(&lb, T, x, C, z, R, 0.0f, tmp);
    slm_linear_int8_apply(&la, T, z, R, y2, N, 0.0f, tmp);
    CHECK(memcmp(y1, y2, sizeof y1) == 0, "low-rank int8 equals B then A bit for bit");
    printf("low-rank int8 (rank %d) vs its two stages: %s\n", R, memcmp(y1, y2, sizeof y1) ? "differ" : "identical");
    free(tmp), free(a), free(b);
}

/* ---- models ------------------------------------------------------------------------------ */

enum { N_TOK = 40 };

static bool logits_of(const slm_model *m, float *out) {
    int32_t tok[N_TOK];
    for (int t = 0; t < N_TOK; t++) tok[t] = (t * 31 + 5) % m->cfg.n_vocab;
    slm_context_params cp = {.n_ctx = 64, .n_batch = 16}; /* steps of 16: the tiled path and a tail */
    slm_context *c;
    if (slm_context_new(m, &cp, &c)) return false;
    bool ok = slm_decode(c, tok, N_TOK, true, out) == SLM_OK;
    /* and one decode step (T = 1 path) */
    ok = ok && slm_decode(c, tok, 1, false, out + (size_t)N_TOK * m->cfg.n_vocab) == SLM_OK;
    slm_context_free(c);
    return ok;
}

/* A random model with a narrowed MLP (block 1), a low-rank up projection
 * (block 2), biases and an untied head, quantised with outliers. */
static slm_model *quantised_model(slm_rope_layout layout, slm_quant_report *rep) {
    slm_config cfg = small_config();
    cfg.rope_layout = layout;
    cfg.attn_bias = true;
    cfg.tied_embeddings = false;
    slm_model *m;
    if (slm_model_new_random(&cfg, 11, &m)) return NULL;
    slm_block_set_mlp_width(m, 1, 40);
    slm_linear *up = &m->blocks[2].lin[SLM_PROJ_UP];
    float *a = slm_model_alloc_f32(m, (size_t)up->n_out * 8, "a"), *b = slm_model_alloc_f32(m, 8 * (size_t)up->n_in, "b");
    for (int i = 0; i < up->n_out * 8; i++) a[i] = uniform(-0.5f, 0.5f);
    for (int i = 0; i < 8 * up->n_in; i++) b[i] = uniform(-1.0f, 1.0f); /* |B x| crosses the threshold */
    up->kind = SLM_LINEAR_LOWRANK, up->rank = 8, up->a = a, up->b = b, up->ld_b = up->n_in, up->w = NULL;
    slm_calib cal = {.n_seqs = 3, .seq_len = 24};
    cal.tokens = malloc(sizeof(int32_t) * 3 * 24);
    for (int i = 0; i < 72; i++) cal.tokens[i] = (i * 13 + 1) % cfg.n_vocab;
    slm_quant_params p = slm_quant_default_params();
    p.outlier_threshold = 1.5f; /* the random activations are O(1): some columns cross it */
    p.max_outlier_frac = 0.25f; /* rank 8: up to 2 columns of the intermediate */
    p.quiet = true;
    slm_status st = slm_quant_int8(m, &p, &cal, rep);
    free(cal.tokens);
    if (!CHECK(st == SLM_OK, "quantise: %s", slm_last_error())) {
        slm_model_free(m);
        return NULL;
    }
    return m;
}

static void check_model_roundtrip(void) {
    slm_quant_report rep;
    slm_model *m = quantised_model(SLM_ROPE_ADJACENT, &rep);
    if (!m) return;
    int outl = rep.lm_head_outliers + rep.lowrank_outliers;
    for (int l = 0; l < rep.n_layers; l++)
        for (int k = 0; k < SLM_FWD_POINT_COUNT; k++) outl += rep.outliers[l][k];
    printf("random model: %d linears int8, %d outlier columns (%d in the low-rank intermediate, %d at the lm head)\n",
           rep.n_linears, outl, rep.lowrank_outliers, rep.lm_head_outliers);
    CHECK(rep.n_linears == 22 && outl > 0 && rep.lowrank_outliers > 0 && rep.lm_head_outliers > 0,
          "every linear quantised, outliers at block inputs, the low-rank intermediate and the lm head");
    const slm_linear *up = &m->blocks[2].lin[SLM_PROJ_UP];
    CHECK(up->kind == SLM_LINEAR_INT8 && up->rank == 8 && m->blocks[1].lin[SLM_PROJ_DOWN].n_in == 40 &&
              m->lm_head_q.kind == SLM_LINEAR_INT8,
          "low-rank, narrowed and lm head kinds");
    /* bytes: int8 parts + fp32 (embedding, norms, biases) */
    const slm_config *c = &m->cfg;
    int64_t want = slm_linear_int8_bytes(&m->lm_head_q) + 4 * ((int64_t)2 * c->n_vocab * c->d_model + c->d_model);
    for (int l = 0; l < c->n_layers; l++) {
        for (int p = 0; p < SLM_PROJ_COUNT; p++) want += slm_linear_int8_bytes(&m->blocks[l].lin[p]);
        want += 4 * (2 * c->d_model + 64 + 2 * 32);
    }
    CHECK(slm_model_get_stats(m, 1).weight_bytes == want, "weight bytes %lld, parts %lld",
          (long long)slm_model_get_stats(m, 1).weight_bytes, (long long)want);

    size_t n = (size_t)(N_TOK + 1) * c->n_vocab;
    float *l0 = malloc(sizeof(float) * n), *l1 = malloc(sizeof(float) * n), *l2 = malloc(sizeof(float) * n);
    CHECK(logits_of(m, l0), "int8 forward: %s", slm_last_error());
    slm_save_params sp = slm_save_default_params();
    sp.dtype = SLM_DTYPE_I8;
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = false; /* a random model has none */
    slm_model *r = NULL;
    if (CHECK(slm_model_save(m, tmp_path("int8_rt.gguf"), &sp) == SLM_OK, "save int8: %s", slm_last_error()) &&
        CHECK(slm_model_load(tmp_path("int8_rt.gguf"), &lp, &r) == SLM_OK, "load int8: %s", slm_last_error())) {
        CHECK(r->blocks[2].lin[SLM_PROJ_UP].kind == SLM_LINEAR_INT8 && r->blocks[2].lin[SLM_PROJ_UP].rank == 8 &&
                  r->blocks[0].lin[SLM_PROJ_Q].kind == SLM_LINEAR_INT8 && r->lm_head_q.kind == SLM_LINEAR_INT8 &&
                  r->blocks[1].d_ff == 40 && !r->cfg.tied_embeddings,
              "int8 plan survives the file");
        CHECK(logits_of(r, l1), "forward of the loaded model: %s", slm_last_error());
        CHECK_CLOSE("int8 GGUF round trip logits", l0, l1, n, 0.0);
        slm_model_free(r);
    }
    /* F32 GGUF of an int8 model = the dequantised values */
    sp.dtype = SLM_DTYPE_F32;
    r = NULL;
    if (CHECK(slm_model_save(m, tmp_path("int8_dq.gguf"), &sp) == SLM_OK, "save f32: %s", slm_last_error()) &&
        CHECK(slm_model_load(tmp_path("int8_dq.gguf"), &lp, &r) == SLM_OK, "load f32: %s", slm_last_error())) {
        CHECK(r->blocks[0].lin[SLM_PROJ_Q].kind == SLM_LINEAR_DENSE && r->blocks[2].lin[SLM_PROJ_UP].kind == SLM_LINEAR_LOWRANK,
              "dequantised kinds");
        CHECK(logits_of(r, l1), "forward: %s", slm_last_error());
        CHECK(slm_quant_dequantize(m) == SLM_OK, "dequantize: %s", slm_last_error());
        CHECK(logits_of(m, l2), "forward: %s", slm_last_error());
        CHECK_CLOSE("F32 GGUF of the int8 model vs slm_quant_dequantize", l1, l2, n, 0.0);
        /* weights-only error: int8 activations add to it, so the two differ, but not by much */
        double mx = 0, ml = 0;
        for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(l0[i] - l2[i])), ml = fmax(ml, fabs(l2[i]));
        printf("int8 compute vs its dequantised weights in fp32: max |d| %.3g (logits up to %.3g)\n", mx, ml);
        CHECK(mx < 0.1 * ml, "activation quantisation moves logits by less than 10%% of their range");
        slm_model_free(r);
    }
    slm_quant_report_free(&rep);
    slm_model_free(m);

    /* HALVES (HF order): written in llama.cpp's order, same function */
    m = quantised_model(SLM_ROPE_HALVES, &rep);
    if (m && CHECK(logits_of(m, l0), "forward: %s", slm_last_error())) {
        sp.dtype = SLM_DTYPE_I8;
        r = NULL;
        if (CHECK(slm_model_save(m, tmp_path("int8_halves.gguf"), &sp) == SLM_OK, "save: %s", slm_last_error()) &&
            CHECK(slm_model_load(tmp_path("int8_halves.gguf"), &lp, &r) == SLM_OK, "load: %s", slm_last_error())) {
            CHECK(r->cfg.rope_layout == SLM_ROPE_ADJACENT, "adjacent after the round trip");
            CHECK(logits_of(r, l1), "forward: %s", slm_last_error());
            CHECK_CLOSE("int8 HALVES model round trip logits", l0, l1, n, 1e-5);
            slm_model_free(r);
        }
    }
    slm_quant_report_free(&rep);
    slm_model_free(m);
    free(l0), free(l1), free(l2);
}


/* ---- damaged int8 files ---------------------------------------------------------------- */

/* Offset of the header string s (a key or tensor name: its bytes after
 * their u64 length) in g's file, 0 when absent. */
static size_t header_find(const slm_gguf *g, const char *s) {
    size_t ln = strlen(s);
    for (size_t i = 8; i + ln + 8 < g->data_offset; i++)
        if (!memcmp(g->file.data + i, s, ln) && !memcmp(g->file.data + i - 8, &(uint64_t){ln}, 8)) return i;
    return 0;
}

/* Writes g's file to dst with bytes [at, at + n) replaced by patch. */
static bool write_patched(const slm_gguf *g, const char *dst, size_t at, const void *patch, size_t n) {
    FILE *f = fopen(dst, "wb");
    bool ok = f && fwrite(g->file.data, 1, at, f) == at && fwrite(patch, 1, n, f) == n &&
              fwrite(g->file.data + at + n, 1, g->file.size - at - n, f) == g->file.size - at - n;
    if (f) fclose(f);
    return ok;
}

/* Copies src to dst with bytes [off, off + n) of tensor `name`'s data
 * replaced by patch (off relative to the tensor), or its type id changed
 * (new_type >= 0); returns false when the tensor is missing. */
static bool patch_file(const char *src, const char *dst, const char *name, size_t off, const void *patch, size_t n,
                       int new_type) {
    slm_gguf *g;
    if (slm_gguf_open(src, &g)) return false;
    const slm_gguf_tensor *t = slm_gguf_find_tensor(g, name);
    size_t at = t ? (size_t)((const uint8_t *)t->data - g->file.data) + off : 0;
    /* the tensor info: name bytes, then n_dims, dims, type (u32) */
    const uint32_t type = (uint32_t)new_type;
    if (t && new_type >= 0 && (at = header_find(g, name))) at += strlen(name) + 4 + 8 * (size_t)t->n_dims;
    bool ok = t && at && (new_type >= 0 ? write_patched(g, dst, at, &type, 4) : write_patched(g, dst, at, patch, n));
    slm_gguf_close(g);
    return ok;
}

/* Copies src to dst with bytes [off, off + n) after the header string s
 * (a key or tensor name; off 0: the name itself) replaced by patch. */
static bool patch_header(const char *src, const char *dst, const char *s, size_t off, const void *patch, size_t n) {
    slm_gguf *g;
    if (slm_gguf_open(src, &g)) return false;
    size_t at = header_find(g, s);
    bool ok = at && write_patched(g, dst, at + off, patch, n);
    slm_gguf_close(g);
    return ok;
}

static void expect_load_error(const char *path, const char *what, const char *fragment) {
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = false;
    slm_model *m = NULL;
    slm_status st = slm_model_load(path, &lp, &m);
    const char *msg = slm_last_error();
    CHECK(st != SLM_OK && strstr(msg, path) && strstr(msg, fragment), "%s: want an error with '%s', got %d '%s'", what,
          fragment, (int)st, msg);
    if (st != SLM_OK) printf("damaged (%s): error: %s\n", what, msg);
    slm_model_free(m);
}

static void check_damaged(void) {
    const char *src = tmp_path("int8_rt.gguf"), *bad = tmp_path("int8_bad.gguf");
    slm_gguf *g;
    if (!CHECK(slm_gguf_open(src, &g) == SLM_OK, "open %s", src)) return;
    /* a linear with outlier columns, for the outlier cases */
    char pre[96] = "";
    for (int64_t i = 0; i < g->n_tensors && !pre[0]; i++) {
        const char *n = g->tensors[i].name, *e = strstr(n, ".i8.outlier_cols");
        if (e && g->tensors[i].ne[0] >= 2) snprintf(pre, sizeof pre, "%.*s", (int)(e - n), n);
    }
    int32_t c0 = 0;
    char nm[160];
    snprintf(nm, sizeof nm, "%s.i8.outlier_cols", pre);
    const slm_gguf_tensor *ti = pre[0] ? slm_gguf_find_tensor(g, nm) : NULL;
    if (ti) memcpy(&c0, ti->data, 4);
    slm_gguf_close(g);
    if (!CHECK(ti != NULL, "an int8 matrix with 2 or more outlier columns in the file")) return;

    const float neg = -1.0f, nan = NAN;
    const int8_t one = 1;
    const int32_t swapped[2] = {5, 3};
    if (patch_file(src, bad, "blk.0.attn_q.i8.scale", 4, &neg, 4, -1)) expect_load_error(bad, "negative scale", "scale of row 1");
    if (patch_file(src, bad, "blk.0.attn_q.i8.scale", 0, &nan, 4, -1)) expect_load_error(bad, "NaN scale", "scale of row 0");
    snprintf(nm, sizeof nm, "%s.i8.weight", pre);
    if (CHECK(patch_file(src, bad, nm, (size_t)c0, &one, 1, -1), "patch %s", nm))
        expect_load_error(bad, "int8 value at an outlier column", "is not 0 in the int8 part");
    snprintf(nm, sizeof nm, "%s.i8.outlier_cols", pre);
    if (CHECK(patch_file(src, bad, nm, 0, swapped, 8, -1), "patch %s", nm))
        expect_load_error(bad, "outlier columns out of order", "outlier columns not ascending");
    if (CHECK(patch_file(src, bad, "blk.1.ffn_down.i8.scale", 0, NULL, 0, SLM_DTYPE_I32), "patch type"))
        expect_load_error(bad, "scale stored as I32", "missing F32 tensor 'blk.1.ffn_down.i8.scale'");
    remove(bad);
}

/* ---- int8 token embedding (--embd int8) ---------------------------------------------------- */

/* A random model (tied or untied) quantised with the int8 embedding: the
 * head with calibration outliers, activation groups of 32; *embd gets a
 * copy of the float embedding [V][D] it was made from (caller frees). */
static slm_model *embd8_model(bool tied, float **embd) {
    slm_config cfg = small_config();
    cfg.tied_embeddings = tied;
    slm_model *m;
    *embd = NULL;
    if (!CHECK(slm_model_new_random(&cfg, tied ? 21 : 22, &m) == SLM_OK, "random model")) return NULL;
    const size_t n = (size_t)cfg.n_vocab * cfg.d_model;
    *embd = malloc(sizeof(float) * n);
    memcpy(*embd, m->tok_embd, sizeof(float) * n);
    slm_calib cal = {.n_seqs = 3, .seq_len = 24};
    cal.tokens = malloc(sizeof(int32_t) * 3 * 24);
    for (int i = 0; i < 72; i++) cal.tokens[i] = (i * 13 + 1) % cfg.n_vocab;
    slm_quant_params p = slm_quant_default_params();
    p.outlier_threshold = 1.5f, p.max_outlier_frac = 0.25f, p.act_group = 32, p.quiet = true;
    p.embd = SLM_QUANT_EMBD_INT8;
    slm_quant_report rep;
    slm_status st = slm_quant_int8(m, &p, &cal, &rep);
    free(cal.tokens);
    slm_quant_report_free(&rep);
    if (!CHECK(st == SLM_OK, "quantise with the int8 embedding: %s", slm_last_error())) {
        slm_model_free(m);
        return NULL;
    }
    return m;
}

/* Every row of m's embedding lookup: scale[r] * q (outlier columns: their
 * fp32 weight) bit for bit, and within scale[r] / 2 of the float embedding
 * (+ the product's own rounding, |x| 2^-24). Returns max |x - e| / s_r. */
static double check_lookup(const slm_model *m, const float *embd, const char *what) {
    const slm_i8_matrix *e8 = m->tok_embd_i8;
    const int V = m->cfg.n_vocab, D = m->cfg.d_model;
    float *x = malloc(sizeof(float) * D), *want = malloc(sizeof(float) * D);
    double worst = 0;
    int exact = 0, bounded = 0;
    for (int r = 0; r < V; r++) {
        slm_model_embed_row(m, r, x);
        const float s = e8->scale[r];
        for (int c = 0; c < D; c++) want[c] = s * (float)e8->q[(int64_t)r * e8->ld + c];
        for (int j = 0; j < e8->n_outl; j++) want[e8->outl_idx[j]] = e8->outl_w[(int64_t)r * e8->n_outl + j];
        exact += memcmp(x, want, sizeof(float) * D) == 0;
        bool ok = true;
        for (int c = 0; c < D; c++) {
            double d = fabs((double)x[c] - embd[(int64_t)r * D + c]);
            ok = ok && d <= 0.5 * s + fabs(x[c]) * 0x1p-24;
            if (s > 0) worst = fmax(worst, d / s);
        }
        bounded += ok;
    }
    printf("%s: lookup = s_r q in %d of %d rows; |lookup - float| <= s_r/2 in %d rows (max %.4f s_r)\n", what, exact, V,
           bounded, worst);
    CHECK(exact == V && bounded == V, "%s: every row is s_r q and within s_r / 2", what);
    free(x), free(want);
    return worst;
}

static void check_embd_int8(bool tied) {
    const char *what = tied ? "int8 embedding, tied" : "int8 embedding, untied";
    float *embd;
    slm_model *m = embd8_model(tied, &embd);
    if (!m) return;
    const slm_config *c = &m->cfg;
    const slm_i8_matrix *e8 = m->tok_embd_i8;
    CHECK(e8 && !m->tok_embd && !m->lm_head && m->lm_head_q.kind == SLM_LINEAR_INT8 && c->tied_embeddings == tied &&
              (m->lm_head_q.i8[0] == e8) == tied,
          "%s: no float embedding or head; %s", what, tied ? "one int8 matrix" : "the embedding its own int8 matrix");
    if (!e8) {
        slm_model_free(m), free(embd);
        return;
    }
    CHECK(!tied || e8->n_outl > 0, "tied: the head's outlier columns are the embedding's (%d)", e8->n_outl);
    check_lookup(m, embd, what);
    /* bytes: the int8 embedding once (and the untied head's int8) + linears + norms */
    int64_t want = slm_i8_matrix_bytes(e8) + (tied ? 0 : slm_linear_int8_bytes(&m->lm_head_q)) + 4 * c->d_model;
    for (int l = 0; l < c->n_layers; l++) {
        for (int p = 0; p < SLM_PROJ_COUNT; p++) want += slm_linear_int8_bytes(&m->blocks[l].lin[p]);
        want += 4 * 2 * c->d_model;
    }
    CHECK(slm_model_get_stats(m, 1).weight_bytes == want, "%s: weight bytes %lld, parts %lld", what,
          (long long)slm_model_get_stats(m, 1).weight_bytes, (long long)want);

    const size_t n = (size_t)(N_TOK + 1) * c->n_vocab;
    float *l0 = malloc(sizeof(float) * n), *l1 = malloc(sizeof(float) * n), *l2 = malloc(sizeof(float) * n);
    CHECK(logits_of(m, l0), "%s: forward: %s", what, slm_last_error());
    slm_save_params sp = slm_save_default_params();
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = false;
    const char *f8 = tmp_path(tied ? "embd8_tied.gguf" : "embd8_untied.gguf"), *f32 = tmp_path("embd8_f32.gguf");
    slm_model *r = NULL;
    sp.dtype = SLM_DTYPE_I8;
    if (CHECK(slm_model_save(m, f8, &sp) == SLM_OK, "save: %s", slm_last_error()) &&
        CHECK(slm_model_load(f8, &lp, &r) == SLM_OK, "load: %s", slm_last_error())) {
        slm_gguf *g = NULL;
        bool key = false;
        int64_t ver = 0;
        CHECK(slm_gguf_open(f8, &g) == SLM_OK && slm_gguf_get_bool(g, "slimlm.int8.embd", &key) && key &&
                  slm_gguf_get_i64(g, "slimlm.format_version", &ver) && ver == 3 &&
                  !slm_gguf_find_tensor(g, "token_embd.weight") && !slm_gguf_find_tensor(g, "output.weight") &&
                  !slm_gguf_find_tensor(g, "output.i8.weight") == tied,
              "%s: file has slimlm.int8.embd, version 3, token_embd.i8 only%s", what,
              tied ? "" : " and the head's output.i8");
        slm_gguf_close(g);
        CHECK(r->tok_embd_i8 && !r->tok_embd && r->cfg.tied_embeddings == tied &&
                  (r->lm_head_q.i8[0] == r->tok_embd_i8) == tied && slm_model_int8_act_group(r) == 32,
              "%s: loaded as an int8 embedding, tiedness and group kept", what);
        CHECK(slm_model_get_stats(r, 1).weight_bytes == want, "%s: loaded bytes", what);
        if (r->tok_embd_i8) check_lookup(r, embd, "loaded");
        CHECK(logits_of(r, l1), "forward: %s", slm_last_error());
        CHECK_CLOSE(tied ? "int8 embedding (tied) GGUF round trip logits" : "int8 embedding (untied) round trip logits",
                    l0, l1, n, 0.0);
        slm_model_free(r);
    }
    /* F32 GGUF = the dequantised values, still tied when tied */
    sp.dtype = SLM_DTYPE_F32;
    r = NULL;
    if (CHECK(slm_model_save(m, f32, &sp) == SLM_OK, "save f32: %s", slm_last_error()) &&
        CHECK(slm_model_load(f32, &lp, &r) == SLM_OK, "load f32: %s", slm_last_error())) {
        CHECK(!r->tok_embd_i8 && r->tok_embd && r->cfg.tied_embeddings == tied, "%s: F32 file float, tied as made",
              what);
        CHECK(logits_of(r, l1), "forward: %s", slm_last_error());
        CHECK(slm_quant_dequantize(m) == SLM_OK && !m->tok_embd_i8 && m->cfg.tied_embeddings == tied,
              "dequantize: %s", slm_last_error());
        CHECK(logits_of(m, l2), "forward: %s", slm_last_error());
        CHECK_CLOSE("F32 GGUF of the int8-embedding model vs slm_quant_dequantize", l1, l2, n, 0.0);
        slm_model_free(r);
    }
    remove(f32);
    slm_model_free(m);
    free(l0), free(l1), free(l2), free(embd);
}

/* Damaged files with an int8 embedding: one message naming file and tensor or key. */
static void check_embd_damaged(void) {
    const char *src = tmp_path("embd8_tied.gguf"), *bad = tmp_path("embd8_bad.gguf");
    const float neg = -1.0f;
    const uint64_t v_short = (uint64_t)small_config().n_vocab - 1;
    const size_t dim0 = strlen("token_embd.i8.scale") + 4; /* after the name: n_dims (u32), then ne[0] */
    if (CHECK(patch_header(src, bad, "token_embd.i8.scale", 0, "token_embd.i8.scalX", 19), "rename the scales"))
        expect_load_error(bad, "int8 embedding without scales", "missing F32 tensor 'token_embd.i8.scale'");
    if (CHECK(patch_file(src, bad, "token_embd.i8.scale", 0, NULL, 0, SLM_DTYPE_I32), "retype the scales"))
        expect_load_error(bad, "embedding scales stored as I32", "missing F32 tensor 'token_embd.i8.scale'");
    if (CHECK(patch_header(src, bad, "token_embd.i8.scale", dim0, &v_short, 8), "shorten the scales"))
        expect_load_error(bad, "embedding scales of the wrong shape", "tensor 'token_embd.i8.scale' has shape [96");
    if (CHECK(patch_file(src, bad, "token_embd.i8.scale", 4, &neg, 4, -1), "negate a scale"))
        expect_load_error(bad, "negative embedding scale", "'token_embd.i8.weight': scale of row 1");
    /* Q4_0: fewer bytes than I8, so the tensor still fits where it was */
    if (CHECK(patch_file(src, bad, "token_embd.i8.weight", 0, NULL, 0, SLM_DTYPE_Q4_0), "retype the rows"))
        expect_load_error(bad, "embedding rows not I8", "tensor 'token_embd.i8.weight' is not an I8 matrix");
    if (CHECK(patch_header(src, bad, "token_embd.i8.weight", 0, "token_embd.i8.weighX", 20), "rename the rows"))
        expect_load_error(bad, "key set, int8 rows missing", "missing tensor 'token_embd.i8.weight'");
    if (CHECK(patch_header(src, bad, "slimlm.int8.embd", 0, "slimlm.int8.embX", 16), "rename the key"))
        expect_load_error(bad, "int8 rows without the key", "missing tensor 'token_embd.weight'");
    remove(bad);
}

int main(void) {
    slm_set_threads(2);
    slm_config cfg = small_config();
    slm_model *m;
    if (!CHECK(slm_model_create(&cfg, &m) == SLM_OK, "model")) return slm_test_finish();
    check_matrix_bounds(m);
    check_apply(m);
    check_lowrank(m);
    slm_model_free(m);
    check_model_roundtrip();
    check_damaged();
    check_embd_int8(true);
    check_embd_damaged();
    check_embd_int8(false);
    return slm_test_finish();
}
