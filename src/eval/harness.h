/* Zero-shot scoring engine: turns task documents into log-likelihood
 * requests the way lm-evaluation-harness does, scores them with slm_decode,
 * and computes each task's metrics with standard errors.
 *
 * Requests (harness.c): a (context, continuation) pair is tokenised as
 * lm-eval's _encode_pair does: trailing whitespace of the context moves onto
 * the continuation, context = enc(ctx), continuation = enc(ctx+cont)[len(enc(ctx)):];
 * an empty context becomes the BOS token (lm-eval's prefix_token_id). A
 * sequence longer than the context window keeps its last n_ctx+1 tokens.
 *
 * Scoring: the choices of a document form a group; their common token
 * prefix is decoded once in a single forward pass and kept in the KV cache,
 * then each choice's remaining tokens are decoded on top of it
 * (slm_context_truncate rewinds to the prefix). The cache also carries over
 * between groups, so a prefix shared across documents (TruthfulQA's
 * preamble, an MMLU subject's description line) is decoded once. Documents
 * run longest first, so the ETA is pessimistic early and a context that is
 * too long fails at once.
 *
 * Metrics (harness_metrics.c): acc, acc_norm, acc_mutual_info, PMI-DC, F1,
 * macro F1 and TruthfulQA MC2, each with its standard error.
 */
#ifndef SLM_EVAL_HARNESS_H
#define SLM_EVAL_HARNESS_H

#include "eval/tasks.h"
#include "slimlm.h"

#include <stdint.h>
#include <stdio.h>

/* ---- requests --------------------------------------------------------------- */

/* lm-eval's encoding of one (context, continuation) pair; *ctx_ids and
 * *cont_ids are malloc'd. bos is the token used for an empty context. */
slm_status slm_eval_encode_pair(const slm_tokenizer *tok, const char *ctx, const char *cont, int32_t bos,
                                int32_t **ctx_ids, int *n_ctx, int32_t **cont_ids, int *n_cont);

/* One scored sequence: tokens [0, n) where the continuation starts at cont_start. */
typedef struct slm_eval_seq {
    int32_t *tokens;
    int n;
    int cont_start;
} slm_eval_seq;

/* Scores a group of sequences that may share a prefix. cache/n_cache track
 * the tokens currently in ctx's KV cache (cache holds n_ctx slots) and are
 * updated. ll[i] = sum of log P(continuation token | everything before).
 * logits must hold max over i of (n_i - 1 - prefix) rows of V floats; pass
 * slm_eval_group_logits_rows() rows. *decoded (may be NULL) grows by the
 * number of tokens run through the model. */
slm_status slm_eval_score_group(slm_context *ctx, int n_vocab, const slm_eval_seq *seqs, int n, int32_t *cache,
                                int *n_cache, float *logits, double *ll, int64_t *decoded);
int slm_eval_group_logits_rows(const slm_eval_seq *seqs, int n);

/* ---- metrics ---------------------------------------------------------------- */

#define SLM_EVAL_MAX_VALUES 8

typedef struct slm_eval_value {
    char name[24];  /* acc, acc_norm, acc_mutual_info, pmi_dc, f1, mc2 */
    double value;
    double stderr_; /* NAN when undefined (one document) */
} slm_eval_value;

/* Per-document log-likelihoods: ll[n_choices], and when requested
 * unc[n_choices] (context "") and dc[n_choices] (domain premise). */
typedef struct slm_eval_scores {
    double *ll, *unc, *dc;
} slm_eval_scores;

/* Computes the metrics in `metrics` over docs; bootstrap_iters resamples
 * (seeded by seed) give the F1 standard errors. */
slm_status slm_eval_compute_metrics(const slm_eval_doc *docs, const slm_eval_scores *scores, int n_docs,
                                    unsigned metrics, int bootstrap_iters, uint64_t seed, slm_eval_value *out,
                                    int *n_out);

/* Index of the largest value (first on ties, as numpy.argmax). */
int slm_eval_argmax(const double *v, int n);
/* Mean and its standard error (sample stddev / sqrt(n)), lm-eval's mean_stderr. */
void slm_eval_mean_stderr(const double *x, int n, double *mean, double *se);
/* F1 of class `pos` (sklearn f1_score for one label; 0 when undefined). */
double slm_eval_f1(const int *gold, const int *pred, int n, int pos);
/* Size-weighted mean and lm-eval's pooled_sample_stderr of group members. */
void slm_eval_pool(const double *values, const double *stderrs, const int *sizes, int n, double *mean, double *se);

/* ---- running tasks -------------------------------------------------------------- */

typedef struct slm_eval_params {
    const char *data_dir;     /* default SLM_DEFAULT_DATA_DIR */
    int limit;                /* first N documents per task (0: all) */
    uint64_t seed;            /* bootstrap resampling */
    int bootstrap_iters;      /* for F1 standard errors (0: none) */
    unsigned extra_metrics;   /* SLM_EVAL_MI / SLM_EVAL_PMI_DC added to every task that allows them */
    int max_len;              /* window in tokens (0: the model's max_ctx) */
    bool quiet;               /* no progress display */
    FILE *log_samples;        /* NULL, or jsonl: one line per document */
} slm_eval_params;
slm_eval_params slm_eval_default_params(void);

typedef struct slm_eval_task_result {
    char name[64];
    char group[32];
    char category[24];
    int n_docs;
    int n_values;
    slm_eval_value v[SLM_EVAL_MAX_VALUES];
    int64_t tokens_requested; /* sum of sequence lengths, as scoring each request alone would run */
    int64_t tokens_decoded;   /* tokens actually run through the model */
    double seconds;
} slm_eval_task_result;

typedef struct slm_eval_results {
    slm_eval_task_result *tasks;
    int n_tasks;
    slm_eval_task_result *groups; /* mmlu and its categories, when their tasks ran */
    int n_groups;
    double seconds;
} slm_eval_results;
void slm_eval_results_free(slm_eval_results *r);

/* Runs the tasks on m (which must have a tokenizer). */
slm_status slm_eval_run(const slm_model *m, const slm_eval_task *tasks, int n_tasks, const slm_eval_params *p,
                        slm_eval_results *out);

/* Group aggregates (size-weighted, pooled stderr) for the tasks in r. */
slm_status slm_eval_aggregate_groups(slm_eval_results *r);

/* ---- reporting (harness_report.c) ------------------------------------------------- */

/* A table like lm-eval's: task, n, metric, value, stderr. */
void slm_eval_print_table(FILE *f, const slm_eval_results *r);
/* JSON text (malloc'd): lm-eval-style "results" with "acc,none" keys, plus
 * the extra object (model, #params, #MACs, ppl...) when given (ownership taken). */
char *slm_eval_results_json(const slm_eval_results *r, void *extra_cjson);

#endif
