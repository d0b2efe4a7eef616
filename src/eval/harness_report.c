/* Results as a table (the layout of lm-eval's printed table) and as JSON
 * with lm-eval's key names ("acc,none", "acc_stderr,none"). */
#include "core/core.h"
#include "eval/harness.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

static void print_rows(FILE *f, const slm_eval_task_result *t, const char *indent) {
    for (int k = 0; k < t->n_values; k++) {
        const slm_eval_value *v = &t->v[k];
        char name[96], se[32];
        snprintf(name, sizeof name, "%s%s", k == 0 ? indent : "", k == 0 ? t->name : "");
        if (isnan(v->stderr_)) snprintf(se, sizeof se, "%s", "N/A");
        else snprintf(se, sizeof se, "%.4f", v->stderr_);
        if (k == 0) fprintf(f, "|%-40s|%6d|%-16s|%7.4f|±|%7s|\n", name, t->n_docs, v->name, v->value, se);
        else fprintf(f, "|%-40s|%6s|%-16s|%7.4f|±|%7s|\n", "", "", v->name, v->value, se);
    }
}

void slm_eval_print_table(FILE *f, const slm_eval_results *r) {
    fprintf(f, "|%-40s|%6s|%-16s|%7s|%s|%7s|\n", "Tasks", "n", "Metric", "Value", " ", "Stderr");
    fprintf(f, "|%.40s|%.6s:|%.16s|%.6s:|-|%.6s:|\n", "----------------------------------------", "------",
            "----------------", "------", "------");
    for (int i = 0; i < r->n_tasks; i++)
        if (!r->tasks[i].group[0]) print_rows(f, &r->tasks[i], "");
    if (r->n_groups) {
        fprintf(f, "\n|%-40s|%6s|%-16s|%7s|%s|%7s|\n", "Groups", "n", "Metric", "Value", " ", "Stderr");
        fprintf(f, "|%.40s|%.6s:|%.16s|%.6s:|-|%.6s:|\n", "----------------------------------------", "------",
                "----------------", "------", "------");
        for (int g = 0; g < r->n_groups; g++) print_rows(f, &r->groups[g], g ? " - " : "");
    }
}

static cJSON *task_json(const slm_eval_task_result *t) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "alias", t->name);
    for (int k = 0; k < t->n_values; k++) {
        char key[64];
        snprintf(key, sizeof key, "%s,none", t->v[k].name);
        cJSON_AddNumberToObject(j, key, t->v[k].value);
        snprintf(key, sizeof key, "%s_stderr,none", t->v[k].name);
        if (isnan(t->v[k].stderr_)) cJSON_AddStringToObject(j, key, "N/A");
        else cJSON_AddNumberToObject(j, key, t->v[k].stderr_);
    }
    cJSON_AddNumberToObject(j, "n_samples", t->n_docs);
    cJSON_AddNumberToObject(j, "tokens_requested", (double)t->tokens_requested);
    cJSON_AddNumberToObject(j, "tokens_decoded", (double)t->tokens_decoded);
    cJSON_AddNumberToObject(j, "seconds", t->seconds);
    return j;
}

char *slm_eval_results_json(const slm_eval_results *r, void *extra_cjson) {
    cJSON *root = cJSON_CreateObject();
    cJSON *res = cJSON_AddObjectToObject(root, "results");
    for (int i = 0; i < r->n_tasks; i++) cJSON_AddItemToObject(res, r->tasks[i].name, task_json(&r->tasks[i]));
    cJSON *groups = cJSON_AddObjectToObject(root, "groups");
    for (int g = 0; g < r->n_groups; g++) cJSON_AddItemToObject(groups, r->groups[g].name, task_json(&r->groups[g]));
    cJSON_AddStringToObject(root, "lm_eval_version_followed", "0.4.13");
    cJSON_AddNumberToObject(root, "total_seconds", r->seconds);
    if (extra_cjson) cJSON_AddItemToObject(root, "config", (cJSON *)extra_cjson);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) slm_fail(SLM_ERR_NOMEM, "results JSON: out of memory");
    return text;
}
