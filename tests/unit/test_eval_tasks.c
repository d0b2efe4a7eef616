/* Task definitions against independent references:
 *  - every task loads its whole split from the data directory with the
 *    document count MANIFEST.md (and lm-eval) give for it;
 *  - for the first documents of every task, the context and continuation
 *    strings equal those tools/make_eval_golden.py rebuilt in Python from
 *    lm-eval's task yamls (tests/golden/eval_requests.json.gz);
 *  - bad input: unknown task, empty list, missing file, malformed row. */
#define _POSIX_C_SOURCE 200809L
#include "core/core.h"
#include "eval/data.h"
#include "eval/tasks.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    const char *name;
    int count;
} k_counts[] = {
    {"boolq", 3270}, {"piqa", 1838},   {"hellaswag", 10042}, {"winogrande", 1267}, {"arc_easy", 2376},
    {"arc_challenge", 1172}, {"openbookqa", 500}, {"sciq", 1000}, {"copa", 100}, {"rte", 277},
    {"cb", 56},      {"mrpc", 408},    {"truthfulqa_mc1", 817}, {"truthfulqa_mc2", 817},
};

static void test_counts(const char *data_dir) {
    for (size_t i = 0; i < sizeof k_counts / sizeof k_counts[0]; i++) {
        slm_eval_task t;
        slm_eval_docs d;
        CHECK(slm_eval_task_find(k_counts[i].name, &t) == SLM_OK, "find %s", k_counts[i].name);
        slm_status st = slm_eval_task_load(&t, data_dir, 0, &d);
        CHECK(st == SLM_OK && d.n == k_counts[i].count, "%s: %d docs, want %d (%s)", k_counts[i].name, st ? -1 : d.n,
              k_counts[i].count, st ? slm_last_error() : "");
        if (!st) slm_eval_docs_free(&d);
    }
    /* MMLU: 57 subjects, 14042 test questions in all. */
    slm_eval_task *tasks;
    int n;
    CHECK(slm_eval_tasks_expand("mmlu", &tasks, &n) == SLM_OK && n == 57, "mmlu expands to %d tasks", n);
    int total = 0;
    for (int i = 0; i < n; i++) {
        slm_eval_docs d;
        if (slm_eval_task_load(&tasks[i], data_dir, 0, &d) == SLM_OK) {
            total += d.n;
            slm_eval_docs_free(&d);
        } else CHECK(false, "%s: %s", tasks[i].name, slm_last_error());
    }
    CHECK(total == 14042, "mmlu: %d questions, want 14042", total);
    free(tasks);
    CHECK(slm_eval_tasks_expand("rom6,boolq", &tasks, &n) == SLM_OK && n == 6, "rom6,boolq: %d tasks", n);
    free(tasks);
    CHECK(slm_eval_tasks_expand("ai2-12", &tasks, &n) == SLM_OK && n == 12, "ai2-12: %d tasks", n);
    free(tasks);
    CHECK(slm_eval_tasks_expand("all", &tasks, &n) == SLM_OK && n == 13 + 57, "all: %d tasks", n);
    free(tasks);
}

/* ---- prompts vs the Python rebuild ------------------------------------------------- */

static const char *json_string_at(const cJSON *v, int i) {
    if (cJSON_IsString(v)) return v->valuestring; /* shared context stored once */
    const cJSON *e = cJSON_GetArrayItem(v, i);
    return cJSON_IsString(e) ? e->valuestring : NULL;
}

static int compare_docs(const char *name, const slm_eval_docs *d, int first, const cJSON *gdocs, int n) {
    int bad = 0;
    for (int k = 0; k < n; k++) {
        const cJSON *g = cJSON_GetArrayItem(gdocs, first + k);
        const slm_eval_doc *doc = &d->v[k];
        const cJSON *gc = cJSON_GetObjectItem(g, "ctx"), *gk = cJSON_GetObjectItem(g, "cont");
        int gold = cJSON_GetObjectItem(g, "gold")->valueint;
        bool ok = doc->n_choices == cJSON_GetArraySize(gk) && doc->gold == gold;
        for (int i = 0; ok && i < doc->n_choices; i++) {
            const char *c = json_string_at(gc, i), *t = json_string_at(gk, i);
            ok = c && t && strcmp(c, doc->ctx[i]) == 0 && strcmp(t, doc->cont[i]) == 0;
        }
        if (!ok && bad++ < 3)
            CHECK(false, "%s doc %d: prompt differs from the lm-eval rebuild:\n  ours ctx: %.200s\n  ours cont: '%s'",
                  name, first + k, doc->ctx[0], doc->cont[0]);
    }
    return bad;
}

static void test_prompts(const char *data_dir, const char *golden_dir) {
    char *text;
    size_t len;
    const char *path = slm_test_path(golden_dir, "eval_requests.json.gz");
    if (slm_data_read_all(path, &text, &len) != SLM_OK) {
        CHECK(false, "golden missing: %s (run tools/make_eval_golden.py)", path);
        return;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *tasks = cJSON_GetObjectItem(root, "tasks");
    CHECK(tasks != NULL, "golden has no tasks");
    int n_tasks = 0, n_docs = 0, n_bad = 0;
    for (const cJSON *t = tasks ? tasks->child : NULL; t; t = t->next) {
        int n = cJSON_GetArraySize(t);
        n_tasks++;
        if (strcmp(t->string, "mmlu") == 0) { /* one document per subject */
            for (int k = 0; k < n; k++) {
                const cJSON *g = cJSON_GetArrayItem(t, k);
                slm_eval_task task;
                slm_eval_docs d;
                const char *sub = cJSON_GetObjectItem(g, "task")->valuestring;
                if (slm_eval_task_find(sub, &task) || slm_eval_task_load(&task, data_dir, 1, &d)) {
                    CHECK(false, "%s: %s", sub, slm_last_error());
                    continue;
                }
                n_bad += compare_docs(sub, &d, k, t, 1);
                n_docs++;
                slm_eval_docs_free(&d);
            }
            continue;
        }
        slm_eval_task task;
        slm_eval_docs d;
        if (slm_eval_task_find(t->string, &task) || slm_eval_task_load(&task, data_dir, n, &d)) {
            CHECK(false, "%s: %s", t->string, slm_last_error());
            continue;
        }
        CHECK(d.n == n, "%s: loaded %d of %d", t->string, d.n, n);
        n_bad += compare_docs(t->string, &d, 0, t, d.n < n ? d.n : n);
        n_docs += n;
        slm_eval_docs_free(&d);
    }
    printf("prompts: %d tasks, %d documents compared with the lm-eval rebuild, %d differ\n", n_tasks, n_docs, n_bad);
    CHECK(n_tasks == 15 && n_bad == 0, "%d tasks, %d documents differ", n_tasks, n_bad);
    cJSON_Delete(root);
}

/* ---- bad input ---------------------------------------------------------------------- */

static void test_bad_input(void) {
    slm_eval_task *tasks;
    int n;
    slm_status st = slm_eval_tasks_expand("", &tasks, &n);
    CHECK(st == SLM_ERR_ARG && strstr(slm_last_error(), "known tasks:") && strstr(slm_last_error(), "hellaswag"),
          "empty list: %s", slm_last_error());
    st = slm_eval_tasks_expand("piqa,nosuch", &tasks, &n);
    CHECK(st == SLM_ERR_ARG && strstr(slm_last_error(), "unknown task 'nosuch'") && strstr(slm_last_error(), "known tasks:"),
          "unknown: %s", slm_last_error());

    const char *tmp = slm_test_env("SLM_TEST_TMP", "/tmp");
    char dir[512], empty[512];
    snprintf(empty, sizeof empty, "%s/eval_data_empty", tmp);
    snprintf(dir, sizeof dir, "%s/eval_data", tmp);
    mkdir(empty, 0755);
    mkdir(dir, 0755);
    slm_eval_task t;
    slm_eval_docs d;
    slm_eval_task_find("copa", &t);
    st = slm_eval_task_load(&t, empty, 0, &d);
    CHECK(st == SLM_ERR_IO && strstr(slm_last_error(), "superglue/COPA/val.jsonl") && strstr(slm_last_error(), "MANIFEST.md"),
          "missing file: %s", slm_last_error());

    /* A row with a label outside the choices names its file and line. */
    char sub[600];
    snprintf(sub, sizeof sub, "%s/superglue", dir);
    mkdir(sub, 0755);
    snprintf(sub, sizeof sub, "%s/superglue/COPA", dir);
    mkdir(sub, 0755);
    snprintf(sub, sizeof sub, "%s/superglue/COPA/val.jsonl", dir);
    FILE *f = fopen(sub, "w");
    fputs("{\"premise\": \"A.\", \"choice1\": \"B.\", \"choice2\": \"C.\", \"question\": \"cause\", \"label\": 0}\n"
          "{\"premise\": \"A.\", \"choice1\": \"B.\", \"choice2\": \"C.\", \"question\": \"cause\", \"label\": 7}\n",
          f);
    fclose(f);
    st = slm_eval_task_load(&t, dir, 0, &d);
    CHECK(st == SLM_ERR_FORMAT && strstr(slm_last_error(), "val.jsonl:2: gold label 7"), "bad label: %s",
          slm_last_error());
    /* COPA's prompt: premise without its period + connector; choices lower-cased. */
    st = slm_eval_task_load(&t, dir, 1, &d);
    CHECK(st == SLM_OK && strcmp(d.v[0].ctx[0], "A because") == 0 && strcmp(d.v[0].cont[1], "  c.") == 0,
          "copa prompt '%s' / '%s'", st ? "" : d.v[0].ctx[0], st ? "" : d.v[0].cont[1]);
    if (!st) slm_eval_docs_free(&d);
}

int main(void) {
    const char *data_dir = slm_test_env("SLM_DATA_DIR", "../shared/data");
    const char *golden = slm_test_env("SLM_GOLDEN_DIR", "tests/golden");
    test_bad_input();
    test_counts(data_dir);
    test_prompts(data_dir, golden);
    return slm_test_finish();
}
