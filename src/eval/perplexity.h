/* Perplexity under two published protocols (docs/perplexity.md).
 *
 * llama.cpp (tools/perplexity/perplexity.cpp, perplexity()):
 *   the whole text tokenised once (BOS added when the vocabulary adds it),
 *   cut into n_tok / n_ctx non-overlapping chunks of n_ctx tokens; the first
 *   token of a chunk is replaced by BOS when the vocabulary adds BOS; the KV
 *   cache is cleared per chunk; only logits n_ctx/2 .. n_ctx-2 are scored
 *   (each predicting the next token). PPL = exp(mean NLL), and its error is
 *   llama.cpp's: ppl * sqrt((E[nll^2] - E[nll]^2) / (count - 1)).
 *
 * lm-evaluation-harness `wikitext` (loglikelihood_rolling):
 *   each document's tokens are scored in disjoint windows of max_len tokens;
 *   the first window is conditioned on a prefix token (BOS, else EOS), the
 *   later ones on the token before them, and the last (partial) window is
 *   filled on the left with earlier tokens up to max_len. Sums of
 *   log-likelihoods give word_perplexity, byte_perplexity and bits_per_byte.
 *
 * Log-softmax per row in float exp with a double sum (as llama.cpp), all
 * NLL accumulation in double.
 */
#ifndef SLM_EVAL_PERPLEXITY_H
#define SLM_EVAL_PERPLEXITY_H

#include "slimlm.h"

/* Called after each scored chunk (llama.cpp) or document (lm-eval). */
typedef struct slm_ppl_step {
    int index;          /* 0-based chunk / document */
    int total;          /* chunks / documents to score */
    int64_t tokens_done;  /* tokens evaluated so far */
    int64_t tokens_total; /* tokens to evaluate in all */
    double running_ppl; /* llama.cpp: exp(sum nll / count) so far; lm-eval: token ppl so far */
} slm_ppl_step;
typedef void (*slm_ppl_callback)(void *user, const slm_ppl_step *s);

typedef struct slm_ppl_params {
    int n_ctx;      /* llama.cpp: chunk length; lm-eval: max_len (window length) */
    int n_chunks;   /* llama.cpp: score only the first N chunks (< 0: all) */
    int n_docs;     /* lm-eval: score only the first N documents (< 0: all) */
    const int *doc_index; /* lm-eval: or exactly these documents (NULL: use n_docs) */
    int n_doc_index;
    int n_batch;    /* tokens per slm_decode call; bounds logits memory to n_batch * V floats */
    slm_ppl_callback on_step; /* may be NULL */
    void *user;
} slm_ppl_params;
slm_ppl_params slm_ppl_default_params(void);

/* Result of the llama.cpp protocol. running_ppl is malloc'd ([n_chunks]),
 * free it with slm_ppl_result_free. */
typedef struct slm_ppl_result {
    double ppl;
    double ppl_stderr;
    double nll_sum, nll2_sum; /* sums over scored tokens */
    int64_t n_scored;         /* tokens scored: n_chunks * (n_ctx - n_ctx/2 - 1) */
    int64_t n_tokens;         /* tokens of the whole text */
    int n_chunks;
    int n_ctx;
    double seconds;
    double *running_ppl;      /* [n_chunks]: the value llama.cpp prints as [i] */
} slm_ppl_result;
void slm_ppl_result_free(slm_ppl_result *r);

/* Tokenises text (growing the buffer as needed). *ids is malloc'd. */
slm_status slm_ppl_tokenize(const slm_tokenizer *tok, const char *text, size_t len, bool add_special,
                            int32_t **ids, size_t *n);

/* The llama.cpp protocol on text as `llama-perplexity -f FILE` reads it
 * (one trailing '\n' is dropped first, as llama.cpp's -f does), with m's
 * tokenizer. ctx (made from m) must hold at least p->n_ctx positions.
 * name (the data file) is used in error messages. */
slm_status slm_ppl_llamacpp(slm_context *ctx, const slm_model *m, const char *text, size_t len,
                            const char *name, const slm_ppl_params *p, slm_ppl_result *out);

/* One document's rolling log-likelihood (lm-eval loglikelihood_rolling with
 * context_len 1). tokens are the document's tokens; prefix the conditioning
 * token of the first window. */
slm_status slm_ppl_rolling_loglik(slm_context *ctx, const slm_model *m, const int32_t *tokens, size_t n, int32_t prefix,
                                  const slm_ppl_params *p, double *loglik, int *n_windows);

typedef struct slm_lmeval_doc {
    int index;            /* document number in the split */
    double loglik;
    int64_t words, bytes; /* of the original page */
    int64_t n_tokens;
    int n_windows;
} slm_lmeval_doc;

typedef struct slm_lmeval_result {
    double loglik;        /* sum over scored documents */
    int64_t words, bytes, n_tokens;
    int n_docs;           /* scored */
    int max_len;
    int32_t prefix_token;
    double word_perplexity, byte_perplexity, bits_per_byte;
    double seconds;
    slm_lmeval_doc *docs; /* [n_docs], malloc'd */
} slm_lmeval_result;
void slm_lmeval_result_free(slm_lmeval_result *r);

/* lm-eval's `wikitext` task on the raw wikitext-2 file (wiki.test.raw):
 * documents, detokeniser, rolling windows of p->n_ctx, metrics. */
slm_status slm_ppl_lmeval_wikitext(slm_context *ctx, const slm_model *m, const char *raw, size_t len,
                                   const char *name, const slm_ppl_params *p, slm_lmeval_result *out);

#endif
