/* Packed scoring against the sequential path, on a small random model.
 *
 *  - slm_decode_packed: a token tree (a shared prefix with two branches, an
 *    unrelated sequence) run as one packed call, in n_batch steps smaller
 *    than the call and on top of a prefix decoded before, gives the logits
 *    of decoding each sequence alone with slm_decode; bad spans, positions
 *    and output rows are refused and leave the cache alone.
 *  - slm_eval_score_docs (the run loop's engine): hand-made documents
 *    (contexts of 1-150 tokens, a preamble some documents share, 1-5
 *    choices of 1-14 tokens, choices sharing their first tokens, a repeated
 *    choice, unconditional groups "BOS + choice", a document larger than a
 *    step) give every log-likelihood of slm_eval_score_group within 1e-5
 *    relative, with steps of several sizes and logits budgets, and with a
 *    preamble kept in the cache from step to step; the rows run are counted
 *    exactly on a small tree.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/core.h"
#include "eval/harness.h"
#include "model/forward.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static slm_config small_config(void) {
    return (slm_config){.arch = SLM_ARCH_LLAMA, .n_vocab = 101, .d_model = 64, .n_layers = 2, .n_heads = 4,
                        .n_kv_heads = 2, .head_dim = 16, .d_ff = 96, .max_ctx = 512, .norm_eps = 1e-5f,
                        .rope_theta = 10000.0f, .rope_layout = SLM_ROPE_HALVES, .tied_embeddings = false,
                        .bos_id = -1, .eos_id = -1};
}

static uint64_t g_rng = 88172645463325252ull;
static int32_t rnd(int n) { /* xorshift64 */
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (int32_t)(g_rng % (uint64_t)n);
}

/* ---- slm_decode_packed ------------------------------------------------------------ */

enum { PRE = 10, NA = 25, NB = 15, NC = 12, ROWS = PRE + NA + NB + NC };

/* Rows: prefix (slots 0..9), branch A after it (10..34), branch B after the
 * prefix (35..49), unrelated C (50..61). Spans as the packer makes them. */
typedef struct tree {
    int32_t tok[ROWS], pos[ROWS], off[ROWS + 1], span[ROWS * 2][2];
} tree;

static void tree_build(tree *t) {
    int n = 0;
    t->off[0] = 0;
    for (int s = 0; s < ROWS; s++) {
        t->tok[s] = rnd(101);
        if (s < PRE + NA) {
            t->pos[s] = s;
            t->span[n][0] = 0, t->span[n++][1] = s + 1;
        } else if (s < PRE + NA + NB) {
            t->pos[s] = s - NA;
            t->span[n][0] = 0, t->span[n++][1] = PRE;
            t->span[n][0] = PRE + NA, t->span[n++][1] = s + 1;
        } else {
            t->pos[s] = s - (PRE + NA + NB);
            t->span[n][0] = PRE + NA + NB, t->span[n++][1] = s + 1;
        }
        t->off[s + 1] = n;
    }
}

/* Logits of the three sequences decoded alone, in slot order: [ROWS][V]. */
static void tree_reference(const slm_model *m, const tree *t, float *ref) {
    int V = m->cfg.n_vocab;
    slm_context_params cp = {.n_ctx = 128, .n_batch = 128};
    slm_context *c;
    CHECK(slm_context_new(m, &cp, &c) == SLM_OK, "context: %s", slm_last_error());
    int32_t seq[PRE + NA];
    CHECK(slm_decode(c, t->tok, PRE + NA, true, ref) == SLM_OK, "decode A: %s", slm_last_error());
    memcpy(seq, t->tok, PRE * sizeof *seq);
    memcpy(seq + PRE, t->tok + PRE + NA, NB * sizeof *seq);
    float *lg = malloc(sizeof(float) * (PRE + NB) * (size_t)V);
    slm_context_truncate(c, 0);
    CHECK(slm_decode(c, seq, PRE + NB, true, lg) == SLM_OK, "decode B: %s", slm_last_error());
    memcpy(ref + (size_t)(PRE + NA) * V, lg + (size_t)PRE * V, sizeof(float) * NB * (size_t)V);
    slm_context_truncate(c, 0);
    CHECK(slm_decode(c, t->tok + PRE + NA + NB, NC, true, ref + (size_t)(PRE + NA + NB) * V) == SLM_OK, "decode C");
    free(lg);
    slm_context_free(c);
}

static void test_decode_packed(const slm_model *m) {
    int V = m->cfg.n_vocab;
    tree t;
    tree_build(&t);
    float *ref = malloc(sizeof(float) * ROWS * (size_t)V), *got = malloc(sizeof(float) * ROWS * (size_t)V);
    tree_reference(m, &t, ref);
    int32_t all[ROWS], some[ROWS];
    int n_some = 0;
    for (int r = 0; r < ROWS; r++) {
        all[r] = r;
        if (r % 3 == 1) some[n_some++] = r;
    }
    slm_context_params cp = {.n_ctx = 128, .n_batch = 16}; /* 62 rows: four steps */
    slm_context *c;
    CHECK(slm_context_new(m, &cp, &c) == SLM_OK, "context: %s", slm_last_error());
    slm_packed_rows p = {ROWS, t.tok, t.pos, t.off, &t.span[0][0], all, ROWS};
    CHECK(slm_decode_packed(c, &p, got) == SLM_OK, "packed: %s", slm_last_error());
    CHECK(slm_context_n_past(c) == ROWS, "n_past %d", slm_context_n_past(c));
    CHECK_CLOSE("packed tree vs each sequence alone (all rows)", ref, got, (size_t)ROWS * V, 5e-5);

    /* Every third row's logits only. */
    slm_context_truncate(c, 0);
    p.out_rows = some, p.n_out = n_some;
    CHECK(slm_decode_packed(c, &p, got) == SLM_OK, "packed: %s", slm_last_error());
    float *sel = malloc(sizeof(float) * ROWS * (size_t)V);
    for (int j = 0; j < n_some; j++) memcpy(sel + (size_t)j * V, ref + (size_t)some[j] * V, sizeof(float) * V);
    CHECK_CLOSE("packed tree, every third row's logits", sel, got, (size_t)n_some * V, 5e-5);

    /* The prefix decoded first by slm_decode, the rest packed on top of it. */
    slm_context_truncate(c, 0);
    CHECK(slm_decode(c, t.tok, PRE, false, NULL) == SLM_OK, "prefix");
    int32_t rest[ROWS];
    for (int r = 0; r < ROWS - PRE; r++) rest[r] = r;
    slm_packed_rows q = {ROWS - PRE, t.tok + PRE, t.pos + PRE, t.off, &t.span[t.off[PRE]][0], rest, ROWS - PRE};
    int32_t off[ROWS + 1];
    for (int r = 0; r <= ROWS - PRE; r++) off[r] = t.off[PRE + r] - t.off[PRE];
    q.span_off = off;
    CHECK(slm_decode_packed(c, &q, got) == SLM_OK, "packed on a prefix: %s", slm_last_error());
    CHECK_CLOSE("packed on top of a decoded prefix", ref + (size_t)PRE * V, got, (size_t)(ROWS - PRE) * V, 5e-5);

    /* Refused: a span past its row, a position outside the context, output
     * rows out of order; n_past stays. */
    slm_context_truncate(c, 0);
    tree bad = t;
    bad.span[bad.off[3]][1] = 5;
    p = (slm_packed_rows){ROWS, bad.tok, bad.pos, bad.off, &bad.span[0][0], all, ROWS};
    CHECK(slm_decode_packed(c, &p, got) == SLM_ERR_ARG, "span past its row refused");
    printf("error: %s\n", slm_last_error());
    bad = t;
    bad.pos[7] = 128;
    p.pos = bad.pos, p.span = &t.span[0][0];
    CHECK(slm_decode_packed(c, &p, got) == SLM_ERR_ARG, "position past the context refused");
    int32_t rev[2] = {5, 4};
    p = (slm_packed_rows){ROWS, t.tok, t.pos, t.off, &t.span[0][0], rev, 2};
    CHECK(slm_decode_packed(c, &p, got) == SLM_ERR_ARG, "output rows out of order refused");
    printf("error: %s\n", slm_last_error());
    CHECK(slm_context_n_past(c) == 0, "refused calls leave n_past (%d)", slm_context_n_past(c));
    slm_context_free(c);
    free(ref), free(got), free(sel);
}

/* ---- slm_eval_score_docs ---------------------------------------------------------- */

enum { MAX_DOCS = 24, MAX_SEQS = 8, BOS = 100 };

typedef struct doc_set {
    slm_eval_seq seqs[MAX_DOCS][2][MAX_SEQS]; /* [doc][kind: conditional, unconditional][choice] */
    slm_eval_group g[MAX_DOCS * 2];
    int off[MAX_DOCS + 1];
    double ll[MAX_DOCS][2][MAX_SEQS];
    int n_docs, max_len, max_rows;
} doc_set;

static slm_eval_seq make_seq(const int32_t *ctx, int nc, const int32_t *cont, int nk) {
    slm_eval_seq s = {malloc(sizeof(int32_t) * (size_t)(nc + nk)), nc + nk, nc};
    memcpy(s.tokens, ctx, sizeof(int32_t) * (size_t)nc);
    memcpy(s.tokens + nc, cont, sizeof(int32_t) * (size_t)nk);
    return s;
}

/* Documents 0..n-1; document `big` has a 150-token context; even ones
 * also have an unconditional group when unc. */
static void docs_build(doc_set *ds, int n, int big, bool shared_preamble, bool unc) {
    memset(ds, 0, sizeof *ds);
    int32_t pre[8], ctx[160], cont[MAX_SEQS][16], bos = BOS;
    for (int i = 0; i < 8; i++) pre[i] = rnd(100);
    ds->n_docs = n;
    for (int d = 0; d < n; d++) {
        int nc = d == big ? 150 : 1 + rnd(40), n_ch = 1 + rnd(5);
        for (int i = 0; i < nc; i++) ctx[i] = rnd(100);
        if (shared_preamble || d % 3 == 0) memcpy(ctx, pre, sizeof(int32_t) * (size_t)(nc < 8 ? nc : 8));
        int len[MAX_SEQS];
        for (int i = 0; i < n_ch; i++) {
            len[i] = 1 + rnd(14);
            for (int j = 0; j < len[i]; j++) cont[i][j] = rnd(100);
        }
        if (n_ch > 2) cont[1][0] = cont[0][0], cont[1][1] = cont[0][1]; /* shares its first tokens */
        if (n_ch > 3) len[3] = len[2], memcpy(cont[3], cont[2], sizeof cont[2]); /* repeated choice */
        ds->off[d + 1] = ds->off[d];
        for (int k = 0; k < (unc && d % 2 == 0 ? 2 : 1); k++) {
            for (int i = 0; i < n_ch; i++) {
                slm_eval_seq *s = &ds->seqs[d][k][i];
                *s = k == 0 ? make_seq(ctx, nc, cont[i], len[i]) : make_seq(&bos, 1, cont[i], len[i]);
                if (s->n > ds->max_len) ds->max_len = s->n;
            }
            ds->g[ds->off[d + 1]++] = (slm_eval_group){ds->seqs[d][k], n_ch, ds->ll[d][k]};
            int rows = slm_eval_group_logits_rows(ds->seqs[d][k], n_ch);
            if (rows > ds->max_rows) ds->max_rows = rows;
        }
    }
}

static void docs_free(doc_set *ds) {
    for (int d = 0; d < ds->n_docs; d++)
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < MAX_SEQS; i++) free(ds->seqs[d][k][i].tokens);
}

/* The sequential path as the run loop used it before packing: group by
 * group, the cache carried over. Returns the tokens decoded. */
static int64_t score_sequential(const slm_model *m, doc_set *ds, double *out) {
    int V = m->cfg.n_vocab;
    slm_context_params cp = {.n_ctx = ds->max_len, .n_batch = ds->max_len};
    slm_context *c;
    CHECK(slm_context_new(m, &cp, &c) == SLM_OK, "context: %s", slm_last_error());
    int32_t *cache = malloc(sizeof(int32_t) * (size_t)ds->max_len);
    float *logits = malloc(sizeof(float) * (size_t)ds->max_rows * V);
    int n_cache = 0, n = 0;
    int64_t dec = 0;
    for (int j = 0; j < ds->off[ds->n_docs]; j++) {
        const slm_eval_group *g = &ds->g[j];
        CHECK(slm_eval_score_group(c, V, g->seqs, g->n, cache, &n_cache, logits, g->ll, &dec) == SLM_OK,
              "score group %d: %s", j, slm_last_error());
        for (int i = 0; i < g->n; i++) out[n++] = g->ll[i];
    }
    free(cache), free(logits);
    slm_context_free(c);
    return dec;
}

static int64_t score_packed(const slm_model *m, doc_set *ds, int max_rows, int max_out, double *out) {
    int V = m->cfg.n_vocab;
    int n_ctx = ds->max_len > max_rows ? ds->max_len : max_rows;
    slm_context_params cp = {.n_ctx = n_ctx, .n_batch = n_ctx};
    slm_context *c;
    slm_eval_packer *p;
    CHECK(slm_context_new(m, &cp, &c) == SLM_OK, "context: %s", slm_last_error());
    CHECK(slm_eval_packer_new(max_rows, max_out, &p) == SLM_OK, "packer: %s", slm_last_error());
    int rows = ds->max_rows > max_out ? ds->max_rows : max_out;
    int32_t *cache = malloc(sizeof(int32_t) * (size_t)n_ctx);
    float *logits = malloc(sizeof(float) * (size_t)rows * V);
    int64_t dec = 0;
    int n_cache = 0;
    for (int j = 0; j < ds->off[ds->n_docs]; j++)
        for (int i = 0; i < ds->g[j].n; i++) ds->g[j].ll[i] = NAN;
    CHECK(slm_eval_score_docs(c, p, V, ds->g, ds->off, ds->n_docs, cache, &n_cache, logits, NULL, &dec) == SLM_OK,
          "score docs: %s", slm_last_error());
    int n = 0;
    for (int j = 0; j < ds->off[ds->n_docs]; j++)
        for (int i = 0; i < ds->g[j].n; i++) out[n++] = ds->g[j].ll[i];
    free(cache), free(logits);
    slm_eval_packer_free(p);
    slm_context_free(c);
    return dec;
}

static void compare(const char *what, const double *ref, const double *got, int n) {
    double worst = 0;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        double rel = fabs(got[i] - ref[i]) / fmax(1.0, fabs(ref[i]));
        if (!(rel <= worst)) worst = rel; /* NaN (never scored) counts as worst */
        if (!(rel <= 1e-5) && bad++ < 3) CHECK(false, "%s: LL %d: %.8f vs sequential %.8f", what, i, got[i], ref[i]);
    }
    printf("%s: %d log-likelihoods, max relative |d| vs sequential %.2e (tol 1e-5)\n", what, n, worst);
}

static void test_score_docs(const slm_model *m) {
    static doc_set ds;
    static double ref[MAX_DOCS * 2 * MAX_SEQS], got[MAX_DOCS * 2 * MAX_SEQS];
    struct {
        const char *name;
        bool preamble, unc;
        int max_rows, max_out;
    } cases[] = {
        {"steps of 128 rows, 48 logits rows", false, true, 128, 48},
        {"steps of 512 rows (one but the big document)", false, true, 512, 512},
        {"steps of 40 rows (many documents alone)", false, true, 40, 40},
        /* every step's tree starts with the preamble: kept in the cache between steps */
        {"shared preamble, steps of 100 rows", true, false, 100, 100},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        docs_build(&ds, 20, 5, cases[k].preamble, cases[k].unc);
        int n = 0;
        for (int j = 0; j < ds.off[ds.n_docs]; j++) n += ds.g[j].n;
        int64_t dseq = score_sequential(m, &ds, ref);
        int64_t dpack = score_packed(m, &ds, cases[k].max_rows, cases[k].max_out, got);
        compare(cases[k].name, ref, got, n);
        printf("  rows run: %lld packed, %lld sequential\n", (long long)dpack, (long long)dseq);
        CHECK(dpack <= dseq, "%s: packing runs more rows (%lld) than the sequential path (%lld)", cases[k].name,
              (long long)dpack, (long long)dseq);
        docs_free(&ds);
    }

    /* Exact rows: context [5 6 7], choices [8 9] and [8 10 11]. The tree
     * feeds 5 6 7 8 10 (5 rows); group by group decodes the prefix 5 6, then
     * 7 8 and 7 8 10 (7 rows). A second document with [8 12 11] for the
     * second choice needs a node more, so with 5-row steps it runs in a
     * step of its own and reuses the stem's 5 6 (the row of 7 predicts a
     * continuation token, so it runs again): 3 rows, where group by group
     * runs 5. */
    memset(&ds, 0, sizeof ds);
    int32_t c3[3] = {5, 6, 7}, a[2] = {8, 9}, b[2][3] = {{8, 10, 11}, {8, 12, 11}};
    for (int d = 0; d < 2; d++) {
        ds.seqs[d][0][0] = make_seq(c3, 3, a, 2);
        ds.seqs[d][0][1] = make_seq(c3, 3, b[d], 3);
        ds.g[d] = (slm_eval_group){ds.seqs[d][0], 2, ds.ll[d][0]};
        ds.off[d + 1] = d + 1;
    }
    ds.n_docs = 1, ds.max_len = 6, ds.max_rows = 3;
    int64_t dseq = score_sequential(m, &ds, ref), dpack = score_packed(m, &ds, 16, 16, got);
    CHECK(dseq == 7 && dpack == 5, "rows run: %lld sequential (7), %lld packed (5)", (long long)dseq,
          (long long)dpack);
    compare("small tree", ref, got, 2);
    ds.n_docs = 2;
    dseq = score_sequential(m, &ds, ref), dpack = score_packed(m, &ds, 5, 5, got);
    CHECK(dseq == 12 && dpack == 8, "twice, a step each: rows run %lld sequential (12), %lld packed (8)",
          (long long)dseq, (long long)dpack);
    compare("small tree twice, a step each", ref, got, 4);
    docs_free(&ds);
}

int main(void) {
    slm_set_threads(2);
    slm_config cfg = small_config();
    slm_model *m;
    if (!CHECK(slm_model_new_random(&cfg, 11, &m) == SLM_OK, "model: %s", slm_last_error())) return slm_test_finish();
    test_decode_packed(m);
    test_score_docs(m);
    slm_model_free(m);
    return slm_test_finish();
}
