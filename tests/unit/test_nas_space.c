/* The NAS search space and channel reordering (src/nas/space.c, reorder.c):
 *  - parsing "20,25,30" x "50%,100%" for SmolLM2's shape (L 30, F 1536)
 *    gives widths 768 and 1536 and 2^20 + 2^25 + 2^30 sub-networks; bad
 *    lists are refused with a message naming them;
 *  - orders: "first" keeps blocks 0..N-1; "max-gap" keeps what
 *    slm_prune_select keeps; encode(decode(g)) = canon(g) for random genes;
 *  - a sub-network applied to a random model gives the logits of an
 *    independent construction: the full model with the cut channels' gate
 *    and up rows zeroed (h = silu(0) * 0 = 0) and the dropped blocks' o and
 *    down weights zeroed (the block adds nothing to the residual): within
 *    1e-5; applying the full architecture restores the original logits
 *    exactly;
 *  - reordering by a permutation keeps the full model's logits (1e-5) and
 *    a narrowed reordered block equals the original with every channel
 *    outside the first k of the permutation zeroed (1e-5);
 *  - importance: a channel whose gate and up rows are zero scores 0 and is
 *    ranked last; scaling the last block's down column j by 10 scales its
 *    score by exactly 10 (its h is unchanged).
 */
#include "compress/prune/prune.h"
#include "model/forward.h"
#include "nas/nsga2.h"
#include "nas/space.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { L = 5, F = 48, T = 12 };

static void test_parse(void) {
    slm_nas_space s;
    if (CHECK(slm_nas_space_parse(&s, 30, 1536, "30,20,25,20", "50%,100%", "first") == SLM_OK, "parse: %s",
              slm_last_error())) {
        CHECK(s.n_depths == 3 && s.depths[0] == 20 && s.depths[2] == 30, "depths sorted, unique");
        CHECK(s.n_widths == 2 && s.widths[0] == 768 && s.widths[1] == 1536, "widths %d %d", s.widths[0], s.widths[1]);
        double want = pow(2, 20) + pow(2, 25) + pow(2, 30);
        CHECK(slm_nas_space_size(&s) == want, "space size %.0f, want %.0f", slm_nas_space_size(&s), want);
        CHECK(slm_nas_n_genes(&s) == 31, "genes");
        slm_nas_space_free(&s);
    }
    /* 33% of 1536 = 506.9 -> multiple of 32: 512 */
    if (CHECK(slm_nas_space_parse(&s, 30, 1536, "30", "33%", NULL) == SLM_OK, "33%%")) {
        CHECK(s.widths[0] == 512, "33%% -> %d (want 512)", s.widths[0]);
        slm_nas_space_free(&s);
    }
    struct { const char *d, *w, *o, *frag; } bad[] = {
        {"31", "768", "first", "block count 31 out of range"},
        {"0", "768", "first", "bad block counts"},
        {"20,x", "768", "first", "bad block counts '20,x'"},
        {"20", "2000", "first", "MLP width 2000 out of range"},
        {"20", "12.5", "first", "not an integer"},
        {"20", "", "first", "empty list of MLP widths"},
        {"20", "768", "sideways", "unknown block order 'sideways'"},
        {"20", "768", "block-influence", "unknown block order"},
        {"30%", "768", "first", "cannot be a percentage"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        slm_status st = slm_nas_space_parse(&s, 30, 1536, bad[i].d, bad[i].w, bad[i].o);
        CHECK(st != SLM_OK && strstr(slm_last_error(), bad[i].frag), "'%s' x '%s' (%s): %s", bad[i].d, bad[i].w,
              bad[i].o, st ? slm_last_error() : "accepted");
        if (!st) slm_nas_space_free(&s);
    }
}

static void test_encode(void) {
    slm_nas_space s, g;
    if (!CHECK(slm_nas_space_parse(&s, 30, 1536, "20,25,30", "384,768,1536", "first") == SLM_OK &&
                   slm_nas_space_parse(&g, 30, 1536, "20,25,30", "768,1536", "max-gap") == SLM_OK,
               "spaces: %s", slm_last_error()))
        return;
    int genes[31], back[31], canon[31], w[30];
    for (int i = 0; i < 30; i++) genes[1 + i] = 2;
    genes[0] = 0; /* 20 blocks, first */
    slm_nas_decode(&s, genes, w);
    int ok = 1;
    for (int i = 0; i < 30; i++) ok &= w[i] == (i < 20 ? 1536 : 0);
    CHECK(ok, "first 20 kept at 1536, the rest dropped");
    /* max-gap: kept = !drop of slm_prune_select(30, 10, MAX_GAP) */
    bool drop[30];
    slm_prune_select(30, 5, SLM_PRUNE_MAX_GAP, NULL, drop);
    genes[0] = 1;
    for (int i = 0; i < 30; i++) genes[1 + i] = i % 2;
    slm_nas_decode(&g, genes, w);
    ok = 1;
    for (int i = 0; i < 30; i++) ok &= (w[i] > 0) == !drop[i] && (!w[i] || w[i] == (i % 2 ? 1536 : 768));
    CHECK(ok, "max-gap 25 keeps what layer pruning keeps");
    uint64_t rng = 3;
    int mism = 0;
    for (int t = 0; t < 200; t++) {
        slm_nas_random(&s, &rng, genes);
        slm_nas_decode(&s, genes, w);
        slm_nas_canon(&s, genes, canon);
        if (slm_nas_encode(&s, w, back) != SLM_OK || memcmp(back, canon, sizeof back)) mism++;
    }
    CHECK(mism == 0, "%d of 200 random sub-networks do not round-trip", mism);
    /* architectures outside the space */
    for (int i = 0; i < 30; i++) w[i] = i < 21 ? 768 : 0;
    CHECK(slm_nas_encode(&s, w, back) != SLM_OK && strstr(slm_last_error(), "not a block count"), "21 blocks: %s",
          slm_last_error());
    for (int i = 0; i < 30; i++) w[i] = i < 20 ? 768 : 0;
    w[3] = 700;
    CHECK(slm_nas_encode(&s, w, back) != SLM_OK && strstr(slm_last_error(), "block 3 has MLP width 700"),
          "width 700: %s", slm_last_error());
    genes[0] = 3;
    CHECK(slm_nas_decode(&s, genes, w) != SLM_OK, "depth gene out of range refused");
    slm_nas_space_free(&s);
    slm_nas_space_free(&g);
}

/* ---- models ------------------------------------------------------------------------- */

static slm_model *random_model(void) {
    slm_config c = {.n_vocab = 97, .d_model = 32, .n_layers = L, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                    .d_ff = F, .max_ctx = 64, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .tied_embeddings = true,
                    .bos_id = 1, .eos_id = 2};
    slm_model *m = NULL;
    CHECK(slm_model_new_random(&c, 11, &m) == SLM_OK, "random model: %s", slm_last_error());
    return m;
}

static const int32_t k_tokens[T] = {1, 5, 9, 13, 40, 2, 77, 60, 33, 8, 91, 17};

static void logits_of(const slm_model *m, float *out) {
    slm_context_params cp = {.n_ctx = T, .n_batch = T};
    slm_context *c = NULL;
    CHECK(slm_context_new(m, &cp, &c) == SLM_OK && slm_decode(c, k_tokens, T, true, out) == SLM_OK, "decode: %s",
          slm_last_error());
    slm_context_free(c);
}

/* rows of a dense linear are writable in a random model (owned buffers) */
static float *wr(const slm_linear *l) { return (float *)(uintptr_t)l->w; }

static void zero_channel(slm_model *m, int b, int j) {
    slm_linear *g = &m->blocks[b].lin[SLM_PROJ_GATE], *u = &m->blocks[b].lin[SLM_PROJ_UP];
    memset(wr(g) + (size_t)j * g->ld_w, 0, (size_t)g->n_in * sizeof(float));
    memset(wr(u) + (size_t)j * u->ld_w, 0, (size_t)u->n_in * sizeof(float));
}

static void test_apply(void) {
    slm_model *m = random_model(), *ref = random_model();
    if (!m || !ref) goto out;
    int V = m->cfg.n_vocab;
    float *full = malloc(sizeof(float) * T * V), *a = malloc(sizeof(float) * T * V), *b = malloc(sizeof(float) * T * V);
    logits_of(m, full);
    /* block 1 dropped, block 2 at 16, block 4 at 32, others full */
    int widths[L] = {F, 0, 16, F, 32};
    CHECK(slm_nas_apply(m, widths) == SLM_OK, "apply: %s", slm_last_error());
    logits_of(m, a);
    slm_linear *o = &ref->blocks[1].lin[SLM_PROJ_O], *d = &ref->blocks[1].lin[SLM_PROJ_DOWN];
    memset(wr(o), 0, sizeof(float) * (size_t)o->n_out * o->ld_w);
    memset(wr(d), 0, sizeof(float) * (size_t)d->n_out * d->ld_w);
    for (int j = 16; j < F; j++) zero_channel(ref, 2, j);
    for (int j = 32; j < F; j++) zero_channel(ref, 4, j);
    logits_of(ref, b);
    CHECK_CLOSE("sub-network vs zeroed full model", a, b, (size_t)T * V, 1e-5);
    int all[L];
    slm_nas_full_widths(m, all);
    CHECK(slm_nas_apply(m, all) == SLM_OK, "restore");
    logits_of(m, a);
    CHECK(memcmp(a, full, sizeof(float) * T * V) == 0, "full architecture restores the logits bit for bit");
    int none[L] = {0};
    CHECK(slm_nas_apply(m, none) != SLM_OK && strstr(slm_last_error(), "every block is dropped"), "empty refused");
    free(full);
    free(a);
    free(b);
out:
    slm_model_free(m);
    slm_model_free(ref);
}

static void test_reorder(void) {
    slm_model *m = random_model(), *ref = random_model();
    if (!m || !ref) goto out;
    int V = m->cfg.n_vocab;
    float *full = malloc(sizeof(float) * T * V), *a = malloc(sizeof(float) * T * V), *b = malloc(sizeof(float) * T * V);
    int32_t *perm = malloc(sizeof(int32_t) * L * F);
    uint64_t rng = 5;
    for (int bl = 0; bl < L; bl++) { /* Fisher-Yates */
        int32_t *p = perm + (size_t)bl * F;
        for (int j = 0; j < F; j++) p[j] = j;
        for (int j = F - 1; j > 0; j--) {
            int k = slm_nas_rng_int(&rng, j + 1);
            int32_t t = p[j];
            p[j] = p[k];
            p[k] = t;
        }
    }
    logits_of(m, full);
    CHECK(slm_nas_reorder_channels(m, perm) == SLM_OK, "reorder: %s", slm_last_error());
    logits_of(m, a);
    CHECK_CLOSE("reordered full model", a, full, (size_t)T * V, 1e-5);
    int widths[L] = {20, F, F, 8, F};
    slm_nas_apply(m, widths);
    logits_of(m, a);
    for (int bl = 0; bl < L; bl++) {
        if (widths[bl] == F) continue;
        bool *in = calloc(F, sizeof *in);
        for (int k = 0; k < widths[bl]; k++) in[perm[(size_t)bl * F + k]] = true;
        for (int j = 0; j < F; j++)
            if (!in[j]) zero_channel(ref, bl, j);
        free(in);
    }
    logits_of(ref, b);
    CHECK_CLOSE("narrowed reordered blocks vs channels zeroed", a, b, (size_t)T * V, 1e-5);
    perm[3] = perm[4];
    int all[L];
    slm_nas_full_widths(m, all);
    slm_nas_apply(m, all);
    CHECK(slm_nas_reorder_channels(m, perm) != SLM_OK && strstr(slm_last_error(), "not a permutation"),
          "bad permutation: %s", slm_last_error());
    free(perm);
    free(full);
    free(a);
    free(b);
out:
    slm_model_free(m);
    slm_model_free(ref);
}

static void test_importance(void) {
    slm_model *m = random_model();
    if (!m) return;
    enum { NS = 3, SL = 10 };
    int32_t tok[NS * SL];
    for (int i = 0; i < NS * SL; i++) tok[i] = (int32_t)((i * 37 + 5) % 97);
    slm_calib cal = {.tokens = tok, .n_seqs = NS, .seq_len = SL};
    double *s1 = malloc(sizeof(double) * L * F), *s2 = malloc(sizeof(double) * L * F);
    int32_t *perm = malloc(sizeof(int32_t) * L * F);
    zero_channel(m, 0, 7);
    slm_linear *dn = &m->blocks[L - 1].lin[SLM_PROJ_DOWN];
    if (CHECK(slm_nas_channel_importance(m, &cal, true, s1) == SLM_OK, "importance: %s", slm_last_error())) {
        for (int r = 0; r < dn->n_out; r++) wr(dn)[(size_t)r * dn->ld_w + 5] *= 10.0f;
        CHECK(slm_nas_channel_importance(m, &cal, true, s2) == SLM_OK, "importance 2");
        CHECK(s1[7] == 0, "zeroed channel scores %g", s1[7]);
        slm_nas_importance_order(s1, L, F, perm);
        CHECK(perm[F - 1] == 7, "zeroed channel ranked last (got %d)", perm[F - 1]);
        size_t j = (size_t)(L - 1) * F + 5;
        double ratio = s2[j] / s1[j];
        CHECK(fabs(ratio - 10.0) < 1e-5, "scaled down column: score ratio %.9f (want 10)", ratio);
        int nz = 0, sorted = 1;
        for (int i = 0; i < L * F; i++) nz += s1[i] > 0;
        for (int bl = 0; bl < L; bl++)
            for (int k = 1; k < F; k++)
                sorted &= s1[(size_t)bl * F + perm[(size_t)bl * F + k - 1]] >= s1[(size_t)bl * F + perm[(size_t)bl * F + k]];
        CHECK(nz == L * F - 1 && sorted, "%d positive scores, sorted %d", nz, sorted);
    }
    free(s1);
    free(s2);
    free(perm);
    slm_model_free(m);
}

int main(void) {
    slm_set_threads(1); /* tiny models: threads only add synchronisation */
    test_parse();
    test_encode();
    test_apply();
    test_reorder();
    test_importance();
    return slm_test_finish();
}
