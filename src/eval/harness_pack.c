/* Packed scoring: the requests of several documents in one forward step.
 *
 * Scoring one choice at a time runs GEMMs of 10-30 rows, so fp32 weights
 * are read from memory once per continuation. Here the sequences of whole
 * documents (every request group of each) go into one token tree: a node
 * per distinct (prefix, token), so a shared prefix (a document's context,
 * BOS, a preamble common to the step) is one run of nodes and every choice
 * adds only the tokens after it. Only tokens[0 .. n-1) of a sequence are
 * nodes: the last one is predicted, never fed.
 *
 * The step lays the tree out depth first in cache slots 0..N-1 (the stem,
 * the chain from the root before the first branch, takes slots 0..B-1 in
 * order, which is a plain causal sequence); a node's RoPE position is its
 * depth and it attends to its ancestors and itself, a few runs of slots
 * (one more run per branch taken on the way down). slm_decode_packed runs
 * the rows and makes logits only for nodes that predict a continuation
 * token. The stem stays valid in the cache afterwards (cache/n_cache), so
 * the next step or a per-group score reuses what it shares with it, as
 * slm_eval_score_group does between groups.
 *
 * Node counts bound a step (max_rows rows, max_out logits rows); a
 * document's groups are added whole or not at all (slm_eval_packer_add
 * rolls the tree back when they do not fit).
 */
#include "eval/harness.h"
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

typedef struct pack_node {
    int32_t token;
    int depth;       /* its position in every sequence through it = RoPE position */
    int parent;      /* node, -1 for a root */
    int child, next; /* first child and next sibling, -1 when none (new ones go first) */
    int out;         /* logits row, or -1 when no continuation token is predicted from here */
    int slot;        /* cache slot in the step's layout */
    int span0, n_span; /* its spans: span[2*span0 ..] (set by the layout) */
} pack_node;

typedef struct pack_seq {
    const slm_eval_seq *s;
    double *ll;
} pack_seq;

struct slm_eval_packer {
    int max_rows, max_out;
    pack_node *nodes; /* [max_rows] */
    int n_nodes, n_out, root; /* root: first root node (siblings by next), -1 when empty */
    pack_seq *seqs;   /* [max_rows] sequences to score, with where their log-likelihood goes */
    int n_seqs, n_docs;
    /* the step's rows, in slot order from the first slot not reused */
    int32_t *tokens, *pos, *span_off, *out_rows, *stack; /* [max_rows] ([max_rows + 1] span_off) */
    int32_t *span;    /* [cap_span][2] spans of all nodes, in slot order */
    int64_t cap_span;
    double *mx, *lse; /* [max_out] log-softmax terms of each logits row */
};

slm_status slm_eval_packer_new(int max_rows, int max_out, slm_eval_packer **out) {
    *out = NULL;
    if (max_rows < 1 || max_out < 1) return slm_fail(SLM_ERR_ARG, "packer: %d rows, %d outputs", max_rows, max_out);
    slm_eval_packer *p = slm_calloc(1, sizeof *p, "packer");
    if (!p) return SLM_ERR_NOMEM;
    size_t n = (size_t)max_rows;
    p->max_rows = max_rows;
    p->max_out = max_out;
    p->root = -1;
    p->nodes = slm_malloc(n * sizeof *p->nodes, "packer nodes");
    p->seqs = slm_malloc(n * sizeof *p->seqs, "packer sequences");
    p->tokens = slm_malloc(n * sizeof(int32_t), "packed tokens");
    p->pos = slm_malloc(n * sizeof(int32_t), "packed positions");
    p->span_off = slm_malloc((n + 1) * sizeof(int32_t), "packed span offsets");
    p->out_rows = slm_malloc(n * sizeof(int32_t), "packed output rows");
    p->stack = slm_malloc(n * sizeof(int32_t), "packer stack");
    p->mx = slm_malloc((size_t)max_out * sizeof(double), "log-softmax maxima");
    p->lse = slm_malloc((size_t)max_out * sizeof(double), "log-softmax sums");
    if (!p->nodes || !p->seqs || !p->tokens || !p->pos || !p->span_off || !p->out_rows || !p->stack || !p->mx ||
        !p->lse) {
        slm_eval_packer_free(p);
        return SLM_ERR_NOMEM;
    }
    *out = p;
    return SLM_OK;
}

void slm_eval_packer_free(slm_eval_packer *p) {
    if (!p) return;
    free(p->nodes);
    free(p->seqs);
    free(p->tokens);
    free(p->pos);
    free(p->span_off);
    free(p->out_rows);
    free(p->stack);
    free(p->span);
    free(p->mx);
    free(p->lse);
    free(p);
}

int slm_eval_packer_docs(const slm_eval_packer *p) { return p->n_docs; }

/* ---- building the tree ------------------------------------------------------------ */

/* The child of parent (-1: a root) holding token t, or -1. */
static int find_child(const slm_eval_packer *p, int parent, int32_t t) {
    int v = parent < 0 ? p->root : p->nodes[parent].child;
    while (v >= 0 && p->nodes[v].token != t) v = p->nodes[v].next;
    return v;
}

/* Adds s's fed tokens; false when the tree would outgrow its bounds. */
static bool insert_seq(slm_eval_packer *p, const slm_eval_seq *s) {
    int cur = -1;
    for (int j = 0; j < s->n - 1; j++) {
        int v = find_child(p, cur, s->tokens[j]);
        if (v < 0) {
            if (p->n_nodes == p->max_rows) return false;
            v = p->n_nodes++;
            int *head = cur < 0 ? &p->root : &p->nodes[cur].child;
            p->nodes[v] = (pack_node){.token = s->tokens[j], .depth = j, .parent = cur, .child = -1, .next = *head,
                                      .out = -1};
            *head = v;
        }
        if (j >= s->cont_start - 1 && p->nodes[v].out < 0) {
            if (p->n_out == p->max_out) return false;
            p->nodes[v].out = p->n_out++;
        }
        cur = v;
    }
    return true;
}

/* Drops everything added after the tree had n_nodes nodes and n_out outputs:
 * new nodes are at the heads of their sibling lists. */
static void rollback(slm_eval_packer *p, int n_nodes, int n_out, int n_seqs) {
    while (p->root >= n_nodes) p->root = p->nodes[p->root].next;
    for (int v = 0; v < n_nodes; v++) {
        pack_node *nd = &p->nodes[v];
        while (nd->child >= n_nodes) nd->child = p->nodes[nd->child].next;
        if (nd->out >= n_out) nd->out = -1;
    }
    p->n_nodes = n_nodes;
    p->n_out = n_out;
    p->n_seqs = n_seqs;
}

slm_status slm_eval_packer_add(slm_eval_packer *p, const slm_eval_group *g, int n_groups, bool *added) {
    int n_nodes = p->n_nodes, n_out = p->n_out, n_seqs = p->n_seqs;
    *added = false;
    for (int k = 0; k < n_groups; k++)
        for (int i = 0; i < g[k].n; i++) {
            const slm_eval_seq *s = &g[k].seqs[i];
            if (s->cont_start < 1 || s->cont_start >= s->n)
                return slm_fail(SLM_ERR_ARG, "packer: sequence of %d tokens with its continuation at %d", s->n,
                                s->cont_start);
            if (p->n_seqs == p->max_rows || !insert_seq(p, s)) {
                rollback(p, n_nodes, n_out, n_seqs);
                return SLM_OK;
            }
            p->seqs[p->n_seqs++] = (pack_seq){s, &g[k].ll[i]};
        }
    p->n_docs++;
    *added = true;
    return SLM_OK;
}

/* ---- running a step ----------------------------------------------------------------- */

/* Room for n more spans. */
static slm_status span_reserve(slm_eval_packer *p, int64_t used, int64_t n) {
    if (used + n <= p->cap_span) return SLM_OK;
    int64_t cap = p->cap_span ? p->cap_span : 4 * (int64_t)p->max_rows;
    while (cap < used + n) cap *= 2;
    int32_t *s = realloc(p->span, (size_t)cap * 2 * sizeof *s);
    if (!s) return slm_fail(SLM_ERR_NOMEM, "packer: out of memory for %lld attention spans", (long long)cap);
    p->span = s;
    p->cap_span = cap;
    return SLM_OK;
}

/* Depth-first layout: slots, spans (a node's ancestors' runs, then itself:
 * it extends its parent's last run when it sits right after it) and the
 * rows of slots >= reuse, whose spans start at span[2 * *rows_span0]. */
static slm_status layout(slm_eval_packer *p, int reuse, int *n_rows, int64_t *rows_span0) {
    int sp = 0, slot = 0, rows = 0, n_out = 0;
    int64_t used = 0, first = 0;
    for (int v = p->root; v >= 0; v = p->nodes[v].next) p->stack[sp++] = v;
    while (sp > 0) {
        pack_node *nd = &p->nodes[p->stack[--sp]];
        const pack_node *up = nd->parent >= 0 ? &p->nodes[nd->parent] : NULL;
        bool extend = up && up->slot == slot - 1;
        int n_span = up ? up->n_span + !extend : 1;
        slm_status st = span_reserve(p, used, n_span);
        if (st) return st;
        int32_t *s = p->span + 2 * used;
        if (up) memcpy(s, p->span + 2 * (int64_t)up->span0, (size_t)up->n_span * 2 * sizeof *s);
        if (extend) s[2 * n_span - 1] = slot + 1;
        else s[2 * n_span - 2] = slot, s[2 * n_span - 1] = slot + 1;
        nd->slot = slot;
        nd->span0 = (int)used;
        nd->n_span = n_span;
        if (slot == reuse) first = used;
        if (slot >= reuse) {
            p->tokens[rows] = nd->token;
            p->pos[rows] = nd->depth;
            p->span_off[rows] = (int32_t)(used - first);
            if (nd->out >= 0) {
                nd->out = n_out;
                p->out_rows[n_out++] = rows;
            }
            rows++;
        }
        used += n_span;
        slot++;
        for (int c = nd->child; c >= 0; c = p->nodes[c].next) p->stack[sp++] = c;
    }
    p->span_off[rows] = (int32_t)(used - first);
    *n_rows = rows;
    *rows_span0 = first;
    return SLM_OK;
}

/* Stem nodes kept in the cache from before: the tokens it shares with the
 * stem, up to the first node whose logits are needed. */
static int stem_reuse(const slm_eval_packer *p, const int32_t *cache, int n_cache) {
    int r = 0;
    for (int v = p->root; v >= 0 && p->nodes[v].next < 0; v = p->nodes[v].child, r++)
        if (r >= n_cache || cache[r] != p->nodes[v].token || p->nodes[v].out >= 0) break;
    return r;
}

/* Writes the stem's tokens to cache[0..B) and returns B. */
static int stem_store(const slm_eval_packer *p, int32_t *cache) {
    int b = 0;
    for (int v = p->root; v >= 0 && p->nodes[v].next < 0; v = p->nodes[v].child) cache[b++] = p->nodes[v].token;
    return b;
}

static void reset(slm_eval_packer *p) {
    p->n_nodes = p->n_out = p->n_seqs = p->n_docs = 0;
    p->root = -1;
}

slm_status slm_eval_packer_run(slm_eval_packer *p, slm_context *ctx, int n_vocab, int32_t *cache, int *n_cache,
                               float *logits, int64_t *decoded) {
    if (p->n_seqs == 0) return SLM_OK;
    int reuse = stem_reuse(p, cache, *n_cache), rows;
    int64_t span0;
    slm_status st = layout(p, reuse, &rows, &span0);
    if (st) goto done;
    slm_context_truncate(ctx, reuse);
    *n_cache = reuse;
    if (rows > 0) {
        slm_packed_rows pr = {.n = rows, .tokens = p->tokens, .pos = p->pos, .span_off = p->span_off,
                              .span = p->span + 2 * span0, .out_rows = p->out_rows, .n_out = p->n_out};
        if ((st = slm_decode_packed(ctx, &pr, logits))) goto done;
        if (decoded) *decoded += rows;
    }
    *n_cache = stem_store(p, cache);

#pragma omp parallel for schedule(dynamic, 8)
    for (int r = 0; r < p->n_out; r++) slm_eval_row_lse(logits + (int64_t)r * n_vocab, n_vocab, &p->mx[r], &p->lse[r]);
    for (int i = 0; i < p->n_seqs; i++) {
        const slm_eval_seq *s = p->seqs[i].s;
        double sum = 0.0;
        int v = -1;
        for (int j = 0; j < s->n - 1; j++) {
            v = find_child(p, v, s->tokens[j]);
            if (j < s->cont_start - 1) continue;
            int r = p->nodes[v].out;
            sum += (double)logits[(int64_t)r * n_vocab + s->tokens[j + 1]] - p->mx[r] - p->lse[r];
        }
        *p->seqs[i].ll = sum;
    }
done:
    reset(p);
    return st;
}
