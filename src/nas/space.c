/* The search space: parsing, encoding, decoding, applying (see space.h). */
#include "nas/space.h"
#include "compress/prune/prune.h"
#include "nas/nsga2.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* Sorts and removes repeats; returns the new count. */
static int sort_unique(int *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_int);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (k == 0 || v[i] != v[k - 1]) v[k++] = v[i];
    return k;
}

int slm_nas_n_genes(const slm_nas_space *s) { return 1 + s->n_layers; }

slm_status slm_nas_space_init(slm_nas_space *s, int L, int F, const int *depths, int n_depths, const int *widths,
                              int n_widths, const char *order) {
    memset(s, 0, sizeof *s);
    if (L < 1 || F < 1) return slm_fail(SLM_ERR_ARG, "search space: model with %d blocks of MLP width %d", L, F);
    if (n_depths < 1 || n_depths > SLM_NAS_MAX_CHOICES || n_widths < 1 || n_widths > SLM_NAS_MAX_CHOICES)
        return slm_fail(SLM_ERR_ARG, "search space: 1..%d block counts and MLP widths, got %d and %d",
                        SLM_NAS_MAX_CHOICES, n_depths, n_widths);
    s->n_layers = L;
    s->d_ff = F;
    memcpy(s->depths, depths, (size_t)n_depths * sizeof *depths);
    memcpy(s->widths, widths, (size_t)n_widths * sizeof *widths);
    s->n_depths = sort_unique(s->depths, n_depths);
    s->n_widths = sort_unique(s->widths, n_widths);
    for (int i = 0; i < s->n_depths; i++)
        if (s->depths[i] < 1 || s->depths[i] > L)
            return slm_fail(SLM_ERR_ARG, "search space: block count %d out of range 1..%d", s->depths[i], L);
    for (int i = 0; i < s->n_widths; i++)
        if (s->widths[i] < 1 || s->widths[i] > F)
            return slm_fail(SLM_ERR_ARG, "search space: MLP width %d out of range 1..%d", s->widths[i], F);
    snprintf(s->order, sizeof s->order, "%s", order ? order : "first");
    bool first = strcmp(s->order, "first") == 0;
    slm_prune_strategy ps = SLM_PRUNE_MAX_GAP;
    if (!first) {
        slm_status st = slm_prune_strategy_parse(s->order, &ps);
        if (st || ps == SLM_PRUNE_BLOCK_INFLUENCE)
            return slm_fail(SLM_ERR_ARG, "search space: unknown block order '%s'; known: first, max-gap, input, output, middle, both",
                            s->order);
    }
    s->keep = slm_calloc((size_t)s->n_depths * (size_t)L, sizeof *s->keep, "search space");
    if (!s->keep) return SLM_ERR_NOMEM;
    for (int d = 0; d < s->n_depths; d++) {
        bool *k = s->keep + (size_t)d * L;
        if (first) {
            for (int i = 0; i < s->depths[d]; i++) k[i] = true;
            continue;
        }
        bool *drop = slm_calloc((size_t)L, sizeof *drop, "search space");
        slm_status st = drop ? slm_prune_select(L, L - s->depths[d], ps, NULL, drop) : SLM_ERR_NOMEM;
        for (int i = 0; !st && i < L; i++) k[i] = !drop[i];
        free(drop);
        if (st) {
            slm_error_prefix("search space");
            slm_nas_space_free(s);
            return st;
        }
    }
    return SLM_OK;
}

/* "a,b,c" of integers, or of percentages of F ("50%") when pct_of > 0. */
static slm_status parse_list(const char *text, const char *what, int pct_of, int *v, int *n) {
    *n = 0;
    if (!text || !*text) return slm_fail(SLM_ERR_ARG, "search space: empty list of %s", what);
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno || !(x > 0) || x > 1e7)
            return slm_fail(SLM_ERR_ARG, "search space: bad %s '%s'", what, text);
        if (*end == '%') {
            if (pct_of <= 0) return slm_fail(SLM_ERR_ARG, "search space: %s cannot be a percentage ('%s')", what, text);
            double w = x / 100.0 * pct_of;
            /* a multiple of 32 when F is one, so quantised rows can be cut there */
            int iw = pct_of % 32 == 0 ? (int)(w / 32.0 + 0.5) * 32 : (int)(w + 0.5);
            x = iw < 1 ? 1 : iw;
            end++;
        } else if (x != (int)x) {
            return slm_fail(SLM_ERR_ARG, "search space: %s '%s' is not an integer", what, text);
        }
        if (*n == SLM_NAS_MAX_CHOICES) return slm_fail(SLM_ERR_ARG, "search space: more than %d %s", SLM_NAS_MAX_CHOICES, what);
        v[(*n)++] = (int)x;
        while (isspace((unsigned char)*end)) end++;
        if (*end == ',') end++;
        else if (*end) return slm_fail(SLM_ERR_ARG, "search space: bad %s '%s'", what, text);
        p = end;
    }
    return SLM_OK;
}

slm_status slm_nas_space_parse(slm_nas_space *s, int L, int F, const char *depths, const char *widths,
                               const char *order) {
    memset(s, 0, sizeof *s);
    int d[SLM_NAS_MAX_CHOICES], w[SLM_NAS_MAX_CHOICES], nd, nw;
    slm_status st = parse_list(depths, "block counts", 0, d, &nd);
    if (!st) st = parse_list(widths, "MLP widths", F, w, &nw);
    if (!st) st = slm_nas_space_init(s, L, F, d, nd, w, nw, order);
    return st;
}

void slm_nas_space_free(slm_nas_space *s) {
    free(s->keep);
    s->keep = NULL;
}

double slm_nas_space_size(const slm_nas_space *s) {
    double total = 0;
    for (int d = 0; d < s->n_depths; d++) {
        double n = 1;
        for (int i = 0; i < s->depths[d]; i++) n *= s->n_widths;
        total += n;
    }
    return total;
}

slm_status slm_nas_decode(const slm_nas_space *s, const int *genes, int *widths) {
    int L = s->n_layers;
    if (genes[0] < 0 || genes[0] >= s->n_depths)
        return slm_fail(SLM_ERR_ARG, "sub-network: depth gene %d out of range 0..%d", genes[0], s->n_depths - 1);
    const bool *k = s->keep + (size_t)genes[0] * L;
    for (int i = 0; i < L; i++) {
        int g = genes[1 + i];
        if (g < 0 || g >= s->n_widths)
            return slm_fail(SLM_ERR_ARG, "sub-network: width gene of block %d is %d, out of range 0..%d", i, g,
                            s->n_widths - 1);
        widths[i] = k[i] ? s->widths[g] : 0;
    }
    return SLM_OK;
}

slm_status slm_nas_encode(const slm_nas_space *s, const int *widths, int *genes) {
    int L = s->n_layers, d = -1;
    for (int j = 0; j < s->n_depths && d < 0; j++) {
        bool match = true;
        for (int i = 0; i < L && match; i++) match = s->keep[(size_t)j * L + i] == (widths[i] > 0);
        if (match) d = j;
    }
    if (d < 0) return slm_fail(SLM_ERR_ARG, "sub-network: its kept blocks are not a block count of the space (order %s)", s->order);
    genes[0] = d;
    for (int i = 0; i < L; i++) {
        genes[1 + i] = 0;
        if (!widths[i]) continue;
        int g = -1;
        for (int j = 0; j < s->n_widths; j++)
            if (s->widths[j] == widths[i]) g = j;
        if (g < 0) return slm_fail(SLM_ERR_ARG, "sub-network: block %d has MLP width %d, not in the space", i, widths[i]);
        genes[1 + i] = g;
    }
    return SLM_OK;
}

void slm_nas_canon(const slm_nas_space *s, const int *genes, int *out) {
    int L = s->n_layers, d = genes[0] >= 0 && genes[0] < s->n_depths ? genes[0] : 0;
    out[0] = genes[0];
    for (int i = 0; i < L; i++) out[1 + i] = s->keep[(size_t)d * L + i] ? genes[1 + i] : 0;
}

void slm_nas_random(const slm_nas_space *s, uint64_t *rng, int *genes) {
    genes[0] = slm_nas_rng_int(rng, s->n_depths);
    for (int i = 0; i < s->n_layers; i++) genes[1 + i] = slm_nas_rng_int(rng, s->n_widths);
}

void slm_nas_features(const slm_nas_space *s, const int *genes, double *feat) {
    int L = s->n_layers;
    const bool *k = s->keep + (size_t)genes[0] * L;
    feat[0] = (double)s->depths[genes[0]] / L;
    for (int i = 0; i < L; i++) feat[1 + i] = k[i] ? (double)s->widths[genes[1 + i]] / s->d_ff : 0.0;
}

slm_status slm_nas_apply(slm_model *m, const int *widths) {
    int L = m->cfg.n_layers, n_kept = 0;
    for (int i = 0; i < L; i++) {
        if (widths[i] < 0 || widths[i] > m->cfg.d_ff)
            return slm_fail(SLM_ERR_ARG, "sub-network: block %d MLP width %d out of range 0..%d", i, widths[i], m->cfg.d_ff);
        n_kept += widths[i] > 0;
    }
    if (!n_kept) return slm_fail(SLM_ERR_ARG, "sub-network: every block is dropped");
    for (int i = 0; i < L; i++) {
        m->blocks[i].kept = widths[i] > 0;
        if (widths[i] > 0) {
            slm_status st = slm_block_set_mlp_width(m, i, widths[i]);
            if (st) return st;
        }
    }
    return SLM_OK;
}

void slm_nas_full_widths(const slm_model *m, int *widths) {
    for (int i = 0; i < m->cfg.n_layers; i++) widths[i] = m->cfg.d_ff;
}
