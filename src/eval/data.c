/* Evaluation data readers (see data.h for the contract). Files are small
 * (a few MB), so each is read whole, decompressed if needed, and walked in
 * memory; rows never outlive their callback. */
#define _POSIX_C_SOURCE 200809L
#include "eval/data.h"
#include "core/core.h"

#include <bzlib.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

bool slm_data_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Growable byte buffer for the decompressors. */
typedef struct {
    char *p;
    size_t n, cap;
} grow_buf;

static slm_status grow_reserve(grow_buf *b, size_t extra, const char *path) {
    if (b->n + extra + 1 <= b->cap) return SLM_OK;
    size_t cap = b->cap ? b->cap : 1 << 20;
    while (cap < b->n + extra + 1) {
        if (cap > ((size_t)1 << 40)) return slm_fail(SLM_ERR_NOMEM, "%s: decompressed size too large", path);
        cap *= 2;
    }
    char *np = realloc(b->p, cap);
    if (!np) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory decompressing", path);
    b->p = np;
    b->cap = cap;
    return SLM_OK;
}

static slm_status read_gz(const char *path, char **out, size_t *len) {
    gzFile g = gzopen(path, "rb");
    if (!g) return slm_fail(SLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    grow_buf b = {0};
    slm_status st = SLM_OK;
    for (;;) {
        if ((st = grow_reserve(&b, 1 << 16, path))) break;
        int r = gzread(g, b.p + b.n, 1 << 16);
        if (r < 0) {
            int e;
            st = slm_fail(SLM_ERR_FORMAT, "%s: corrupt gzip data: %s", path, gzerror(g, &e));
            break;
        }
        if (r == 0) break;
        b.n += (size_t)r;
    }
    gzclose(g);
    if (st) {
        free(b.p);
        return st;
    }
    if (!b.p && (st = grow_reserve(&b, 0, path))) return st;
    b.p[b.n] = 0;
    *out = b.p;
    *len = b.n;
    return SLM_OK;
}

static slm_status read_bz2(const char *path, char **out, size_t *len) {
    char *raw;
    size_t raw_len;
    slm_status st = slm_read_file(path, &raw, &raw_len);
    if (st) return st;
    bz_stream z;
    memset(&z, 0, sizeof z);
    if (BZ2_bzDecompressInit(&z, 0, 0) != BZ_OK) {
        free(raw);
        return slm_fail(SLM_ERR_NOMEM, "%s: cannot start bzip2 decompression", path);
    }
    grow_buf b = {0};
    z.next_in = raw;
    z.avail_in = (unsigned)raw_len;
    for (;;) {
        if ((st = grow_reserve(&b, 1 << 20, path))) break;
        z.next_out = b.p + b.n;
        z.avail_out = 1 << 20;
        int r = BZ2_bzDecompress(&z);
        b.n = (size_t)((1 << 20) - z.avail_out) + b.n;
        if (r == BZ_STREAM_END) {
            /* Concatenated streams (pbzip2) continue with a fresh decoder. */
            if (z.avail_in == 0) break;
            char *next = z.next_in;
            unsigned left = z.avail_in;
            BZ2_bzDecompressEnd(&z);
            memset(&z, 0, sizeof z);
            if (BZ2_bzDecompressInit(&z, 0, 0) != BZ_OK) {
                st = slm_fail(SLM_ERR_NOMEM, "%s: cannot restart bzip2 decompression", path);
                break;
            }
            z.next_in = next;
            z.avail_in = left;
            continue;
        }
        if (r != BZ_OK) {
            st = slm_fail(SLM_ERR_FORMAT, "%s: corrupt bzip2 data (code %d)", path, r);
            break;
        }
        if (z.avail_in == 0 && z.avail_out != 0) {
            st = slm_fail(SLM_ERR_FORMAT, "%s: truncated bzip2 data", path);
            break;
        }
    }
    BZ2_bzDecompressEnd(&z);
    free(raw);
    if (st) {
        free(b.p);
        return st;
    }
    b.p[b.n] = 0;
    *out = b.p;
    *len = b.n;
    return SLM_OK;
}

slm_status slm_data_read_all(const char *path, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (!slm_data_exists(path)) return slm_fail(SLM_ERR_IO, "%s: no such file", path);
    if (ends_with(path, ".gz")) return read_gz(path, out, len);
    if (ends_with(path, ".bz2")) return read_bz2(path, out, len);
    return slm_read_file(path, out, len);
}

static char *skip_bom(char *s) {
    return (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF ? s + 3 : s;
}

/* ---- lines and jsonl ---------------------------------------------------- */

slm_status slm_data_read_lines(const char *path, slm_data_line_fn fn, void *ud) {
    char *text;
    size_t len;
    slm_status st = slm_data_read_all(path, &text, &len);
    if (st) return st;
    char *p = skip_bom(text), *end = text + len;
    int line = 0;
    while (p < end && st == SLM_OK) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        size_t n = (size_t)(e - p);
        if (n && p[n - 1] == '\r') n--;
        st = fn(ud, p, n, path, line);
        p = nl ? nl + 1 : end;
    }
    free(text);
    return st == SLM_DATA_STOP ? SLM_OK : st;
}

typedef struct {
    slm_data_json_fn fn;
    void *ud;
} json_lines_ctx;

static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

static slm_status parse_json_value(const char *s, size_t n, const char *path, int line, cJSON **out) {
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(s, n, &end, false);
    if (!*out) {
        const char *at = cJSON_GetErrorPtr();
        long col = (at && at >= s && at <= s + n) ? (long)(at - s) + 1 : 1;
        return slm_fail(SLM_ERR_FORMAT, "%s:%d: malformed JSON near column %ld", path, line, col);
    }
    if (end && !is_blank(end, (size_t)(s + n - end))) {
        cJSON_Delete(*out);
        *out = NULL;
        return slm_fail(SLM_ERR_FORMAT, "%s:%d: trailing characters after the JSON value (column %ld)", path, line,
                        (long)(end - s) + 1);
    }
    return SLM_OK;
}

static slm_status jsonl_line(void *ud, const char *text, size_t len, const char *path, int line) {
    json_lines_ctx *c = ud;
    if (is_blank(text, len)) return SLM_OK;
    cJSON *row;
    slm_status st = parse_json_value(text, len, path, line, &row);
    if (st) return st;
    st = c->fn(c->ud, row, path, line);
    cJSON_Delete(row);
    return st;
}

slm_status slm_data_read_jsonl(const char *path, slm_data_json_fn fn, void *ud) {
    json_lines_ctx c = {fn, ud};
    return slm_data_read_lines(path, jsonl_line, &c);
}

/* Finds the end of the JSON value starting at s (an object, array, string
 * or scalar) by tracking nesting and strings; the value itself is then
 * parsed by cJSON. Returns NULL when the text ends first. */
static const char *json_value_end(const char *s, const char *end, int *lines) {
    int depth = 0;
    bool in_str = false, esc = false;
    for (const char *p = s; p < end; p++) {
        char ch = *p;
        if (ch == '\n') (*lines)++;
        if (in_str) {
            if (esc) esc = false;
            else if (ch == '\\') esc = true;
            else if (ch == '"') {
                in_str = false;
                if (depth == 0) return p + 1;
            }
            continue;
        }
        if (ch == '"') in_str = true;
        else if (ch == '{' || ch == '[') depth++;
        else if (ch == '}' || ch == ']') {
            if (--depth <= 0) return depth < 0 ? p : p + 1;
        } else if (depth == 0 && (ch == ',' || ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r'))
            return p;
    }
    return depth == 0 && !in_str ? end : NULL;
}

slm_status slm_data_read_json_array(const char *path, slm_data_json_fn fn, void *ud) {
    char *text;
    size_t len;
    slm_status st = slm_data_read_all(path, &text, &len);
    if (st) return st;
    const char *p = skip_bom(text), *end = text + len;
    int line = 1;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) line += *p++ == '\n';
    if (p >= end || *p != '[') {
        free(text);
        return slm_fail(SLM_ERR_FORMAT, "%s:%d: expected a JSON array", path, line);
    }
    p++;
    for (int idx = 0; st == SLM_OK; idx++) {
        while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == ',')) line += *p++ == '\n';
        if (p >= end) {
            st = slm_fail(SLM_ERR_FORMAT, "%s:%d: JSON array not closed", path, line);
            break;
        }
        if (*p == ']') break;
        int start_line = line;
        const char *e = json_value_end(p, end, &line);
        if (!e || e == p) {
            st = slm_fail(SLM_ERR_FORMAT, "%s:%d: malformed JSON array element %d", path, start_line, idx + 1);
            break;
        }
        cJSON *row;
        st = parse_json_value(p, (size_t)(e - p), path, start_line, &row);
        if (st) break;
        st = fn(ud, row, path, start_line);
        cJSON_Delete(row);
        p = e;
    }
    free(text);
    return st == SLM_DATA_STOP ? SLM_OK : st;
}

slm_status slm_data_json_str(const cJSON *row, const char *name, const char *path, int line, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, name);
    if (!cJSON_IsString(v)) return slm_fail(SLM_ERR_FORMAT, "%s:%d: missing string field '%s'", path, line, name);
    *out = v->valuestring;
    return SLM_OK;
}

slm_status slm_data_json_int(const cJSON *row, const char *name, const char *path, int line, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, name);
    if (cJSON_IsNumber(v) && v->valuedouble == (double)(int)v->valuedouble) {
        *out = (int)v->valuedouble;
        return SLM_OK;
    }
    /* HF exports sometimes carry labels as strings ("1"). */
    if (cJSON_IsString(v) && v->valuestring[0]) {
        char *e;
        long x = strtol(v->valuestring, &e, 10);
        if (*e == 0 && x >= -1000000 && x <= 1000000) {
            *out = (int)x;
            return SLM_OK;
        }
    }
    return slm_fail(SLM_ERR_FORMAT, "%s:%d: missing integer field '%s'", path, line, name);
}

/* ---- delimited tables ---------------------------------------------------- */

slm_status slm_data_parse_table(const char *path, char *text, size_t len, char sep, slm_data_quoting q,
                                slm_data_row_fn fn, void *ud) {
    char *p = skip_bom(text), *end = text + len;
    int cap = 16, line = 1;
    char **fields = slm_malloc((size_t)cap * sizeof *fields, "table fields");
    if (!fields) return SLM_ERR_NOMEM;
    slm_status st = SLM_OK;
    while (p < end && st == SLM_OK) {
        int row_line = line, n = 0;
        bool row_done = false, any = false;
        /* Fields are unescaped in place: the write cursor w never passes p. */
        while (!row_done) {
            char *w = p, *start = p;
            if (q == SLM_DATA_QUOTE_CSV && p < end && *p == '"') {
                p++;
                for (;;) {
                    if (p >= end) {
                        st = slm_fail(SLM_ERR_FORMAT, "%s:%d: quoted field not closed", path, row_line);
                        break;
                    }
                    if (*p == '"') {
                        if (p + 1 < end && p[1] == '"') {
                            *w++ = '"';
                            p += 2;
                            continue;
                        }
                        p++;
                        break;
                    }
                    if (*p == '\n') line++;
                    *w++ = *p++;
                }
                if (st) break;
                if (p < end && *p != sep && *p != '\n' && *p != '\r') {
                    st = slm_fail(SLM_ERR_FORMAT, "%s:%d: unexpected character after a quoted field", path, line);
                    break;
                }
            } else {
                while (p < end && *p != sep && *p != '\n') *w++ = *p++;
                if (w > start && w[-1] == '\r' && (p >= end || *p == '\n')) w--;
            }
            if (p < end && *p == '\r') p++;
            if (p >= end || *p == '\n') row_done = true;
            char *after = p < end ? p + 1 : p;
            *w = 0;
            if (n == cap) {
                char **nf = realloc(fields, (size_t)cap * 2 * sizeof *fields);
                if (!nf) {
                    st = slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
                fields = nf;
                cap *= 2;
            }
            fields[n++] = start;
            if (w > start || !row_done || n > 1) any = true;
            if (row_done && p < end) line++;
            p = after;
        }
        if (st) break;
        if (!any) continue; /* blank line */
        st = fn(ud, fields, n, path, row_line);
    }
    free(fields);
    return st == SLM_DATA_STOP ? SLM_OK : st;
}

slm_status slm_data_read_table(const char *path, char sep, slm_data_quoting q, slm_data_row_fn fn, void *ud) {
    char *text;
    size_t len;
    slm_status st = slm_data_read_all(path, &text, &len);
    if (st) return st;
    st = slm_data_parse_table(path, text, len, sep, q, fn, ud);
    free(text);
    return st;
}
