/* Whole-model gradient check: the fp32 training backward against central
 * finite differences of a double-precision reference loss written here from
 * the model's definition (HF LlamaForCausalLM: RMSNorm, RoPE, causal GQA
 * attention, SwiGLU; plans: dropped blocks, low-rank A.B, narrower MLP).
 *
 * Tiny random models: D 32, H 4, Hkv 2, Dh 8, F 48, L 3, V 64; B 2 x T 8.
 *   A: RoPE halves, q/k/v biases, untied head; block 1 dropped, block 0 with
 *      a low-rank q (rank 6) and down (rank 5), block 2 at MLP width 40;
 *      CE with one target ignored.
 *   B: RoPE adjacent pairs, tied embeddings, block 1 with a low-rank gate;
 *      0.5 CE + 2 KD (tau 2) against a second random model (teacher), plus
 *      linear losses on hidden states 0, 2, 3 and on the last block's q, k, v
 *      (the injection points relation / homotopic KD will use).
 *   C: MQA (Hkv 1), linear RoPE scaling, recompute on.
 *   D: slm_train_microstep's normalised CE + vanilla + relation (MiniLM) +
 *      homotopic KD against a teacher (block map 0->0, 2->1), recompute on,
 *      q/k/v biases, a low-rank k and a narrow MLP in the student.
 * Per tensor: its 6 largest analytic entries and 10 random ones; the step is
 * 1e-4 (at least 4 ulp) in double, so FD truncation is ~1e-9 and the error
 *   err = |analytic - fd| / (|fd| + 1e-3 max|analytic of the tensor|)
 * measures the fp32 backward (tolerance 1e-3; measured ~1e-5, see docs/train.md).
 * Also: recompute gives bit-identical gradients, frozen tensors get none
 * while the rest stay bit-identical, two micro-batches accumulate to the
 * one-batch gradient, plan changes after the view and QBLOCK are refused. */
#include "kernels/cpu/kernels.h"
#include "train/train.h"
#include "ref_ops.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, T = 8, N = B * T };
static const double k_tol = 1e-3;

/* ---- double-precision reference loss ------------------------------------------------------ */

typedef struct ref_loss {
    const int32_t *tok, *tgt;   /* [N] */
    float cw, kw, tau;
    const double *teacher;      /* [N][V] teacher logits or NULL */
    const float *c_hidden[8];   /* [N][D] weights of a linear loss on hidden(i), or NULL */
    const float *c_qkv[3];      /* on the last kept block's q, k (after RoPE), v */
    /* distillation against a teacher's activations (constants): weights of the relation and homotopic terms */
    double c_rel, c_hid;
    const double *t_q, *t_k, *t_v; /* teacher's last block q, k (after RoPE), v [N][Q], [N][KV] (same heads) */
    const double *t_hid[8];     /* [N][D] teacher state compared with hidden(i) (NULL: none) */
    const double *t_att[8];     /* [N][D] teacher attention output compared with block l's (NULL: none) */
} ref_loss;

/* The raw distillation terms of the last ref_loss_eval call. */
static double g_ref_rel, g_ref_hid;

/* sum over rows i and keys j <= i of KL(softmax(t) || softmax(s)) for one
 * head of one sequence; xs/ys the student's query/key vectors (row stride
 * lds), xt/yt the teacher's (row strides ldxt, ldyt), Dh wide. */
static double ref_rel_head(const double *xs, const double *ys, int64_t lds, const double *xt, const double *yt,
                           int64_t ldxt, int64_t ldyt, int Dh) {
    double kl = 0;
    for (int i = 0; i < T; i++) {
        double ss[T], st[T], ms = -INFINITY, mt = -INFINITY, zs = 0, zt = 0;
        for (int j = 0; j <= i; j++) {
            ss[j] = st[j] = 0;
            for (int d = 0; d < Dh; d++) ss[j] += xs[i * lds + d] * ys[j * lds + d], st[j] += xt[i * ldxt + d] * yt[j * ldyt + d];
            ss[j] /= sqrt((double)Dh), st[j] /= sqrt((double)Dh);
            ms = fmax(ms, ss[j]), mt = fmax(mt, st[j]);
        }
        for (int j = 0; j <= i; j++) zs += exp(ss[j] - ms), zt += exp(st[j] - mt);
        for (int j = 0; j <= i; j++) {
            double lpt = st[j] - mt - log(zt), lps = ss[j] - ms - log(zs);
            kl += exp(lpt) * (lpt - lps);
        }
    }
    return kl;
}

static double dotc(const float *c, const double *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)c[i] * x[i];
    return s;
}

static double ref_loss_eval(const slm_model *m, const ref_loss *rl) {
    const slm_config *c = &m->cfg;
    const int D = c->d_model, H = c->n_heads, Hkv = c->n_kv_heads, Dh = c->head_dim, V = c->n_vocab, L = c->n_layers;
    const int Q = H * Dh, KV = Hkv * Dh;
    double x[T][64], xn[64], q[T][64], k[T][64], v[T][64], att[64], y[64], g[64], u[64], lg[128];
    double inv[32];
    slm_rope_freq_params rp = {Dh, c->rope_theta, (int)c->rope_scaling, c->rope_factor, c->rope_low_freq_factor,
                               c->rope_high_freq_factor, c->rope_orig_ctx};
    slm_rope_inv_freq(&rp, inv);
    int last = -1;
    for (int l = 0; l < L; l++)
        if (m->blocks[l].kept) last = l;
    double sum = 0, extra = 0, rel = 0, hid = 0;
    int64_t n_pred = 0;
    static double qa[N][64], ka[N][64], va[N][64]; /* the student's last-block q, k, v of every row */
    for (int b = 0; b < B; b++) {
        if (rl->t_hid[0])
            for (int t = 0; t < T; t++)
                for (int i = 0; i < D; i++) {
                    double d = m->tok_embd[(int64_t)rl->tok[b * T + t] * D + i] - rl->t_hid[0][(b * T + t) * D + i];
                    hid += d * d / (N * D);
                }
        for (int t = 0; t < T; t++)
            for (int i = 0; i < D; i++) x[t][i] = m->tok_embd[(int64_t)rl->tok[b * T + t] * D + i];
        for (int l = 0; l <= L; l++) {
            if (l > 0 && m->blocks[l - 1].kept) {
                const slm_block *bl = &m->blocks[l - 1];
                for (int t = 0; t < T; t++) {
                    slm_ref_rmsnorm(x[t], bl->attn_norm, D, c->norm_eps, xn);
                    slm_ref_linear(&bl->lin[SLM_PROJ_Q], xn, q[t]);
                    slm_ref_linear(&bl->lin[SLM_PROJ_K], xn, k[t]);
                    slm_ref_linear(&bl->lin[SLM_PROJ_V], xn, v[t]);
                    slm_ref_rope(q[t], H, Dh, inv, t, c->rope_layout == SLM_ROPE_ADJACENT);
                    slm_ref_rope(k[t], Hkv, Dh, inv, t, c->rope_layout == SLM_ROPE_ADJACENT);
                    if (l - 1 == last) {
                        memcpy(qa[b * T + t], q[t], sizeof(double) * Q);
                        memcpy(ka[b * T + t], k[t], sizeof(double) * KV);
                        memcpy(va[b * T + t], v[t], sizeof(double) * KV);
                        if (rl->c_qkv[0]) extra += dotc(rl->c_qkv[0] + (int64_t)(b * T + t) * Q, q[t], Q);
                        if (rl->c_qkv[1]) extra += dotc(rl->c_qkv[1] + (int64_t)(b * T + t) * KV, k[t], KV);
                        if (rl->c_qkv[2]) extra += dotc(rl->c_qkv[2] + (int64_t)(b * T + t) * KV, v[t], KV);
                    }
                }
                for (int t = 0; t < T; t++) {
                    slm_ref_attention_row(q[t], &k[0][0], &v[0][0], 64, t, H, Hkv, Dh, att);
                    slm_ref_linear(&bl->lin[SLM_PROJ_O], att, y);
                    for (int i = 0; i < D && rl->t_att[l - 1]; i++) {
                        double d = y[i] - rl->t_att[l - 1][(b * T + t) * D + i];
                        hid += d * d / (N * D);
                    }
                    for (int i = 0; i < D; i++) x[t][i] += y[i];
                    slm_ref_rmsnorm(x[t], bl->ffn_norm, D, c->norm_eps, xn);
                    slm_ref_linear(&bl->lin[SLM_PROJ_GATE], xn, g);
                    slm_ref_linear(&bl->lin[SLM_PROJ_UP], xn, u);
                    for (int i = 0; i < bl->d_ff; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
                    slm_ref_linear(&bl->lin[SLM_PROJ_DOWN], g, y);
                    for (int i = 0; i < D; i++) x[t][i] += y[i];
                }
            }
            if (rl->c_hidden[l])
                for (int t = 0; t < T; t++) extra += dotc(rl->c_hidden[l] + (int64_t)(b * T + t) * D, x[t], D);
            if (l > 0 && rl->t_hid[l])
                for (int t = 0; t < T; t++)
                    for (int i = 0; i < D; i++) {
                        double d = x[t][i] - rl->t_hid[l][(b * T + t) * D + i];
                        hid += d * d / (N * D);
                    }
        }
        for (int t = 0; t < T; t++) {
            int y_t = rl->tgt[b * T + t];
            if (y_t < 0) continue;
            n_pred++;
            slm_ref_rmsnorm(x[t], m->out_norm, D, c->norm_eps, xn);
            double mx = -INFINITY, s = 0;
            for (int o = 0; o < V; o++) {
                lg[o] = 0;
                for (int i = 0; i < D; i++) lg[o] += (double)m->lm_head[(int64_t)o * D + i] * xn[i];
                mx = fmax(mx, lg[o]);
            }
            for (int o = 0; o < V; o++) s += exp(lg[o] - mx);
            sum += rl->cw * (mx + log(s) - lg[y_t]);
            if (rl->teacher) {
                const double *zt = rl->teacher + (int64_t)(b * T + t) * V;
                double ms = -INFINITY, mt = -INFINITY, ss = 0, st = 0, kl = 0;
                for (int o = 0; o < V; o++) ms = fmax(ms, lg[o] / rl->tau), mt = fmax(mt, zt[o] / rl->tau);
                for (int o = 0; o < V; o++) ss += exp(lg[o] / rl->tau - ms), st += exp(zt[o] / rl->tau - mt);
                double ls = ms + log(ss), lt = mt + log(st);
                for (int o = 0; o < V; o++) {
                    double lpt = zt[o] / rl->tau - lt;
                    kl += exp(lpt) * (lpt - (lg[o] / rl->tau - ls));
                }
                sum += rl->kw * rl->tau * rl->tau * kl;
            }
        }
    }
    if (rl->t_q) { /* relation KD: q-k per query head, v-v per key/value head, means over (b, head, row) */
        double qk = 0, vv = 0;
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < H; h++) {
                int gk = h / (H / Hkv);
                qk += ref_rel_head(qa[b * T] + h * Dh, ka[b * T] + gk * Dh, 64, rl->t_q + (int64_t)b * T * Q + h * Dh,
                                   rl->t_k + (int64_t)b * T * KV + gk * Dh, Q, KV, Dh);
            }
            for (int gv = 0; gv < Hkv; gv++)
                vv += ref_rel_head(va[b * T] + gv * Dh, va[b * T] + gv * Dh, 64, rl->t_v + (int64_t)b * T * KV + gv * Dh,
                                   rl->t_v + (int64_t)b * T * KV + gv * Dh, KV, KV, Dh);
        }
        rel = qk / (B * T * H) + vv / (B * T * Hkv);
    }
    g_ref_rel = rel;
    g_ref_hid = hid;
    return sum / (double)n_pred + extra + rl->c_rel * rel + rl->c_hid * hid;
}

/* ---- plans -------------------------------------------------------------------------------- */

static uint64_t g_rng = 0x1234567ull;
static float frand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / 4503599627370496.0 - 1.0);
}

/* Random factors of rank r in place of block b's projection p. */
static void make_lowrank(slm_model *m, int b, slm_proj p, int r) {
    slm_linear *l = &m->blocks[b].lin[p];
    float *a = slm_model_alloc_f32(m, (size_t)l->n_out * r, "A"), *f = slm_model_alloc_f32(m, (size_t)r * l->n_in, "B");
    for (int i = 0; i < l->n_out * r; i++) a[i] = frand() * sqrtf(3.0f / r);
    for (int i = 0; i < r * l->n_in; i++) f[i] = frand() * sqrtf(3.0f / l->n_in);
    l->kind = SLM_LINEAR_LOWRANK, l->rank = r, l->a = a, l->b = f, l->ld_b = l->n_in, l->w = NULL;
}

static slm_config base_cfg(void) {
    return (slm_config){.arch = SLM_ARCH_LLAMA, .n_vocab = 64, .d_model = 32, .n_layers = 3, .n_heads = 4,
                        .n_kv_heads = 2, .head_dim = 8, .d_ff = 48, .max_ctx = 64, .norm_eps = 1e-5f,
                        .rope_theta = 10000.0f, .bos_id = -1, .eos_id = -1};
}

static float *rnd_buf(int64_t n, float scale) {
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}

/* ---- the check ------------------------------------------------------------------------------ */

typedef struct kind_err {
    const char *kind;
    double err;
    int n;
} kind_err;

static const char *kind_of(const char *name) {
    if (strstr(name, "embed_tokens")) return "embedding";
    if (strstr(name, "lm_head")) return "lm head";
    if (strstr(name, "norm")) return "norm";
    if (strstr(name, ".bias")) return "bias";
    if (strstr(name, "lr_")) return "low-rank factor";
    if (strstr(name, "self_attn")) return "attention weight";
    return "mlp weight";
}

/* Compares tv's gradients with FD of the reference on sampled entries. */
static void gradcheck(const char *label, slm_trainable *tv, const ref_loss *rl) {
    kind_err ke[8] = {{"embedding", 0, 0}, {"lm head", 0, 0}, {"norm", 0, 0}, {"bias", 0, 0},
                      {"low-rank factor", 0, 0}, {"attention weight", 0, 0}, {"mlp weight", 0, 0}, {NULL, 0, 0}};
    double worst = 0;
    int n_checked = 0;
    for (int ti = 0; ti < tv->n_tensors; ti++) {
        slm_train_tensor *t = &tv->t[ti];
        double gmax = 0;
        int64_t top[6] = {-1, -1, -1, -1, -1, -1};
        for (int64_t i = 0; i < t->n; i++) gmax = fmax(gmax, fabs(t->g[i]));
        for (int k = 0; k < 6; k++) { /* the 6 largest |g| */
            double best = -1;
            for (int64_t i = 0; i < t->n; i++) {
                bool used = false;
                for (int j = 0; j < k; j++) used = used || top[j] == i;
                if (!used && fabs(t->g[i]) > best) best = fabs(t->g[i]), top[k] = i;
            }
        }
        double err = 0;
        for (int s = 0; s < 16; s++) {
            int64_t i = s < 6 ? top[s] : (int64_t)((frand() * 0.5f + 0.5f) * (float)t->n) % t->n;
            if (i < 0) continue;
            float w0 = t->w[i];
            double h = fmax(1e-4, 4.0 * fabs(w0) * 1.2e-7);
            float wp = (float)(w0 + h), wm = (float)(w0 - h);
            t->w[i] = wp;
            double lp = ref_loss_eval(tv->m, rl);
            t->w[i] = wm;
            double lm = ref_loss_eval(tv->m, rl);
            t->w[i] = w0;
            double fd = (lp - lm) / ((double)wp - (double)wm);
            double e = fabs(t->g[i] - fd) / (fabs(fd) + 1e-3 * gmax + 1e-30);
            if (e > err) err = e;
            n_checked++;
        }
        const char *k = kind_of(t->name);
        for (int j = 0; j < 8 && ke[j].kind; j++)
            if (strcmp(ke[j].kind, k) == 0) ke[j].err = fmax(ke[j].err, err), ke[j].n++;
        worst = fmax(worst, err);
        CHECK(err <= k_tol && gmax > 0, "%s: %s: gradient error %.3g (max |g| %g)", label, t->name, err, gmax);
    }
    printf("%s: %d sampled entries of %d tensors, max err %.2e (tol %.0e); per kind:\n", label, n_checked,
           tv->n_tensors, worst, k_tol);
    for (int j = 0; j < 8 && ke[j].kind; j++)
        if (ke[j].n) printf("    %-17s %2d tensors  err %.2e\n", ke[j].kind, ke[j].n, ke[j].err);
}

/* forward + backward of tv's model on rl's tokens, gradients left in tv. */
static bool run_backward(slm_trainable *tv, bool recompute, const ref_loss *rl, slm_train_ctx *teacher,
                         slm_loss_result *res) {
    slm_train_ctx_params cp = {.n_seq = B, .n_tok = T, .recompute = recompute};
    slm_train_ctx *tc;
    if (!CHECK(slm_train_ctx_new(tv->m, tv, &cp, &tc) == SLM_OK, "ctx: %s", slm_last_error())) return false;
    bool ok = CHECK(slm_train_forward(tc, rl->tok) == SLM_OK, "forward: %s", slm_last_error());
    const slm_config *c = &tv->m->cfg;
    int64_t Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim;
    /* the activations a relation / homotopic loss reads */
    const float *aq, *ak, *av;
    int last = -1, want_last = -1;
    for (int l = 0; l < c->n_layers; l++)
        if (tv->m->blocks[l].kept) want_last = l;
    CHECK(ok && slm_train_last_qkv(tc, &aq, &ak, &av, &last) == SLM_OK && aq && ak && av && last == want_last,
          "last q/k/v: %s", slm_last_error());
    const float *h0 = slm_train_hidden(tc, 0);
    CHECK(h0 && memcmp(h0 + c->d_model, tv->m->tok_embd + (int64_t)rl->tok[1] * c->d_model,
                       sizeof(float) * c->d_model) == 0 && slm_train_hidden(tc, c->n_layers + 1) == NULL,
          "hidden(0) is the embedding rows");
    for (int i = 0; ok && i <= c->n_layers; i++)
        if (rl->c_hidden[i]) memcpy(slm_train_hidden_grad(tc, i), rl->c_hidden[i], sizeof(float) * N * c->d_model);
    for (int k = 0; ok && k < 3; k++)
        if (rl->c_qkv[k]) memcpy(slm_train_qkv_grad(tc, k), rl->c_qkv[k], sizeof(float) * N * (k ? KV : Q));
    slm_loss_params lp = {.ce_weight = rl->cw, .kd_weight = rl->kw, .kd_temperature = rl->tau};
    slm_trainable_zero_grad(tv);
    ok = ok && CHECK(slm_train_backward(tc, rl->tgt, teacher, &lp, res) == SLM_OK, "backward: %s", slm_last_error());
    slm_train_ctx_free(tc);
    return ok;
}

static void tokens(int32_t *tok, int32_t *tgt, int V, int seed) {
    for (int n = 0; n < N; n++) tok[n] = (n * 29 + seed * 7 + 3) % V;
    slm_targets_next_token(tok, B, T, tgt);
}

static void case_a(void) {
    slm_config cfg = base_cfg();
    cfg.attn_bias = true;
    cfg.rope_layout = SLM_ROPE_HALVES;
    slm_model *m;
    if (!CHECK(slm_model_new_random(&cfg, 11, &m) == SLM_OK, "model: %s", slm_last_error())) return;
    m->blocks[1].kept = false;
    make_lowrank(m, 0, SLM_PROJ_Q, 6);
    make_lowrank(m, 0, SLM_PROJ_DOWN, 5);
    CHECK(slm_block_set_mlp_width(m, 2, 40) == SLM_OK, "narrow");
    slm_trainable *tv;
    if (!CHECK(slm_trainable_new(m, &tv) == SLM_OK, "view: %s", slm_last_error())) return;
    CHECK(slm_trainable_find(tv, "model.layers.1.input_layernorm.weight") < 0, "dropped block has no tensors");
    int dn = slm_trainable_find(tv, "model.layers.2.mlp.down_proj.weight");
    CHECK(dn >= 0 && tv->t[dn].cols == 40, "narrow down_proj keeps 40 columns");
    int32_t tok[N], tgt[N];
    tokens(tok, tgt, cfg.n_vocab, 1);
    tgt[3] = -1; /* an ignored target */
    ref_loss rl = {.tok = tok, .tgt = tgt, .cw = 1.0f, .tau = 1.0f};
    slm_loss_result res;
    if (!run_backward(tv, false, &rl, NULL, &res)) return;
    double ref = ref_loss_eval(m, &rl);
    printf("A: loss %.9f vs double reference %.9f (%lld predicted)\n", res.loss, ref, (long long)res.n_pred);
    CHECK(fabs(res.loss - ref) < 1e-5 * ref && res.n_pred == N - B - 1, "A: loss");
    gradcheck("A (halves, biases, untied, dropped/low-rank/narrow)", tv, &rl);

    /* recompute: bit-identical gradients */
    float *g0 = malloc(sizeof(float) * (size_t)tv->n_floats);
    memcpy(g0, tv->grad, sizeof(float) * (size_t)tv->n_floats);
    run_backward(tv, true, &rl, NULL, &res);
    CHECK(memcmp(g0, tv->grad, sizeof(float) * (size_t)tv->n_floats) == 0, "recompute gives identical gradients");
    printf("A: recompute: gradients %s\n", memcmp(g0, tv->grad, sizeof(float) * (size_t)tv->n_floats) ? "DIFFER" : "bit-identical");

    /* frozen embedding and block 0: no gradient there, the rest unchanged */
    /* 2 norms, q (A, B, bias), k and v (W, bias), o, gate, up, down (A, B) */
    CHECK(slm_trainable_set_frozen(tv, "model.layers.0.", true) == 14, "block 0 has 14 tensors");
    slm_trainable_set_frozen(tv, "model.embed_tokens.", true);
    run_backward(tv, false, &rl, NULL, &res);
    bool frozen_ok = true;
    for (int i = 0; i < tv->n_tensors; i++) {
        const slm_train_tensor *t = &tv->t[i];
        for (int64_t j = 0; j < t->n; j++)
            frozen_ok = frozen_ok && (t->frozen ? t->g[j] == 0.0f : t->g[j] == g0[t->offset + j]);
    }
    CHECK(frozen_ok, "frozen tensors get no gradient, the others identical gradients");
    slm_trainable_set_frozen(tv, "", false);

    /* two micro-batches of one sequence, denominators of the whole batch */
    slm_train_ctx_params cp1 = {.n_seq = 1, .n_tok = T};
    slm_train_ctx *t1;
    CHECK(slm_train_ctx_new(m, tv, &cp1, &t1) == SLM_OK, "ctx1");
    slm_loss_params lp = {.ce_weight = 1.0f, .kd_temperature = 1.0f, .denom = (double)res.n_pred};
    slm_trainable_zero_grad(tv);
    double acc_loss = 0;
    for (int b = 0; b < B; b++) {
        slm_loss_result r1;
        CHECK(slm_train_forward(t1, tok + b * T) == SLM_OK && slm_train_backward(t1, tgt + b * T, NULL, &lp, &r1) == SLM_OK,
              "micro-batch %d: %s", b, slm_last_error());
        acc_loss += r1.loss;
    }
    double gd = 0, gm = 0;
    for (int64_t j = 0; j < tv->n_floats; j++) gd = fmax(gd, fabs(tv->grad[j] - g0[j])), gm = fmax(gm, fabs(g0[j]));
    printf("A: 2 accumulated micro-batches vs one batch: loss %.9f vs %.9f, max|dg| %.2e (max|g| %.2e)\n", acc_loss,
           res.loss, gd, gm);
    CHECK(fabs(acc_loss - res.loss) < 1e-6 && gd < 1e-6 * gm, "accumulation equals the one-batch gradient");
    slm_train_ctx_free(t1);

    /* the plan changed after the view: refused */
    slm_train_ctx *tc;
    slm_train_ctx_params cp = {.n_seq = B, .n_tok = T};
    CHECK(slm_train_ctx_new(m, tv, &cp, &tc) == SLM_OK, "ctx");
    CHECK(slm_block_set_mlp_width(m, 0, 32) == SLM_OK, "narrow block 0 after the view");
    CHECK(slm_train_forward(tc, tok) == SLM_ERR_STATE, "plan change refused");
    printf("A: after narrowing block 0: %s\n", slm_last_error());
    slm_block_set_mlp_width(m, 0, cfg.d_ff);
    m->blocks[2].kept = false;
    CHECK(slm_train_forward(tc, tok) == SLM_ERR_STATE, "dropping an unfrozen block refused");
    printf("A: after dropping block 2: %s\n", slm_last_error());
    slm_train_ctx_free(tc);
    slm_trainable_free(tv);
    free(g0);
    slm_model_free(m);
}

static void case_b(void) {
    slm_config cfg = base_cfg();
    cfg.tied_embeddings = true;
    cfg.rope_layout = SLM_ROPE_ADJACENT;
    slm_model *m, *mt;
    if (!CHECK(slm_model_new_random(&cfg, 12, &m) == SLM_OK && slm_model_new_random(&cfg, 13, &mt) == SLM_OK,
               "models: %s", slm_last_error()))
        return;
    make_lowrank(m, 1, SLM_PROJ_GATE, 7);
    slm_trainable *tv;
    if (!CHECK(slm_trainable_new(m, &tv) == SLM_OK, "view: %s", slm_last_error())) return;
    CHECK(tv->lm_head == tv->tok_embd && slm_trainable_find(tv, "lm_head.weight") < 0, "tied head is the embedding");
    int32_t tok[N], tgt[N];
    tokens(tok, tgt, cfg.n_vocab, 2);
    /* teacher logits from a forward-only context */
    slm_train_ctx_params tp = {.n_seq = B, .n_tok = T, .forward_only = true};
    slm_train_ctx *teacher;
    CHECK(slm_train_ctx_new(mt, NULL, &tp, &teacher) == SLM_OK && slm_train_forward(teacher, tok) == SLM_OK,
          "teacher: %s", slm_last_error());
    float *tl = malloc(sizeof(float) * T * cfg.n_vocab);
    double *tld = malloc(sizeof(double) * N * cfg.n_vocab);
    for (int b = 0; b < B; b++) {
        slm_train_logits(teacher, b, tl);
        for (int i = 0; i < T * cfg.n_vocab; i++) tld[(int64_t)b * T * cfg.n_vocab + i] = tl[i];
    }
    int Q = cfg.n_heads * cfg.head_dim, KV = cfg.n_kv_heads * cfg.head_dim;
    float *ch0 = rnd_buf(N * 32, 0.05f), *ch2 = rnd_buf(N * 32, 0.05f), *ch3 = rnd_buf(N * 32, 0.05f);
    float *cq = rnd_buf(N * Q, 0.05f), *ck = rnd_buf(N * KV, 0.05f), *cv = rnd_buf(N * KV, 0.05f);
    ref_loss rl = {.tok = tok, .tgt = tgt, .cw = 0.5f, .kw = 2.0f, .tau = 2.0f, .teacher = tld,
                   .c_hidden = {ch0, NULL, ch2, ch3}, .c_qkv = {cq, ck, cv}};
    slm_loss_result res;
    if (run_backward(tv, false, &rl, teacher, &res)) {
        ref_loss plain = rl; /* the reported loss has no linear terms */
        memset(plain.c_hidden, 0, sizeof plain.c_hidden);
        memset(plain.c_qkv, 0, sizeof plain.c_qkv);
        double ref = ref_loss_eval(m, &plain);
        printf("B: loss %.9f (ce %.6f kd %.6f) vs double reference %.9f\n", res.loss, res.ce, res.kd, ref);
        CHECK(fabs(res.loss - ref) < 1e-5 * ref, "B: loss");
        gradcheck("B (adjacent, tied, low-rank gate, CE+KD, hidden/qkv injections)", tv, &rl);
    }
    slm_train_ctx_free(teacher);
    slm_trainable_free(tv);
    slm_model_free(m);
    slm_model_free(mt);
    free(tl), free(tld), free(ch0), free(ch2), free(ch3), free(cq), free(ck), free(cv);
}

static void case_c(void) {
    slm_config cfg = base_cfg();
    cfg.n_kv_heads = 1;
    cfg.rope_scaling = SLM_ROPE_SCALING_LINEAR;
    cfg.rope_factor = 2.0f;
    slm_model *m;
    if (!CHECK(slm_model_new_random(&cfg, 14, &m) == SLM_OK, "model: %s", slm_last_error())) return;
    slm_trainable *tv;
    if (!CHECK(slm_trainable_new(m, &tv) == SLM_OK, "view: %s", slm_last_error())) return;
    int32_t tok[N], tgt[N];
    tokens(tok, tgt, cfg.n_vocab, 3);
    ref_loss rl = {.tok = tok, .tgt = tgt, .cw = 1.0f, .tau = 1.0f};
    slm_loss_result res;
    if (run_backward(tv, true, &rl, NULL, &res)) gradcheck("C (MQA, linear RoPE scaling, recompute)", tv, &rl);
    slm_trainable_free(tv);
    slm_model_free(m);
}

/* D: the combined, normalised distillation loss of slm_train_microstep
 * (CE + vanilla KD + relation KD + homotopic KD, each scaled to the CE)
 * against a teacher of other weights, the student mapping its blocks 0 and
 * 2 to teacher blocks 0 and 1; the scales are the detached constants the
 * step used, so the reference is CE + s_v KD + s_r L_rel + s_h L_hid. */
static double *to_double(const float *p, int64_t n) {
    double *d = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) d[i] = p[i];
    return d;
}

static void case_d(void) {
    slm_config cfg = base_cfg();
    cfg.attn_bias = true;
    cfg.rope_layout = SLM_ROPE_HALVES;
    slm_model *m, *mt;
    if (!CHECK(slm_model_new_random(&cfg, 16, &m) == SLM_OK && slm_model_new_random(&cfg, 17, &mt) == SLM_OK,
               "models: %s", slm_last_error()))
        return;
    m->blocks[1].kept = false;
    make_lowrank(m, 2, SLM_PROJ_K, 5);
    CHECK(slm_block_set_mlp_width(m, 2, 40) == SLM_OK, "narrow");
    slm_trainable *tv;
    if (!CHECK(slm_trainable_new(m, &tv) == SLM_OK, "view: %s", slm_last_error())) return;
    const int src[3] = {0, -1, 1};
    slm_train_ctx_params cp = {.n_seq = B, .n_tok = T, .recompute = true, .keep_attn_out = true};
    slm_train_ctx_params tp = {.n_seq = B, .n_tok = T, .forward_only = true, .keep_attn_out = true};
    slm_train_ctx *tc, *teacher;
    if (!CHECK(slm_train_ctx_new(m, tv, &cp, &tc) == SLM_OK && slm_train_ctx_new(mt, NULL, &tp, &teacher) == SLM_OK,
               "contexts: %s", slm_last_error()))
        return;
    int32_t tok[N], tgt[N];
    tokens(tok, tgt, cfg.n_vocab, 4);
    slm_kd_params kp = {.terms = SLM_KD_LOGITS | SLM_KD_RELATION | SLM_KD_HIDDEN, .lambda = 0.7f, .tau = 2.0f,
                        .src = src};
    slm_kd_result r;
    slm_trainable_zero_grad(tv);
    if (!CHECK(slm_train_microstep(tc, teacher, tok, tgt, 0, &kp, &r) == SLM_OK, "microstep: %s", slm_last_error()))
        return;
    const int V = cfg.n_vocab, D = cfg.d_model, Q = cfg.n_heads * cfg.head_dim, KV = cfg.n_kv_heads * cfg.head_dim;
    float *tl = malloc(sizeof(float) * T * V);
    double *tld = malloc(sizeof(double) * N * V);
    for (int b = 0; b < B; b++) {
        slm_train_logits(teacher, b, tl);
        for (int i = 0; i < T * V; i++) tld[(int64_t)b * T * V + i] = tl[i];
    }
    const float *q, *k, *v;
    CHECK(slm_train_last_qkv(teacher, &q, &k, &v, NULL) == SLM_OK, "teacher q/k/v");
    ref_loss rl = {.tok = tok, .tgt = tgt, .cw = 1.0f, .kw = (float)r.scale_logits, .tau = 2.0f, .teacher = tld,
                   .c_rel = r.scale_rel, .c_hid = r.scale_hid, .t_q = to_double(q, N * Q), .t_k = to_double(k, N * KV),
                   .t_v = to_double(v, N * KV)};
    rl.t_hid[0] = to_double(slm_train_hidden(teacher, 0), N * D);
    for (int l = 0; l < 3; l++)
        if (src[l] >= 0) {
            rl.t_hid[l + 1] = to_double(slm_train_hidden(teacher, src[l] + 1), N * D);
            rl.t_att[l] = to_double(slm_train_attn_out(teacher, src[l]), N * D);
        }
    double total = ref_loss_eval(m, &rl);
    ref_loss parts = rl;
    parts.kw = 0;
    parts.teacher = NULL;
    double ce = ref_loss_eval(m, &parts);
    ce -= rl.c_rel * g_ref_rel + rl.c_hid * g_ref_hid;
    printf("D: ce %.9f vs %.9f, rel %.9f vs %.9f, hid %.9f vs %.9f (emb %.3g, %d blocks), loss %.9f vs %.9f\n", r.ce, ce,
           r.rel, g_ref_rel, r.hid, g_ref_hid, r.parts.emb, r.parts.n_blocks, r.loss, total);
    printf("D: scales: vanilla %.4f (kd %.6f), relation %.4f, homotopic %.4f (lambda %.1f)\n", r.scale_logits, r.logits,
           r.scale_rel, r.scale_hid, (double)kp.lambda);
    CHECK(fabs(r.ce - ce) < 1e-5 * ce && fabs(r.rel - g_ref_rel) < 1e-5 * g_ref_rel &&
              fabs(r.hid - g_ref_hid) < 1e-5 * g_ref_hid && fabs(r.loss - total) < 1e-5 * total,
          "D: values");
    CHECK(r.parts.n_blocks == 2 && r.rel > 0 && r.hid > 0 && r.logits > 0, "D: every term active");
    CHECK(fabs(r.scale_rel * r.rel - kp.lambda * r.ce) < 1e-9 && fabs(r.scale_hid * r.hid - kp.lambda * r.ce) < 1e-9 &&
              fabs(r.scale_logits * r.logits - kp.lambda * r.ce) < 1e-6,
          "D: each normalised term equals lambda * CE");
    gradcheck("D (CE + normalised vanilla, relation, homotopic KD; recompute, block map 0->0, 2->1)", tv, &rl);
    slm_train_ctx_free(tc);
    slm_train_ctx_free(teacher);
    slm_trainable_free(tv);
    slm_model_free(m);
    slm_model_free(mt);
    free(tl), free(tld), free((void *)rl.t_q), free((void *)rl.t_k), free((void *)rl.t_v);
    for (int i = 0; i < 8; i++) free((void *)rl.t_hid[i]), free((void *)rl.t_att[i]);
}

static void case_qblock(void) {
    slm_config cfg = base_cfg();
    slm_model *m;
    if (!CHECK(slm_model_new_random(&cfg, 15, &m) == SLM_OK, "model")) return;
    slm_linear *l = &m->blocks[2].lin[SLM_PROJ_V];
    void *blocks = calloc((size_t)l->n_out * (l->n_in / 32), 34); /* Q8_0: 34 bytes per 32 weights */
    CHECK(slm_linear_set_qblock(l, blocks, SLM_DTYPE_Q8_0, l->n_out, l->n_in, "v") == SLM_OK, "qblock: %s",
          slm_last_error());
    slm_trainable *tv = NULL;
    CHECK(slm_trainable_new(m, &tv) == SLM_ERR_UNSUPPORTED && tv == NULL, "QBLOCK refused");
    printf("QBLOCK: %s\n", slm_last_error());
    CHECK(strstr(slm_last_error(), "block 2") && strstr(slm_last_error(), "quantised"), "message names block and kind");
    slm_model_free(m);
    free(blocks);
}

int main(void) {
    slm_set_threads(2);
    case_a();
    case_b();
    case_c();
    case_d();
    case_qblock();
    return slm_test_finish();
}
