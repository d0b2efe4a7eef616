/* Commonsense tasks: PIQA, HellaSwag (original jsonl or llama.cpp's text
 * export), WinoGrande (partial scoring) and COPA (connectors). */
#include "core/core.h"
#include "eval/data.h"
#include "eval/tasks.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

typedef struct {
    const slm_eval_task *t;
    slm_eval_docs *d;
    int *labels; /* PIQA: one label per line of the labels file */
    int n_labels, cap_labels, row;
    char *block[6]; /* HellaSwag text: the lines of the current task */
    int block_n, block_line;
} load_ctx;

/* ---- PIQA ------------------------------------------------------------------ */

static slm_status label_line(void *ud, const char *text, size_t len, const char *path, int line) {
    load_ctx *c = ud;
    if (len == 0) return SLM_OK;
    if (!((len == 1 && (text[0] == '0' || text[0] == '1'))))
        return slm_fail(SLM_ERR_FORMAT, "%s:%d: label must be 0 or 1", path, line);
    if (c->n_labels == c->cap_labels) {
        int cap = c->cap_labels ? c->cap_labels * 2 : 1024;
        int *nl = realloc(c->labels, (size_t)cap * sizeof *nl);
        if (!nl) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
        c->labels = nl;
        c->cap_labels = cap;
    }
    c->labels[c->n_labels++] = text[0] - '0';
    return SLM_OK;
}

/* "Question: {goal}\nAnswer:", choices [sol1, sol2], gold from the labels file. */
static slm_status piqa_row(void *ud, const cJSON *row, const char *path, int line) {
    load_ctx *c = ud;
    if (slm_eval_docs_full(c->d)) return SLM_DATA_STOP;
    const char *goal, *sol[2];
    slm_status st;
    if ((st = slm_data_json_str(row, "goal", path, line, &goal))) return st;
    if ((st = slm_data_json_str(row, "sol1", path, line, &sol[0]))) return st;
    if ((st = slm_data_json_str(row, "sol2", path, line, &sol[1]))) return st;
    if (c->row >= c->n_labels)
        return slm_fail(SLM_ERR_FORMAT, "%s:%d: no label for this row (labels file has %d)", path, line, c->n_labels);
    char *ctx = slm_eval_strf("Question: %s\nAnswer:", goal);
    if (!ctx) return SLM_ERR_NOMEM;
    st = slm_eval_docs_add(c->d, ctx, sol, 2, c->labels[c->row++], path, line);
    free(ctx);
    return st;
}

slm_status slm_eval_load_piqa(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d) {
    load_ctx c = {.t = t, .d = d};
    slm_status st = slm_data_read_lines(path2, label_line, &c);
    if (!st) st = slm_data_read_jsonl(path, piqa_row, &c);
    free(c.labels);
    return st;
}

/* ---- HellaSwag ------------------------------------------------------------- */

/* Original jsonl: query = preprocess(activity_label + ": " + ctx_a + " " +
 * ctx_b.capitalize()), choices = preprocess(ending) for each ending. */
static slm_status hellaswag_add(load_ctx *c, const char *raw_query, const char *const *endings, int gold,
                                const char *path, int line) {
    char *query = slm_eval_hellaswag_preprocess(raw_query);
    char *ends[4] = {0};
    slm_status st = query ? SLM_OK : SLM_ERR_NOMEM;
    for (int i = 0; i < 4 && !st; i++)
        if (!(ends[i] = slm_eval_hellaswag_preprocess(endings[i]))) st = SLM_ERR_NOMEM;
    if (!st) st = slm_eval_docs_add(c->d, query, (const char *const *)ends, 4, gold, path, line);
    free(query);
    for (int i = 0; i < 4; i++) free(ends[i]);
    return st;
}

static slm_status hellaswag_row(void *ud, const cJSON *row, const char *path, int line) {
    load_ctx *c = ud;
    if (slm_eval_docs_full(c->d)) return SLM_DATA_STOP;
    const char *label, *ctx_a, *ctx_b;
    int gold;
    slm_status st;
    if ((st = slm_data_json_str(row, "activity_label", path, line, &label))) return st;
    if ((st = slm_data_json_str(row, "ctx_a", path, line, &ctx_a))) return st;
    if ((st = slm_data_json_str(row, "ctx_b", path, line, &ctx_b))) return st;
    if ((st = slm_data_json_int(row, "label", path, line, &gold))) return st;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(row, "endings");
    if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 4)
        return slm_fail(SLM_ERR_FORMAT, "%s:%d: 'endings' must be an array of 4 strings", path, line);
    const char *endings[4];
    for (int i = 0; i < 4; i++) {
        const cJSON *s = cJSON_GetArrayItem(e, i);
        if (!cJSON_IsString(s)) return slm_fail(SLM_ERR_FORMAT, "%s:%d: ending %d is not a string", path, line, i);
        endings[i] = s->valuestring;
    }
    char *cap = slm_eval_capitalize(ctx_b);
    char *raw = cap ? slm_eval_strf("%s: %s %s", label, ctx_a, cap) : NULL;
    free(cap);
    if (!raw) return SLM_ERR_NOMEM;
    st = hellaswag_add(c, raw, endings, gold, path, line);
    free(raw);
    return st;
}

slm_status slm_eval_load_hellaswag_jsonl(const slm_eval_task *t, const char *path, const char *path2,
                                         slm_eval_docs *d) {
    load_ctx c = {.t = t, .d = d};
    return slm_data_read_jsonl(path, hellaswag_row, &c);
}

/* llama.cpp's export: 6 lines per task (context "activity_label: ctx" with
 * ctx_b not capitalised, gold label, 4 endings), already mostly preprocessed;
 * preprocess() is applied again, which removes any bracket it left. */
static slm_status hellaswag_txt_line(void *ud, const char *text, size_t len, const char *path, int line) {
    load_ctx *c = ud;
    if (slm_eval_docs_full(c->d)) return SLM_DATA_STOP;
    if (c->block_n == 0) {
        if (len == 0) return SLM_OK; /* blank line between or after tasks */
        c->block_line = line;
    }
    char *s = malloc(len + 1);
    if (!s) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
    memcpy(s, text, len);
    s[len] = 0;
    c->block[c->block_n++] = s;
    if (c->block_n < 6) return SLM_OK;
    const char *lab = c->block[1];
    slm_status st;
    if (!(lab[0] >= '0' && lab[0] <= '3' && lab[1] == 0))
        st = slm_fail(SLM_ERR_FORMAT, "%s:%d: gold label '%s' is not 0-3 (expected 6 lines per task)", path,
                      c->block_line + 1, lab);
    else st = hellaswag_add(c, c->block[0], (const char *const *)&c->block[2], lab[0] - '0', path, c->block_line);
    for (int i = 0; i < 6; i++) free(c->block[i]);
    c->block_n = 0;
    return st;
}

slm_status slm_eval_load_hellaswag_txt(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d) {
    load_ctx c = {.t = t, .d = d};
    slm_status st = slm_data_read_lines(path, hellaswag_txt_line, &c);
    if (!st && c.block_n)
        st = slm_fail(SLM_ERR_FORMAT, "%s:%d: incomplete task (%d of 6 lines)", path, c.block_line, c.block_n);
    for (int i = 0; i < c.block_n; i++) free(c.block[i]);
    return st;
}

/* ---- WinoGrande ------------------------------------------------------------ */

/* Partial scoring: one context per option, sentence[:idx] + option, and the
 * shared continuation " " + sentence[idx+1:].strip(), idx = position of "_". */
static slm_status winogrande_row(void *ud, const cJSON *row, const char *path, int line) {
    load_ctx *c = ud;
    if (slm_eval_docs_full(c->d)) return SLM_DATA_STOP;
    const char *sentence, *opt[2], *answer;
    slm_status st;
    if ((st = slm_data_json_str(row, "sentence", path, line, &sentence))) return st;
    if ((st = slm_data_json_str(row, "option1", path, line, &opt[0]))) return st;
    if ((st = slm_data_json_str(row, "option2", path, line, &opt[1]))) return st;
    if ((st = slm_data_json_str(row, "answer", path, line, &answer))) return st;
    if (strcmp(answer, "1") != 0 && strcmp(answer, "2") != 0)
        return slm_fail(SLM_ERR_FORMAT, "%s:%d: answer '%s' is not \"1\" or \"2\"", path, line, answer);
    const char *blank = strchr(sentence, '_');
    if (!blank) return slm_fail(SLM_ERR_FORMAT, "%s:%d: sentence has no '_' blank", path, line);
    int pre = (int)(blank - sentence);
    char *ctx0 = slm_eval_strf("%.*s%s", pre, sentence, opt[0]);
    char *ctx1 = slm_eval_strf("%.*s%s", pre, sentence, opt[1]);
    char *target = slm_eval_strip(blank + 1, strlen(blank + 1), true, true);
    st = (ctx0 && ctx1 && target) ? SLM_OK : SLM_ERR_NOMEM;
    const char *ctxs[2] = {ctx0, ctx1};
    if (!st) st = slm_eval_docs_add_multi(c->d, ctxs, 2, target, answer[0] - '1', path, line);
    free(ctx0);
    free(ctx1);
    free(target);
    return st;
}

slm_status slm_eval_load_winogrande(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d) {
    load_ctx c = {.t = t, .d = d};
    return slm_data_read_jsonl(path, winogrande_row, &c);
}

/* ---- COPA ------------------------------------------------------------------ */

/* choice[0].lower() + choice[1:], prefixed by " " (so the continuation
 * starts with two spaces after the target delimiter). */
static char *copa_choice(const char *s) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, -1, &cp);
    if (k <= 0) return slm_eval_strf(" %s", s);
    utf8proc_uint8_t buf[8];
    utf8proc_ssize_t m = utf8proc_encode_char(utf8proc_tolower(cp), buf);
    return slm_eval_strf(" %.*s%s", (int)m, (const char *)buf, s + k);
}

/* premise.strip()[:-1] + " because" (cause) / " therefore" (effect). */
static slm_status copa_row(void *ud, const cJSON *row, const char *path, int line) {
    load_ctx *c = ud;
    if (slm_eval_docs_full(c->d)) return SLM_DATA_STOP;
    const char *premise, *question, *ch[2];
    int label;
    slm_status st;
    if ((st = slm_data_json_str(row, "premise", path, line, &premise))) return st;
    if ((st = slm_data_json_str(row, "question", path, line, &question))) return st;
    if ((st = slm_data_json_str(row, "choice1", path, line, &ch[0]))) return st;
    if ((st = slm_data_json_str(row, "choice2", path, line, &ch[1]))) return st;
    if ((st = slm_data_json_int(row, "label", path, line, &label))) return st;
    const char *conn = strcmp(question, "cause") == 0 ? "because" : strcmp(question, "effect") == 0 ? "therefore" : NULL;
    if (!conn) return slm_fail(SLM_ERR_FORMAT, "%s:%d: question '%s' is not cause or effect", path, line, question);
    char *p = slm_eval_strip(premise, strlen(premise), true, true);
    if (!p) return SLM_ERR_NOMEM;
    size_t n = strlen(p);
    while (n > 0 && ((unsigned char)p[n - 1] & 0xC0) == 0x80) n--; /* drop the last code point */
    if (n > 0) n--;
    char *ctx = slm_eval_strf("%.*s %s", (int)n, p, conn);
    char *c0 = copa_choice(ch[0]), *c1 = copa_choice(ch[1]);
    const char *choices[2] = {c0, c1};
    st = (ctx && c0 && c1) ? slm_eval_docs_add(c->d, ctx, choices, 2, label, path, line) : SLM_ERR_NOMEM;
    free(p);
    free(ctx);
    free(c0);
    free(c1);
    return st;
}

slm_status slm_eval_load_copa(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d) {
    load_ctx c = {.t = t, .d = d};
    return slm_data_read_jsonl(path, copa_row, &c);
}
