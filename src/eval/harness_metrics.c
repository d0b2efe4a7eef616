/* Task metrics as lm-evaluation-harness computes them, with standard
 * errors: the mean's stderr is sample stddev / sqrt(n) (lm-eval's
 * mean_stderr); F1 has no closed form, so its stderr is the stddev of the
 * statistic over bootstrap resamples of the documents (lm-eval bootstraps
 * f1 the same way; its cb macro-F1 has none, ours is computed alike). */
#include "core/core.h"
#include "eval/harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int slm_eval_argmax(const double *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

void slm_eval_mean_stderr(const double *x, int n, double *mean, double *se) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += x[i];
    double mu = n ? s / n : NAN, v = 0.0;
    for (int i = 0; i < n; i++) v += (x[i] - mu) * (x[i] - mu);
    *mean = mu;
    *se = n > 1 ? sqrt(v / (n - 1)) / sqrt((double)n) : NAN;
}

double slm_eval_f1(const int *gold, const int *pred, int n, int pos) {
    int tp = 0, fp = 0, fn = 0;
    for (int i = 0; i < n; i++) {
        tp += gold[i] == pos && pred[i] == pos;
        fp += gold[i] != pos && pred[i] == pos;
        fn += gold[i] == pos && pred[i] != pos;
    }
    int denom = 2 * tp + fp + fn;
    return denom ? 2.0 * tp / denom : 0.0; /* sklearn's zero_division default gives 0 */
}

void slm_eval_pool(const double *values, const double *stderrs, const int *sizes, int n, double *mean, double *se) {
    double num = 0.0, var = 0.0;
    long total = 0;
    for (int i = 0; i < n; i++) {
        num += values[i] * sizes[i];
        total += sizes[i];
        var += (double)(sizes[i] - 1) * stderrs[i] * stderrs[i] * sizes[i];
    }
    *mean = total ? num / (double)total : NAN;
    /* lm-eval's pooled_sample_stderr. */
    *se = total > n ? sqrt(var / (double)(total - n) / (double)total) : NAN;
}

/* F1 of a set of (gold, pred) pairs: binary (class 1) or macro over 3 classes. */
static double f1_of(const int *gold, const int *pred, int n, bool macro) {
    if (!macro) return slm_eval_f1(gold, pred, n, 1);
    return (slm_eval_f1(gold, pred, n, 0) + slm_eval_f1(gold, pred, n, 1) + slm_eval_f1(gold, pred, n, 2)) / 3.0;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static slm_status f1_with_stderr(const int *gold, const int *pred, int n, bool macro, int iters, uint64_t seed,
                                 double *value, double *se) {
    *value = f1_of(gold, pred, n, macro);
    *se = NAN;
    if (iters < 2 || n < 2) return SLM_OK;
    int *g = slm_malloc((size_t)n * 2 * sizeof *g, "bootstrap sample");
    double *stat = slm_malloc((size_t)iters * sizeof *stat, "bootstrap statistics");
    if (!g || !stat) {
        free(g);
        free(stat);
        return SLM_ERR_NOMEM;
    }
    uint64_t rng = seed;
    for (int b = 0; b < iters; b++) {
        for (int i = 0; i < n; i++) {
            int j = (int)(splitmix64(&rng) % (uint64_t)n);
            g[i] = gold[j];
            g[n + i] = pred[j];
        }
        stat[b] = f1_of(g, g + n, n, macro);
    }
    double mu, se_mean;
    slm_eval_mean_stderr(stat, iters, &mu, &se_mean);
    *se = se_mean * sqrt((double)iters); /* the resamples' stddev */
    free(g);
    free(stat);
    return SLM_OK;
}

static void add_value(slm_eval_value *out, int *n, const char *name, double v, double se) {
    slm_eval_value *x = &out[(*n)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->value = v;
    x->stderr_ = se;
}

slm_status slm_eval_compute_metrics(const slm_eval_doc *docs, const slm_eval_scores *scores, int n_docs,
                                    unsigned metrics, int bootstrap_iters, uint64_t seed, slm_eval_value *out,
                                    int *n_out) {
    *n_out = 0;
    if (n_docs <= 0) return slm_fail(SLM_ERR_ARG, "metrics: no documents");
    /* Per-document 0/1 (or MC2 mass) columns, one per mean-type metric. */
    enum { M_MC2, M_ACC, M_NORM, M_MI, M_DC, M_COUNT }; /* report order; MC2 is truthfulqa_mc2's "acc" */
    static const char *const names[M_COUNT] = {"acc", "acc", "acc_norm", "acc_mutual_info", "pmi_dc"};
    static const unsigned bits[M_COUNT] = {SLM_EVAL_MC2, SLM_EVAL_ACC, SLM_EVAL_ACC_NORM, SLM_EVAL_MI,
                                           SLM_EVAL_PMI_DC};
    double *col = slm_calloc((size_t)n_docs * M_COUNT, sizeof *col, "metric columns");
    int *gold = slm_malloc((size_t)n_docs * 2 * sizeof *gold, "predictions");
    double *tmp = NULL;
    int max_choices = 1;
    for (int d = 0; d < n_docs; d++) max_choices = docs[d].n_choices > max_choices ? docs[d].n_choices : max_choices;
    tmp = slm_malloc((size_t)max_choices * sizeof *tmp, "scratch");
    if (!col || !gold || !tmp) {
        free(col);
        free(gold);
        free(tmp);
        return SLM_ERR_NOMEM;
    }
    int *pred = gold + n_docs;
    for (int d = 0; d < n_docs; d++) {
        const slm_eval_doc *doc = &docs[d];
        const slm_eval_scores *s = &scores[d];
        int nc = doc->n_choices, g = doc->gold;
        pred[d] = slm_eval_argmax(s->ll, nc);
        gold[d] = g;
        col[M_ACC * n_docs + d] = pred[d] == g;
        for (int i = 0; i < nc; i++) tmp[i] = s->ll[i] / (doc->choice_chars[i] > 0 ? doc->choice_chars[i] : 1);
        col[M_NORM * n_docs + d] = slm_eval_argmax(tmp, nc) == g;
        if (s->unc) {
            for (int i = 0; i < nc; i++) tmp[i] = s->ll[i] - s->unc[i];
            col[M_MI * n_docs + d] = slm_eval_argmax(tmp, nc) == g;
        }
        if (s->dc) {
            for (int i = 0; i < nc; i++) tmp[i] = s->ll[i] - s->dc[i];
            col[M_DC * n_docs + d] = slm_eval_argmax(tmp, nc) == g;
        }
        if (metrics & SLM_EVAL_MC2) {
            if (!doc->truth) {
                free(col);
                free(gold);
                free(tmp);
                return slm_fail(SLM_ERR_ARG, "metrics: mc2 needs true/false labels");
            }
            double mx = s->ll[slm_eval_argmax(s->ll, nc)], z = 0.0, t = 0.0;
            for (int i = 0; i < nc; i++) {
                double e = exp(s->ll[i] - mx);
                z += e;
                if (doc->truth[i]) t += e;
            }
            col[M_MC2 * n_docs + d] = t / z;
        }
    }
    slm_status st = SLM_OK;
    for (int k = 0; k < M_COUNT; k++) {
        if (!(metrics & bits[k])) continue;
        double mu, se;
        slm_eval_mean_stderr(col + (size_t)k * n_docs, n_docs, &mu, &se);
        add_value(out, n_out, names[k], mu, se);
    }
    if (metrics & (SLM_EVAL_F1 | SLM_EVAL_F1_MACRO)) {
        double v, se;
        st = f1_with_stderr(gold, pred, n_docs, (metrics & SLM_EVAL_F1_MACRO) != 0, bootstrap_iters, seed, &v, &se);
        if (!st) add_value(out, n_out, "f1", v, se);
    }
    free(col);
    free(gold);
    free(tmp);
    return st;
}

/* Group rows: "mmlu" over all its subjects and one per category
 * (mmlu_stem, ...), size-weighted as lm-eval's mmlu group is. */
slm_status slm_eval_aggregate_groups(slm_eval_results *r) {
    static const char *const cats[5] = {"", "stem", "other", "social_sciences", "humanities"};
    free(r->groups);
    r->groups = NULL;
    r->n_groups = 0;
    int n_mmlu = 0;
    for (int i = 0; i < r->n_tasks; i++) n_mmlu += strcmp(r->tasks[i].group, "mmlu") == 0;
    if (n_mmlu == 0) return SLM_OK;
    r->groups = slm_calloc(5, sizeof *r->groups, "group results");
    double *v = slm_malloc((size_t)n_mmlu * 2 * sizeof *v, "group values");
    int *sz = slm_malloc((size_t)n_mmlu * sizeof *sz, "group sizes");
    if (!r->groups || !v || !sz) {
        free(v);
        free(sz);
        return SLM_ERR_NOMEM;
    }
    for (int c = 0; c < 5; c++) {
        int k = 0;
        slm_eval_task_result *g = &r->groups[r->n_groups];
        memset(g, 0, sizeof *g);
        for (int i = 0; i < r->n_tasks; i++) {
            const slm_eval_task_result *t = &r->tasks[i];
            if (strcmp(t->group, "mmlu") != 0 || (c && strcmp(t->category, cats[c]) != 0)) continue;
            v[k] = t->v[0].value; /* mmlu subjects report acc only */
            v[n_mmlu + k] = t->v[0].stderr_;
            sz[k] = t->n_docs;
            g->n_docs += t->n_docs;
            g->tokens_requested += t->tokens_requested;
            g->tokens_decoded += t->tokens_decoded;
            g->seconds += t->seconds;
            k++;
        }
        if (k == 0) continue;
        snprintf(g->name, sizeof g->name, c ? "mmlu_%s" : "mmlu", cats[c]);
        snprintf(g->group, sizeof g->group, "mmlu");
        double mu, se;
        slm_eval_pool(v, v + n_mmlu, sz, k, &mu, &se);
        add_value(g->v, &g->n_values, "acc", mu, se);
        r->n_groups++;
    }
    free(v);
    free(sz);
    return SLM_OK;
}
