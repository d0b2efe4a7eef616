/* slimlm nas: LLaMA-NAS architecture search (src/nas).
 *
 *   nas search MODEL --task T --limit N --objectives params,accuracy --evals E --output front.json
 *       LINAS-style search (or --random) over block count x per-block MLP
 *       width; the JSON is the checkpoint too (--resume continues it);
 *       prints the front, the per-block width probabilities, writes an SVG.
 *   nas extract MODEL --arch FILE|JSON [--member K] -o OUT
 *       a standalone model of one sub-network: GGUF with per-block MLP
 *       widths (llama.cpp "deci" when they differ) or safetensors.
 *   nas eval MODEL --archs JSON --task T [--channels plain|reorder|both]
 *       given sub-networks measured as the search measures them (the
 *       experiment behind docs/nas.md's channel-order numbers).
 *   nas compare A.json B.json [--svg OUT]
 *       hypervolumes against A's reference, their ratio, both fronts plotted.
 *   nas report FILE [--svg OUT]
 *       the table, width probabilities and plot of a search file.
 */
#define _POSIX_C_SOURCE 200809L
#include "commands.h"
#include "compress/calib.h"
#include "core/core.h"
#include "eval/harness.h"
#include "model/model.h"
#include "nas/report.h"
#include "options.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- accuracy through the zero-shot harness ------------------------------------------- */

typedef struct acc_ctx {
    slm_eval_task task;
    slm_eval_params ep;
    const char *metric;
    const slm_calib *loss_cal; /* NULL, or windows whose mean NLL is recorded */
} acc_ctx;

static slm_status task_accuracy(void *user, const slm_model *m, double *acc, double *loss) {
    acc_ctx *a = user;
    slm_eval_results r;
    if (a->loss_cal) {
        slm_status st = slm_calib_nll(m, a->loss_cal, loss);
        if (st) return st;
    }
    slm_status st = slm_eval_run(m, &a->task, 1, &a->ep, &r);
    if (st) return st;
    st = slm_fail(SLM_ERR_ARG, "task %s does not report metric '%s'", a->task.name, a->metric);
    for (int i = 0; i < r.n_tasks && r.n_tasks == 1; i++)
        for (int k = 0; k < r.tasks[i].n_values; k++)
            if (!strcmp(r.tasks[i].v[k].name, a->metric)) {
                *acc = r.tasks[i].v[k].value;
                st = SLM_OK;
                slm_error_clear();
            }
    slm_eval_results_free(&r);
    return st;
}

/* ---- checkpoint ------------------------------------------------------------------------ */

typedef struct ckpt_ctx {
    const char *path;
    const cJSON *config;
    const int32_t *order;
} ckpt_ctx;

static slm_status write_json_file(const char *path, cJSON *j) {
    char *text = j ? cJSON_Print(j) : NULL;
    if (!text) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory formatting JSON", path);
    slm_atomic_file af;
    slm_status st = slm_atomic_open(path, &af);
    if (!st) st = slm_atomic_write(&af, text, strlen(text));
    if (!st) st = slm_atomic_write(&af, "\n", 1);
    if (!st) st = slm_atomic_commit(&af);
    else slm_atomic_abort(&af);
    free(text);
    return st;
}

static slm_status checkpoint(void *user, const slm_nas_state *s) {
    ckpt_ctx *c = user;
    cJSON *j = slm_nas_state_to_json(s, cJSON_Duplicate(c->config, true), c->order);
    slm_status st = write_json_file(c->path, j);
    cJSON_Delete(j);
    return st;
}

static slm_status write_svg(const char *path, const slm_nas_state *const *s, const char *const *names, int n,
                            const char *title) {
    char *svg = slm_nas_svg(s, names, n, title);
    if (!svg) return SLM_ERR_NOMEM;
    slm_atomic_file af;
    slm_status st = slm_atomic_open(path, &af);
    if (!st) st = slm_atomic_write(&af, svg, strlen(svg));
    if (!st) st = slm_atomic_commit(&af);
    else slm_atomic_abort(&af);
    free(svg);
    if (!st) printf("wrote %s\n", path);
    return st;
}

/* OUT.json -> OUT.svg (else OUT + ".svg"), malloc'd. */
static char *svg_path_for(const char *json) {
    size_t n = strlen(json);
    char *p = malloc(n + 8);
    if (!p) return NULL;
    memcpy(p, json, n + 1);
    if (n > 5 && !strcmp(json + n - 5, ".json")) p[n - 5] = 0;
    strcat(p, ".svg");
    return p;
}

/* The settings a resumed search must share with the one it continues. */
static const char *const k_config_keys[] = {"model", "task", "limit", "metric", "reorder", "calib", "quantized", "loss"};

static slm_status check_resume_config(const char *path, const cJSON *old, const cJSON *now) {
    for (size_t i = 0; i < sizeof k_config_keys / sizeof *k_config_keys; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(old, k_config_keys[i]);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(now, k_config_keys[i]);
        if (!cJSON_Compare(a, b, true)) {
            char *ta = a ? cJSON_PrintUnformatted(a) : NULL, *tb = b ? cJSON_PrintUnformatted(b) : NULL;
            slm_status st = slm_fail(SLM_ERR_ARG, "%s: was searched with %s %s, not %s; cannot resume", path,
                                     k_config_keys[i], ta ? ta : "(none)", tb ? tb : "(none)");
            free(ta);
            free(tb);
            return st;
        }
    }
    return SLM_OK;
}

/* ---- nas search ------------------------------------------------------------------------- */

static slm_status load_calib(const slm_model *m, const char *spec, const char *data_dir, int n, int len, uint64_t seed,
                             bool quiet, slm_calib *out) {
    slm_status st = slm_calib_load(slm_model_tokenizer(m), spec, data_dir, n, len, seed, out);
    if (!st && !quiet) fprintf(stderr, "nas: calibration %d x %d tokens from %s\n", n, len, out->source);
    return st;
}

static int cmd_search(int argc, char **argv) {
    const char *task_name = NULL, *metric = "acc", *objectives = "params,accuracy", *output = NULL, *svg = NULL;
    const char *depths = "", *widths = "50%,100%", *order = "first", *calib = "mix", *data_dir = SLM_DEFAULT_DATA_DIR;
    int limit = 0, evals = -1, population = 50, generations = 100, n_init = 0, per_round = 0, threads = 0;
    int calib_batch = 16, seqlen = 128, tput_tokens = 128, tput_reps = 3, folds = 5, max_len = 0;
    uint64_t seed = 1;
    bool random = false, resume = false, reorder = false, quiet = false, dequantize = false, loss = false;
    const slm_option opts[] = {
        {"task", 0, SLM_OPT_STRING, &task_name, "NAME", "zero-shot task whose accuracy is an objective (e.g. arc_easy)"},
        {"limit", 'n', SLM_OPT_INT, &limit, "N", "first N documents of the task (0: all)"},
        {"metric", 0, SLM_OPT_STRING, &metric, "M", "acc | acc_norm | ... (a metric the task reports)"},
        {"objectives", 0, SLM_OPT_STRING, &objectives, "OBJ", "params,accuracy | throughput,accuracy"},
        {"evals", 'e', SLM_OPT_INT, &evals, "N", "real evaluations, the reference not counted (-1: 250, or as the resumed search)"},
        {"population", 0, SLM_OPT_INT, &population, "N", "inner NSGA-II population"},
        {"generations", 0, SLM_OPT_INT, &generations, "N", "inner NSGA-II generations per round"},
        {"init", 0, SLM_OPT_INT, &n_init, "N", "random sub-networks before the predictors (0: evals/5, at least 3)"},
        {"per-round", 0, SLM_OPT_INT, &per_round, "N", "candidates evaluated per predictor round (0: evals/10)"},
        {"folds", 0, SLM_OPT_INT, &folds, "K", "predictor cross-validation folds"},
        {"random", 0, SLM_OPT_FLAG, &random, NULL, "random search with the same number of evaluations (baseline)"},
        {"depths", 0, SLM_OPT_STRING, &depths, "LIST", "block counts, e.g. 20,25,30 (empty: 2/3, 5/6 and all of the blocks)"},
        {"widths", 0, SLM_OPT_STRING, &widths, "LIST", "MLP widths or percentages of d_ff"},
        {"order", 0, SLM_OPT_STRING, &order, "O", "blocks a count keeps: first | max-gap | input | output | middle | both"},
        {"reorder", 0, SLM_OPT_FLAG, &reorder, NULL, "sort MLP channels by importance on calibration data first"},
        {"calib", 'c', SLM_OPT_STRING, &calib, "SRC", "calibration data for --reorder: mix | task:NAME | text:FILE"},
        {"calib-batch", 0, SLM_OPT_INT, &calib_batch, "N", "calibration sequences for --reorder and --loss"},
        {"loss", 0, SLM_OPT_FLAG, &loss, NULL, "also record each sub-network's mean NLL on the calibration windows"},
        {"seqlen", 0, SLM_OPT_INT, &seqlen, "N", "tokens per calibration sequence"},
        {"tput-tokens", 0, SLM_OPT_INT, &tput_tokens, "N", "tokens per throughput measurement (0: none)"},
        {"tput-reps", 0, SLM_OPT_INT, &tput_reps, "N", "throughput: best of N runs"},
        {"seed", 0, SLM_OPT_U64, &seed, "S", "random seed"},
        {"output", 'o', SLM_OPT_STRING, &output, "FILE", "results and checkpoint (JSON)"},
        {"svg", 0, SLM_OPT_STRING, &svg, "FILE", "plot (default: the output with .svg)"},
        {"resume", 0, SLM_OPT_FLAG, &resume, NULL, "continue the search in --output"},
        {"max-len", 0, SLM_OPT_INT, &max_len, "N", "longest task input in tokens (0: the model's)"},
        {"data-dir", 'd', SLM_OPT_STRING, &data_dir, "DIR", "data directory (see its MANIFEST.md)"},
        {"threads", 't', SLM_OPT_INT, &threads, "N", "threads (0: all cores)"},
        {"quiet", 'q', SLM_OPT_FLAG, &quiet, NULL, "no progress display"},
        {"dequantize", 0, SLM_OPT_FLAG, &dequantize, NULL, SLM_CLI_DEQUANTIZE_HELP},
        {0}};
    const slm_cli_spec spec = {"nas search", "MODEL --task NAME --output FILE [options]",
                               "Multi-objective search for sub-networks (block count x MLP widths): NSGA-II guided "
                               "by accuracy predictors (LINAS), or random search.",
                               opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    slm_status st = SLM_OK;
    slm_nas_objective obj;
    acc_ctx ac = {.metric = metric};
    if (!output) st = slm_fail(SLM_ERR_ARG, "nas search: --output FILE is required");
    if (!st && !task_name) st = slm_fail(SLM_ERR_ARG, "nas search: --task NAME is required");
    if (!st) st = slm_nas_objective_parse(objectives, &obj);
    if (!st && obj == SLM_NAS_OBJ_THROUGHPUT && tput_tokens < 1)
        st = slm_fail(SLM_ERR_ARG, "nas search: the throughput objective needs --tput-tokens > 0");
    if (!st) st = slm_eval_task_find(task_name, &ac.task);
    if (!st) st = slm_eval_task_check(&ac.task, data_dir);
    cJSON *old = NULL, *old_cfg = NULL;
    int32_t *order_perm = NULL;
    slm_calib cal = {0};
    slm_nas_state s;
    memset(&s, 0, sizeof s);
    bool have_state = false;
    if (!st && resume) {
        st = slm_nas_read_json(output, &old);
        if (!st) st = slm_nas_state_from_json(old, output, &s, &old_cfg, &order_perm);
        have_state = !st;
    }
    if (st) {
        cJSON_Delete(old);
        free(pos);
        return slm_cli_report(st);
    }
    slm_model *m = NULL;
    if (slm_cli_load_model_q(pos[0], true, threads, !dequantize, &m)) {
        if (have_state) slm_nas_state_free(&s);
        cJSON_Delete(old);
        cJSON_Delete(old_cfg);
        free(order_perm);
        free(pos);
        return 1;
    }
    int L = m->cfg.n_layers, F = m->cfg.d_ff;
    /* the settings that define what is measured (compared on --resume) */
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "model", pos[0]);
    cJSON_AddStringToObject(cfg, "task", ac.task.name);
    cJSON_AddNumberToObject(cfg, "limit", limit);
    cJSON_AddStringToObject(cfg, "metric", metric);
    cJSON_AddBoolToObject(cfg, "reorder", reorder);
    cJSON_AddStringToObject(cfg, "calib", reorder || loss ? calib : "");
    cJSON_AddBoolToObject(cfg, "loss", loss);
    cJSON_AddBoolToObject(cfg, "quantized", !dequantize);
    cJSON_AddStringToObject(cfg, "data_dir", data_dir);
    if (have_state) {
        st = check_resume_config(output, old_cfg, cfg);
        if (!st && (s.space.n_layers != L || s.space.d_ff != F))
            st = slm_fail(SLM_ERR_ARG, "%s: space is for %d blocks of width %d, the model has %d of %d", output,
                          s.space.n_layers, s.space.d_ff, L, F);
        if (!st && evals > 0) s.params.evals = evals; /* a resumed search may be extended */
        if (!st && reorder && !order_perm) st = slm_fail(SLM_ERR_FORMAT, "%s: no channel_order to resume with", output);
    } else {
        char dbuf[64];
        if (!*depths) { /* 2/3, 5/6 and all of the blocks: 20, 25, 30 for SmolLM2's 30 */
            snprintf(dbuf, sizeof dbuf, "%d,%d,%d", (2 * L + 1) / 3, (5 * L + 3) / 6, L);
            depths = dbuf;
        }
        slm_nas_space sp;
        st = slm_nas_space_parse(&sp, L, F, depths, widths, order);
        slm_nas_params p = slm_nas_default_params();
        p.objective = obj;
        p.evals = evals > 0 ? evals : 250;
        p.n_init = n_init;
        p.per_round = per_round;
        p.population = population;
        p.generations = generations;
        p.folds = folds;
        p.random = random;
        p.seed = seed;
        p.tput_tokens = tput_tokens;
        p.tput_reps = tput_reps;
        p.quiet = quiet;
        if (!st) {
            st = slm_nas_state_init(&s, &sp, &p);
            have_state = true;
        }
        if (!st && reorder) {
            double *score = slm_malloc((size_t)L * F * sizeof *score, "channel importance");
            order_perm = slm_malloc((size_t)L * F * sizeof *order_perm, "channel order");
            st = score && order_perm ? load_calib(m, calib, data_dir, calib_batch, seqlen, seed, quiet, &cal) : SLM_ERR_NOMEM;
            if (!st) st = slm_nas_channel_importance(m, &cal, quiet, score);
            if (!st) slm_nas_importance_order(score, L, F, order_perm);
            free(score);
        }
    }
    /* --loss windows: the same draw as --reorder's (seed), loaded on resume too */
    if (!st && loss && !cal.tokens) st = load_calib(m, calib, data_dir, calib_batch, seqlen, seed, quiet, &cal);
    if (!st && loss) ac.loss_cal = &cal;
    s.params.quiet = quiet;
    if (!st && order_perm) st = slm_nas_reorder_channels(m, order_perm);
    if (!st && !quiet)
        fprintf(stderr, "nas: %s, space %.3g sub-networks (%d depths x %d widths, order %s), %s, %d evaluations%s\n",
                pos[0], slm_nas_space_size(&s.space), s.space.n_depths, s.space.n_widths, s.space.order,
                slm_nas_objective_name(s.params.objective), s.params.evals, s.params.random ? " (random search)" : "");
    ac.ep = slm_eval_default_params();
    ac.ep.data_dir = data_dir;
    ac.ep.limit = limit;
    ac.ep.max_len = max_len;
    ac.ep.quiet = true;
    ac.ep.bootstrap_iters = 0;
    ckpt_ctx ck = {output, cfg, order_perm};
    if (!st) st = slm_nas_search_run(&s, m, task_accuracy, &ac, checkpoint, &ck);
    if (!st) {
        printf("\n");
        slm_nas_print_front(stdout, &s);
        printf("\n");
        slm_nas_print_width_probability(stdout, &s);
        printf("wrote %s\n", output);
        char *sp = svg ? NULL : svg_path_for(output);
        const slm_nas_state *one = &s;
        const char *name = s.params.random ? "random search" : "LINAS (NSGA-II + predictors)";
        char title[256];
        snprintf(title, sizeof title, "%s: %s on %s (limit %d)", slm_nas_objective_name(s.params.objective), metric,
                 ac.task.name, limit);
        st = write_svg(svg ? svg : sp, &one, &name, 1, title);
        free(sp);
    }
    rc = st ? slm_cli_report(st) : 0;
    if (have_state) slm_nas_state_free(&s);
    slm_calib_free(&cal);
    cJSON_Delete(cfg);
    cJSON_Delete(old);
    cJSON_Delete(old_cfg);
    free(order_perm);
    slm_model_free(m);
    free(pos);
    return rc;
}

/* ---- nas extract ------------------------------------------------------------------------ */

/* The architecture to extract: widths [L] and the channel order (or NULL). */
static slm_status read_arch(const char *arch, int member, int L, int F, int *widths, int32_t **order) {
    cJSON *j = NULL;
    *order = NULL;
    const char *src = arch;
    slm_status st;
    if (arch[0] == '{') {
        j = cJSON_Parse(arch);
        src = "--arch";
        st = j ? SLM_OK : slm_fail(SLM_ERR_FORMAT, "--arch: malformed JSON");
    } else {
        st = slm_nas_read_json(arch, &j);
    }
    if (st) return st;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
    const cJSON *o = j;
    slm_nas_state s;
    bool have_state = false;
    if (cJSON_IsString(fmt)) { /* a search file: front member K */
        st = slm_nas_state_from_json(j, src, &s, NULL, order);
        have_state = !st;
        int *front = NULL, nf = 0;
        if (!st) {
            front = slm_malloc(((size_t)s.n_ev + 1) * sizeof *front, "front");
            nf = front ? slm_nas_front(&s, front) : -1;
            if (nf < 0) st = SLM_ERR_NOMEM;
        }
        if (!st && (member < 1 || member > nf))
            st = slm_fail(SLM_ERR_ARG, "%s: --member %d: the front has members 1..%d (see nas report)", src, member, nf);
        if (!st && s.space.n_layers != L)
            st = slm_fail(SLM_ERR_ARG, "%s: searched over %d blocks, the model has %d", src, s.space.n_layers, L);
        if (!st) memcpy(widths, s.ev[front[member - 1]].widths, (size_t)L * sizeof *widths);
        free(front);
        if (have_state) slm_nas_state_free(&s);
        cJSON_Delete(j);
        return st;
    }
    /* an object with mlp_widths (and maybe channel_order) */
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "mlp_widths");
    if (!cJSON_IsArray(w) || cJSON_GetArraySize(w) != L)
        st = slm_fail(SLM_ERR_FORMAT, "%s: needs \"mlp_widths\": an array of %d block widths (0 = dropped)", src, L);
    int i = 0;
    const cJSON *x;
    if (!st) cJSON_ArrayForEach(x, w) {
        if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < 0 || x->valuedouble > F) {
            st = slm_fail(SLM_ERR_FORMAT, "%s: mlp_widths entry %d is not a width in 0..%d", src, i, F);
            break;
        }
        widths[i++] = (int)x->valuedouble;
    }
    const cJSON *co = cJSON_GetObjectItemCaseSensitive(o, "channel_order");
    if (!st && co && !cJSON_IsNull(co)) {
        if (!cJSON_IsArray(co) || cJSON_GetArraySize(co) != L)
            st = slm_fail(SLM_ERR_FORMAT, "%s: channel_order must hold %d rows of %d", src, L, F);
        *order = st ? NULL : slm_malloc((size_t)L * F * sizeof **order, "channel order");
        if (!st && !*order) st = SLM_ERR_NOMEM;
        int b = 0;
        const cJSON *row;
        if (!st) cJSON_ArrayForEach(row, co) {
            int k = 0;
            if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != F) {
                st = slm_fail(SLM_ERR_FORMAT, "%s: channel_order row %d must hold %d channels", src, b, F);
                break;
            }
            cJSON_ArrayForEach(x, row) (*order)[(size_t)b * F + k++] = cJSON_IsNumber(x) ? (int32_t)x->valuedouble : -1;
            b++;
        }
        if (st) {
            free(*order);
            *order = NULL;
        }
    }
    cJSON_Delete(j);
    return st;
}

/* Safetensors (HF config.json) has one intermediate_size: pad narrower kept
 * blocks with zero channels to the widest (the function is unchanged). */
static slm_status pad_mlp_widths(slm_model *m) {
    int L = m->cfg.n_layers, D = m->cfg.d_model, mx = 0;
    for (int b = 0; b < L; b++)
        if (m->blocks[b].kept && m->blocks[b].d_ff > mx) mx = m->blocks[b].d_ff;
    for (int b = 0; b < L; b++) {
        slm_block *blk = &m->blocks[b];
        int k = blk->d_ff;
        if (!blk->kept || k == mx) continue;
        for (int p = SLM_PROJ_GATE; p <= SLM_PROJ_DOWN; p++)
            if (blk->lin[p].kind != SLM_LINEAR_DENSE) return slm_fail(SLM_ERR_UNSUPPORTED, "block %d: MLP is not dense", b);
        float *g = slm_model_alloc_f32(m, (size_t)mx * D, "padded gate"), *u = slm_model_alloc_f32(m, (size_t)mx * D, "padded up");
        float *d = slm_model_alloc_f32(m, (size_t)D * mx, "padded down");
        if (!g || !u || !d) return SLM_ERR_NOMEM;
        memset(g, 0, sizeof(float) * mx * D);
        memset(u, 0, sizeof(float) * mx * D);
        memset(d, 0, sizeof(float) * mx * D);
        slm_linear *lg = &blk->lin[SLM_PROJ_GATE], *lu = &blk->lin[SLM_PROJ_UP], *ld = &blk->lin[SLM_PROJ_DOWN];
        for (int r = 0; r < k; r++) {
            memcpy(g + (size_t)r * D, lg->w + (size_t)r * lg->ld_w, sizeof(float) * D);
            memcpy(u + (size_t)r * D, lu->w + (size_t)r * lu->ld_w, sizeof(float) * D);
        }
        for (int r = 0; r < D; r++) memcpy(d + (size_t)r * mx, ld->w + (size_t)r * ld->ld_w, sizeof(float) * k);
        lg->w = g;
        lu->w = u;
        ld->w = d;
        lg->ld_w = lu->ld_w = D;
        ld->ld_w = mx;
        lg->n_out = lu->n_out = ld->n_in = mx;
        blk->d_ff = mx;
    }
    return SLM_OK;
}

/* The in-memory sub-network's logits of token id sequences ("1,2,3;1,5"),
 * each decoded from position 0, written one after another as [T][V]
 * little-endian float32 to path (for tools/check_nas_llamacpp.py). */
static slm_status dump_logits(const slm_model *m, const char *ids, const char *path) {
    int V = m->cfg.n_vocab, cap = 64, n = 0;
    int32_t *tok = malloc((size_t)cap * sizeof *tok);
    float *lg = NULL;
    slm_atomic_file af;
    slm_status st = tok ? slm_atomic_open(path, &af) : slm_fail(SLM_ERR_NOMEM, "out of memory");
    if (st) {
        free(tok);
        return st;
    }
    int n_seq = 0, total = 0;
    for (const char *p = ids; !st;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v >= V || (*end && *end != ',' && *end != ';')) {
            st = slm_fail(SLM_ERR_ARG, "--logits-tokens: bad token id list '%s'", ids);
            break;
        }
        if (n == cap) {
            int32_t *t = realloc(tok, (size_t)(cap *= 2) * sizeof *tok);
            if (!t) {
                st = slm_fail(SLM_ERR_NOMEM, "out of memory");
                break;
            }
            tok = t;
        }
        tok[n++] = (int32_t)v;
        if (*end == ',') {
            p = end + 1;
            continue;
        }
        /* end of a sequence */
        slm_context_params cp = {.n_ctx = n, .n_batch = n};
        slm_context *c = NULL;
        float *l2 = realloc(lg, sizeof(float) * (size_t)n * V);
        if (!l2) st = slm_fail(SLM_ERR_NOMEM, "out of memory for logits");
        else lg = l2;
        if (!st) st = slm_context_new(m, &cp, &c);
        if (!st) st = slm_decode(c, tok, n, true, lg);
        if (!st) st = slm_atomic_write(&af, lg, sizeof(float) * (size_t)n * V);
        slm_context_free(c);
        n_seq++;
        total += n;
        n = 0;
        if (!*end) break;
        p = end + 1;
    }
    if (!st) st = slm_atomic_commit(&af);
    else slm_atomic_abort(&af);
    if (!st) printf("wrote %s (%d sequences, %d x %d float32 logits)\n", path, n_seq, total, V);
    free(lg);
    free(tok);
    return st;
}

static int cmd_extract(int argc, char **argv) {
    const char *arch = NULL, *out = NULL, *logit_ids = NULL, *logit_out = NULL;
    int member = 0, threads = 0;
    const slm_option opts[] = {
        {"arch", 'a', SLM_OPT_STRING, &arch, "FILE|JSON", "a search file (with --member), or {\"mlp_widths\": [...]}"},
        {"member", 'm', SLM_OPT_INT, &member, "K", "front member K of a search file (1 = smallest, as nas report lists)"},
        {"output-model", 'o', SLM_OPT_STRING, &out, "OUT", "OUT.gguf, else a safetensors directory"},
        {"logits-tokens", 0, SLM_OPT_STRING, &logit_ids, "IDS", "also write the sub-network's logits of these ids (1,2,3;4,5: sequences)"},
        {"logits-out", 0, SLM_OPT_STRING, &logit_out, "FILE", "where: [T][V] float32 (with --logits-tokens)"},
        {"threads", 't', SLM_OPT_INT, &threads, "N", "threads (0: all cores)"},
        {0}};
    const slm_cli_spec spec = {"nas extract", "MODEL --arch FILE|JSON [--member K] -o OUT",
                               "Write one sub-network as a standalone model: GGUF (blocks at their own MLP widths) "
                               "or safetensors.",
                               opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    slm_status st = SLM_OK;
    if (!arch) st = slm_fail(SLM_ERR_ARG, "nas extract: --arch is required");
    if (!st && !out) st = slm_fail(SLM_ERR_ARG, "nas extract: -o OUT is required");
    if (!st && !logit_ids != !logit_out) st = slm_fail(SLM_ERR_ARG, "nas extract: --logits-tokens and --logits-out go together");
    if (st) {
        free(pos);
        return slm_cli_report(st);
    }
    slm_model *m = NULL;
    if (slm_cli_load_model(pos[0], true, threads, &m)) {
        free(pos);
        return 1;
    }
    int L = m->cfg.n_layers, F = m->cfg.d_ff;
    int *widths = slm_malloc((size_t)L * sizeof *widths, "widths");
    int32_t *order = NULL;
    st = widths ? read_arch(arch, member, L, F, widths, &order) : SLM_ERR_NOMEM;
    if (!st && order) st = slm_nas_reorder_channels(m, order);
    if (!st) st = slm_nas_apply(m, widths);
    if (!st) {
        slm_model_stats ms = slm_model_get_stats(m, 1);
        printf("sub-network: %d of %d blocks, %.2f M params (%.1f%% of %.2f M)%s\nMLP widths:", ms.n_layers_kept, L,
               (double)ms.n_params / 1e6, 100.0 * ms.n_params / ms.n_params_dense, (double)ms.n_params_dense / 1e6,
               order ? ", MLP channels in importance order" : "");
        for (int i = 0; i < L; i++) printf(" %d", widths[i]);
        printf("\n");
        if (logit_ids) st = dump_logits(m, logit_ids, logit_out);
    }
    if (!st) {
        slm_save_params sp = slm_save_default_params();
        sp.format = slm_cli_format_for(out);
        sp.gguf_mlp_per_block = true;
        if (sp.format == SLM_SAVE_SAFETENSORS) st = pad_mlp_widths(m);
        if (!st) st = slm_model_save(m, out, &sp);
        if (!st) printf("wrote %s\n", out);
    }
    rc = st ? slm_cli_report(st) : 0;
    free(widths);
    free(order);
    slm_model_free(m);
    free(pos);
    return rc;
}

/* ---- nas eval -------------------------------------------------------------------------------- */

/* archs: a JSON array of {"name": ..., "mlp_widths": [...]} (a file or inline). */
static slm_status read_arch_list(const char *spec, int L, int F, char ***names, int **widths, int *n) {
    cJSON *j = NULL;
    const char *src = spec[0] == '[' ? "--archs" : spec;
    slm_status st = spec[0] == '[' ? ((j = cJSON_Parse(spec)) ? SLM_OK : slm_fail(SLM_ERR_FORMAT, "--archs: malformed JSON"))
                                   : slm_nas_read_json(spec, &j);
    if (st) return st;
    int k = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 0;
    if (k < 1) st = slm_fail(SLM_ERR_FORMAT, "%s: needs a non-empty array of {\"name\", \"mlp_widths\"}", src);
    *names = st ? NULL : calloc((size_t)k, sizeof **names);
    *widths = st ? NULL : malloc((size_t)k * L * sizeof **widths);
    if (!st && (!*names || !*widths)) st = slm_fail(SLM_ERR_NOMEM, "out of memory");
    int i = 0;
    const cJSON *a;
    if (!st) cJSON_ArrayForEach(a, j) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(a, "name"), *w = cJSON_GetObjectItemCaseSensitive(a, "mlp_widths");
        (*names)[i] = strdup(cJSON_IsString(nm) ? nm->valuestring : "?");
        if (!cJSON_IsArray(w) || cJSON_GetArraySize(w) != L) {
            st = slm_fail(SLM_ERR_FORMAT, "%s: entry %d needs \"mlp_widths\": %d block widths (0 = dropped)", src, i, L);
            break;
        }
        int b = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, w) {
            if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < 0 || x->valuedouble > F) {
                st = slm_fail(SLM_ERR_FORMAT, "%s: entry %d: mlp_widths[%d] is not a width in 0..%d", src, i, b, F);
                break;
            }
            (*widths)[(size_t)i * L + b++] = (int)x->valuedouble;
        }
        if (st) break;
        i++;
    }
    *n = i;
    cJSON_Delete(j);
    return st;
}

static int cmd_eval(int argc, char **argv) {
    const char *archs = NULL, *task_name = NULL, *metric = "acc", *calib = "mix", *output = NULL;
    const char *data_dir = SLM_DEFAULT_DATA_DIR, *mode = "plain", *loss_calib = NULL;
    int limit = 0, threads = 0, calib_batch = 16, seqlen = 128, tput_tokens = 128, tput_reps = 3;
    uint64_t seed = 1, loss_seed = 0;
    bool loss = false, quiet = false, dequantize = false;
    const slm_option opts[] = {
        {"archs", 'a', SLM_OPT_STRING, &archs, "FILE|JSON", "[{\"name\": ..., \"mlp_widths\": [...]}, ...]"},
        {"task", 0, SLM_OPT_STRING, &task_name, "NAME", "zero-shot task (e.g. arc_easy)"},
        {"limit", 'n', SLM_OPT_INT, &limit, "N", "first N documents of the task (0: all)"},
        {"metric", 0, SLM_OPT_STRING, &metric, "M", "acc | acc_norm | ..."},
        {"channels", 0, SLM_OPT_STRING, &mode, "MODE", "plain | reorder | both (each architecture with both orders)"},
        {"loss", 0, SLM_OPT_FLAG, &loss, NULL, "also the mean NLL on the calibration windows"},
        {"calib", 'c', SLM_OPT_STRING, &calib, "SRC", "calibration data (importance and --loss): mix | task:NAME | text:FILE"},
        {"calib-batch", 0, SLM_OPT_INT, &calib_batch, "N", "calibration sequences"},
        {"seqlen", 0, SLM_OPT_INT, &seqlen, "N", "tokens per calibration sequence"},
        {"tput-tokens", 0, SLM_OPT_INT, &tput_tokens, "N", "tokens per throughput measurement (0: none)"},
        {"tput-reps", 0, SLM_OPT_INT, &tput_reps, "N", "throughput: best of N runs"},
        {"seed", 0, SLM_OPT_U64, &seed, "S", "calibration windows"},
        {"loss-calib", 0, SLM_OPT_STRING, &loss_calib, "SRC", "--loss on other windows than the importance's (held out)"},
        {"loss-seed", 0, SLM_OPT_U64, &loss_seed, "S", "seed of the --loss-calib windows (0: --seed)"},
        {"output", 'o', SLM_OPT_STRING, &output, "FILE", "also write the rows as JSON"},
        {"data-dir", 'd', SLM_OPT_STRING, &data_dir, "DIR", "data directory (see its MANIFEST.md)"},
        {"threads", 't', SLM_OPT_INT, &threads, "N", "threads (0: all cores)"},
        {"quiet", 'q', SLM_OPT_FLAG, &quiet, NULL, "no progress display"},
        {"dequantize", 0, SLM_OPT_FLAG, &dequantize, NULL, SLM_CLI_DEQUANTIZE_HELP},
        {0}};
    const slm_cli_spec spec = {"nas eval", "MODEL --archs FILE|JSON --task NAME [options]",
                               "Evaluate given sub-networks (accuracy, loss, size, throughput), with the MLP channels "
                               "as stored, in importance order, or both.",
                               opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    acc_ctx ac = {.metric = metric};
    int passes[2] = {0, 0}; /* plain, reordered */
    slm_status st = SLM_OK;
    if (!archs || !task_name) st = slm_fail(SLM_ERR_ARG, "nas eval: --archs and --task are required");
    if (!st && !strcmp(mode, "plain")) passes[0] = 1;
    else if (!st && !strcmp(mode, "reorder")) passes[1] = 1;
    else if (!st && !strcmp(mode, "both")) passes[0] = passes[1] = 1;
    else if (!st) st = slm_fail(SLM_ERR_ARG, "nas eval: --channels %s: plain, reorder or both", mode);
    if (!st) st = slm_eval_task_find(task_name, &ac.task);
    if (!st) st = slm_eval_task_check(&ac.task, data_dir);
    if (st) {
        free(pos);
        return slm_cli_report(st);
    }
    slm_model *m = NULL;
    if (slm_cli_load_model_q(pos[0], true, threads, !dequantize, &m)) {
        free(pos);
        return 1;
    }
    int L = m->cfg.n_layers, F = m->cfg.d_ff, n = 0;
    char **names = NULL;
    int *widths = NULL;
    slm_calib cal = {0}, lcal = {0};
    cJSON *rows = cJSON_CreateArray();
    st = read_arch_list(archs, L, F, &names, &widths, &n);
    if (!st && (loss || passes[1])) st = load_calib(m, calib, data_dir, calib_batch, seqlen, seed, quiet, &cal);
    if (!st && loss && (loss_calib || loss_seed))
        st = load_calib(m, loss_calib ? loss_calib : calib, data_dir, calib_batch, seqlen, loss_seed ? loss_seed : seed,
                        quiet, &lcal);
    ac.loss_cal = !loss ? NULL : lcal.tokens ? &lcal : &cal;
    ac.ep = slm_eval_default_params();
    ac.ep.data_dir = data_dir;
    ac.ep.limit = limit;
    ac.ep.quiet = true;
    ac.ep.bootstrap_iters = 0;
    slm_nas_params p = slm_nas_default_params();
    p.tput_tokens = tput_tokens;
    p.tput_reps = tput_reps;
    if (!st)
        printf("%-24s %-9s %6s %10s %9s %8s %8s %9s %8s\n", "architecture", "channels", "blocks", "params (M)", "MB",
               metric, "loss", "tokens/s", "seconds");
    for (int pass = 0; pass < 2 && !st; pass++) {
        if (!passes[pass]) continue;
        if (pass == 1) {
            double *score = slm_malloc((size_t)L * F * sizeof *score, "channel importance");
            int32_t *perm = slm_malloc((size_t)L * F * sizeof *perm, "channel order");
            st = score && perm ? slm_nas_channel_importance(m, &cal, quiet, score) : SLM_ERR_NOMEM;
            if (!st) slm_nas_importance_order(score, L, F, perm);
            if (!st) st = slm_nas_reorder_channels(m, perm);
            free(score);
            free(perm);
        }
        for (int i = 0; i < n && !st; i++) {
            slm_nas_eval e;
            memset(&e, 0, sizeof e);
            st = slm_nas_evaluate(m, widths + (size_t)i * L, &p, task_accuracy, &ac, &e);
            if (st) {
                free(e.widths);
                break;
            }
            const char *ch = pass ? "reordered" : "stored";
            printf("%-24s %-9s %6d %10.2f %9.1f %8.4f %8.4f %9.0f %8.1f\n", names[i], ch, e.n_blocks, (double)e.params / 1e6,
                   (double)e.bytes / 1e6, e.accuracy, e.loss, e.tokens_per_s, e.seconds);
            fflush(stdout);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", names[i]);
            cJSON_AddStringToObject(o, "channels", ch);
            cJSON_AddNumberToObject(o, "blocks", e.n_blocks);
            cJSON_AddNumberToObject(o, "params", (double)e.params);
            cJSON_AddNumberToObject(o, "bytes", (double)e.bytes);
            cJSON_AddNumberToObject(o, "accuracy", e.accuracy);
            if (isfinite(e.loss)) cJSON_AddNumberToObject(o, "loss", e.loss);
            if (isfinite(e.tokens_per_s)) cJSON_AddNumberToObject(o, "tokens_per_s", e.tokens_per_s);
            cJSON_AddItemToArray(rows, o);
            free(e.widths);
        }
    }
    if (!st && output) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", pos[0]);
        cJSON_AddStringToObject(j, "task", ac.task.name);
        cJSON_AddNumberToObject(j, "limit", limit);
        cJSON_AddStringToObject(j, "metric", metric);
        cJSON_AddStringToObject(j, "calib", cal.tokens ? cal.source : "");
        cJSON_AddStringToObject(j, "loss_calib", ac.loss_cal ? ac.loss_cal->source : "");
        cJSON_AddItemToObject(j, "rows", rows);
        rows = NULL;
        st = write_json_file(output, j);
        cJSON_Delete(j);
        if (!st) printf("wrote %s\n", output);
    }
    cJSON_Delete(rows);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(widths);
    slm_calib_free(&cal);
    slm_calib_free(&lcal);
    slm_model_free(m);
    free(pos);
    return st ? slm_cli_report(st) : 0;
}

/* ---- nas compare / report ------------------------------------------------------------------ */

static slm_status load_state(const char *path, slm_nas_state *s) {
    cJSON *j = NULL;
    slm_status st = slm_nas_read_json(path, &j);
    if (!st) st = slm_nas_state_from_json(j, path, s, NULL, NULL);
    cJSON_Delete(j);
    if (!st && (!s->have_ref || !s->n_ev)) {
        slm_nas_state_free(s);
        st = slm_fail(SLM_ERR_FORMAT, "%s: no evaluations yet", path);
    }
    return st;
}

static int cmd_report(int argc, char **argv) {
    const char *svg = NULL;
    const slm_option opts[] = {{"svg", 0, SLM_OPT_STRING, &svg, "FILE", "plot (default: the file with .svg)"}, {0}};
    const slm_cli_spec spec = {"nas report", "FILE [--svg OUT]", "The front, width probabilities and plot of a search file.",
                               opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    slm_nas_state s;
    slm_status st = load_state(pos[0], &s);
    if (!st) {
        slm_nas_print_front(stdout, &s);
        printf("\n");
        slm_nas_print_width_probability(stdout, &s);
        char *sp = svg ? NULL : svg_path_for(pos[0]);
        const slm_nas_state *one = &s;
        const char *name = s.params.random ? "random search" : "LINAS (NSGA-II + predictors)";
        st = write_svg(svg ? svg : sp, &one, &name, 1, slm_nas_objective_name(s.params.objective));
        free(sp);
        slm_nas_state_free(&s);
    }
    free(pos);
    return st ? slm_cli_report(st) : 0;
}

static int cmd_compare(int argc, char **argv) {
    const char *svg = NULL, *names = NULL, *title = NULL;
    const slm_option opts[] = {{"svg", 0, SLM_OPT_STRING, &svg, "FILE", "plot both fronts"},
                               {"names", 0, SLM_OPT_STRING, &names, "A,B", "legend names (default: the file names)"},
                               {"title", 0, SLM_OPT_STRING, &title, "TEXT", "plot title"},
                               {0}};
    const slm_cli_spec spec = {"nas compare", "A.json B.json [--svg OUT]",
                               "Hypervolumes of two searches against A's reference model, and their ratio A/B.", opts, 2, 2};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    slm_nas_state a, b;
    slm_status st = load_state(pos[0], &a);
    if (!st && (st = load_state(pos[1], &b))) slm_nas_state_free(&a);
    if (st) {
        free(pos);
        return slm_cli_report(st);
    }
    if (a.params.objective != b.params.objective)
        st = slm_fail(SLM_ERR_ARG, "%s and %s optimise different objectives", pos[0], pos[1]);
    if (!st) {
        /* B measured against A's reference (same model; its own throughput run
         * differs by noise) so both hypervolumes share one normalisation */
        slm_nas_eval bref = b.ref;
        b.ref.params = a.ref.params;
        b.ref.tokens_per_s = a.ref.tokens_per_s;
        double ha = slm_nas_state_hypervolume(&a), hb = slm_nas_state_hypervolume(&b);
        printf("== %s\n", pos[0]);
        slm_nas_print_front(stdout, &a);
        printf("\n== %s (normalised by the reference of %s)\n", pos[1], pos[0]);
        slm_nas_print_front(stdout, &b);
        printf("\nhypervolume %s: %.5f, %s: %.5f, ratio %.3f\n", pos[0], ha, pos[1], hb, hb > 0 ? ha / hb : INFINITY);
        if (svg) {
            char *nm = names ? strdup(names) : NULL, *comma = nm ? strchr(nm, ',') : NULL;
            if (comma) *comma = 0;
            const char *nv[2] = {comma ? nm : pos[0], comma ? comma + 1 : pos[1]};
            const slm_nas_state *sv[2] = {&a, &b};
            st = write_svg(svg, sv, nv, 2, title ? title : slm_nas_objective_name(a.params.objective));
            free(nm);
        }
        b.ref = bref;
    }
    slm_nas_state_free(&a);
    slm_nas_state_free(&b);
    free(pos);
    return st ? slm_cli_report(st) : 0;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

int slm_cmd_nas(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int, char **);
        const char *summary;
    } subs[] = {
        {"finetune", slm_cmd_nas_finetune, "fine-tune the super-network (full / random sub-network alternating) on Alpaca data"},
        {"search", cmd_search, "LINAS / random search for the Pareto front of size or throughput vs accuracy"},
        {"extract", cmd_extract, "write one sub-network as a standalone GGUF or safetensors model"},
        {"eval", cmd_eval, "evaluate given sub-networks, MLP channels as stored and/or in importance order"},
        {"compare", cmd_compare, "hypervolumes of two searches and their ratio, both fronts plotted"},
        {"report", cmd_report, "the front, width probabilities and plot of a search file"},
    };
    if (argc >= 2)
        for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
            if (!strcmp(argv[1], subs[i].name)) return subs[i].run(argc - 1, argv + 1);
    bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    FILE *f = help ? stdout : stderr;
    if (argc >= 2 && !help) fprintf(stderr, "error: nas: unknown subcommand '%s'\n", argv[1]);
    else {
        fprintf(f, "usage: slimlm nas <subcommand> [options]   (slimlm nas <subcommand> --help)\n\n");
        for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) fprintf(f, "  %-8s %s\n", subs[i].name, subs[i].summary);
    }
    return help ? 0 : argc >= 2 ? 1 : 2;
}
