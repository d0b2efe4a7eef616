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
 * Scoring: the choices of a document form a group (one per kind of
 * request). Documents run longest first, so the ETA is pessimistic early
 * and a context that is too long fails at once. Whole documents are packed
 * into forward steps of up to SLM_EVAL_PACK_ROWS rows (harness_pack.c): a
 * token tree where every shared prefix is one run of rows and each choice
 * adds its own tokens, each row attending to its ancestors only. A
 * document too large for a step is scored group by group: the common token
 * prefix is decoded once and kept in the KV cache, then each choice's
 * remaining tokens are decoded on top of it (slm_context_truncate rewinds to
 * the prefix). Both carry the cache over, so a prefix shared across
 * documents (TruthfulQA's preamble, an MMLU subject's description line) is
 * decoded once.
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

/* log-softmax terms of one logits row: *mx its largest value, *lse
 * log sum exp(row - mx) summed in double, so log P(t) = row[t] - mx - lse. */
void slm_eval_row_lse(const float *row, int V, double *mx, double *lse);

/* ---- packed scoring (harness_pack.c) --------------------------------------------- */

/* Rows per packed step in the run loop: a few hundred rows keep the GEMMs
 * at full speed (weights read once per step), while the attention over
 * other documents' keys, masked out, grows with the square of the step. */
#define SLM_EVAL_PACK_ROWS 512
/* Most bytes of logits a step makes (V floats per output row): 128 MiB is
 * 512 rows of SmolLM2's 49152 tokens, 261 of LLaMA 3's 128256. */
#define SLM_EVAL_PACK_LOGITS_BYTES ((size_t)128 << 20)

/* A group to score: n sequences, ll[i] receives sequence i's log-likelihood. */
typedef struct slm_eval_group {
    const slm_eval_seq *seqs;
    int n;
    double *ll;
} slm_eval_group;

/* Collects the groups of several documents into one token tree that runs as
 * a single slm_decode_packed call: shared prefixes once, each sequence's
 * remaining tokens once, at most max_rows rows and max_out logits rows. */
typedef struct slm_eval_packer slm_eval_packer;
slm_status slm_eval_packer_new(int max_rows, int max_out, slm_eval_packer **out);
void slm_eval_packer_free(slm_eval_packer *p);
/* Adds one document's groups, all or none: *added is false when the step
 * has no room for them (alone, a document that does not fit an empty
 * packer needs slm_eval_score_group). The sequences and ll arrays must
 * live until the run. */
slm_status slm_eval_packer_add(slm_eval_packer *p, const slm_eval_group *g, int n_groups, bool *added);
/* Documents added since the last run. */
int slm_eval_packer_docs(const slm_eval_packer *p);
/* Scores everything added (nothing to do when empty) and empties the
 * packer. cache/n_cache as for slm_eval_score_group: cache slots it shares
 * with the tree's stem are reused, and the stem is what stays valid.
 * logits holds max_out rows of V floats; *decoded (may be NULL) grows by
 * the rows run. Log-likelihoods equal slm_eval_score_group's up to float
 * summation order. */
slm_status slm_eval_packer_run(slm_eval_packer *p, slm_context *ctx, int n_vocab, int32_t *cache, int *n_cache,
                               float *logits, int64_t *decoded);

/* Scores documents in the order given, doc j's groups being
 * g[off[j] .. off[j+1]): whole documents packed into p's steps, one that
 * does not fit an empty step scored group by group (slm_eval_score_group).
 * cache/n_cache as there (cache holds ctx's n_ctx slots); logits the
 * larger of p's max_out rows and slm_eval_group_logits_rows of any group.
 * pr (may be NULL) advances as documents are done; *decoded (may be NULL)
 * counts the rows run. */
struct slm_progress;
slm_status slm_eval_score_docs(slm_context *ctx, slm_eval_packer *p, int n_vocab, const slm_eval_group *g,
                               const int *off, int n_docs, int32_t *cache, int *n_cache, float *logits,
                               struct slm_progress *pr, int64_t *decoded);

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
