/* slimlm eval MODEL --tasks LIST: zero-shot accuracy as lm-evaluation-harness
 * computes it (src/eval/harness.h), printed as a table and written as JSON,
 * with the model's #params and #MACs and, on request, its perplexity, so
 * one command gives a whole results row. */
#include "commands.h"
#include "core/core.h"
#include "eval/harness.h"
#include "eval/perplexity.h"
#include "options.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp-protocol perplexity of a text file (the perplexity module's
 * library call); fills *ppl and *err. */
static slm_status run_ppl(const slm_model *m, const char *path, int n_ctx, bool quiet, double *ppl, double *err) {
    char *text;
    size_t len;
    slm_status st = slm_read_file(path, &text, &len);
    if (st) return st;
    slm_context_params cp = slm_context_default_params();
    cp.n_ctx = n_ctx;
    slm_context *c = NULL;
    if ((st = slm_context_new(m, &cp, &c))) {
        free(text);
        return st;
    }
    slm_ppl_params pp = slm_ppl_default_params();
    pp.n_ctx = n_ctx;
    slm_ppl_result r;
    memset(&r, 0, sizeof r);
    if (!quiet) fprintf(stderr, "perplexity of %s (llama.cpp protocol, ctx %d)...\n", path, n_ctx);
    st = slm_ppl_llamacpp(c, m, text, len, path, &pp, &r);
    if (!st) {
        *ppl = r.ppl;
        *err = r.ppl_stderr;
    }
    slm_ppl_result_free(&r);
    slm_context_free(c);
    free(text);
    return st;
}

int slm_cmd_eval(int argc, char **argv) {
    const char *tasks_list = NULL, *data_dir = SLM_DEFAULT_DATA_DIR, *output = NULL, *log_path = NULL, *ppl_file = NULL;
    int limit = 0, threads = 0, max_len = 0, bootstrap = 1000, ppl_ctx = 512;
    uint64_t seed = 1234;
    bool mutual_info = false, pmi_dc = false, quiet = false;
    bool dequantize = false;
    const slm_option opts[] = {
        {"tasks", 0, SLM_OPT_STRING, &tasks_list, "LIST", "comma-separated tasks or groups (mmlu, rom6, ai2-12, all)"},
        {"limit", 'n', SLM_OPT_INT, &limit, "N", "only the first N documents of each task (0: all)"},
        {"seed", 0, SLM_OPT_U64, &seed, "S", "seed of the bootstrap resampling (F1 standard errors)"},
        {"data-dir", 'd', SLM_OPT_STRING, &data_dir, "DIR", "data directory (see its MANIFEST.md)"},
        {"output", 'o', SLM_OPT_STRING, &output, "FILE", "write the results as JSON"},
        {"log-samples", 0, SLM_OPT_STRING, &log_path, "FILE", "write each document's requests and scores (jsonl)"},
        {"mutual-info", 0, SLM_OPT_FLAG, &mutual_info, NULL, "also report acc_mutual_info (lm-eval's definition)"},
        {"pmi-dc", 0, SLM_OPT_FLAG, &pmi_dc, NULL, "also report domain-conditional PMI where a task has a premise"},
        {"max-len", 0, SLM_OPT_INT, &max_len, "N", "longest input in tokens; longer ones keep their end (0: 2048)"},
        {"bootstrap", 0, SLM_OPT_INT, &bootstrap, "N", "bootstrap resamples for F1 standard errors"},
        {"ppl", 0, SLM_OPT_STRING, &ppl_file, "FILE", "also report perplexity on this text (llama.cpp protocol)"},
        {"ppl-ctx", 0, SLM_OPT_INT, &ppl_ctx, "N", "chunk length for --ppl"},
        {"threads", 't', SLM_OPT_INT, &threads, "N", "threads (0: all cores)"},
        {"quiet", 'q', SLM_OPT_FLAG, &quiet, NULL, "no progress display"},
        {"dequantize", 0, SLM_OPT_FLAG, &dequantize, NULL, SLM_CLI_DEQUANTIZE_HELP},
        {0}};
    const slm_cli_spec spec = {"eval", "MODEL --tasks LIST [options]",
                               "Zero-shot accuracy on benchmark tasks, as lm-evaluation-harness computes it.", opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    slm_eval_task *tasks = NULL;
    int n_tasks = 0;
    slm_status st = slm_eval_tasks_expand(tasks_list, &tasks, &n_tasks);
    if (st) {
        free(pos);
        return slm_cli_report(st);
    }
    for (int i = 0; i < n_tasks && !st; i++) st = slm_eval_task_check(&tasks[i], data_dir);
    if (st) {
        free(tasks);
        free(pos);
        return slm_cli_report(st);
    }
    slm_model *m = NULL;
    if (slm_cli_load_model_q(pos[0], true, threads, !dequantize, &m)) {
        free(tasks);
        free(pos);
        return 1;
    }
    FILE *log = NULL;
    if (log_path && !(log = fopen(log_path, "w"))) {
        slm_fail(SLM_ERR_IO, "%s: cannot open for writing", log_path);
        rc = slm_cli_report(SLM_ERR_IO);
        goto out;
    }
    slm_eval_params p = slm_eval_default_params();
    p.data_dir = data_dir;
    p.limit = limit;
    p.seed = seed;
    p.bootstrap_iters = bootstrap;
    p.max_len = max_len;
    p.quiet = quiet;
    p.log_samples = log;
    p.extra_metrics = (mutual_info ? SLM_EVAL_MI : 0) | (pmi_dc ? SLM_EVAL_PMI_DC : 0);
    slm_eval_results r;
    if ((st = slm_eval_run(m, tasks, n_tasks, &p, &r))) {
        rc = slm_cli_report(st);
        goto out;
    }
    double ppl = 0, ppl_err = 0;
    if (ppl_file && (st = run_ppl(m, ppl_file, ppl_ctx, quiet, &ppl, &ppl_err))) {
        slm_eval_results_free(&r);
        rc = slm_cli_report(st);
        goto out;
    }
    slm_model_stats s = slm_model_get_stats(m, 1);
    int64_t req = 0, dec = 0;
    for (int i = 0; i < r.n_tasks; i++) {
        req += r.tasks[i].tokens_requested;
        dec += r.tasks[i].tokens_decoded;
    }
    printf("model %s: #params %.2f M, #MACs/token %.2f M; %d tasks in %.1f s (%lld tokens run for %lld requested)\n\n",
           pos[0], (double)s.n_params / 1e6, (double)s.macs_per_token / 1e6, r.n_tasks, r.seconds, (long long)dec,
           (long long)req);
    slm_eval_print_table(stdout, &r);
    if (ppl_file) printf("\nperplexity %s (ctx %d): %.4f ± %.4f\n", ppl_file, ppl_ctx, ppl, ppl_err);
    if (output) {
        cJSON *cfg = cJSON_CreateObject();
        cJSON_AddStringToObject(cfg, "model", pos[0]);
        cJSON_AddNumberToObject(cfg, "n_params", (double)s.n_params);
        cJSON_AddNumberToObject(cfg, "macs_per_token", (double)s.macs_per_token);
        cJSON_AddStringToObject(cfg, "tasks", tasks_list);
        cJSON_AddNumberToObject(cfg, "limit", limit);
        cJSON_AddNumberToObject(cfg, "seed", (double)seed);
        cJSON_AddNumberToObject(cfg, "num_fewshot", 0);
        cJSON_AddStringToObject(cfg, "data_dir", data_dir);
        if (ppl_file) {
            cJSON *jp = cJSON_AddObjectToObject(cfg, "perplexity");
            cJSON_AddStringToObject(jp, "file", ppl_file);
            cJSON_AddNumberToObject(jp, "ctx", ppl_ctx);
            cJSON_AddNumberToObject(jp, "ppl", ppl);
            cJSON_AddNumberToObject(jp, "ppl_stderr", ppl_err);
        }
        char *text = slm_eval_results_json(&r, cfg);
        rc = text ? slm_cli_write_text(output, text) : slm_cli_report(SLM_ERR_NOMEM);
        free(text);
    }
    slm_eval_results_free(&r);
out:
    if (log) fclose(log);
    slm_model_free(m);
    free(tasks);
    free(pos);
    return rc;
}
