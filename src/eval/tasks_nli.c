/* Sentence-pair and reading tasks: BoolQ, RTE, CB, MRPC. Files come as
 * CSV/TSV with a header (columns found by name) or SuperGLUE jsonl. */
#include "core/core.h"
#include "eval/data.h"
#include "eval/tasks.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const slm_eval_task *t;
    slm_eval_docs *d;
    int col[4];  /* column index of each needed field, from the header */
    int n_cols;  /* fields in the header */
    bool header; /* header seen */
} load_ctx;

/* Maps the header's names to c->col in the order of names[]. */
static slm_status read_header(load_ctx *c, char **f, int n, const char *const *names, int n_names, const char *path,
                              int line) {
    for (int k = 0; k < n_names; k++) {
        c->col[k] = -1;
        for (int i = 0; i < n; i++)
            if (strcmp(f[i], names[k]) == 0) c->col[k] = i;
        if (c->col[k] < 0) return slm_fail(SLM_ERR_FORMAT, "%s:%d: header has no column '%s'", path, line, names[k]);
    }
    c->n_cols = n;
    c->header = true;
    return SLM_OK;
}

static slm_status check_width(const load_ctx *c, int n, const char *path, int line) {
    if (n != c->n_cols)
        return slm_fail(SLM_ERR_FORMAT, "%s:%d: %d fields where the header has %d", path, line, n, c->n_cols);
    return SLM_OK;
}

/* Index of s in names, or a format error naming the allowed values. */
static slm_status parse_label(const char *s, const char *const *names, int n, const char *path, int line, int *out) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return SLM_OK;
        }
    return slm_fail(SLM_ERR_FORMAT, "%s:%d: label '%s' is not one of %s%s%s%s%s", path, line, s, names[0],
                    n > 1 ? ", " : "", n > 1 ? names[1] : "", n > 2 ? ", " : "", n > 2 ? names[2] : "");
}

/* ---- BoolQ: "{passage}\nQuestion: {question}?\nAnswer:", choices no/yes --- */

static const char *const k_no_yes[2] = {"no", "yes"};

static slm_status boolq_add(load_ctx *c, const char *passage, const char *question, int label, const char *path,
                            int line) {
    char *ctx = slm_eval_strf("%s\nQuestion: %s?\nAnswer:", passage, question);
    if (!ctx) return SLM_ERR_NOMEM;
    slm_status st = slm_eval_docs_add(c->d, ctx, k_no_yes, 2, label, path, line);
    free(ctx);
    return st;
}

static slm_status boolq_csv_row(void *ud, char **f, int n, const char *path, int line) {
    load_ctx *c = ud;
    static const char *const names[3] = {"question", "passage", "label"};
    if (!c->header) return read_header(c, f, n, names, 3, path, line);
    if (slm_eval_docs_full(c->d)) return SLM_DATA_STOP;
    slm_status st = check_width(c, n, path, line);
    static const char *const labels[2] = {"0", "1"};
    int label = -1;
    if (!st) st = parse_label(f[c->col[2]], labels, 2, path, line, &label);
    return st ? st : boolq_add(c, f[c->col[1]], f[c->col[0]], label, path, line);
}

slm_status slm_eval_load_boolq(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d) {
    load_ctx c = {.t = t, .d = d};
    return slm_data_read_table(path, ',', SLM_DATA_QUOTE_CSV, boolq_csv_row, &c);
}

/* SuperGLUE BoolQ/val.jsonl: label is a JSON boolean. */
static slm_status boolq_json_row(void *ud, const cJSON *row, const char *path, int line) {
    load_ctx *c = ud;
    if (slm_eval_docs_full(c->d)) return SLM_DATA_STOP;
    const char *passage, *question;
    slm_status st;
    if ((st = slm_data_json_str(row, "passage", path, line, &passage))) return st;
    if ((st = slm_data_json_str(row, "question", path, line, &question))) return st;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(row, "label");
    if (!cJSON_IsBool(l)) return slm_fail(SLM_ERR_FORMAT, "%s:%d: 'label' must be true or false", path, line);
    return boolq_add(c, passage, question, cJSON_IsTrue(l) ? 1 : 0, path, line);
}

slm_status slm_eval_load_boolq_jsonl(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d) {
    load_ctx c = {.t = t, .d = d};
    return slm_data_read_jsonl(path, boolq_json_row, &c);
}

/* ---- RTE: "{s1}\nQuestion: {s2} True or False?\nAnswer:", True/False ------- */

static const char *const k_true_false[2] = {"True", "False"};
static const char *const k_rte_labels[2] = {"entailment", "not_entailment"};

static slm_status rte_add(load_ctx *c, const char *s1, const char *s2, const char *label, const char *path, int line) {
    int gold = -1;
    slm_status st = parse_label(label, k_rte_labels, 2, path, line, &gold);
    if (st) return st;
    char *ctx = slm_eval_strf("%s\nQuestion: %s True or False?\nAnswer:", s1, s2);
    if (!ctx) return SLM_ERR_NOMEM;
    st = slm_eval_docs_add(c->d, ctx, k_true_false, 2, gold, path, line);
    free(ctx);
    return st;
}

static slm_status rte_json_row(void *ud, const cJSON *row, const char *path, int line) {
    load_ctx *c = ud;
    if (slm_eval_docs_full(c->d)) return SLM_DATA_STOP;
    const char *p, *h, *label;
    slm_status st;
    if ((st = slm_data_json_str(row, "premise", path, line, &p))) return st;
    if ((st = slm_data_json_str(row, "hypothesis", path, line, &h))) return st;
    if ((st = slm_data_json_str(row, "label", path, line, &label))) return st;
    return rte_add(c, p, h, label, path, line);
}

slm_status slm_eval_load_rte_jsonl(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d) {
    load_ctx c = {.t = t, .d = d};
    return slm_data_read_jsonl(path, rte_json_row, &c);
}

/* GLUE RTE dev.tsv: index, sentence1, sentence2, label; unquoted. */
static slm_status rte_tsv_row(void *ud, char **f, int n, const char *path, int line) {
    load_ctx *c = ud;
    static const char *const names[3] = {"sentence1", "sentence2", "label"};
    if (!c->header) return read_header(c, f, n, names, 3, path, line);
    if (slm_eval_docs_full(c->d)) return SLM_DATA_STOP;
    slm_status st = check_width(c, n, path, line);
    return st ? st : rte_add(c, f[c->col[0]], f[c->col[1]], f[c->col[2]], path, line);
}

slm_status slm_eval_load_rte_tsv(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d) {
    load_ctx c = {.t = t, .d = d};
    return slm_data_read_table(path, '\t', SLM_DATA_QUOTE_NONE, rte_tsv_row, &c);
}

/* ---- CB: "{premise}\nQuestion: {hypothesis}. True, False, or Neither?\nAnswer:" */

static slm_status cb_row(void *ud, const cJSON *row, const char *path, int line) {
    load_ctx *c = ud;
    if (slm_eval_docs_full(c->d)) return SLM_DATA_STOP;
    static const char *const labels[3] = {"entailment", "contradiction", "neutral"};
    static const char *const choices[3] = {"True", "False", "Neither"};
    const char *p, *h, *label;
    int gold = -1;
    slm_status st;
    if ((st = slm_data_json_str(row, "premise", path, line, &p))) return st;
    if ((st = slm_data_json_str(row, "hypothesis", path, line, &h))) return st;
    if ((st = slm_data_json_str(row, "label", path, line, &label))) return st;
    if ((st = parse_label(label, labels, 3, path, line, &gold))) return st;
    char *ctx = slm_eval_strf("%s\nQuestion: %s. True, False, or Neither?\nAnswer:", p, h);
    if (!ctx) return SLM_ERR_NOMEM;
    st = slm_eval_docs_add(c->d, ctx, choices, 3, gold, path, line);
    free(ctx);
    return st;
}

slm_status slm_eval_load_cb(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d) {
    load_ctx c = {.t = t, .d = d};
    return slm_data_read_jsonl(path, cb_row, &c);
}

/* ---- MRPC (GLUE dev.tsv: Quality, #1 ID, #2 ID, #1 String, #2 String) ----- */

static slm_status mrpc_row(void *ud, char **f, int n, const char *path, int line) {
    load_ctx *c = ud;
    static const char *const names[3] = {"Quality", "#1 String", "#2 String"};
    if (!c->header) return read_header(c, f, n, names, 3, path, line);
    if (slm_eval_docs_full(c->d)) return SLM_DATA_STOP;
    slm_status st = check_width(c, n, path, line);
    static const char *const labels[2] = {"0", "1"};
    int gold = -1;
    if (!st) st = parse_label(f[c->col[0]], labels, 2, path, line, &gold);
    if (st) return st;
    char *ctx = slm_eval_strf("Sentence 1: %s\nSentence 2: %s\nQuestion: Do both sentences mean the same thing?\nAnswer:",
                              f[c->col[1]], f[c->col[2]]);
    if (!ctx) return SLM_ERR_NOMEM;
    st = slm_eval_docs_add(c->d, ctx, k_no_yes, 2, gold, path, line);
    free(ctx);
    return st;
}

slm_status slm_eval_load_mrpc(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d) {
    load_ctx c = {.t = t, .d = d};
    return slm_data_read_table(path, '\t', SLM_DATA_QUOTE_NONE, mrpc_row, &c);
}
