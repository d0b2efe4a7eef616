/* Evaluation data readers, the Python-string helpers prompts depend on, and
 * the metric arithmetic. References: values computed with Python 3.11
 * (str methods, re.sub, lm-eval's mean_stderr / pooled_sample_stderr and
 * the F1 definition sklearn implements), written next to each check. */
#define _POSIX_C_SOURCE 200809L
#include "core/core.h"
#include "eval/data.h"
#include "eval/harness.h"
#include "eval/tasks.h"
#include "test_util.h"

#include <bzlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- tables ------------------------------------------------------------------ */

typedef struct {
    char rows[8][6][64];
    int n_fields[8];
    int lines[8];
    int n;
} table_capture;

static slm_status capture_row(void *ud, char **f, int n, const char *path, int line) {
    table_capture *c = ud;
    if (c->n == 8) return SLM_DATA_STOP;
    c->n_fields[c->n] = n;
    c->lines[c->n] = line;
    for (int i = 0; i < n && i < 6; i++) snprintf(c->rows[c->n][i], 64, "%s", f[i]);
    c->n++;
    return SLM_OK;
}

static void test_csv(void) {
    /* BOM, quoted comma, escaped quote, a newline inside quotes, CRLF, a blank line. */
    char text[] = "\xEF\xBB\xBFq,passage,label\r\n"
                  "\"a, b\",\"say \"\"hi\"\"\",1\r\n"
                  "\n"
                  "x,\"two\nlines\",0\n"
                  "last,,1";
    table_capture c = {0};
    slm_status st = slm_data_parse_table("t.csv", text, strlen(text), ',', SLM_DATA_QUOTE_CSV, capture_row, &c);
    CHECK(st == SLM_OK, "csv parse: %s", slm_last_error());
    CHECK(c.n == 4, "csv rows %d, want 4", c.n);
    CHECK(strcmp(c.rows[0][0], "q") == 0, "BOM not skipped: '%s'", c.rows[0][0]);
    CHECK(strcmp(c.rows[1][0], "a, b") == 0 && strcmp(c.rows[1][1], "say \"hi\"") == 0 && strcmp(c.rows[1][2], "1") == 0,
          "quoted row: '%s' '%s' '%s'", c.rows[1][0], c.rows[1][1], c.rows[1][2]);
    CHECK(strcmp(c.rows[2][1], "two\nlines") == 0 && c.lines[2] == 4, "multi-line field '%s' at line %d",
          c.rows[2][1], c.lines[2]);
    CHECK(c.lines[3] == 6 && c.n_fields[3] == 3 && c.rows[3][1][0] == 0, "last row line %d fields %d", c.lines[3],
          c.n_fields[3]);

    char bad[] = "a,b\n\"open,1\n";
    c = (table_capture){0};
    st = slm_data_parse_table("bad.csv", bad, strlen(bad), ',', SLM_DATA_QUOTE_CSV, capture_row, &c);
    CHECK(st == SLM_ERR_FORMAT && strstr(slm_last_error(), "bad.csv:2:"), "unclosed quote: %s", slm_last_error());

    /* GLUE tsv: quotes are plain characters (csv.QUOTE_NONE). */
    char tsv[] = "Quality\t#1 String\n1\t\"The pie business\n";
    c = (table_capture){0};
    st = slm_data_parse_table("d.tsv", tsv, strlen(tsv), '\t', SLM_DATA_QUOTE_NONE, capture_row, &c);
    CHECK(st == SLM_OK && c.n == 2 && strcmp(c.rows[1][1], "\"The pie business") == 0, "tsv: '%s'", c.rows[1][1]);
}

/* ---- json ------------------------------------------------------------------------ */

typedef struct {
    int n, last_line;
    char first[64];
} json_capture;

static slm_status capture_json(void *ud, const cJSON *row, const char *path, int line) {
    json_capture *c = ud;
    const char *s;
    slm_status st = slm_data_json_str(row, "a", path, line, &s);
    if (st) return st;
    if (c->n++ == 0) snprintf(c->first, sizeof c->first, "%s", s);
    c->last_line = line;
    return SLM_OK;
}

static const char *write_tmp(const char *name, const char *text) {
    const char *path = slm_test_path(slm_test_env("SLM_TEST_TMP", "/tmp"), name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(text, 1, strlen(text), f);
        fclose(f);
    }
    return path;
}

static void test_json(void) {
    json_capture c = {0};
    const char *p = write_tmp("eval_ok.jsonl", "{\"a\": \"x\"}\n\n{\"a\": \"y\"}\n");
    CHECK(slm_data_read_jsonl(p, capture_json, &c) == SLM_OK && c.n == 2 && c.last_line == 3,
          "jsonl rows %d last line %d: %s", c.n, c.last_line, slm_last_error());

    c = (json_capture){0};
    p = write_tmp("eval_bad.jsonl", "{\"a\": \"x\"}\n{\"a\": \"y\",}\n");
    slm_status st = slm_data_read_jsonl(p, capture_json, &c);
    CHECK(st == SLM_ERR_FORMAT && strstr(slm_last_error(), "eval_bad.jsonl:2: malformed JSON"), "bad jsonl: %s",
          slm_last_error());

    c = (json_capture){0};
    p = write_tmp("eval_field.jsonl", "{\"a\": \"x\"}\n{\"b\": 1}\n");
    st = slm_data_read_jsonl(p, capture_json, &c);
    CHECK(st == SLM_ERR_FORMAT && strstr(slm_last_error(), "eval_field.jsonl:2: missing string field 'a'"),
          "missing field: %s", slm_last_error());

    c = (json_capture){0};
    p = write_tmp("eval_arr.json", "[\n  {\"a\": \"[x]\\\"\"},\n  {\n   \"a\": \"y\"\n  }\n]\n");
    st = slm_data_read_json_array(p, capture_json, &c);
    CHECK(st == SLM_OK && c.n == 2 && c.last_line == 3 && strcmp(c.first, "[x]\"") == 0,
          "json array: n %d line %d first '%s' (%s)", c.n, c.last_line, c.first, slm_last_error());

    p = write_tmp("eval_arr_bad.json", "[\n {\"a\": \"x\"},\n {\"a\": }\n]\n");
    st = slm_data_read_json_array(p, capture_json, &c);
    CHECK(st == SLM_ERR_FORMAT && strstr(slm_last_error(), "eval_arr_bad.json:3:"), "bad array: %s", slm_last_error());
}

/* ---- compressed files -------------------------------------------------------------- */

static void test_compressed(void) {
    const char *tmp = slm_test_env("SLM_TEST_TMP", "/tmp");
    const char *text = "line one\nline two\n";
    const char *gz = slm_test_path(tmp, "eval_t.txt.gz");
    gzFile g = gzopen(gz, "wb");
    gzwrite(g, text, (unsigned)strlen(text));
    gzclose(g);
    char *out;
    size_t n;
    slm_status st = slm_data_read_all(gz, &out, &n);
    CHECK(st == SLM_OK && n == strlen(text) && memcmp(out, text, n) == 0, "gz round trip (%s)", slm_last_error());
    if (!st) free(out);

    char comp[256];
    unsigned clen = sizeof comp;
    BZ2_bzBuffToBuffCompress(comp, &clen, (char *)text, (unsigned)strlen(text), 9, 0, 0);
    const char *bz = slm_test_path(tmp, "eval_t.txt.bz2");
    FILE *f = fopen(bz, "wb");
    fwrite(comp, 1, clen, f);
    fclose(f);
    st = slm_data_read_all(bz, &out, &n);
    CHECK(st == SLM_OK && n == strlen(text) && memcmp(out, text, n) == 0, "bz2 round trip (%s)", slm_last_error());
    if (!st) free(out);
    /* A truncated stream must fail, not return a short text. */
    f = fopen(bz, "wb");
    fwrite(comp, 1, clen / 2, f);
    fclose(f);
    st = slm_data_read_all(bz, &out, &n);
    CHECK(st == SLM_ERR_FORMAT, "truncated bz2 gave status %d", st);
    if (!st) free(out);
    st = slm_data_read_all(slm_test_path(tmp, "eval_no_such_file.jsonl"), &out, &n);
    CHECK(st == SLM_ERR_IO && strstr(slm_last_error(), "eval_no_such_file.jsonl: no such file"), "missing: %s",
          slm_last_error());
}

/* ---- Python string semantics --------------------------------------------------------- */

static void check_str(const char *what, char *got, const char *want) {
    CHECK(got && strcmp(got, want) == 0, "%s: got '%s', want '%s'", what, got ? got : "(null)", want);
    free(got);
}

static void test_strings(void) {
    /* 'Ab cD éX'.capitalize() == 'Ab cd éx'; 'élan VITAL'.capitalize() == 'Élan vital' */
    check_str("capitalize", slm_eval_capitalize("Ab cD \xC3\xa9X"), "Ab cd \xC3\xa9x");
    check_str("capitalize", slm_eval_capitalize("\xC3\xa9lan VITAL"), "\xC3\x89lan vital");
    /* lm-eval hellaswag preprocess(), values from Python */
    check_str("preprocess", slm_eval_hellaswag_preprocess("  Foo [title] bar [header] baz   qux [x"),
              "Foo. bar baz  qux [x");
    check_str("preprocess", slm_eval_hellaswag_preprocess("a [b\n c] d"), "a [b\n c] d");
    check_str("preprocess", slm_eval_hellaswag_preprocess("x  [step]  y"), "x  y");
    check_str("strip", slm_eval_strip(" \t a b \xC2\xA0\n", 10, true, true), "a b");
    check_str("lstrip", slm_eval_strip("  a ", 4, true, false), "a ");
    CHECK(slm_eval_utf8_len("h\xC3\xa9llo w\xC3\xb6rld") == 11, "len('h\u00e9llo w\u00f6rld') != 11");
}

/* ---- metrics --------------------------------------------------------------------------- */

static void test_metrics(void) {
    double mu, se;
    const double x[7] = {1, 0, 1, 1, 0, 1, 1};
    slm_eval_mean_stderr(x, 7, &mu, &se);
    printf("mean_stderr: %.12f %.12f\n", mu, se);
    CHECK(fabs(mu - 0.7142857142857143) < 1e-12 && fabs(se - 0.18442777839082938) < 1e-12, "mean %g se %g", mu, se);

    const int g3[10] = {0, 1, 2, 1, 0, 0, 2, 1, 1, 0}, p3[10] = {0, 1, 1, 1, 0, 2, 2, 0, 1, 0};
    double macro = (slm_eval_f1(g3, p3, 10, 0) + slm_eval_f1(g3, p3, 10, 1) + slm_eval_f1(g3, p3, 10, 2)) / 3;
    CHECK(fabs(macro - 0.6666666666666666) < 1e-12, "macro F1 %g", macro);
    const int g2[8] = {1, 0, 1, 1, 0, 1, 0, 0}, p2[8] = {1, 1, 1, 0, 0, 1, 0, 1};
    CHECK(fabs(slm_eval_f1(g2, p2, 8, 1) - 0.6666666666666666) < 1e-12, "F1 %g", slm_eval_f1(g2, p2, 8, 1));

    const double vals[3] = {0.3, 0.5, 0.4}, ses[3] = {0.1, 0.05, 0.2};
    const int sizes[3] = {10, 20, 5};
    slm_eval_pool(vals, ses, sizes, 3, &mu, &se);
    CHECK(fabs(mu - 0.42857142857142855) < 1e-12 && fabs(se - 0.04864228025670085) < 1e-12, "pool %g %g", mu, se);

    /* Documents with known outcomes: acc picks the highest LL, acc_norm
     * divides by the choice's characters, MI subtracts LL(cont|""). */
    char *ctx[2] = {"c", "c"};
    char *cont[2] = {" a", " bbbb"};
    char *choice[2] = {"a", "bbbb"};
    int chars[2] = {1, 4};
    slm_eval_doc docs[2] = {{2, ctx, cont, choice, chars, 1, NULL}, {2, ctx, cont, choice, chars, 0, NULL}};
    double ll0[2] = {-2.0, -4.0}, unc0[2] = {-1.0, -6.0}; /* acc: 0 (wrong), norm: 1 (right), MI: 1 (right) */
    double ll1[2] = {-1.0, -3.0}, unc1[2] = {-5.0, -4.0}; /* acc: 0 (right), norm: 1 (wrong), MI: 0 (right) */
    slm_eval_scores sc[2] = {{ll0, unc0, NULL}, {ll1, unc1, NULL}};
    slm_eval_value v[SLM_EVAL_MAX_VALUES];
    int nv;
    slm_status st = slm_eval_compute_metrics(docs, sc, 2, SLM_EVAL_ACC | SLM_EVAL_ACC_NORM | SLM_EVAL_MI, 0, 1, v, &nv);
    CHECK(st == SLM_OK && nv == 3, "metrics: %d values (%s)", nv, slm_last_error());
    CHECK(strcmp(v[0].name, "acc") == 0 && v[0].value == 0.5, "acc %s %g", v[0].name, v[0].value);
    CHECK(strcmp(v[1].name, "acc_norm") == 0 && v[1].value == 0.5, "acc_norm %g", v[1].value);
    CHECK(strcmp(v[2].name, "acc_mutual_info") == 0 && v[2].value == 1.0, "mi %g", v[2].value);

    /* MC2: probability mass on true answers, exp(-1) / (exp(-1) + exp(-2) + exp(-3)) = 0.6652409557748219 */
    signed char truth[3] = {1, 0, 0};
    char *c3[3] = {"c", "c", "c"};
    int ch3[3] = {1, 1, 1};
    slm_eval_doc d3 = {3, c3, c3, c3, ch3, 0, truth};
    double l3[3] = {-1, -2, -3};
    slm_eval_scores s3 = {l3, NULL, NULL};
    st = slm_eval_compute_metrics(&d3, &s3, 1, SLM_EVAL_MC2, 0, 1, v, &nv);
    CHECK(st == SLM_OK && nv == 1 && fabs(v[0].value - 0.6652409557748219) < 1e-12 && isnan(v[0].stderr_),
          "mc2 %g", v[0].value);
}

int main(void) {
    test_csv();
    test_json();
    test_compressed();
    test_strings();
    test_metrics();
    return slm_test_finish();
}
