/* Layer pruning (prune.h): block selection by truncation configuration or
 * block influence, and the plan change. */
#include "compress/prune/prune.h"
#include "model/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_names[SLM_PRUNE_STRATEGY_COUNT] = {
    [SLM_PRUNE_MAX_GAP] = "max-gap", [SLM_PRUNE_INPUT] = "input",   [SLM_PRUNE_OUTPUT] = "output",
    [SLM_PRUNE_MIDDLE] = "middle",   [SLM_PRUNE_BOTH] = "both",     [SLM_PRUNE_BLOCK_INFLUENCE] = "block-influence",
};

const char *slm_prune_strategy_name(slm_prune_strategy s) {
    return (unsigned)s < SLM_PRUNE_STRATEGY_COUNT ? k_names[s] : "?";
}

slm_status slm_prune_strategy_parse(const char *s, slm_prune_strategy *out) {
    for (int i = 0; i < SLM_PRUNE_STRATEGY_COUNT; i++)
        if (strcmp(s, k_names[i]) == 0) {
            *out = (slm_prune_strategy)i;
            return SLM_OK;
        }
    return slm_fail(SLM_ERR_ARG,
                    "unknown pruning strategy '%s'; known: max-gap input output middle both block-influence", s);
}

static void drop_range(bool *drop, int from, int n) {
    for (int i = 0; i < n; i++) drop[from + i] = true;
}

slm_status slm_prune_select(int L, int K, slm_prune_strategy s, const double *bi, bool *drop) {
    if ((unsigned)s >= SLM_PRUNE_STRATEGY_COUNT) return slm_fail(SLM_ERR_ARG, "pruning strategy %d", (int)s);
    bool keep_ends = s != SLM_PRUNE_BLOCK_INFLUENCE;
    int most = keep_ends ? L - 2 : L - 1;
    if (K < 0 || K > most)
        return slm_fail(SLM_ERR_ARG, "--drop %d: %s can drop 0..%d of the model's %d blocks%s", K,
                        k_names[s], most < 0 ? 0 : most, L, keep_ends ? " (the first and last stay)" : "");
    memset(drop, 0, (size_t)L * sizeof *drop);
    if (K == 0) return SLM_OK;
    switch (s) {
    case SLM_PRUNE_MAX_GAP: {
        int n_keep = L - K; /* >= 2 */
        for (int i = 0; i < L; i++) drop[i] = true;
        for (int i = 0; i < n_keep; i++) drop[(int)lround((double)i * (L - 1) / (n_keep - 1))] = false;
        break;
    }
    case SLM_PRUNE_INPUT: drop_range(drop, L - 1 - K, K); break;
    case SLM_PRUNE_OUTPUT: drop_range(drop, 1, K); break;
    case SLM_PRUNE_MIDDLE: drop_range(drop, 1 + (L - 2 - K) / 2, K); break;
    case SLM_PRUNE_BOTH:
        drop_range(drop, 1, (K + 1) / 2);
        drop_range(drop, L - 1 - K / 2, K / 2);
        break;
    case SLM_PRUNE_BLOCK_INFLUENCE: {
        if (!bi) return slm_fail(SLM_ERR_ARG, "block-influence pruning needs the block influence scores");
        for (int k = 0; k < K; k++) { /* K smallest, ties to the lower index; NaN (already dropped) never */
            int best = -1;
            for (int i = 0; i < L; i++)
                if (!drop[i] && !isnan(bi[i]) && (best < 0 || bi[i] < bi[best])) best = i;
            if (best < 0) return slm_fail(SLM_ERR_ARG, "--drop %d: only %d blocks have a block influence score", K, k);
            drop[best] = true;
        }
        break;
    }
    default: break;
    }
    return SLM_OK;
}

/* Per-row cosine of a and b [T][D], summed into *sum (double). */
static void add_cosines(const float *a, const float *b, int T, int D, double *sum) {
    for (int t = 0; t < T; t++) {
        const float *x = a + (int64_t)t * D, *y = b + (int64_t)t * D;
        double xy = 0, xx = 0, yy = 0;
        for (int j = 0; j < D; j++) {
            xy += (double)x[j] * y[j];
            xx += (double)x[j] * x[j];
            yy += (double)y[j] * y[j];
        }
        *sum += xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : 1.0; /* a zero row is not moved by the block */
    }
}

slm_status slm_prune_block_influence(const slm_model *m, const slm_calib *cal, bool quiet, double *bi) {
    const slm_config *cfg = &m->cfg;
    const int L = cfg->n_layers, D = cfg->d_model, T = cal->seq_len;
    if (cal->n_seqs < 1 || T < 1) return slm_fail(SLM_ERR_ARG, "block influence needs calibration data");
    slm_context_params cp = {.n_ctx = T, .n_batch = T};
    slm_context *ctx = NULL;
    slm_status st = slm_context_new(m, &cp, &ctx);
    float *x = st ? NULL : slm_malloc((size_t)T * D * 2 * sizeof(float), "block influence rows");
    double *cos_sum = st ? NULL : slm_calloc((size_t)L, sizeof *cos_sum, "block influence sums");
    if (!st && (!x || !cos_sum)) st = SLM_ERR_NOMEM;
    float *in = x, *out = x ? x + (int64_t)T * D : NULL;
    slm_progress pr;
    pr.quiet = quiet;
    slm_progress_begin(&pr, "block influence", "seq", cal->n_seqs);
    /* Sequence by sequence through all blocks: memory is two [T][D] rows. */
    for (int s = 0; !st && s < cal->n_seqs; s++) {
        const int32_t *tok = cal->tokens + (int64_t)s * T;
        for (int t = 0; !st && t < T; t++) {
            if (tok[t] < 0 || tok[t] >= cfg->n_vocab) st = slm_fail(SLM_ERR_ARG, "calibration token %d out of range", tok[t]);
            else slm_model_embed_row(m, tok[t], out + (int64_t)t * D);
        }
        for (int l = 0; !st && l < L; l++) {
            if (!m->blocks[l].kept) continue;
            memcpy(in, out, (size_t)T * D * sizeof(float));
            st = slm_block_forward_rows(ctx, l, out, T, NULL);
            if (!st) add_cosines(in, out, T, D, &cos_sum[l]);
        }
        slm_progress_update(&pr, s + 1);
    }
    slm_progress_end(&pr);
    if (!st) {
        double n = (double)cal->n_seqs * T;
        for (int l = 0; l < L; l++) bi[l] = m->blocks[l].kept ? 1.0 - cos_sum[l] / n : NAN;
    }
    free(cos_sum);
    free(x);
    slm_context_free(ctx);
    return st;
}

slm_status slm_prune_apply(slm_model *m, const bool *drop) {
    int L = m->cfg.n_layers, left = 0;
    for (int i = 0; i < L; i++) {
        if (drop[i] && !m->blocks[i].kept) return slm_fail(SLM_ERR_ARG, "block %d is already dropped", i);
        left += m->blocks[i].kept && !drop[i];
    }
    if (left == 0) return slm_fail(SLM_ERR_ARG, "pruning would drop every block");
    for (int i = 0; i < L; i++)
        if (drop[i]) m->blocks[i].kept = false;
    return SLM_OK;
}
