/* The task table, task groups, document building and the string helpers
 * that mirror the Python the harness runs (str.strip, str.capitalize, len).
 * Prompts themselves are built by the per-family loaders. */
#define _POSIX_C_SOURCE 200809L
#include "eval/tasks.h"
#include "core/core.h"
#include "eval/data.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- the table ------------------------------------------------------------ */

#define ACC SLM_EVAL_ACC
#define NORM SLM_EVAL_ACC_NORM

/* Splits and files: lm-eval evaluates test when a task has a test split
 * (ARC, OpenBookQA, SciQ, MMLU), else validation. Candidate files are tried
 * in order; the first is the format lm-eval reads when both may exist. */
static const slm_eval_task k_tasks[] = {
    {"boolq", "", "", "", "validation", ACC, NULL, false,
     {{"boolq/boolq_validation.csv", NULL, slm_eval_load_boolq}, {"superglue/BoolQ/val.jsonl", NULL, slm_eval_load_boolq_jsonl}}},
    {"piqa", "", "", "", "validation", ACC | NORM, "Answer:", false,
     {{"piqa/dev.jsonl", "piqa/dev-labels.lst", slm_eval_load_piqa}, {"piqa/valid.jsonl", "piqa/valid-labels.lst", slm_eval_load_piqa}}},
    {"hellaswag", "", "", "", "validation", ACC | NORM, NULL, false,
     {{"hellaswag/hellaswag_val.jsonl", NULL, slm_eval_load_hellaswag_jsonl},
      {"hellaswag/hellaswag_val.jsonl.gz", NULL, slm_eval_load_hellaswag_jsonl},
      {"hellaswag/hellaswag_val_full.txt.bz2", NULL, slm_eval_load_hellaswag_txt}}},
    {"winogrande", "", "", "", "validation (winogrande_xl)", ACC, NULL, true,
     {{"winogrande/dev.jsonl", NULL, slm_eval_load_winogrande}}},
    {"arc_easy", "", "", "", "test", ACC | NORM, "Answer:", false,
     {{"arc/ARC-Easy/ARC-Easy-Test.jsonl", NULL, slm_eval_load_arc}}},
    {"arc_challenge", "", "", "", "test", ACC | NORM | SLM_EVAL_PMI_DC, "Answer:", false,
     {{"arc/ARC-Challenge/ARC-Challenge-Test.jsonl", NULL, slm_eval_load_arc}}},
    {"openbookqa", "", "", "", "test", ACC | NORM, NULL, false,
     {{"openbookqa/Main/test.jsonl", NULL, slm_eval_load_openbookqa}}},
    {"sciq", "", "", "", "test", ACC | NORM, "Answer:", false, {{"sciq/test.json", NULL, slm_eval_load_sciq}}},
    {"copa", "", "", "", "validation", ACC, NULL, false, {{"superglue/COPA/val.jsonl", NULL, slm_eval_load_copa}}},
    {"rte", "", "", "", "validation", ACC, "Answer:", false,
     {{"glue-rte/dev.tsv", NULL, slm_eval_load_rte_tsv}, {"superglue/RTE/val.jsonl", NULL, slm_eval_load_rte_jsonl}}},
    {"cb", "", "", "", "validation", ACC | SLM_EVAL_F1_MACRO, "Answer:", false,
     {{"superglue/CB/val.jsonl", NULL, slm_eval_load_cb}}},
    {"mrpc", "", "", "", "validation", ACC | SLM_EVAL_F1, "Answer:", false,
     {{"glue-mrpc/dev.tsv", NULL, slm_eval_load_mrpc}}},
    {"truthfulqa_mc1", "", "", "", "validation", ACC, "A:", false,
     {{"truthfulqa/mc_task.json", NULL, slm_eval_load_truthfulqa}}},
    {"truthfulqa_mc2", "", "", "", "validation", SLM_EVAL_MC2, NULL, false,
     {{"truthfulqa/mc_task.json", NULL, slm_eval_load_truthfulqa}}},
};
static const int k_n_tasks = (int)(sizeof k_tasks / sizeof k_tasks[0]);

/* MMLU subjects and their lm-eval categories (tasks/mmlu/default/mmlu_<subject>.yaml). */
static const char *const k_mmlu[][2] = {
    {"abstract_algebra", "stem"}, {"anatomy", "stem"}, {"astronomy", "stem"}, {"business_ethics", "other"},
    {"clinical_knowledge", "other"}, {"college_biology", "stem"}, {"college_chemistry", "stem"},
    {"college_computer_science", "stem"}, {"college_mathematics", "stem"}, {"college_medicine", "other"},
    {"college_physics", "stem"}, {"computer_security", "stem"}, {"conceptual_physics", "stem"},
    {"econometrics", "social_sciences"}, {"electrical_engineering", "stem"}, {"elementary_mathematics", "stem"},
    {"formal_logic", "humanities"}, {"global_facts", "other"}, {"high_school_biology", "stem"},
    {"high_school_chemistry", "stem"}, {"high_school_computer_science", "stem"},
    {"high_school_european_history", "humanities"}, {"high_school_geography", "social_sciences"},
    {"high_school_government_and_politics", "social_sciences"}, {"high_school_macroeconomics", "social_sciences"},
    {"high_school_mathematics", "stem"}, {"high_school_microeconomics", "social_sciences"},
    {"high_school_physics", "stem"}, {"high_school_psychology", "social_sciences"}, {"high_school_statistics", "stem"},
    {"high_school_us_history", "humanities"}, {"high_school_world_history", "humanities"}, {"human_aging", "other"},
    {"human_sexuality", "social_sciences"}, {"international_law", "humanities"}, {"jurisprudence", "humanities"},
    {"logical_fallacies", "humanities"}, {"machine_learning", "stem"}, {"management", "other"},
    {"marketing", "other"}, {"medical_genetics", "other"}, {"miscellaneous", "other"},
    {"moral_disputes", "humanities"}, {"moral_scenarios", "humanities"}, {"nutrition", "other"},
    {"philosophy", "humanities"}, {"prehistory", "humanities"}, {"professional_accounting", "other"},
    {"professional_law", "humanities"}, {"professional_medicine", "other"},
    {"professional_psychology", "social_sciences"}, {"public_relations", "social_sciences"},
    {"security_studies", "social_sciences"}, {"sociology", "social_sciences"},
    {"us_foreign_policy", "social_sciences"}, {"virology", "other"}, {"world_religions", "humanities"},
};
static const int k_n_mmlu = (int)(sizeof k_mmlu / sizeof k_mmlu[0]);

/* Groups. rom6: the six LLM-ROM columns; ai2-12: the twelve of the
 * layer-pruning paper (docs/tasks.md says how these were read). */
typedef struct {
    const char *name;
    const char *members;
} task_group;
static const task_group k_groups[] = {
    {"rom6", "boolq,piqa,hellaswag,winogrande,arc_easy,arc_challenge"},
    {"ai2-12", "boolq,piqa,hellaswag,winogrande,arc_easy,arc_challenge,openbookqa,sciq,copa,rte,cb,mrpc"},
    {"all", "boolq,piqa,hellaswag,winogrande,arc_easy,arc_challenge,openbookqa,sciq,copa,rte,cb,mrpc,mmlu,"
            "truthfulqa_mc1"},
    {"truthfulqa", "truthfulqa_mc1,truthfulqa_mc2"},
};
static const int k_n_groups = (int)(sizeof k_groups / sizeof k_groups[0]);

const char *slm_eval_tasks_known(void) {
    static char buf[1024];
    if (buf[0]) return buf;
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "known tasks:");
    for (int i = 0; i < k_n_tasks; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, " %s", k_tasks[i].name);
    n += (size_t)snprintf(buf + n, sizeof buf - n, " mmlu_<subject> (57 subjects); groups: mmlu");
    for (int i = 0; i < k_n_groups; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, " %s", k_groups[i].name);
    return buf;
}

slm_status slm_eval_task_find(const char *name, slm_eval_task *out) {
    for (int i = 0; i < k_n_tasks; i++)
        if (strcmp(name, k_tasks[i].name) == 0) {
            *out = k_tasks[i];
            return SLM_OK;
        }
    if (strncmp(name, "mmlu_", 5) == 0)
        for (int i = 0; i < k_n_mmlu; i++)
            if (strcmp(name + 5, k_mmlu[i][0]) == 0) {
                memset(out, 0, sizeof *out);
                snprintf(out->name, sizeof out->name, "%s", name);
                snprintf(out->group, sizeof out->group, "mmlu");
                snprintf(out->subject, sizeof out->subject, "%s", k_mmlu[i][0]);
                snprintf(out->category, sizeof out->category, "%s", k_mmlu[i][1]);
                out->split = "test";
                out->metrics = ACC;
                out->premise = "Answer:";
                out->src[0] = (slm_eval_source){"mmlu/test/%s_test.csv", NULL, slm_eval_load_mmlu};
                return SLM_OK;
            }
    return slm_fail(SLM_ERR_ARG, "unknown task '%s'; %s", name, slm_eval_tasks_known());
}

typedef struct {
    slm_eval_task *v;
    int n, cap;
} task_list;

static slm_status list_add(task_list *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0) return SLM_OK;
    slm_eval_task t;
    slm_status st = slm_eval_task_find(name, &t);
    if (st) return st;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 32;
        slm_eval_task *nv = realloc(l->v, (size_t)cap * sizeof *nv);
        if (!nv) return slm_fail(SLM_ERR_NOMEM, "task list: out of memory");
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = t;
    return SLM_OK;
}

static slm_status expand_one(task_list *l, const char *name, int depth) {
    if (strcmp(name, "mmlu") == 0) {
        for (int i = 0; i < k_n_mmlu; i++) {
            char sub[80];
            snprintf(sub, sizeof sub, "mmlu_%s", k_mmlu[i][0]);
            slm_status st = list_add(l, sub);
            if (st) return st;
        }
        return SLM_OK;
    }
    for (int g = 0; g < k_n_groups && depth < 3; g++) {
        if (strcmp(name, k_groups[g].name) != 0) continue;
        char buf[512];
        snprintf(buf, sizeof buf, "%s", k_groups[g].members);
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            slm_status st = expand_one(l, tok, depth + 1);
            if (st) return st;
        }
        return SLM_OK;
    }
    return list_add(l, name);
}

slm_status slm_eval_tasks_expand(const char *list, slm_eval_task **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    task_list l = {0};
    char *copy = strdup(list ? list : "");
    if (!copy) return slm_fail(SLM_ERR_NOMEM, "task list: out of memory");
    slm_status st = SLM_OK;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ", ", &save); tok && !st; tok = strtok_r(NULL, ", ", &save))
        st = expand_one(&l, tok, 0);
    free(copy);
    if (!st && l.n == 0) st = slm_fail(SLM_ERR_ARG, "no tasks given (--tasks LIST); %s", slm_eval_tasks_known());
    if (st) {
        free(l.v);
        return st;
    }
    *out = l.v;
    *n_out = l.n;
    return SLM_OK;
}

/* ---- loading -------------------------------------------------------------- */

static char *source_path(const char *data_dir, const char *pattern, const char *subject) {
    const char *at = strstr(pattern, "%s"); /* a pattern names at most one subject */
    if (!at) return slm_eval_strf("%s/%s", data_dir, pattern);
    return slm_eval_strf("%s/%.*s%s%s", data_dir, (int)(at - pattern), pattern, subject, at + 2);
}

/* Finds the first candidate source whose files exist; the paths it returns are malloc'd. */
static slm_status find_source(const slm_eval_task *t, const char *data_dir, const slm_eval_source **src, char **p1,
                              char **p2) {
    char tried[1024];
    size_t nt = 0;
    tried[0] = 0;
    for (int i = 0; i < SLM_EVAL_MAX_SOURCES && t->src[i].file; i++) {
        const slm_eval_source *s = &t->src[i];
        *p1 = source_path(data_dir, s->file, t->subject);
        *p2 = s->file2 ? source_path(data_dir, s->file2, t->subject) : NULL;
        if (!*p1 || (s->file2 && !*p2)) {
            free(*p1);
            free(*p2);
            return SLM_ERR_NOMEM;
        }
        if (slm_data_exists(*p1) && (!*p2 || slm_data_exists(*p2))) {
            *src = s;
            return SLM_OK;
        }
        nt += (size_t)snprintf(tried + nt, nt < sizeof tried ? sizeof tried - nt : 0, "%s%s%s%s", nt ? " or " : "",
                               *p1, *p2 ? " + " : "", *p2 ? *p2 : "");
        if (nt >= sizeof tried) nt = sizeof tried - 1;
        free(*p1);
        free(*p2);
    }
    *p1 = *p2 = NULL;
    /* The first candidate is the file lm-eval's own format needs; the others are named too. */
    const char *alt = strstr(tried, " or ");
    return slm_fail(SLM_ERR_IO, "%.*s: missing data file for task %s (%s%s%ssee %s/MANIFEST.md for each file's source "
                    "and format, or pass --data-dir)",
                    alt ? (int)(alt - tried) : (int)strlen(tried), tried, t->name, alt ? "also accepted: " : "",
                    alt ? alt + 4 : "", alt ? "; " : "", data_dir);
}

slm_status slm_eval_task_check(const slm_eval_task *t, const char *data_dir) {
    const slm_eval_source *src;
    char *p1, *p2;
    slm_status st = find_source(t, data_dir, &src, &p1, &p2);
    if (!st) {
        free(p1);
        free(p2);
    }
    return st;
}

slm_status slm_eval_task_load(const slm_eval_task *t, const char *data_dir, int limit, slm_eval_docs *out) {
    memset(out, 0, sizeof *out);
    out->limit = limit > 0 ? limit : 0;
    const slm_eval_source *src;
    char *p1, *p2;
    slm_status st = find_source(t, data_dir, &src, &p1, &p2);
    if (st) return st;
    st = src->load(t, p1, p2, out);
    if (!st && out->n == 0) st = slm_fail(SLM_ERR_FORMAT, "%s: task %s has no documents", p1, t->name);
    free(p1);
    free(p2);
    if (st) slm_eval_docs_free(out);
    return st;
}

static void doc_free(slm_eval_doc *d) {
    for (int i = 0; i < d->n_choices; i++) {
        if (d->ctx && (i == 0 || d->ctx[i] != d->ctx[0])) free(d->ctx[i]);
        if (d->cont) free(d->cont[i]);
        if (d->choice) free(d->choice[i]);
    }
    free(d->ctx);
    free(d->cont);
    free(d->choice);
    free(d->choice_chars);
    free(d->truth);
}

void slm_eval_docs_free(slm_eval_docs *d) {
    for (int i = 0; i < d->n; i++) doc_free(&d->v[i]);
    free(d->v);
    memset(d, 0, sizeof *d);
}

bool slm_eval_docs_full(const slm_eval_docs *d) { return d->limit > 0 && d->n >= d->limit; }

static slm_status doc_alloc(slm_eval_docs *d, int n, const char *path, int line, slm_eval_doc **out) {
    if (n < 1 || n > 1000) return slm_fail(SLM_ERR_FORMAT, "%s:%d: %d answer choices", path, line, n);
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 256;
        slm_eval_doc *nv = realloc(d->v, (size_t)cap * sizeof *nv);
        if (!nv) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
        d->v = nv;
        d->cap = cap;
    }
    slm_eval_doc *doc = &d->v[d->n];
    memset(doc, 0, sizeof *doc);
    doc->n_choices = n;
    doc->ctx = calloc((size_t)n, sizeof(char *));
    doc->cont = calloc((size_t)n, sizeof(char *));
    doc->choice = calloc((size_t)n, sizeof(char *));
    doc->choice_chars = calloc((size_t)n, sizeof(int));
    if (!doc->ctx || !doc->cont || !doc->choice || !doc->choice_chars) {
        doc_free(doc);
        return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
    }
    *out = doc;
    return SLM_OK;
}

slm_status slm_eval_docs_add(slm_eval_docs *d, const char *ctx, const char *const *choices, int n, int gold,
                             const char *path, int line) {
    if (gold < 0 || gold >= n) return slm_fail(SLM_ERR_FORMAT, "%s:%d: gold label %d outside 0..%d", path, line, gold, n - 1);
    slm_eval_doc *doc;
    slm_status st = doc_alloc(d, n, path, line, &doc);
    if (st) return st;
    doc->gold = gold;
    char *shared = strdup(ctx);
    bool ok = shared != NULL;
    for (int i = 0; i < n; i++) {
        doc->ctx[i] = shared;
        doc->choice[i] = strdup(choices[i]);
        doc->cont[i] = slm_eval_strf(" %s", choices[i]);
        ok = ok && doc->choice[i] && doc->cont[i];
        doc->choice_chars[i] = doc->choice[i] ? slm_eval_utf8_len(doc->choice[i]) : 0;
    }
    if (!ok) {
        doc_free(doc);
        return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
    }
    d->n++;
    return SLM_OK;
}

slm_status slm_eval_docs_add_multi(slm_eval_docs *d, const char *const *ctxs, int n, const char *target, int gold,
                                   const char *path, int line) {
    if (gold < 0 || gold >= n) return slm_fail(SLM_ERR_FORMAT, "%s:%d: gold label %d outside 0..%d", path, line, gold, n - 1);
    slm_eval_doc *doc;
    slm_status st = doc_alloc(d, n, path, line, &doc);
    if (st) return st;
    doc->gold = gold;
    bool ok = true;
    for (int i = 0; i < n; i++) {
        doc->ctx[i] = strdup(ctxs[i]);
        doc->choice[i] = strdup(ctxs[i]);
        doc->cont[i] = slm_eval_strf(" %s", target);
        ok = ok && doc->ctx[i] && doc->choice[i] && doc->cont[i];
        doc->choice_chars[i] = doc->choice[i] ? slm_eval_utf8_len(doc->choice[i]) : 0;
    }
    if (!ok) {
        doc_free(doc);
        return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
    }
    d->n++;
    return SLM_OK;
}

/* ---- strings as Python sees them ---------------------------------------- */

char *slm_eval_strf(const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap2);
    else slm_fail(SLM_ERR_NOMEM, "out of memory formatting a prompt");
    va_end(ap2);
    return s;
}

int slm_eval_utf8_len(const char *s) {
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xC0) != 0x80;
    return n;
}

/* Python's str.isspace() for the characters that occur in these data sets:
 * ASCII whitespace, the separators 0x1c-0x1f, NEL and NO-BREAK SPACE. */
static int space_len_at(const char *s, size_t n, size_t i) {
    unsigned char c = (unsigned char)s[i];
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
    if (c == 0xC2 && i + 1 < n && ((unsigned char)s[i + 1] == 0x85 || (unsigned char)s[i + 1] == 0xA0)) return 2;
    return 0;
}

static bool space_ends_at(const char *s, size_t e, int *len) {
    if (e >= 1 && space_len_at(s, e, e - 1) == 1) {
        *len = 1;
        return true;
    }
    if (e >= 2 && space_len_at(s, e, e - 2) == 2) {
        *len = 2;
        return true;
    }
    return false;
}

char *slm_eval_strip(const char *s, size_t n, bool left, bool right) {
    size_t b = 0, e = n;
    int k;
    while (left && b < e && (k = space_len_at(s, e, b)) > 0) b += (size_t)k;
    while (right && e > b && space_ends_at(s, e, &k)) e -= (size_t)k;
    char *out = malloc(e - b + 1);
    if (!out) {
        slm_fail(SLM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(out, s + b, e - b);
    out[e - b] = 0;
    return out;
}

char *slm_eval_capitalize(const char *s) {
    /* Case mapping can change a character's UTF-8 length (at most 4 bytes
     * each), so size the output for the worst case. */
    size_t n = strlen(s);
    char *out = malloc(n * 4 + 1);
    if (!out) {
        slm_fail(SLM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    size_t w = 0;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    bool first = true;
    while (*p) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, -1, &cp);
        if (k <= 0) { /* invalid byte: copy it through */
            out[w++] = (char)*p++;
            first = false;
            continue;
        }
        cp = first ? utf8proc_totitle(cp) : utf8proc_tolower(cp);
        first = false;
        w += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)out + w);
        p += k;
    }
    out[w] = 0;
    return out;
}

char *slm_eval_hellaswag_preprocess(const char *s) {
    char *t = slm_eval_strip(s, strlen(s), true, true);
    if (!t) return NULL;
    size_t n = strlen(t);
    /* " [title]" -> ". " can only shorten the text, so edits happen in place. */
    char *out = malloc(n + 1);
    if (!out) {
        free(t);
        slm_fail(SLM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        if (strncmp(t + i, " [title]", 8) == 0) {
            out[w++] = '.';
            out[w++] = ' ';
            i += 8;
        } else out[w++] = t[i++];
    }
    out[w] = 0;
    /* re.sub(r"\[.*?\]", "", text): '.' stops at newlines. */
    size_t r = 0, w2 = 0;
    while (out[r]) {
        if (out[r] == '[') {
            size_t j = r + 1;
            while (out[j] && out[j] != ']' && out[j] != '\n') j++;
            if (out[j] == ']') {
                r = j + 1;
                continue;
            }
        }
        out[w2++] = out[r++];
    }
    out[w2] = 0;
    /* str.replace("  ", " "): one left-to-right pass over non-overlapping pairs. */
    r = 0;
    w = 0;
    while (out[r]) {
        if (out[r] == ' ' && out[r + 1] == ' ') {
            out[w++] = ' ';
            r += 2;
        } else out[w++] = out[r++];
    }
    out[w] = 0;
    free(t);
    return out;
}
