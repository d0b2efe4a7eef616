/* slimlm generate MODEL -p TEXT: tokenises the prompt (special tokens such
 * as <|im_start|> are parsed; BOS added when the vocabulary says so), runs
 * it as one batched prefill, then samples up to N tokens, streaming each
 * piece to stdout as it comes. Stops at the end-of-sequence token. Timing
 * (prefill and generation tokens/s) goes to stderr so stdout is the text. */
#include "commands.h"
#include "model/model.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gen_opts {
    const char *prompt;
    int n_predict;
    int n_ctx;
    int threads;
    bool quiet;
    slm_sampler_params sp;
} gen_opts;

static int tokenize_prompt(const slm_tokenizer *tok, const char *text, int32_t **ids, int *n) {
    size_t need = 0, len = strlen(text);
    slm_status st = slm_tokenize(tok, text, len, true, true, NULL, 0, &need);
    if (st != SLM_OK && st != SLM_ERR_ARG) return slm_cli_report(st);
    *ids = malloc((need ? need : 1) * sizeof **ids);
    if (!*ids) return slm_cli_report(slm_fail(SLM_ERR_NOMEM, "prompt: out of memory"));
    st = slm_tokenize(tok, text, len, true, true, *ids, need, &need);
    if (st) return slm_cli_report(st);
    *n = (int)need;
    return 0;
}

static void put_piece(const slm_tokenizer *tok, int32_t id) {
    char buf[256];
    int n = slm_token_to_piece(tok, id, buf, (int)sizeof buf);
    if (n > 0) fwrite(buf, 1, (size_t)n, stdout);
    if (n < -1) { /* a piece longer than buf: fetch it whole */
        char *big = malloc((size_t)-n);
        if (big && slm_token_to_piece(tok, id, big, -n) == -n) fwrite(big, 1, (size_t)-n, stdout);
        free(big);
    }
    fflush(stdout);
}

static int generate(slm_model *m, const gen_opts *o) {
    const slm_tokenizer *tok = slm_model_tokenizer(m);
    if (!tok) return slm_cli_report(slm_fail(SLM_ERR_UNSUPPORTED, "%s: the model has no tokenizer", m->path));
    int32_t *ids = NULL;
    int n_prompt = 0;
    int rc = tokenize_prompt(tok, o->prompt, &ids, &n_prompt);
    if (rc) {
        free(ids);
        return rc;
    }
    if (n_prompt == 0) {
        free(ids);
        return slm_cli_report(slm_fail(SLM_ERR_ARG, "prompt: no tokens (give some text with -p)"));
    }
    slm_context_params cp = slm_context_default_params();
    cp.n_ctx = o->n_ctx > 0 ? o->n_ctx : n_prompt + o->n_predict;
    cp.n_batch = 512;
    slm_context *c = NULL;
    float *logits = malloc(sizeof(float) * (size_t)m->cfg.n_vocab);
    slm_status st = logits ? slm_context_new(m, &cp, &c) : slm_fail(SLM_ERR_NOMEM, "out of memory for logits");
    if (st) goto done;
    if (n_prompt + o->n_predict > cp.n_ctx) {
        st = slm_fail(SLM_ERR_ARG, "prompt (%d tokens) + %d to generate exceed the context (%d; see --ctx)", n_prompt,
                      o->n_predict, cp.n_ctx);
        goto done;
    }
    if (!o->quiet) fputs(o->prompt, stdout);
    double t0 = slm_time_now();
    st = slm_decode(c, ids, n_prompt, false, logits);
    if (st) goto done;
    double t1 = slm_time_now();
    uint64_t rng = o->sp.seed;
    int n_gen = 0;
    int32_t eos = slm_tokenizer_eos(tok);
    while (n_gen < o->n_predict) {
        int32_t next = slm_sample(logits, m->cfg.n_vocab, &o->sp, &rng);
        if (next < 0) {
            st = SLM_ERR_NOMEM;
            goto done;
        }
        n_gen++;
        if (next == eos) break;
        put_piece(tok, next);
        if (n_gen == o->n_predict) break; /* the last token needs no forward */
        st = slm_decode(c, &next, 1, false, logits);
        if (st) goto done;
    }
    double t2 = slm_time_now();
    fputc('\n', stdout);
    fprintf(stderr, "prompt: %d tokens in %.3f s (%.1f tok/s); generated: %d tokens in %.3f s (%.1f tok/s); threads %d\n",
            n_prompt, t1 - t0, n_prompt / (t1 - t0), n_gen, t2 - t1, n_gen > 0 ? n_gen / (t2 - t1) : 0.0,
            slm_get_threads());
done:
    if (st) rc = slm_cli_report(st);
    slm_context_free(c);
    free(logits);
    free(ids);
    return rc;
}

int slm_cmd_generate(int argc, char **argv) {
    gen_opts o = {.prompt = NULL, .n_predict = 64, .n_ctx = 0, .threads = 0, .sp = slm_sampler_default_params()};
    bool dequantize = false;
    const slm_option opts[] = {
        {"prompt", 'p', SLM_OPT_STRING, &o.prompt, "TEXT", "prompt text (special tokens like <|im_start|> are parsed)"},
        {"n-predict", 'n', SLM_OPT_INT, &o.n_predict, "N", "most tokens to generate"},
        {"temp", 0, SLM_OPT_FLOAT, &o.sp.temperature, "T", "temperature (0: greedy)"},
        {"top-k", 0, SLM_OPT_INT, &o.sp.top_k, "K", "keep the K most likely tokens (0: off)"},
        {"top-p", 0, SLM_OPT_FLOAT, &o.sp.top_p, "P", "nucleus: smallest set with probability >= P (1: off)"},
        {"seed", 0, SLM_OPT_U64, &o.sp.seed, "S", "random seed (same seed, same text)"},
        {"ctx", 'c', SLM_OPT_INT, &o.n_ctx, "N", "context length (0: prompt + n-predict)"},
        {"threads", 't', SLM_OPT_INT, &o.threads, "N", "threads (0: all cores)"},
        {"quiet", 'q', SLM_OPT_FLAG, &o.quiet, NULL, "do not echo the prompt"},
        {"dequantize", 0, SLM_OPT_FLAG, &dequantize, NULL, SLM_CLI_DEQUANTIZE_HELP},
        {0}};
    const slm_cli_spec spec = {"generate", "MODEL -p TEXT [options]",
                               "Generate text from a prompt, streaming tokens as they come; prints tokens/s.", opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    if (!o.prompt) {
        free(pos);
        fprintf(stderr, "error: generate: a prompt is required (-p TEXT)\n");
        return 2;
    }
    if (o.n_predict < 0 || o.n_ctx < 0 || o.sp.top_k < 0 || o.sp.temperature < 0 || !(o.sp.top_p > 0 && o.sp.top_p <= 1)) {
        free(pos);
        fprintf(stderr, "error: generate: -n, --ctx, --top-k and --temp must be >= 0 and --top-p in (0, 1]\n");
        return 2;
    }
    slm_model *m = NULL;
    if (slm_cli_load_model_q(pos[0], true, o.threads, !dequantize, &m)) {
        free(pos);
        return 1;
    }
    rc = generate(m, &o);
    slm_model_free(m);
    free(pos);
    return rc;
}
