#define _POSIX_C_SOURCE 200809L
/* slimlm train MODEL --data FILES --tokens N -o OUT [options]: continued
 * pretraining of a (pruned) model, distillation from a teacher (vanilla,
 * MiniLM relations, homotopic), gradual block removal, or training a model
 * of any shape from scratch (--init random --config). Progress lines with
 * loss, learning rate, tokens/s and ETA; validation perplexity; atomic
 * checkpoints that --resume continues exactly; a result table, optional
 * JSON; the trained model as GGUF or safetensors. The work is in
 * src/train/trainer.h; docs/train.md describes the method and formats. */
#include "commands.h"
#include "compress/prune/prune.h"
#include "options.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct train_args {
    const char *model, *data, *out, *teacher, *kd, *init, *config, *tokenizer, *optimizer, *strategy;
    const char *val, *freeze, *teacher_blocks, *checkpoint, *json, *data_dir;
    int64_t tokens, drop_every, warmup, checkpoint_every, val_every, max_steps, val_windows;
    int drop, batch, accum, ctx, threads, log_every;
    float lambda, tau, lr, min_lr, clip, wd;
    uint64_t seed;
    bool resume, recompute, quiet;
} train_args;

/* ---- helpers ------------------------------------------------------------------------------------ */

static bool file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void fmt_time(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e8) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

/* Comma-separated non-negative integers into out[cap]; returns the count or -1. */
static int parse_int_list(const char *s, int *out, int cap) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > (1 << 20) || n == cap) return -1;
        out[n++] = (int)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return n;
}

/* Blocks to remove, in removal order: the lowest block influence first,
 * else the deepest first (deeper blocks change the residual stream least). */
static slm_status choose_blocks(slm_model *m, const train_args *a, int *order, int *n_order) {
    const int L = m->cfg.n_layers;
    slm_prune_strategy s;
    slm_status st = slm_prune_strategy_parse(a->strategy, &s);
    bool *drop = st ? NULL : slm_calloc((size_t)L, sizeof *drop, "block choice");
    double *bi = NULL;
    slm_calib cal = {0};
    if (!st && !drop) st = SLM_ERR_NOMEM;
    if (!st && s == SLM_PRUNE_BLOCK_INFLUENCE) {
        bi = slm_calloc((size_t)L, sizeof *bi, "block influence");
        st = bi ? slm_calib_load(slm_model_tokenizer(m), "mix", a->data_dir, 32, 128, a->seed, &cal) : SLM_ERR_NOMEM;
        if (!st) st = slm_prune_block_influence(m, &cal, a->quiet, bi);
    }
    if (!st) st = slm_prune_select(L, a->drop, s, bi, drop);
    *n_order = 0;
    for (int i = L - 1; !st && i >= 0; i--)
        if (drop[i]) order[(*n_order)++] = i;
    for (int i = 1; bi && i < *n_order; i++) /* insertion sort by influence */
        for (int j = i; j > 0 && bi[order[j]] < bi[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    slm_calib_free(&cal);
    free(bi);
    free(drop);
    return st;
}

/* The teacher block each student block came from (homotopic KD). */
static slm_status block_map(const slm_model *s, const slm_model *t, const train_args *a, int *src) {
    const int Ls = s->cfg.n_layers;
    if (a->teacher_blocks) {
        int n = parse_int_list(a->teacher_blocks, src, Ls);
        if (n != Ls)
            return slm_fail(SLM_ERR_ARG, "--teacher-blocks %s: need %d comma-separated teacher block numbers, one per "
                            "student block", a->teacher_blocks, Ls);
        return SLM_OK;
    }
    if (Ls == t->cfg.n_layers) { /* pruned here (dropped blocks stay in the plan): block i came from i */
        for (int i = 0; i < Ls; i++) src[i] = i;
        return SLM_OK;
    }
    int n = 0;
    slm_status st = slm_train_source_blocks(a->model, src, Ls, &n);
    if (st) return st;
    if (n != Ls)
        return slm_fail(SLM_ERR_ARG, "%s: %d blocks, the teacher %d, and no slimlm.source_blocks to tell which teacher "
                        "block each came from; give --teacher-blocks", a->model, Ls, t->cfg.n_layers);
    return SLM_OK;
}

static slm_status load_student(const train_args *a, slm_model **out) {
    slm_status st;
    slm_tokenizer *tok = NULL;
    if (a->tokenizer && (st = slm_tokenizer_load_path(a->tokenizer, &tok))) return st;
    if (strcmp(a->init, "random") == 0) {
        slm_config cfg;
        float std;
        const char *tp = a->tokenizer ? NULL : a->model;
        st = slm_train_config_load(a->config, &cfg, &std);
        if (!st && tp) st = slm_tokenizer_load_path(tp, &tok);
        if (!st) st = slm_train_model_init(&cfg, std, a->seed, out);
        if (!st) {
            (*out)->tok = tok;
            (*out)->path = strdup(a->config);
            return SLM_OK;
        }
        slm_tokenizer_free(tok);
        return st;
    }
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = tok == NULL;
    st = slm_model_load(a->model, &lp, out);
    if (st) {
        slm_tokenizer_free(tok);
        return st;
    }
    if (tok) (*out)->tok = tok;
    if (!(*out)->tok) return slm_fail(SLM_ERR_ARG, "%s: the model has no tokenizer; give --tokenizer", a->model);
    return SLM_OK;
}

/* ---- report -------------------------------------------------------------------------------------- */

typedef struct val_point {
    int64_t step, tokens;
    double nll;
} val_point;

typedef struct run_log {
    slm_step_stats *steps;
    int64_t n, cap;
    val_point *val;
    int n_val, cap_val;
} run_log;

static slm_status log_step(run_log *l, const slm_step_stats *s) {
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 256;
        slm_step_stats *nv = realloc(l->steps, sizeof *nv * (size_t)cap);
        if (!nv) return slm_fail(SLM_ERR_NOMEM, "train: step log");
        l->steps = nv;
        l->cap = cap;
    }
    l->steps[l->n++] = *s;
    return SLM_OK;
}

static slm_status log_val(run_log *l, int64_t step, int64_t tokens, double nll) {
    if (l->n_val == l->cap_val) {
        int cap = l->cap_val ? 2 * l->cap_val : 16;
        val_point *nv = realloc(l->val, sizeof *nv * (size_t)cap);
        if (!nv) return slm_fail(SLM_ERR_NOMEM, "train: validation log");
        l->val = nv;
        l->cap_val = cap;
    }
    l->val[l->n_val++] = (val_point){step, tokens, nll};
    return SLM_OK;
}

static double train_loss_near(const run_log *l, int64_t step) { /* mean CE of the 10 steps up to step */
    double s = 0;
    int n = 0;
    for (int64_t i = 0; i < l->n; i++)
        if (l->steps[i].step <= step && l->steps[i].step > step - 10) s += l->steps[i].ce, n++;
    return n ? s / n : NAN;
}

static void print_table(const train_args *a, const run_log *l, int64_t first_step, int64_t last_step,
                        int64_t tokens, double seconds, const slm_model *m) {
    char kd[64];
    unsigned terms = 0;
    slm_kd_parse(a->kd, &terms);
    slm_model_stats ms = slm_model_get_stats(m, 1);
    if (l->n_val) printf("%-8s %-10s %-12s %-10s %-10s\n", "step", "tokens", "train CE", "val NLL", "val PPL");
    int64_t shown = -1;
    for (int i = 0; i < l->n_val; i++) {
        const val_point *v = &l->val[i];
        if (v->step == shown) continue;
        shown = v->step;
        double tr = train_loss_near(l, v->step);
        printf("%-8lld %-10lld ", (long long)v->step, (long long)v->tokens);
        if (isnan(tr)) printf("%-12s ", "-");
        else printf("%-12.4f ", tr);
        printf("%-10.4f %-10.2f\n", v->nll, exp(v->nll));
    }
    if (l->n) {
        printf("train CE: step %lld %.4f -> step %lld %.4f (mean of the last 10 steps %.4f)\n",
               (long long)l->steps[0].step, l->steps[0].ce, (long long)l->steps[l->n - 1].step, l->steps[l->n - 1].ce,
               train_loss_near(l, l->steps[l->n - 1].step));
    }
    printf("%s: %lld steps (%lld -> %lld), %lld tokens in %.1f s, %.0f tokens/s; %s; %d blocks, %.2f M params\n",
           slm_kd_name(terms, kd, sizeof kd), (long long)(last_step - first_step), (long long)first_step,
           (long long)last_step, (long long)tokens, seconds, seconds > 0 ? (double)tokens / seconds : 0.0,
           a->optimizer, ms.n_layers_kept, (double)ms.n_params / 1e6);
}

static cJSON *report_json(const train_args *a, const run_log *l, const slm_trainer_params *tp, int64_t first_step,
                          int64_t last_step, int64_t tokens, double seconds, const slm_model *m,
                          const slm_train_data *d, const int *removed, int n_removed) {
    cJSON *j = cJSON_CreateObject();
    char kd[64];
    cJSON_AddStringToObject(j, "model", a->model ? a->model : "");
    cJSON_AddStringToObject(j, "init", a->init);
    cJSON_AddStringToObject(j, "output_model", a->out);
    cJSON_AddStringToObject(j, "data", d->source);
    cJSON_AddNumberToObject(j, "data_tokens", (double)d->n_tokens);
    cJSON_AddNumberToObject(j, "data_documents", d->n_docs);
    cJSON_AddStringToObject(j, "kd", slm_kd_name(tp->kd.terms, kd, sizeof kd));
    cJSON_AddNumberToObject(j, "lambda", tp->kd.lambda);
    cJSON_AddNumberToObject(j, "tau", tp->kd.tau);
    if (a->teacher) cJSON_AddStringToObject(j, "teacher", a->teacher);
    cJSON_AddStringToObject(j, "optimizer", a->optimizer);
    cJSON_AddNumberToObject(j, "lr", tp->lr);
    cJSON_AddNumberToObject(j, "warmup_steps", (double)tp->warmup);
    cJSON_AddNumberToObject(j, "final_lr_fraction", tp->final_frac);
    cJSON_AddNumberToObject(j, "weight_decay", tp->optim.weight_decay);
    cJSON_AddNumberToObject(j, "clip", tp->optim.clip_norm);
    cJSON_AddNumberToObject(j, "batch", tp->n_seq);
    cJSON_AddNumberToObject(j, "accum", tp->accum);
    cJSON_AddNumberToObject(j, "ctx", tp->n_tok);
    cJSON_AddNumberToObject(j, "seed", (double)a->seed);
    cJSON_AddNumberToObject(j, "steps_total", (double)tp->n_steps);
    cJSON_AddNumberToObject(j, "first_step", (double)first_step);
    cJSON_AddNumberToObject(j, "last_step", (double)last_step);
    cJSON_AddNumberToObject(j, "tokens", (double)tokens);
    cJSON_AddNumberToObject(j, "seconds", seconds);
    cJSON_AddNumberToObject(j, "tokens_per_second", seconds > 0 ? (double)tokens / seconds : 0.0);
    slm_model_stats ms = slm_model_get_stats(m, 1);
    cJSON_AddNumberToObject(j, "blocks_kept", ms.n_layers_kept);
    cJSON_AddNumberToObject(j, "params", (double)ms.n_params);
    cJSON *gone = cJSON_AddArrayToObject(j, "dropped_blocks"); /* of the final plan */
    for (int i = 0; i < m->cfg.n_layers; i++)
        if (!m->blocks[i].kept) cJSON_AddItemToArray(gone, cJSON_CreateNumber(i));
    cJSON *rm = cJSON_AddArrayToObject(j, "removed_during_run"); /* gradual removal, this invocation */
    for (int i = 0; i < n_removed; i++) cJSON_AddItemToArray(rm, cJSON_CreateNumber(removed[i]));
    cJSON *v = cJSON_AddArrayToObject(j, "validation");
    for (int i = 0; i < l->n_val; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", (double)l->val[i].step);
        cJSON_AddNumberToObject(o, "tokens", (double)l->val[i].tokens);
        cJSON_AddNumberToObject(o, "nll", l->val[i].nll);
        cJSON_AddNumberToObject(o, "ppl", exp(l->val[i].nll));
        cJSON_AddItemToArray(v, o);
    }
    cJSON *h = cJSON_AddArrayToObject(j, "steps");
    for (int64_t i = 0; i < l->n; i++) {
        const slm_step_stats *s = &l->steps[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", (double)s->step);
        cJSON_AddNumberToObject(o, "lr", s->lr);
        cJSON_AddNumberToObject(o, "loss", s->loss);
        cJSON_AddNumberToObject(o, "ce", s->ce);
        if (tp->kd.terms & SLM_KD_LOGITS) cJSON_AddNumberToObject(o, "kd_logits", s->kd_logits);
        if (tp->kd.terms & SLM_KD_RELATION) cJSON_AddNumberToObject(o, "kd_relation", s->kd_rel);
        if (tp->kd.terms & SLM_KD_HIDDEN) cJSON_AddNumberToObject(o, "kd_hidden", s->kd_hid);
        cJSON_AddNumberToObject(o, "grad_norm", s->grad_norm);
        cJSON_AddNumberToObject(o, "tokens", (double)s->tokens);
        cJSON_AddNumberToObject(o, "seconds", s->seconds);
        if (s->dropped_block >= 0) cJSON_AddNumberToObject(o, "removed_block", s->dropped_block);
        cJSON_AddItemToArray(h, o);
    }
    return j;
}

/* ---- the run ------------------------------------------------------------------------------------- */

static slm_status validate_args(const train_args *a, int n_pos) {
    bool random = strcmp(a->init, "random") == 0;
    if (!random && strcmp(a->init, "model") != 0)
        return slm_fail(SLM_ERR_ARG, "train: --init %s: expected model or random", a->init);
    if (!random && n_pos < 1) return slm_fail(SLM_ERR_ARG, "train: MODEL is required (or --init random --config)");
    if (random && !a->config) return slm_fail(SLM_ERR_ARG, "train: --init random needs --config CONFIG.json");
    if (!random && a->config) return slm_fail(SLM_ERR_ARG, "train: --config is for --init random");
    if (random && !a->tokenizer && n_pos < 1)
        return slm_fail(SLM_ERR_ARG, "train: --init random needs --tokenizer MODEL (or MODEL) for its vocabulary");
    if (!a->data) return slm_fail(SLM_ERR_ARG, "train: --data FILES is required");
    if (a->tokens <= 0) return slm_fail(SLM_ERR_ARG, "train: --tokens N (> 0) is required");
    if (!a->out) return slm_fail(SLM_ERR_ARG, "train: -o OUT is required");
    if (strcmp(a->optimizer, "adamw") != 0 && strcmp(a->optimizer, "lion") != 0)
        return slm_fail(SLM_ERR_ARG, "train: --optimizer %s: expected adamw or lion", a->optimizer);
    unsigned terms;
    slm_status st = slm_kd_parse(a->kd, &terms);
    if (st) return st;
    if (terms && !a->teacher) return slm_fail(SLM_ERR_ARG, "train: --kd %s needs --teacher MODEL", a->kd);
    if (!terms && a->teacher) return slm_fail(SLM_ERR_ARG, "train: --teacher given with --kd none");
    if (a->drop_every > 0 && a->drop <= 0) return slm_fail(SLM_ERR_ARG, "train: --drop-every needs --drop K");
    if (a->drop_every < 0) return slm_fail(SLM_ERR_ARG, "train: --drop-every %lld", (long long)a->drop_every);
    if (a->batch < 1 || a->accum < 1 || a->ctx < 2)
        return slm_fail(SLM_ERR_ARG, "train: --batch %d, --accum %d, --ctx %d: need >= 1, >= 1, >= 2", a->batch,
                        a->accum, a->ctx);
    if (!(a->lr > 0) || !(a->lambda >= 0) || !(a->tau > 0) || !(a->clip >= 0) || !(a->wd >= 0) ||
        !(a->min_lr >= 0 && a->min_lr <= 1))
        return slm_fail(SLM_ERR_ARG, "train: --lr %g, --lambda %g, --tau %g, --clip %g, --wd %g, --min-lr %g out of "
                        "range", (double)a->lr, (double)a->lambda, (double)a->tau, (double)a->clip, (double)a->wd,
                        (double)a->min_lr);
    if (a->val_every > 0 && !a->val) return slm_fail(SLM_ERR_ARG, "train: --val-every needs --val FILE");
    if (a->checkpoint_every < 0 || a->val_every < 0 || a->max_steps < 0 || a->log_every < 1)
        return slm_fail(SLM_ERR_ARG, "train: negative step counts");
    return SLM_OK;
}

int slm_cmd_train(int argc, char **argv) {
    train_args a = {.kd = "none", .init = "model", .optimizer = "adamw", .strategy = "max-gap",
                    .data_dir = SLM_DEFAULT_DATA_DIR, .warmup = -1, .checkpoint_every = 100, .val_windows = 64,
                    .drop = -1, .batch = 4, .accum = 1, .ctx = 128, .log_every = 10, .lambda = 1.0f, .tau = 1.0f,
                    .lr = 3e-4f, .min_lr = 0.1f, .clip = 1.0f, .wd = 0.1f, .seed = 1};
    const slm_option opts[] = {
        {"data", 0, SLM_OPT_STRING, &a.data, "FILES", "training text: .txt / .jsonl files or directories, comma-separated"},
        {"tokens", 'n', SLM_OPT_I64, &a.tokens, "N", "train on N tokens (steps = N / (batch x ctx x accum), rounded up)"},
        {"output-model", 'o', SLM_OPT_STRING, &a.out, "OUT", "write the trained model: OUT.gguf, else a safetensors directory"},
        {"teacher", 0, SLM_OPT_STRING, &a.teacher, "MODEL", "distillation teacher"},
        {"kd", 0, SLM_OPT_STRING, &a.kd, "KIND", "none | vanilla | minilm | homotopic | hidden, or joined by '+'"},
        {"lambda", 0, SLM_OPT_FLOAT, &a.lambda, "L", "weight of each distillation term (each scaled to the CE)"},
        {"tau", 0, SLM_OPT_FLOAT, &a.tau, "T", "temperature of vanilla KD"},
        {"teacher-blocks", 0, SLM_OPT_STRING, &a.teacher_blocks, "LIST", "teacher block of each student block (homotopic)"},
        {"drop", 0, SLM_OPT_INT, &a.drop, "K", "remove K decoder blocks (as slimlm prune)"},
        {"strategy", 0, SLM_OPT_STRING, &a.strategy, "S", "max-gap | input | output | middle | both | block-influence"},
        {"drop-every", 0, SLM_OPT_I64, &a.drop_every, "TOKENS", "gradual removal: one block every TOKENS tokens (0: all at start)"},
        {"init", 0, SLM_OPT_STRING, &a.init, "HOW", "model | random (a fresh model of --config's shape)"},
        {"config", 0, SLM_OPT_STRING, &a.config, "FILE", "HF config.json of the model --init random makes"},
        {"tokenizer", 0, SLM_OPT_STRING, &a.tokenizer, "MODEL", "take the tokenizer from MODEL (GGUF, HF dir, tokenizer.json)"},
        {"optimizer", 0, SLM_OPT_STRING, &a.optimizer, "NAME", "adamw | lion (betas 0.9, 0.95)"},
        {"lr", 0, SLM_OPT_FLOAT, &a.lr, "LR", "peak learning rate"},
        {"min-lr", 0, SLM_OPT_FLOAT, &a.min_lr, "F", "cosine decay ends at F x the peak"},
        {"warmup", 0, SLM_OPT_I64, &a.warmup, "STEPS", "linear warm-up steps (-1: 5% of the steps)"},
        {"batch", 'b', SLM_OPT_INT, &a.batch, "B", "sequences per micro-batch"},
        {"accum", 0, SLM_OPT_INT, &a.accum, "M", "micro-batches per optimizer step"},
        {"ctx", 'c', SLM_OPT_INT, &a.ctx, "T", "tokens per sequence"},
        {"clip", 0, SLM_OPT_FLOAT, &a.clip, "NORM", "clip the global gradient norm (0: off)"},
        {"wd", 0, SLM_OPT_FLOAT, &a.wd, "WD", "decoupled weight decay (not on norms and biases)"},
        {"seed", 0, SLM_OPT_U64, &a.seed, "N", "data order (and --init random weights)"},
        {"freeze", 0, SLM_OPT_STRING, &a.freeze, "LIST", "comma-separated tensor-name prefixes not to train"},
        {"recompute", 0, SLM_OPT_FLAG, &a.recompute, NULL, "recompute activations in the backward (less memory)"},
        {"checkpoint", 0, SLM_OPT_STRING, &a.checkpoint, "FILE", "checkpoint path (default OUT.ckpt)"},
        {"checkpoint-every", 0, SLM_OPT_I64, &a.checkpoint_every, "STEPS", "write the checkpoint every STEPS steps (0: never)"},
        {"resume", 0, SLM_OPT_FLAG, &a.resume, NULL, "continue from the checkpoint (same model, data and options)"},
        {"max-steps", 0, SLM_OPT_I64, &a.max_steps, "N", "stop after step N of the schedule (checkpoint written; 0: run to the end)"},
        {"val", 0, SLM_OPT_STRING, &a.val, "FILE", "validation text: perplexity at the start, every --val-every steps, at the end"},
        {"val-every", 0, SLM_OPT_I64, &a.val_every, "STEPS", "validate every STEPS steps (0: start and end only)"},
        {"val-windows", 0, SLM_OPT_I64, &a.val_windows, "N", "validation windows of --ctx tokens (0: all)"},
        {"log-every", 0, SLM_OPT_INT, &a.log_every, "STEPS", "progress line every STEPS steps"},
        {"data-dir", 'd', SLM_OPT_STRING, &a.data_dir, "DIR", "data directory (relative --data / --val paths, block influence)"},
        {"output", 0, SLM_OPT_STRING, &a.json, "FILE", "also write the report as JSON"},
        {"quiet", 'q', SLM_OPT_FLAG, &a.quiet, NULL, "no progress lines"},
        {"threads", 't', SLM_OPT_INT, &a.threads, "N", "threads (0: all cores)"},
        {0}};
    const slm_cli_spec spec = {"train", "[MODEL] --data FILES --tokens N -o OUT [options]",
                               "Continue pretraining a (pruned) model, distil it from a teacher, or train a model of "
                               "any shape from scratch.",
                               opts, 0, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    a.model = npos ? pos[0] : NULL;
    slm_status st = validate_args(&a, npos);
    if (st) {
        free(pos);
        return slm_cli_report(st);
    }
    slm_set_threads(a.threads);
    char ckpt_buf[4096];
    if (!a.checkpoint) {
        snprintf(ckpt_buf, sizeof ckpt_buf, "%s.ckpt", a.out);
        a.checkpoint = ckpt_buf;
    }
    if (a.resume && !file_exists(a.checkpoint)) {
        free(pos);
        return slm_cli_report(slm_fail(SLM_ERR_IO, "%s: --resume: no checkpoint there", a.checkpoint));
    }

    slm_model *m = NULL, *teacher = NULL;
    slm_train_data data = {0}, val = {0};
    slm_trainer *tr = NULL;
    run_log log = {0};
    int *order = NULL, *src = NULL, n_order = 0;
    slm_trainer_params tp = slm_trainer_default_params();
    st = load_student(&a, &m);
    const int L = m ? m->cfg.n_layers : 0;
    if (!st && a.teacher) {
        slm_load_params lp = slm_load_default_params();
        lp.load_tokenizer = false;
        st = slm_model_load(a.teacher, &lp, &teacher);
    }
    if (!st && (!(order = slm_calloc((size_t)L + 1, sizeof *order, "removal order")) ||
                !(src = slm_calloc((size_t)L + 1, sizeof *src, "block map"))))
        st = SLM_ERR_NOMEM;
    if (!st && a.drop >= 0) st = choose_blocks(m, &a, order, &n_order);
    if (!st && a.drop >= 0 && a.drop_every == 0) { /* truncated initialisation: remove them now */
        bool *drop = slm_calloc((size_t)L, sizeof *drop, "block choice");
        if (!drop) st = SLM_ERR_NOMEM;
        for (int i = 0; !st && i < n_order; i++) drop[order[i]] = true;
        if (!st) st = slm_prune_apply(m, drop);
        free(drop);
        n_order = 0;
    }
    if (!st) st = slm_kd_parse(a.kd, &tp.kd.terms);
    if (!st && (tp.kd.terms & SLM_KD_HIDDEN)) st = block_map(m, teacher, &a, src);
    if (!st) st = slm_train_data_load(slm_model_tokenizer(m), a.data, a.data_dir, a.ctx, a.seed, false, &data);
    if (!st && a.val) st = slm_train_data_load(slm_model_tokenizer(m), a.val, a.data_dir, a.ctx, 0, true, &val);
    const int64_t per_step = (int64_t)a.batch * a.ctx * a.accum;
    if (!st) {
        tp.n_seq = a.batch;
        tp.n_tok = a.ctx;
        tp.accum = a.accum;
        tp.n_steps = (a.tokens + per_step - 1) / per_step;
        tp.lr = a.lr;
        tp.final_frac = a.min_lr;
        tp.warmup = a.warmup >= 0 ? a.warmup : tp.n_steps / 20;
        tp.optim = slm_optim_default_params(strcmp(a.optimizer, "lion") == 0 ? SLM_OPTIM_LION : SLM_OPTIM_ADAMW);
        tp.optim.clip_norm = a.clip;
        tp.optim.weight_decay = a.wd;
        tp.recompute = a.recompute;
        tp.kd.lambda = a.lambda;
        tp.kd.tau = a.tau;
        tp.kd.src = (tp.kd.terms & SLM_KD_HIDDEN) ? src : NULL;
        tp.drop_order = order;
        tp.n_drop = n_order;
        tp.drop_every = a.drop_every;
        if (tp.warmup > tp.n_steps)
            st = slm_fail(SLM_ERR_ARG, "train: --warmup %lld is longer than the run (%lld steps)", (long long)tp.warmup,
                          (long long)tp.n_steps);
        else if (n_order && (int64_t)n_order * a.drop_every > (tp.n_steps - 1) * per_step)
            st = slm_fail(SLM_ERR_ARG, "train: --drop-every %lld: the last of %d removals would come after the last step "
                          "(%lld tokens); use at most %lld", (long long)a.drop_every, n_order,
                          (long long)(tp.n_steps * per_step), (long long)((tp.n_steps - 1) * per_step / n_order));
    }
    if (!st) st = slm_trainer_new(m, teacher, &data, &tp, &tr);
    if (!st && a.freeze) { /* before a resume, which checks the frozen set */
        char *list = strdup(a.freeze), *save = NULL;
        if (!list) st = SLM_ERR_NOMEM;
        for (char *p = list ? strtok_r(list, ",", &save) : NULL; p && !st; p = strtok_r(NULL, ",", &save))
            if (slm_trainable_set_frozen(slm_trainer_view(tr), p, true) == 0)
                st = slm_fail(SLM_ERR_ARG, "train: --freeze %s: no tensor name starts with it (e.g. model.embed_tokens., "
                              "model.layers.3.)", p);
        free(list);
    }
    if (!st && a.resume) st = slm_trainer_resume(tr, a.checkpoint);
    const int64_t first_step = tr ? slm_trainer_steps_done(tr) : 0, first_tokens = tr ? slm_trainer_tokens_done(tr) : 0;
    const int64_t stop = a.max_steps > 0 && a.max_steps < tp.n_steps ? a.max_steps : tp.n_steps;
    int removed[64], n_removed = 0;
    if (!st && !a.quiet) {
        char kd[64];
        fprintf(stderr, "train: %lld tokens (%d documents in %d files), %lld steps of %d x %d x %d tokens, %s lr %g, "
                "warm-up %lld, kd %s%s\n", (long long)data.n_tokens, data.n_docs, data.n_files, (long long)tp.n_steps,
                a.batch, a.accum, a.ctx, a.optimizer, (double)a.lr, (long long)tp.warmup,
                slm_kd_name(tp.kd.terms, kd, sizeof kd), a.resume ? " (resumed)" : "");
        if (a.resume) fprintf(stderr, "resumed at step %lld (%lld tokens)\n", (long long)first_step, (long long)first_tokens);
    }
    double nll;
    int64_t nv;
    if (!st && a.val) {
        st = slm_trainer_validate(tr, &val, a.val_windows, &nll, &nv);
        if (!st) st = log_val(&log, first_step, first_tokens, nll);
        if (!st && !a.quiet)
            fprintf(stderr, "val @ step %lld: nll %.4f ppl %.2f (%lld tokens)\n", (long long)first_step, nll, exp(nll),
                    (long long)nv);
    }
    double t0 = slm_time_now();
    while (!st && slm_trainer_steps_done(tr) < stop) {
        slm_step_stats s;
        st = slm_trainer_step(tr, &s);
        if (!st) st = log_step(&log, &s);
        if (st) break;
        if (s.dropped_block >= 0 && n_removed < 64) removed[n_removed++] = s.dropped_block;
        if (!a.quiet && s.dropped_block >= 0)
            fprintf(stderr, "removed block %d after %lld tokens\n", s.dropped_block, (long long)(s.tokens - per_step));
        double el = slm_time_now() - t0;
        double tps = (double)(s.tokens - first_tokens) / (el > 0 ? el : 1e-9);
        if (!a.quiet && (s.step % a.log_every == 0 || s.step == stop || s.step == first_step + 1)) {
            char eta[32];
            fmt_time(el / (double)(s.step - first_step) * (double)(stop - s.step), eta, sizeof eta);
            fprintf(stderr, "step %lld/%lld  loss %.4f  ce %.4f", (long long)s.step, (long long)tp.n_steps, s.loss, s.ce);
            if (tp.kd.terms & SLM_KD_LOGITS) fprintf(stderr, "  kd %.4f", s.kd_logits);
            if (tp.kd.terms & SLM_KD_RELATION) fprintf(stderr, "  rel %.4f", s.kd_rel);
            if (tp.kd.terms & SLM_KD_HIDDEN) fprintf(stderr, "  hid %.4g", s.kd_hid);
            fprintf(stderr, "  lr %.3g  |g| %.3f  %.0f tok/s  ETA %s\n", (double)s.lr, s.grad_norm, tps, eta);
        }
        if (a.val && a.val_every > 0 && s.step % a.val_every == 0 && s.step != stop) {
            st = slm_trainer_validate(tr, &val, a.val_windows, &nll, &nv);
            if (!st) st = log_val(&log, s.step, s.tokens, nll);
            if (!st && !a.quiet) fprintf(stderr, "val @ step %lld: nll %.4f ppl %.2f\n", (long long)s.step, nll, exp(nll));
        }
        if (!st && ((a.checkpoint_every > 0 && s.step % a.checkpoint_every == 0) || (s.step == stop && stop < tp.n_steps))) {
            st = slm_trainer_save(tr, a.checkpoint);
            if (!st && !a.quiet) fprintf(stderr, "checkpoint %s at step %lld\n", a.checkpoint, (long long)s.step);
        }
    }
    double seconds = slm_time_now() - t0;
    const int64_t last_step = tr ? slm_trainer_steps_done(tr) : 0;
    if (!st && a.val && last_step > first_step) {
        st = slm_trainer_validate(tr, &val, a.val_windows, &nll, &nv);
        if (!st) st = log_val(&log, last_step, slm_trainer_tokens_done(tr), nll);
        if (!st && !a.quiet) fprintf(stderr, "val @ step %lld: nll %.4f ppl %.2f\n", (long long)last_step, nll, exp(nll));
    }
    if (!st) {
        int64_t tokens = slm_trainer_tokens_done(tr) - first_tokens;
        print_table(&a, &log, first_step, last_step, tokens, seconds, m);
        st = slm_cli_save_model(m, a.out);
        if (!st && a.json) {
            cJSON *j = report_json(&a, &log, &tp, first_step, last_step, tokens, seconds, m, &data, removed, n_removed);
            char *text = cJSON_Print(j);
            rc = slm_cli_write_text(a.json, text);
            free(text);
            cJSON_Delete(j);
        }
    }
    if (st) rc = slm_cli_report(st);
    slm_trainer_free(tr);
    slm_train_data_free(&data);
    slm_train_data_free(&val);
    free(log.steps);
    free(log.val);
    free(order);
    free(src);
    slm_model_free(teacher);
    slm_model_free(m);
    free(pos);
    return rc;
}
