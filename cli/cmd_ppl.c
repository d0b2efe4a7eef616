/* slimlm ppl MODEL: perplexity by llama.cpp's protocol (chunks, second half
 * scored) or lm-evaluation-harness's `wikitext` task (documents, rolling
 * windows, word/byte perplexity). The protocols live in src/eval/perplexity.c;
 * this file parses options, shows progress and writes the results. */
#include "commands.h"
#include "core/core.h"
#include "eval/perplexity.h"
#include "model/model.h"
#include "options.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Running output: llama.cpp's "[i]ppl," list, printed in rows of
 * ROW_VALUES so the progress bar (stderr, same terminal) has its own line. */
enum { ROW_VALUES = 8 };

typedef struct ppl_display {
    slm_progress bar;
    char label[64];
    char row[ROW_VALUES * 24 + 1];
    int in_row;
    bool lmeval;
} ppl_display;

static void flush_row(ppl_display *d) {
    if (!d->in_row) return;
    if (d->bar.tty) fputs("\r\033[K", stderr); /* the bar is redrawn below the row */
    printf("%s\n", d->row);
    fflush(stdout);
    d->row[0] = 0;
    d->in_row = 0;
}

static void on_step(void *user, const slm_ppl_step *s) {
    ppl_display *d = user;
    if (!d->lmeval) {
        size_t used = strlen(d->row);
        snprintf(d->row + used, sizeof d->row - used, "[%d]%.4f,", s->index + 1, s->running_ppl);
        if (++d->in_row == ROW_VALUES || s->index + 1 == s->total) flush_row(d);
        snprintf(d->label, sizeof d->label, "ppl [%d/%d] %.4f", s->index + 1, s->total, s->running_ppl);
    } else {
        snprintf(d->label, sizeof d->label, "ppl doc %d/%d, token ppl %.4f", s->index + 1, s->total,
                 s->running_ppl);
    }
    d->bar.total = s->tokens_total;
    slm_progress_update(&d->bar, s->tokens_done);
}

static cJSON *llamacpp_json(const slm_ppl_result *r, const char *model, const char *data) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "protocol", "llamacpp");
    cJSON_AddStringToObject(j, "model", model);
    cJSON_AddStringToObject(j, "data", data);
    cJSON_AddNumberToObject(j, "ctx", r->n_ctx);
    cJSON_AddNumberToObject(j, "n_chunks", r->n_chunks);
    cJSON_AddNumberToObject(j, "n_tokens", (double)r->n_tokens);
    cJSON_AddNumberToObject(j, "n_scored", (double)r->n_scored);
    cJSON_AddNumberToObject(j, "ppl", r->ppl);
    cJSON_AddNumberToObject(j, "stderr", r->ppl_stderr);
    cJSON_AddNumberToObject(j, "seconds", r->seconds);
    cJSON_AddItemToObject(j, "running_ppl", cJSON_CreateDoubleArray(r->running_ppl, r->n_chunks));
    return j;
}

static cJSON *lmeval_json(const slm_lmeval_result *r, const char *model, const char *data) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "protocol", "lm-eval");
    cJSON_AddStringToObject(j, "task", "wikitext");
    cJSON_AddStringToObject(j, "model", model);
    cJSON_AddStringToObject(j, "data", data);
    cJSON_AddNumberToObject(j, "ctx", r->max_len);
    cJSON_AddNumberToObject(j, "prefix_token", r->prefix_token);
    cJSON_AddNumberToObject(j, "n_docs", r->n_docs);
    cJSON_AddNumberToObject(j, "n_tokens", (double)r->n_tokens);
    cJSON_AddNumberToObject(j, "words", (double)r->words);
    cJSON_AddNumberToObject(j, "bytes", (double)r->bytes);
    cJSON_AddNumberToObject(j, "loglik", r->loglik);
    cJSON_AddNumberToObject(j, "word_perplexity", r->word_perplexity);
    cJSON_AddNumberToObject(j, "byte_perplexity", r->byte_perplexity);
    cJSON_AddNumberToObject(j, "bits_per_byte", r->bits_per_byte);
    cJSON_AddNumberToObject(j, "seconds", r->seconds);
    cJSON *docs = cJSON_AddArrayToObject(j, "documents");
    for (int i = 0; i < r->n_docs; i++) {
        const slm_lmeval_doc *d = &r->docs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", d->index);
        cJSON_AddNumberToObject(o, "loglik", d->loglik);
        cJSON_AddNumberToObject(o, "words", (double)d->words);
        cJSON_AddNumberToObject(o, "bytes", (double)d->bytes);
        cJSON_AddNumberToObject(o, "n_tokens", (double)d->n_tokens);
        cJSON_AddNumberToObject(o, "n_windows", d->n_windows);
        cJSON_AddItemToArray(docs, o);
    }
    return j;
}

/* The harness's results table (lm_eval.utils.make_table layout). */
static void print_lmeval_table(const slm_lmeval_result *r) {
    printf("|  Tasks |Version|Filter|n-shot|    Metric     |   | Value  |   |Stderr|\n");
    printf("|--------|------:|------|-----:|---------------|---|-------:|---|------|\n");
    printf("|wikitext|      2|none  |     0|bits_per_byte  |↓  |%8.4f|±  |   N/A|\n", r->bits_per_byte);
    printf("|        |       |none  |     0|byte_perplexity|↓  |%8.4f|±  |   N/A|\n", r->byte_perplexity);
    printf("|        |       |none  |     0|word_perplexity|↓  |%8.4f|±  |   N/A|\n", r->word_perplexity);
    printf("\n%d documents, %lld tokens, %lld words, %lld bytes, max length %d, %.1f s\n", r->n_docs,
           (long long)r->n_tokens, (long long)r->words, (long long)r->bytes, r->max_len, r->seconds);
}

int slm_cmd_ppl(int argc, char **argv) {
    const char *data = NULL, *data_dir = SLM_DEFAULT_DATA_DIR, *protocol = "llamacpp", *output = NULL;
    int ctx = 0, chunks = -1, docs = -1, threads = 0, batch = 512;
    bool quiet = false;
    bool dequantize = false;
    const slm_option opts[] = {
        {"data", 'f', SLM_OPT_STRING, &data, "FILE", "text file (default: <data-dir>/wikitext-2-raw/wiki.test.raw)"},
        {"data-dir", 0, SLM_OPT_STRING, &data_dir, "DIR", "data directory"},
        {"protocol", 'p', SLM_OPT_STRING, &protocol, "NAME", "llamacpp or lm-eval"},
        {"ctx", 'c', SLM_OPT_INT, &ctx, "N", "chunk / window length (0: 512 for llamacpp, the model's context for lm-eval)"},
        {"chunks", 0, SLM_OPT_INT, &chunks, "N", "llamacpp: score only the first N chunks (-1: all)"},
        {"docs", 0, SLM_OPT_INT, &docs, "N", "lm-eval: score only the first N documents (-1: all)"},
        {"batch", 'b', SLM_OPT_INT, &batch, "N", "tokens per forward call"},
        {"threads", 't', SLM_OPT_INT, &threads, "N", "threads (0: all cores)"},
        {"output", 'o', SLM_OPT_STRING, &output, "FILE", "write the results as JSON"},
        {"quiet", 'q', SLM_OPT_FLAG, &quiet, NULL, "no running values or progress bar"},
        {"dequantize", 0, SLM_OPT_FLAG, &dequantize, NULL, SLM_CLI_DEQUANTIZE_HELP},
        {0}};
    const slm_cli_spec spec = {"ppl", "MODEL [--data FILE] [options]",
                               "Perplexity by llama.cpp's protocol or lm-evaluation-harness's wikitext task.", opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    bool lmeval = strcmp(protocol, "lm-eval") == 0 || strcmp(protocol, "lmeval") == 0;
    if (!lmeval && strcmp(protocol, "llamacpp") != 0) {
        fprintf(stderr, "error: --protocol: '%s' is not llamacpp or lm-eval\n", protocol);
        free(pos);
        return 2;
    }
    if (ctx < 0 || batch < 1) {
        fprintf(stderr, "error: --ctx must be >= 0 and --batch >= 1\n");
        free(pos);
        return 2;
    }
    char default_data[4096];
    if (!data) {
        snprintf(default_data, sizeof default_data, "%s/wikitext-2-raw/wiki.test.raw", data_dir);
        data = default_data;
    }
    char *text = NULL;
    size_t len = 0;
    slm_status st = slm_read_file(data, &text, &len);
    if (st) {
        free(pos);
        return slm_cli_report(st);
    }
    slm_model *m = NULL;
    if (slm_cli_load_model_q(pos[0], true, threads, !dequantize, &m)) {
        free(text);
        free(pos);
        return 1;
    }
    if (ctx == 0) ctx = lmeval ? (m->cfg.max_ctx > 0 ? m->cfg.max_ctx : 2048) : 512; /* lm-eval's default max length: 2048 */
    slm_context_params cp = slm_context_default_params();
    cp.n_ctx = ctx;
    cp.n_batch = batch < ctx ? batch : ctx;
    slm_context *c = NULL;
    st = slm_context_new(m, &cp, &c);
    ppl_display disp;
    memset(&disp, 0, sizeof disp);
    disp.lmeval = lmeval;
    snprintf(disp.label, sizeof disp.label, "ppl");
    slm_ppl_params pp = slm_ppl_default_params();
    pp.n_ctx = ctx;
    pp.n_chunks = chunks;
    pp.n_docs = docs;
    pp.n_batch = cp.n_batch;
    if (!quiet) {
        pp.on_step = on_step;
        pp.user = &disp;
    }
    cJSON *j = NULL;
    if (!st) {
        slm_progress_begin(&disp.bar, disp.label, "tok", 0);
        disp.bar.quiet = quiet;
        if (!lmeval) {
            slm_ppl_result r;
            st = slm_ppl_llamacpp(c, m, text, len, data, &pp, &r);
            flush_row(&disp);
            if (!st) {
                slm_progress_end(&disp.bar);
                printf("PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
                printf("%d chunks of %d tokens (%lld scored of %lld), %.1f s, %.0f tokens/s\n", r.n_chunks, r.n_ctx,
                       (long long)r.n_scored, (long long)r.n_tokens, r.seconds,
                       (double)r.n_chunks * r.n_ctx / (r.seconds > 0 ? r.seconds : 1));
                j = llamacpp_json(&r, pos[0], data);
                slm_ppl_result_free(&r);
            }
        } else {
            slm_lmeval_result r;
            st = slm_ppl_lmeval_wikitext(c, m, text, len, data, &pp, &r);
            if (!st) {
                slm_progress_end(&disp.bar);
                print_lmeval_table(&r);
                j = lmeval_json(&r, pos[0], data);
                slm_lmeval_result_free(&r);
            }
        }
    }
    if (st) {
        if (disp.bar.tty) fputs("\r\033[K", stderr);
        rc = slm_cli_report(st);
    } else if (output) {
        char *js = cJSON_Print(j);
        rc = js ? slm_cli_write_text(output, js) : 1;
        free(js);
    }
    cJSON_Delete(j);
    slm_context_free(c);
    slm_model_free(m);
    free(text);
    free(pos);
    return rc;
}
