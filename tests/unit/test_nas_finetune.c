/* Super-network fine-tuning (nas/finetune.h) on the elastic trainable view
 * (train.h, slm_trainable_new_elastic), on a tiny random model:
 *   (a) gradients of the full-tensor view under a narrowed plan (MLP widths
 *       16 / 32 / 48 of 48, one block dropped) against central finite
 *       differences of an independent double-precision loss; gradients of
 *       everything outside the plan exactly zero;
 *   (b) the view's training-forward logits under plans equal the inference
 *       forward (slm_decode) of the same plan;
 *   (c) alternating full / sub-network steps through the trainer on
 *       instruction-style windows (prompt masked): plans change every step,
 *       what a sub-network step did not use is untouched (weights, AdamW
 *       moments), and N steps + checkpoint + resume + N steps equal 2N
 *       straight bit for bit;
 *   (d) the Alpaca loader: template, masking, padding, item ranges.
 * Legend: B sequences, T tokens, V vocabulary, D model dim, F MLP width. */
#include "kernels/cpu/kernels.h"
#include "model/forward.h"
#include "nas/finetune.h"
#include "ref_ops.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, T = 8, N = B * T };

static slm_config tiny_cfg(void) {
    return (slm_config){.arch = SLM_ARCH_LLAMA, .n_vocab = 64, .d_model = 32, .n_layers = 4, .n_heads = 4,
                        .n_kv_heads = 2, .head_dim = 8, .d_ff = 48, .max_ctx = 64, .norm_eps = 1e-5f,
                        .rope_theta = 10000.0f, .bos_id = -1, .eos_id = -1};
}

static slm_model *tiny_model(uint64_t seed) {
    slm_config c = tiny_cfg();
    slm_model *m = NULL;
    CHECK(slm_model_new_random(&c, seed, &m) == SLM_OK, "random model: %s", slm_last_error());
    return m;
}

/* ---- (a) double-precision reference: mean CE over targets >= 0 of the plan ---- */

static double ref_loss(const slm_model *m, const int32_t *tok, const int32_t *tgt) {
    const slm_config *c = &m->cfg;
    enum { MD = 64, MF = 64, MV = 64 };
    const int D = c->d_model, H = c->n_heads, Hkv = c->n_kv_heads, Dh = c->head_dim, V = c->n_vocab;
    double x[T][MD], xn[MD], q[T][MD], k[T][MD], v[T][MD], att[MD], y[MD], g[MF], u[MF], lg[MV], inv[MD];
    slm_rope_freq_params rp = {Dh, c->rope_theta, 0, 1, 1, 1, 0};
    slm_rope_inv_freq(&rp, inv);
    double sum = 0;
    int n = 0;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++)
            for (int i = 0; i < D; i++) x[t][i] = m->tok_embd[(int64_t)tok[b * T + t] * D + i];
        for (int l = 0; l < c->n_layers; l++) {
            const slm_block *bl = &m->blocks[l];
            if (!bl->kept) continue;
            for (int t = 0; t < T; t++) {
                slm_ref_rmsnorm(x[t], bl->attn_norm, D, c->norm_eps, xn);
                slm_ref_linear(&bl->lin[SLM_PROJ_Q], xn, q[t]);
                slm_ref_linear(&bl->lin[SLM_PROJ_K], xn, k[t]);
                slm_ref_linear(&bl->lin[SLM_PROJ_V], xn, v[t]);
                slm_ref_rope(q[t], H, Dh, inv, t, c->rope_layout == SLM_ROPE_ADJACENT);
                slm_ref_rope(k[t], Hkv, Dh, inv, t, c->rope_layout == SLM_ROPE_ADJACENT);
            }
            double xo[T][MD];
            for (int t = 0; t < T; t++) {
                slm_ref_attention_row(q[t], &k[0][0], &v[0][0], MD, t, H, Hkv, Dh, att); /* causal, GQA */
                slm_ref_linear(&bl->lin[SLM_PROJ_O], att, y);
                for (int i = 0; i < D; i++) xo[t][i] = x[t][i] + y[i];
                slm_ref_rmsnorm(xo[t], bl->ffn_norm, D, c->norm_eps, xn);
                slm_ref_linear(&bl->lin[SLM_PROJ_GATE], xn, g);
                slm_ref_linear(&bl->lin[SLM_PROJ_UP], xn, u);
                for (int j = 0; j < bl->d_ff; j++) g[j] = g[j] / (1 + exp(-g[j])) * u[j];
                slm_ref_linear(&bl->lin[SLM_PROJ_DOWN], g, y);
                for (int i = 0; i < D; i++) xo[t][i] += y[i];
            }
            memcpy(x, xo, sizeof x);
        }
        for (int t = 0; t < T; t++) {
            int32_t y0 = tgt[b * T + t];
            if (y0 < 0) continue;
            slm_ref_rmsnorm(x[t], m->out_norm, D, c->norm_eps, xn);
            double mx = -INFINITY, z = 0;
            for (int o = 0; o < V; o++) {
                lg[o] = 0;
                for (int i = 0; i < D; i++) lg[o] += (double)m->lm_head[(int64_t)o * D + i] * xn[i];
                mx = fmax(mx, lg[o]);
            }
            for (int o = 0; o < V; o++) z += exp(lg[o] - mx);
            sum += log(z) + mx - lg[y0];
            n++;
        }
    }
    return sum / n;
}

static void make_tokens(int32_t *tok, int32_t *tgt, int V, int seed) {
    for (int i = 0; i < N; i++) tok[i] = (i * 29 + seed * 7 + 3) % V;
    slm_targets_next_token(tok, B, T, tgt);
    for (int b = 0; b < B; b++) tgt[b * T] = tgt[b * T + 1] = -1; /* a masked "prompt" */
}

static void case_gradcheck(void) {
    slm_model *m = tiny_model(11);
    if (!m) return;
    slm_trainable *tv = NULL;
    if (!CHECK(slm_trainable_new_elastic(m, &tv) == SLM_OK, "elastic view: %s", slm_last_error())) {
        slm_model_free(m);
        return;
    }
    const int widths[4] = {16, 0, 32, 48};
    CHECK(slm_nas_apply(m, widths) == SLM_OK, "apply: %s", slm_last_error());
    int32_t tok[N], tgt[N];
    make_tokens(tok, tgt, m->cfg.n_vocab, 1);
    slm_train_ctx_params cp = {.n_seq = B, .n_tok = T};
    slm_train_ctx *tc = NULL;
    slm_loss_params lp = slm_loss_default_params();
    slm_loss_result res;
    CHECK(slm_train_ctx_new(m, tv, &cp, &tc) == SLM_OK, "ctx: %s", slm_last_error());
    slm_trainable_zero_grad(tv);
    bool ok = tc && CHECK(slm_train_forward(tc, tok) == SLM_OK && slm_train_backward(tc, tgt, NULL, &lp, &res) == SLM_OK,
                          "forward/backward: %s", slm_last_error());
    double lref = ref_loss(m, tok, tgt);
    CHECK(fabs(res.loss - lref) <= 1e-5 * fabs(lref), "loss %.8f vs reference %.8f", res.loss, lref);
    uint64_t rng = 99;
    double worst = 0, worst_w = 0;
    int n_fd = 0, n_zero_bad = 0;
    int64_t n_outside = 0;
    for (int ti = 0; ok && ti < tv->n_tensors; ti++) {
        slm_train_tensor *t = &tv->t[ti];
        int layer = -1;
        sscanf(t->name, "model.layers.%d.", &layer);
        /* which elements the plan uses */
        int rows = t->rows, cols = t->cols;
        if (layer >= 0 && widths[layer] == 0) rows = cols = 0;
        else if (t->unit_axis == 1) rows = widths[layer];
        else if (t->unit_axis == 2) cols = widths[layer];
        CHECK(t->active == (t->unit_axis ? (t->unit_axis == 1 ? rows : cols) : (rows > 0)),
              "%s: active %d (plan uses %d x %d)", t->name, t->active, rows, cols);
        double gmax = 0;
        for (int64_t i = 0; i < t->n; i++) {
            bool inside = i / t->cols < rows && i % t->cols < cols;
            if (inside) gmax = fmax(gmax, fabs(t->g[i]));
            else if (n_outside++, t->g[i] != 0.0f) n_zero_bad++;
        }
        if (rows == 0) continue;
        double err = 0;
        for (int s = 0; s < 12; s++) { /* sampled entries inside the plan, the largest |g| first */
            int64_t i;
            if (s == 0) {
                i = 0;
                for (int64_t j = 0; j < t->n; j++)
                    if (j / t->cols < rows && j % t->cols < cols && fabs(t->g[j]) > fabs(t->g[i])) i = j;
            } else {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                i = (int64_t)((rng >> 33) % (uint64_t)rows) * t->cols + (int64_t)((rng >> 13) % (uint64_t)cols);
            }
            float w0 = t->w[i];
            double h = fmax(1e-4, 4.0 * fabs(w0) * 1.2e-7);
            float wp = (float)(w0 + h), wm = (float)(w0 - h);
            t->w[i] = wp;
            double lpl = ref_loss(m, tok, tgt);
            t->w[i] = wm;
            double lmi = ref_loss(m, tok, tgt);
            t->w[i] = w0;
            double fd = (lpl - lmi) / ((double)wp - (double)wm);
            double e = fabs(t->g[i] - fd) / (fabs(fd) + 1e-3 * gmax + 1e-30);
            err = fmax(err, e);
            n_fd++;
        }
        if (err > worst) worst = err;
        if (t->unit_axis && err > worst_w) worst_w = err;
        CHECK(err <= 1e-3 && gmax > 0, "%s: gradient error %.3g (max |g| %g)", t->name, err, gmax);
    }
    /* an element outside the plan changes nothing: its finite difference is 0 */
    slm_train_tensor *down0 = &tv->t[tv->blk[0].lin[SLM_PROJ_DOWN].w];
    float w0 = down0->w[40];
    double l0 = ref_loss(m, tok, tgt);
    down0->w[40] = w0 + 0.5f;
    CHECK(ref_loss(m, tok, tgt) == l0, "block 0 down column 40 (past width 16) does not change the loss");
    down0->w[40] = w0;
    CHECK(n_zero_bad == 0, "%d of %lld gradient entries outside the plan are not exactly zero", n_zero_bad,
          (long long)n_outside);
    printf("(a) gradcheck, widths 16/dropped/32/48 of 48: %d entries, max rel err %.2e (MLP tensors %.2e), "
           "loss vs reference %.1e rel; %lld entries outside the plan, all gradients exactly 0\n",
           n_fd, worst, worst_w, fabs(res.loss - lref) / fabs(lref), (long long)n_outside);
    slm_train_ctx_free(tc);
    slm_trainable_free(tv);
    slm_model_free(m);
}

/* ---- (b) training forward == inference forward of the plan ---- */

static void case_logits(void) {
    slm_model *m = tiny_model(12);
    slm_trainable *tv = NULL;
    if (!m || !CHECK(slm_trainable_new_elastic(m, &tv) == SLM_OK, "view: %s", slm_last_error())) {
        slm_model_free(m);
        return;
    }
    const int plans[4][4] = {{48, 48, 48, 48}, {16, 0, 32, 48}, {0, 48, 16, 0}, {48, 48, 48, 48}};
    slm_train_ctx_params cp = {.n_seq = B, .n_tok = T};
    slm_train_ctx *tc = NULL;
    CHECK(slm_train_ctx_new(m, tv, &cp, &tc) == SLM_OK, "ctx: %s", slm_last_error());
    const int V = m->cfg.n_vocab;
    float *a = malloc(sizeof(float) * T * V), *r = malloc(sizeof(float) * T * V);
    int32_t tok[N], tgt[N];
    make_tokens(tok, tgt, V, 2);
    double worst = 0;
    for (int p = 0; tc && p < 4; p++) {
        CHECK(slm_nas_apply(m, plans[p]) == SLM_OK, "apply");
        CHECK(slm_train_forward(tc, tok) == SLM_OK, "plan %d forward: %s", p, slm_last_error());
        for (int b = 0; b < B; b++) {
            slm_context *ic = NULL;
            slm_context_params icp = slm_context_default_params();
            icp.n_ctx = T;
            CHECK(slm_train_logits(tc, b, a) == SLM_OK && slm_context_new(m, &icp, &ic) == SLM_OK &&
                      slm_decode(ic, tok + b * T, T, true, r) == SLM_OK,
                  "plan %d logits: %s", p, slm_last_error());
            double mx = 0, md = 0;
            for (int i = 0; i < T * V; i++) mx = fmax(mx, fabs(r[i])), md = fmax(md, fabs(a[i] - r[i]));
            worst = fmax(worst, md / mx);
            CHECK(md <= 1e-5 * mx, "plan %d seq %d: max|d| %.3g of max|logit| %.3g", p, b, md, mx);
            slm_context_free(ic);
        }
    }
    printf("(b) training forward vs slm_decode under 4 plans (full, 16/-/32/48, -/48/16/-, full again): "
           "max|d| %.2e of max|logit|\n", worst);
    /* the plan may not change between a forward and its backward */
    slm_loss_params lp = slm_loss_default_params();
    slm_loss_result res;
    if (tc && slm_train_forward(tc, tok) == SLM_OK) {
        slm_block_set_mlp_width(m, 2, 16);
        CHECK(slm_train_backward(tc, tgt, NULL, &lp, &res) == SLM_ERR_STATE, "plan changed before the backward refused");
        printf("    refused: %s\n", slm_last_error());
    }
    free(a);
    free(r);
    slm_train_ctx_free(tc);
    slm_trainable_free(tv);
    slm_model_free(m);
}

/* ---- (c) alternating steps, skipping, exact resume ---- */

/* Instruction-style windows without a tokenizer: n windows of T tokens,
 * the first 3 targets of each masked, the rest next-token. */
static void fake_sft(slm_train_data *d, int n, int V, uint64_t seed) {
    memset(d, 0, sizeof *d);
    d->ctx = T;
    d->n_windows = n;
    d->n_tokens = (int64_t)n * T;
    d->tokens = malloc(sizeof(int32_t) * (size_t)n * T);
    d->labels = malloc(sizeof(int32_t) * (size_t)n * T);
    d->seed = seed;
    d->perm_epoch = -1;
    d->hash = 12345;
    for (int w = 0; w < n; w++)
        for (int t = 0; t < T; t++) d->tokens[w * T + t] = (w * 13 + t * 7 + (w * t) % 5) % V;
    for (int w = 0; w < n; w++)
        for (int t = 0; t < T; t++)
            d->labels[w * T + t] = t < 3 ? -1 : t + 1 < T ? d->tokens[w * T + t + 1] : (w * 3 + 1) % V;
    d->max_id = V - 1;
}

typedef struct run {
    slm_model *m;
    slm_train_data d;
    slm_nas_space space;
    slm_nas_ft_plan plan;
    int genes[5], widths[4];
    slm_trainer *tr;
} run;

static bool run_new(run *r, int64_t steps) {
    memset(r, 0, sizeof *r);
    r->m = tiny_model(13);
    if (!r->m) return false;
    fake_sft(&r->d, 10, r->m->cfg.n_vocab, 5);
    const int depths[] = {2, 3, 4}, ws[] = {16, 32, 48};
    if (!CHECK(slm_nas_space_init(&r->space, 4, 48, depths, 3, ws, 3, "first") == SLM_OK, "space: %s",
               slm_last_error()))
        return false;
    r->plan = (slm_nas_ft_plan){.space = &r->space, .seed = 77, .genes = r->genes, .widths = r->widths};
    slm_trainer_params p = slm_trainer_default_params();
    p.n_seq = 2;
    p.n_tok = T;
    p.accum = 2;
    p.n_steps = steps;
    p.lr = 3e-3f;
    p.warmup = 2;
    p.elastic = true;
    p.plan = slm_nas_ft_apply;
    p.plan_ud = &r->plan;
    return CHECK(slm_trainer_new(r->m, NULL, &r->d, &p, &r->tr) == SLM_OK, "trainer: %s", slm_last_error());
}

static void run_free(run *r) {
    slm_trainer_free(r->tr);
    slm_nas_space_free(&r->space);
    slm_train_data_free(&r->d);
    slm_model_free(r->m);
}

static void case_alternate_resume(void) {
    const int S = 6;
    const char *ck = slm_test_path(slm_test_env("SLM_TEST_TMP", "/tmp"), "nas_finetune.ckpt");
    run a, b;
    if (!run_new(&a, 2 * S)) return;
    slm_trainable *tv = slm_trainer_view(a.tr);
    float *before = malloc(sizeof(float) * (size_t)tv->n_floats);
    double loss_a[2 * 6];
    int n_sub = 0, n_dropped_steps = 0, n_narrow = 0, n_untouched_bad = 0;
    int prev_w[4] = {0};
    bool changed = false;
    slm_step_stats st;
    for (int s = 0; s < 2 * S; s++) {
        memcpy(before, tv->t[0].w, sizeof(float) * (size_t)tv->n_floats);
        if (!CHECK(slm_trainer_step(a.tr, &st) == SLM_OK, "step %d: %s", s, slm_last_error())) break;
        loss_a[s] = st.loss;
        if (memcmp(prev_w, a.widths, sizeof prev_w) != 0 && s > 0) changed = true;
        memcpy(prev_w, a.widths, sizeof prev_w);
        if (!a.plan.sub) continue;
        n_sub++;
        /* what the sub-network did not use has not moved */
        for (int l = 0; l < 4; l++) {
            const slm_train_block_ix *bx = &tv->blk[l];
            if (a.widths[l] == 0) {
                n_dropped_steps++;
                const slm_train_tensor *t0 = &tv->t[bx->attn_norm], *t1 = &tv->t[bx->lin[SLM_PROJ_DOWN].w];
                int64_t from = t0->offset, to = t1->offset + t1->n;
                if (memcmp(before + from, tv->t[0].w + from, sizeof(float) * (size_t)(to - from)) != 0) n_untouched_bad++;
            } else if (a.widths[l] < 48) {
                n_narrow++;
                const slm_train_tensor *g = &tv->t[bx->lin[SLM_PROJ_GATE].w], *dn = &tv->t[bx->lin[SLM_PROJ_DOWN].w];
                int64_t k = a.widths[l];
                if (memcmp(before + g->offset + k * g->cols, g->w + k * g->cols,
                           sizeof(float) * (size_t)(g->n - k * g->cols)) != 0)
                    n_untouched_bad++;
                for (int r = 0; r < dn->rows; r++)
                    if (memcmp(before + dn->offset + (int64_t)r * dn->cols + k, dn->w + (int64_t)r * dn->cols + k,
                               sizeof(float) * (size_t)(dn->cols - k)) != 0)
                        n_untouched_bad++;
                if (memcmp(before + g->offset, g->w, sizeof(float) * (size_t)(k * g->cols)) == 0) n_untouched_bad++;
            }
        }
        if (s + 1 == S) CHECK(slm_trainer_save(a.tr, ck) == SLM_OK, "save: %s", slm_last_error());
    }
    CHECK(n_sub == S && changed && n_dropped_steps > 0 && n_narrow > 0 && n_untouched_bad == 0,
          "%d sub-network steps, plans changed %d, %d dropped-block and %d narrowed-block cases, %d touched outside",
          n_sub, changed, n_dropped_steps, n_narrow, n_untouched_bad);
    printf("(c) %d alternating steps (%d sub-networks: %d dropped-block and %d narrowed-block cases): outside the "
           "plan weights unchanged; loss %.4f -> %.4f\n", 2 * S, n_sub, n_dropped_steps, n_narrow, loss_a[0],
           loss_a[2 * S - 1]);
    /* resume: a fresh model and trainer from the checkpoint of step S */
    if (run_new(&b, 2 * S)) {
        CHECK(slm_trainer_resume(b.tr, ck) == SLM_OK && slm_trainer_steps_done(b.tr) == S, "resume: %s",
              slm_last_error());
        bool same_loss = true;
        for (int s = S; s < 2 * S; s++) {
            if (!CHECK(slm_trainer_step(b.tr, &st) == SLM_OK, "resumed step %d: %s", s, slm_last_error())) break;
            same_loss = same_loss && st.loss == loss_a[s];
        }
        slm_trainable *tb = slm_trainer_view(b.tr);
        bool same_w = memcmp(tb->t[0].w, tv->t[0].w, sizeof(float) * (size_t)tv->n_floats) == 0;
        CHECK(same_loss && same_w, "%d + resume + %d steps == %d straight: losses %s, weights %s", S, S, 2 * S,
              same_loss ? "same" : "differ", same_w ? "same" : "differ");
        /* the final checkpoints (weights, moments, per-channel step counts) agree byte for byte */
        const char *ca = slm_test_path(slm_test_env("SLM_TEST_TMP", "/tmp"), "nas_finetune_a.ckpt");
        const char *cb = slm_test_path(slm_test_env("SLM_TEST_TMP", "/tmp"), "nas_finetune_b.ckpt");
        size_t la = 0, lb = 0;
        CHECK(slm_trainer_save(a.tr, ca) == SLM_OK && slm_trainer_save(b.tr, cb) == SLM_OK, "save");
        char *fa = slm_test_read_file(ca, &la), *fb = slm_test_read_file(cb, &lb);
        CHECK(fa && fb && la == lb && memcmp(fa, fb, la) == 0, "final checkpoints identical (%zu / %zu bytes)", la, lb);
        printf("    %d steps + checkpoint + resume + %d == %d straight: losses, weights and checkpoints (%zu bytes) "
               "bit-identical\n", S, S, 2 * S, la);
        free(fa);
        free(fb);
        remove(ca);
        remove(cb);
        run_free(&b);
    }
    remove(ck);
    free(before);
    run_free(&a);
}

/* ---- (d) the Alpaca loader ---- */

static void case_alpaca(void) {
    const char *dd = slm_test_env("SLM_DATA_DIR", "../shared/data");
    const char *voc = slm_test_path(dd, "tokenizer-vectors/ggml-vocab-llama-spm.gguf");
    slm_tokenizer *tok = NULL;
    if (!CHECK(slm_tokenizer_load_path(voc, &tok) == SLM_OK, "tokenizer %s: %s", voc, slm_last_error())) return;
    slm_train_data d = {0}, e = {0};
    const int C = 96;
    CHECK(slm_train_data_load_alpaca(tok, "alpaca/alpaca_data_first200.json", dd, C, 1, 0, 20, &d) == SLM_OK,
          "load: %s", slm_last_error());
    CHECK(d.n_windows + d.n_skipped == 20 && d.labels, "20 items: %lld windows + %lld skipped", (long long)d.n_windows,
          (long long)d.n_skipped);
    /* item 1: "What are the three primary colors?" (no input) */
    char *prompt = slm_alpaca_prompt("What are the three primary colors?", "");
    const char *resp = "The three primary colors are red, blue, and yellow.";
    int32_t *pi = NULL, *ri = NULL;
    size_t np = 0, nr = 0;
    slm_tokenizer_encode(tok, prompt, strlen(prompt), false, false, &pi, &np);
    slm_tokenizer_encode(tok, resp, strlen(resp), false, false, &ri, &nr);
    const int32_t *tk = d.tokens + 1 * C, *lb = d.labels + 1 * C; /* item 0 is short: window 0 */
    bool ok = tk[0] == slm_tokenizer_bos(tok) && (int)(1 + np + nr + 1) <= C;
    for (size_t i = 0; ok && i < np; i++) ok = tk[1 + i] == pi[i] && lb[i] == -1;
    for (size_t i = 0; ok && i < nr; i++) ok = tk[1 + np + i] == ri[i] && lb[np + i] == ri[i];
    ok = ok && lb[np + nr] == slm_tokenizer_eos(tok); /* the last response token predicts EOS */
    for (int t = (int)(np + nr + 1); ok && t < C; t++) ok = lb[t] == -1 && tk[t] == slm_tokenizer_eos(tok);
    CHECK(ok, "item 1: BOS, %zu prompt tokens masked, %zu response tokens + EOS as targets, EOS padding", np, nr);
    CHECK(strstr(prompt, "### Instruction:\nWhat are the three primary colors?\n\n### Response:\n") != NULL &&
              strncmp(prompt, "Below is an instruction that describes a task. Write", 52) == 0,
          "template without input");
    free(prompt);
    prompt = slm_alpaca_prompt("Sum", "1 and 2");
    CHECK(strstr(prompt, "paired with an input") && strstr(prompt, "### Input:\n1 and 2\n\n### Response:\n"),
          "template with input");
    /* items 20.. are disjoint from 0..19 */
    CHECK(slm_train_data_load_alpaca(tok, "alpaca/alpaca_data_first200.json", dd, C, 1, 20, 0, &e) == SLM_OK &&
              e.n_windows + e.n_skipped == 180 && e.hash != d.hash,
          "items 20..199: %lld windows", (long long)e.n_windows);
    printf("(d) alpaca: 20 items -> %lld windows of %d (%lld cut), item 1: %zu prompt tokens masked, %zu response "
           "+ EOS scored\n", (long long)d.n_windows, C, (long long)d.n_truncated, np, nr);
    slm_train_data_free(&e);
    CHECK(slm_train_data_load_alpaca(tok, "alpaca/alpaca_data_first200.json", dd, C, 1, 500, 0, &e) == SLM_ERR_ARG,
          "an empty range is refused");
    CHECK(slm_train_data_load_alpaca(tok, "alpaca/nope.json", dd, C, 1, 0, 0, &e) == SLM_ERR_IO, "missing file");
    const char *bad = slm_test_path(slm_test_env("SLM_TEST_TMP", "/tmp"), "bad_alpaca.json");
    FILE *f = fopen(bad, "w");
    if (f) {
        fputs("[{\"instruction\": \"x\", \"output\": 3}]", f);
        fclose(f);
    }
    CHECK(slm_train_data_load_alpaca(tok, bad, NULL, C, 1, 0, 0, &e) == SLM_ERR_FORMAT, "non-string output refused");
    printf("    refused: %s\n", slm_last_error());
    remove(bad);
    free(prompt);
    free(pi);
    free(ri);
    slm_train_data_free(&d);
    slm_tokenizer_free(tok);
}

int main(void) {
    slm_set_threads(1);
    case_gradcheck();
    case_logits();
    case_alternate_resume();
    case_alpaca();
    return slm_test_finish();
}
