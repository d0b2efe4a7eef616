/* Perplexity: llama.cpp's chunked protocol and lm-eval's rolling windows
 * (contracts in perplexity.h, sources and versions in docs/perplexity.md).
 *
 * Both protocols reduce to one primitive, score_window: clear the KV cache,
 * run inp[0..n) through the model in sub-batches of n_batch tokens, and add
 * -log p(target[r] | inp[0..r]) for the scored rows r0 <= r < n. Sub-batches
 * with no scored row ask for no logits, so only the scored rows pay for the
 * lm head, and the logits buffer is n_batch x V whatever the window length.
 */
#include "eval/perplexity.h"
#include "core/core.h"
#include "eval/wikitext.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

slm_ppl_params slm_ppl_default_params(void) {
    slm_ppl_params p = {0};
    p.n_ctx = 512;
    p.n_chunks = -1;
    p.n_docs = -1;
    p.n_batch = 512;
    return p;
}

void slm_ppl_result_free(slm_ppl_result *r) {
    if (!r) return;
    free(r->running_ppl);
    r->running_ppl = NULL;
}

void slm_lmeval_result_free(slm_lmeval_result *r) {
    if (!r) return;
    free(r->docs);
    r->docs = NULL;
}

slm_status slm_ppl_tokenize(const slm_tokenizer *tok, const char *text, size_t len, bool add_special,
                            int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    /* Byte-level BPE gives at most one token per byte (+ specials). */
    size_t cap = len + 8;
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t bytes;
        if (!slm_mul_ok(cap, sizeof(int32_t), &bytes)) return slm_fail(SLM_ERR_NOMEM, "token buffer too large");
        int32_t *buf = slm_malloc(bytes, "token ids");
        if (!buf) return SLM_ERR_NOMEM;
        size_t got = 0;
        slm_status st = slm_tokenize(tok, text, len, add_special, false, buf, cap, &got);
        if (st == SLM_OK) {
            *ids = buf;
            *n = got;
            return SLM_OK;
        }
        free(buf);
        if (st != SLM_ERR_ARG || got <= cap) return st;
        cap = got; /* the buffer was too small: got is the size needed */
    }
    return slm_fail(SLM_ERR_STATE, "tokenizer: buffer size did not settle");
}

/* ---- the scoring primitive ---------------------------------------------------- */

/* -log softmax(row)[target] with float exps summed in double (llama.cpp's
 * log_softmax), returned in double. */
static double row_nll(const float *row, int n_vocab, int32_t target) {
    float mx = row[0];
    for (int i = 1; i < n_vocab; i++)
        if (row[i] > mx) mx = row[i];
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++) sum += (double)expf(row[i] - mx);
    return -((double)row[target] - (double)mx - log(sum));
}

typedef struct window_acc {
    double nll, nll2;
    int64_t count;
} window_acc;

/* Scores rows r0..n-1 of inp against targets[r] (see the file comment).
 * logits has room for n_batch * n_vocab floats. */
static slm_status score_window(slm_context *ctx, const int32_t *inp, const int32_t *targets, int n, int r0,
                               int n_batch, int n_vocab, float *logits, window_acc *acc) {
    slm_context_truncate(ctx, 0);
    for (int r = r0; r < n; r++)
        if (targets[r] < 0 || targets[r] >= n_vocab)
            return slm_fail(SLM_ERR_ARG, "perplexity: target token %d outside the vocabulary (%d)", targets[r], n_vocab);
    /* The unscored prefix [0, r0) runs without logits (no lm head), the
     * scored rows [r0, n) in sub-batches that return theirs. */
    for (int b0 = 0; b0 < n;) {
        int end = b0 < r0 ? r0 : n;
        int bn = end - b0 < n_batch ? end - b0 : n_batch;
        bool want = b0 >= r0;
        slm_status st = slm_decode(ctx, inp + b0, bn, want, want ? logits : NULL);
        if (st) return st;
        if (want) {
            double nll = 0.0, nll2 = 0.0;
#pragma omp parallel for reduction(+ : nll, nll2) schedule(static)
            for (int r = 0; r < bn; r++) {
                double v = row_nll(logits + (size_t)r * (size_t)n_vocab, n_vocab, targets[b0 + r]);
                nll += v;
                nll2 += v * v;
            }
            if (!isfinite(nll))
                return slm_fail(SLM_ERR_NUMERIC, "perplexity: non-finite log-likelihood in rows %d..%d", b0, b0 + bn - 1);
            acc->nll += nll;
            acc->nll2 += nll2;
            acc->count += bn;
        }
        b0 += bn;
    }
    return SLM_OK;
}

/* The tokenizer of m, or a failure naming what is missing. */
static slm_status model_tokenizer(const slm_model *m, const char *name, const slm_tokenizer **tok) {
    *tok = slm_model_tokenizer(m);
    if (!*tok) return slm_fail(SLM_ERR_ARG, "%s: the model has no tokenizer (perplexity needs one)", m->path ? m->path : name);
    return SLM_OK;
}

static float *alloc_logits(int n_batch, int n_vocab) {
    size_t n;
    if (!slm_mul_ok((size_t)n_batch, (size_t)n_vocab, &n) || !slm_mul_ok(n, sizeof(float), &n)) {
        slm_fail(SLM_ERR_NOMEM, "perplexity: logits buffer too large");
        return NULL;
    }
    return slm_malloc(n, "perplexity logits");
}

static int clamp_batch(const slm_ppl_params *p) {
    int b = p->n_batch > 0 ? p->n_batch : 512;
    return b > p->n_ctx ? p->n_ctx : b;
}

/* ---- llama.cpp ---------------------------------------------------------------- */

slm_status slm_ppl_llamacpp(slm_context *ctx, const slm_model *m, const char *text, size_t len,
                            const char *name, const slm_ppl_params *p, slm_ppl_result *out) {
    memset(out, 0, sizeof *out);
    const slm_tokenizer *tok;
    if (model_tokenizer(m, name, &tok)) return SLM_ERR_ARG;
    const int n_ctx = p->n_ctx;
    if (n_ctx < 4) return slm_fail(SLM_ERR_ARG, "%s: context %d is too short for perplexity", name, n_ctx);
    double t0 = slm_time_now();
    if (len > 0 && text[len - 1] == '\n') len--; /* llama.cpp's -f drops one trailing newline */
    int32_t *tokens;
    size_t n_tok;
    slm_status st = slm_ppl_tokenize(tok, text, len, true, &tokens, &n_tok);
    if (st) return st;
    if (n_tok < 2 * (size_t)n_ctx) {
        free(tokens);
        return slm_fail(SLM_ERR_ARG, "%s: tokenizes to %zu tokens; at least %d (2 x ctx %d) are needed", name,
                        n_tok, 2 * n_ctx, n_ctx);
    }
    int n_chunk_max = (int)(n_tok / (size_t)n_ctx);
    int n_chunk = p->n_chunks < 0 ? n_chunk_max : (p->n_chunks < n_chunk_max ? p->n_chunks : n_chunk_max);
    if (n_chunk < 1) {
        free(tokens);
        return slm_fail(SLM_ERR_ARG, "%s: --chunks must be at least 1", name);
    }
    const int n_vocab = m->cfg.n_vocab; /* logits are [V] of the model */
    const int n_batch = clamp_batch(p);
    const int first = n_ctx / 2;
    const bool add_bos = slm_tokenizer_adds_bos(tok);
    const int32_t bos = slm_tokenizer_bos(tok);
    int32_t *chunk = slm_malloc(sizeof(int32_t) * (size_t)n_ctx, "perplexity chunk");
    float *logits = alloc_logits(n_batch, n_vocab);
    out->running_ppl = slm_malloc(sizeof(double) * (size_t)n_chunk, "perplexity values");
    if (!chunk || !logits || !out->running_ppl) {
        st = SLM_ERR_NOMEM;
        goto done;
    }
    window_acc acc = {0};
    for (int i = 0; i < n_chunk; i++) {
        const int32_t *src = tokens + (size_t)i * (size_t)n_ctx;
        memcpy(chunk, src, sizeof(int32_t) * (size_t)n_ctx);
        /* The input of position 0 becomes BOS; the targets are the text's. */
        if (add_bos && bos >= 0) chunk[0] = bos;
        /* row r predicts src[r + 1]; targets are offset by one */
        st = score_window(ctx, chunk, src + 1, n_ctx - 1, first, n_batch, n_vocab, logits, &acc);
        if (st) {
            slm_error_prefix(name);
            goto done;
        }
        out->running_ppl[i] = exp(acc.nll / (double)acc.count);
        if (p->on_step) {
            slm_ppl_step s = {i, n_chunk, (int64_t)(i + 1) * n_ctx, (int64_t)n_chunk * n_ctx, out->running_ppl[i]};
            p->on_step(p->user, &s);
        }
    }
    /* llama.cpp: mean NLL, its variance, and the error propagated through exp */
    double mean = acc.nll / (double)acc.count;
    double var = acc.nll2 / (double)acc.count - mean * mean;
    out->ppl = exp(mean);
    out->ppl_stderr = var > 0 && acc.count > 1 ? sqrt(var / (double)(acc.count - 1)) * out->ppl : 0.0;
    out->nll_sum = acc.nll;
    out->nll2_sum = acc.nll2;
    out->n_scored = acc.count;
    out->n_tokens = (int64_t)n_tok;
    out->n_chunks = n_chunk;
    out->n_ctx = n_ctx;
    out->seconds = slm_time_now() - t0;
done:
    free(tokens);
    free(chunk);
    free(logits);
    if (st) slm_ppl_result_free(out);
    return st;
}

/* ---- lm-eval rolling windows -------------------------------------------------- */

/* Windows over ext = [prefix] + tokens, as get_rolling_token_windows with
 * context_len = 1 followed by make_disjoint_window yields them: the first
 * window is ext[0 .. L) scoring all L rows; each later one ends at the
 * next unpredicted token, is max_len long (ext[end - max_len .. end)) and
 * scores its last (tokens predicted) rows. Row r of ext[a..b) predicts
 * ext[a + r + 1]. */
slm_status slm_ppl_rolling_loglik(slm_context *ctx, const slm_model *m, const int32_t *tokens, size_t n, int32_t prefix,
                                  const slm_ppl_params *p, double *loglik, int *n_windows) {
    *loglik = 0.0;
    *n_windows = 0;
    if (n == 0) return SLM_OK;
    const int max_len = p->n_ctx;
    if (max_len < 1) return slm_fail(SLM_ERR_ARG, "perplexity: max length %d", max_len);
    int32_t *ext = slm_malloc(sizeof(int32_t) * (n + 1), "rolling window tokens");
    if (!ext) return SLM_ERR_NOMEM;
    ext[0] = prefix;
    memcpy(ext + 1, tokens, sizeof(int32_t) * n);
    const int n_batch = clamp_batch(p);
    const int n_vocab = m->cfg.n_vocab;
    float *logits = alloc_logits(n_batch, n_vocab);
    slm_status st = logits ? SLM_OK : SLM_ERR_NOMEM;
    window_acc acc = {0};
    size_t predicted = 0;
    while (st == SLM_OK && predicted < n) {
        size_t a, b, k; /* window ext[a..b), scoring its last k rows */
        if (predicted == 0) {
            k = n < (size_t)max_len ? n : (size_t)max_len;
            a = 0;
            b = k;
        } else {
            k = n - predicted < (size_t)max_len ? n - predicted : (size_t)max_len;
            b = predicted + k;
            a = b - (size_t)max_len;
        }
        st = score_window(ctx, ext + a, ext + a + 1, (int)(b - a), (int)(b - a - k), n_batch, n_vocab, logits,
                          &acc);
        predicted += k;
        (*n_windows)++;
    }
    if (st == SLM_OK) *loglik = -acc.nll;
    free(logits);
    free(ext);
    return st;
}

/* ---- lm-eval wikitext ------------------------------------------------------- */

typedef struct lmeval_doc_tokens {
    int32_t *ids;
    size_t n;
} lmeval_doc_tokens;

slm_status slm_ppl_lmeval_wikitext(slm_context *ctx, const slm_model *m, const char *raw, size_t len,
                                   const char *name, const slm_ppl_params *p, slm_lmeval_result *out) {
    memset(out, 0, sizeof *out);
    const slm_tokenizer *tok;
    if (model_tokenizer(m, name, &tok)) return SLM_ERR_ARG;
    double t0 = slm_time_now();
    slm_wikitext_page *pages = NULL;
    int n_pages = 0;
    slm_status st = slm_wikitext_split_pages(raw, len, &pages, &n_pages);
    if (st) return st;
    int n_docs = p->n_docs < 0 || p->n_docs > n_pages ? n_pages : p->n_docs;
    if (p->doc_index) {
        n_docs = p->n_doc_index;
        for (int i = 0; i < n_docs; i++)
            if (p->doc_index[i] < 0 || p->doc_index[i] >= n_pages) {
                free(pages);
                return slm_fail(SLM_ERR_ARG, "%s: document %d does not exist (%d documents)", name, p->doc_index[i], n_pages);
            }
    }
    if (n_docs < 1) {
        free(pages);
        return slm_fail(SLM_ERR_ARG, "%s: no documents to score", name);
    }
    /* HFLM.prefix_token_id: the tokenizer's BOS, else its EOS. */
    int32_t prefix = slm_tokenizer_bos(tok) >= 0 ? slm_tokenizer_bos(tok) : slm_tokenizer_eos(tok);
    if (prefix < 0) {
        free(pages);
        return slm_fail(SLM_ERR_ARG, "%s: the tokenizer has neither BOS nor EOS for the prefix token", name);
    }
    lmeval_doc_tokens *dt = slm_calloc((size_t)n_docs, sizeof *dt, "document tokens");
    out->docs = slm_calloc((size_t)n_docs, sizeof *out->docs, "document results");
    if (!dt || !out->docs) {
        st = SLM_ERR_NOMEM;
        goto done;
    }
    /* Tokenise everything first so progress knows the total. */
    int64_t total = 0;
    for (int i = 0; i < n_docs && !st; i++) {
        const slm_wikitext_page *pg = &pages[p->doc_index ? p->doc_index[i] : i];
        const char *page = raw + pg->off;
        char *text = NULL;
        size_t tlen = 0;
        out->docs[i].index = p->doc_index ? p->doc_index[i] : i;
        st = slm_wikitext_detokenize(page, pg->len, name, &text, &tlen);
        /* As HF tokenizers with default add_special_tokens: BOS only if the vocab adds it. */
        if (!st) st = slm_ppl_tokenize(tok, text, tlen, true, &dt[i].ids, &dt[i].n);
        free(text);
        out->docs[i].words = slm_wikitext_count_words(page, pg->len);
        out->docs[i].bytes = (int64_t)pg->len;
        out->docs[i].n_tokens = (int64_t)dt[i].n;
        total += (int64_t)dt[i].n;
    }
    int64_t done_tok = 0;
    for (int i = 0; i < n_docs && !st; i++) {
        slm_lmeval_doc *d = &out->docs[i];
        st = slm_ppl_rolling_loglik(ctx, m, dt[i].ids, dt[i].n, prefix, p, &d->loglik, &d->n_windows);
        if (st) {
            slm_error_prefix(name);
            break;
        }
        out->loglik += d->loglik;
        out->words += d->words;
        out->bytes += d->bytes;
        out->n_tokens += d->n_tokens;
        done_tok += d->n_tokens;
        if (p->on_step) {
            slm_ppl_step s = {i, n_docs, done_tok, total, exp(-out->loglik / (double)(done_tok ? done_tok : 1))};
            p->on_step(p->user, &s);
        }
    }
    if (!st) {
        out->n_docs = n_docs;
        out->max_len = p->n_ctx;
        out->prefix_token = prefix;
        /* lm-eval weighted_perplexity / bits_per_byte aggregations */
        out->word_perplexity = exp(-out->loglik / (double)out->words);
        out->byte_perplexity = exp(-out->loglik / (double)out->bytes);
        out->bits_per_byte = -out->loglik / (double)out->bytes / log(2.0);
        out->seconds = slm_time_now() - t0;
    }
done:
    if (dt)
        for (int i = 0; i < n_docs; i++) free(dt[i].ids);
    free(dt);
    free(pages);
    if (st) slm_lmeval_result_free(out);
    return st;
}
