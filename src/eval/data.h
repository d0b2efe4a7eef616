/* Readers for evaluation data files: whole files (plain, .gz, .bz2),
 * jsonl, JSON arrays, CSV (RFC 4180 quoting) and TSV (no quoting, as GLUE
 * ships it). Every row is handed to a callback together with the file name
 * and the 1-based line where the row starts, so a callback can fail with
 * slm_fail(SLM_ERR_FORMAT, "%s:%d: <what>", path, line) and the CLI prints
 * "error: <file>:<line>: <what>".
 *
 * The readers know nothing about tasks; src/eval/tasks*.c turns rows into
 * documents. A UTF-8 byte-order mark at the start of a file is skipped.
 */
#ifndef SLM_EVAL_DATA_H
#define SLM_EVAL_DATA_H

#include "slimlm.h"
#include <cjson/cJSON.h>

/* Reads a whole file into a NUL-terminated malloc'd buffer; names ending in
 * ".gz" are inflated with zlib and ".bz2" with libbz2. */
slm_status slm_data_read_all(const char *path, char **out, size_t *len);

/* true when path names an existing regular file. */
bool slm_data_exists(const char *path);

/* Row callback for JSON rows. Return SLM_OK to go on; any other status stops
 * the read and is returned. A callback may return SLM_DATA_STOP to end early
 * without error (e.g. after --limit rows). */
#define SLM_DATA_STOP ((slm_status)100)
typedef slm_status (*slm_data_json_fn)(void *ud, const cJSON *row, const char *path, int line);

/* One JSON value per non-blank line. */
slm_status slm_data_read_jsonl(const char *path, slm_data_json_fn fn, void *ud);
/* A top-level JSON array; each element is parsed on its own, so errors name
 * the line where that element starts. */
slm_status slm_data_read_json_array(const char *path, slm_data_json_fn fn, void *ud);

/* Row callback for delimited text: fields are NUL-terminated, valid until the
 * callback returns. */
typedef slm_status (*slm_data_row_fn)(void *ud, char **fields, int n_fields, const char *path, int line);

typedef enum slm_data_quoting {
    SLM_DATA_QUOTE_CSV = 0, /* "..." fields with "" escapes, may span lines (pandas/Python csv) */
    SLM_DATA_QUOTE_NONE     /* quotes are ordinary characters (csv.QUOTE_NONE, as GLUE's tsv needs) */
} slm_data_quoting;

/* Delimited rows (sep ',' or '\t'). Every row, the header included, goes to
 * fn; blank lines are skipped. */
slm_status slm_data_read_table(const char *path, char sep, slm_data_quoting q, slm_data_row_fn fn, void *ud);
/* The same over text already in memory (for tests); text must be NUL-terminated. */
slm_status slm_data_parse_table(const char *path, char *text, size_t len, char sep, slm_data_quoting q,
                                slm_data_row_fn fn, void *ud);

/* Lines of a text file (\n or \r\n), without their ends. */
typedef slm_status (*slm_data_line_fn)(void *ud, const char *text, size_t len, const char *path, int line);
slm_status slm_data_read_lines(const char *path, slm_data_line_fn fn, void *ud);

/* JSON field helpers: fail with "<path>:<line>: missing string field 'name'". */
slm_status slm_data_json_str(const cJSON *row, const char *name, const char *path, int line, const char **out);
slm_status slm_data_json_int(const cJSON *row, const char *name, const char *path, int line, int *out);

#endif
