/* Zero-shot multiple-choice tasks, defined as lm-evaluation-harness 0.4.x
 * defines them (docs/tasks.md lists each prompt with the harness version).
 *
 * A task is a row in a table: name, data file(s) relative to the data
 * directory (the first that exists is used), a loader that turns rows into
 * documents, the metrics, and the domain premise used by PMI-DC. Loaders
 * live in one file per task family (tasks_qa.c, tasks_nli.c,
 * tasks_commonsense.c); this header is all the harness sees.
 *
 * A document holds, per choice, the exact request strings the harness
 * would send: context, continuation (target delimiter " " included) and
 * the length lm-eval divides by for acc_norm (len(choice) in code points).
 */
#ifndef SLM_EVAL_TASKS_H
#define SLM_EVAL_TASKS_H

#include "slimlm.h"

typedef enum slm_eval_metric {
    SLM_EVAL_ACC = 1u << 0,      /* argmax of summed log-likelihood */
    SLM_EVAL_ACC_NORM = 1u << 1, /* argmax of LL / len(choice) in characters */
    SLM_EVAL_MI = 1u << 2,       /* acc_mutual_info: LL(cont|ctx) - LL(cont|"") */
    SLM_EVAL_PMI_DC = 1u << 3,   /* LL(cont|ctx) - LL(cont|domain premise) */
    SLM_EVAL_F1 = 1u << 4,       /* binary F1, positive class 1 (sklearn default) */
    SLM_EVAL_F1_MACRO = 1u << 5, /* mean of per-class F1 (lm-eval's cb aggregate) */
    SLM_EVAL_MC2 = 1u << 6       /* TruthfulQA MC2: normalised probability mass on true answers */
} slm_eval_metric;

typedef struct slm_eval_doc {
    int n_choices;
    char **ctx;         /* [n_choices] context for each choice (same text for shared-context tasks) */
    char **cont;        /* [n_choices] continuation, target delimiter included */
    char **choice;      /* [n_choices] doc_to_choice text (its length drives acc_norm) */
    int *choice_chars;  /* [n_choices] len(choice) in Unicode code points */
    int gold;           /* index of the correct choice */
    signed char *truth; /* NULL, or [n_choices] 1 for true answers (TruthfulQA MC2) */
} slm_eval_doc;

typedef struct slm_eval_docs {
    slm_eval_doc *v;
    int n, cap;
    int limit; /* loaders stop after this many docs (0: all) */
} slm_eval_docs;

struct slm_eval_task;
/* Reads path (and path2, e.g. a labels file, or NULL) into docs. */
typedef slm_status (*slm_eval_loader)(const struct slm_eval_task *t, const char *path, const char *path2,
                                      slm_eval_docs *docs);

typedef struct slm_eval_source {
    const char *file;  /* relative to the data dir; "%s" is replaced by the task's subject */
    const char *file2; /* second file read with it (labels), or NULL */
    slm_eval_loader load;
} slm_eval_source;

#define SLM_EVAL_MAX_SOURCES 3

typedef struct slm_eval_task {
    char name[64];       /* e.g. "arc_easy", "mmlu_anatomy" */
    char group[32];      /* "" or the group whose aggregate includes it ("mmlu") */
    char subject[48];    /* MMLU subject ("" otherwise) */
    char category[24];   /* MMLU category: stem, other, social_sciences, humanities */
    const char *split;   /* the split lm-eval evaluates */
    unsigned metrics;    /* slm_eval_metric bits reported by default */
    const char *premise; /* domain premise for PMI-DC, NULL when the task has none */
    bool multi_input;    /* contexts differ per choice (WinoGrande): no MI / PMI-DC */
    slm_eval_source src[SLM_EVAL_MAX_SOURCES];
} slm_eval_task;

/* Fills *out with the task named name (a base task or "mmlu_<subject>").
 * Unknown names fail with SLM_ERR_ARG and a message listing known tasks. */
slm_status slm_eval_task_find(const char *name, slm_eval_task *out);

/* Expands a comma-separated list of tasks and groups ("mmlu", "rom6",
 * "ai2-12", "all") into tasks, in order, without duplicates. An empty list
 * or an unknown name fails with the list of known tasks and groups.
 * *out is malloc'd. */
slm_status slm_eval_tasks_expand(const char *list, slm_eval_task **out, int *n_out);

/* Text listing known tasks and groups (static storage). */
const char *slm_eval_tasks_known(void);

/* Loads the task's documents from data_dir (first N when limit > 0). A
 * missing file names every expected path and points to MANIFEST.md. */
slm_status slm_eval_task_load(const slm_eval_task *t, const char *data_dir, int limit, slm_eval_docs *out);
void slm_eval_docs_free(slm_eval_docs *d);
/* Fails as slm_eval_task_load would when the task's files are missing
 * (checked before a model is loaded, so the error comes at once). */
slm_status slm_eval_task_check(const slm_eval_task *t, const char *data_dir);

/* ---- helpers shared by the loaders (tasks.c) ---------------------------- */

/* Appends a document whose choices share one context: cont[i] = " " + choices[i].
 * Strings are copied. gold must index a choice. */
slm_status slm_eval_docs_add(slm_eval_docs *d, const char *ctx, const char *const *choices, int n, int gold,
                             const char *path, int line);
/* Appends a document with a context per choice and one shared target
 * (WinoGrande): cont = " " + target; choice[i] = ctxs[i]. */
slm_status slm_eval_docs_add_multi(slm_eval_docs *d, const char *const *ctxs, int n, const char *target, int gold,
                                   const char *path, int line);
/* true once limit docs are loaded. */
bool slm_eval_docs_full(const slm_eval_docs *d);

/* printf into a malloc'd string (NULL + message on failure). */
char *slm_eval_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Python's str.capitalize(): first character title-cased, the rest lower-cased. */
char *slm_eval_capitalize(const char *s);
/* Python's str.strip()/lstrip() on whitespace, as a malloc'd copy. */
char *slm_eval_strip(const char *s, size_t n, bool left, bool right);
/* Unicode code points in a UTF-8 string (Python's len()). */
int slm_eval_utf8_len(const char *s);

/* Loaders by family (tasks_qa.c, tasks_commonsense.c, tasks_nli.c). */
slm_status slm_eval_load_arc(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_openbookqa(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_sciq(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_mmlu(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_truthfulqa(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_boolq(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_boolq_jsonl(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_piqa(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_hellaswag_jsonl(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_hellaswag_txt(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_winogrande(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_copa(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_rte_jsonl(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_rte_tsv(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_cb(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);
slm_status slm_eval_load_mrpc(const slm_eval_task *t, const char *path, const char *path2, slm_eval_docs *d);

/* HellaSwag's preprocess(): strip, " [title]" -> ". ", drop "[...]", "  " -> " ". */
char *slm_eval_hellaswag_preprocess(const char *s);

#endif
