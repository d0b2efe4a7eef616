/* GGUF reader: (1) a file written by gguf-py with every metadata type
 * (tests/golden/gguf_alltypes.gguf, values as in tools/make_gguf_golden.py);
 * (2) hand-built v2 and v3 files, then one corruption at a time, each of
 * which must fail with its own message (and every truncated prefix must
 * fail without a crash); (3) the SmolLM2 model against what gguf-py's
 * reader saw (tests/golden/gguf_smollm2.txt): counts, offsets, dims, types,
 * and dequantised values bit for bit. */
#include "formats/gguf.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- gguf-py file with every type --------------------------------------- */

static bool kv_str_is(const slm_gguf *g, const char *key, const char *want) {
    slm_gguf_str s;
    return slm_gguf_get_str(g, key, &s) && s.len == strlen(want) && !memcmp(s.ptr, want, s.len);
}

static void test_alltypes(void) {
    const char *path = slm_test_path(slm_test_env("SLM_GOLDEN_DIR", "tests/golden"), "gguf_alltypes.gguf");
    slm_gguf *g = NULL;
    if (!CHECK(slm_gguf_open(path, &g) == SLM_OK, "open %s: %s", path, slm_last_error())) return;
    CHECK(g->version == 3 && g->n_kv == 17 && g->n_tensors == 3 && g->alignment == 32, "header");
    static const struct { const char *key; int64_t v; slm_gguf_type t; } ints[] = {
        {"t.u8", 200, SLM_GGUF_UINT8},            {"t.i8", -100, SLM_GGUF_INT8},
        {"t.u16", 60000, SLM_GGUF_UINT16},        {"t.i16", -30000, SLM_GGUF_INT16},
        {"t.u32", 4000000000LL, SLM_GGUF_UINT32}, {"t.i32", -2000000000LL, SLM_GGUF_INT32},
        {"t.i64", -(1LL << 40), SLM_GGUF_INT64}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        int64_t v = 0;
        const slm_gguf_kv *kv = slm_gguf_find(g, ints[i].key);
        CHECK(kv && kv->type == ints[i].t && slm_gguf_get_i64(g, ints[i].key, &v) && v == ints[i].v,
              "%s = %lld", ints[i].key, (long long)v);
    }
    int64_t v;
    const slm_gguf_kv *u64 = slm_gguf_find(g, "t.u64");
    CHECK(u64 && u64->type == SLM_GGUF_UINT64 && !slm_gguf_get_i64(g, "t.u64", &v), "u64 above INT64_MAX refused");
    float f;
    bool b = false;
    CHECK(slm_gguf_get_f32(g, "t.f32", &f) && f == 1.5f, "f32");
    CHECK(slm_gguf_get_f32(g, "t.f64", &f) && f == 0.1f && slm_gguf_find(g, "t.f64")->type == SLM_GGUF_FLOAT64, "f64");
    CHECK(!slm_gguf_get_f32(g, "t.i32", &f) && !slm_gguf_get_i64(g, "t.f32", &v), "no type punning");
    CHECK(slm_gguf_get_bool(g, "t.bool", &b) && b, "bool");
    CHECK(kv_str_is(g, "t.str", "h\xc3\xa9llo w\xc3\xb6rld"), "utf-8 string");
    CHECK(kv_str_is(g, "general.architecture", "llama"), "architecture");
    CHECK(!slm_gguf_find(g, "t.missing") && !slm_gguf_find(g, "t") && !slm_gguf_find(g, "t.u8x"), "absent keys");
    const slm_gguf_kv *a = slm_gguf_find(g, "t.arr_i32");
    int64_t e0 = 0, e1 = 0, e2 = 0;
    CHECK(a && a->arr_type == SLM_GGUF_INT32 && a->arr_n == 3 && slm_gguf_arr_i64(a, 0, &e0) &&
          slm_gguf_arr_i64(a, 1, &e1) && slm_gguf_arr_i64(a, 2, &e2) && e0 == 1 && e1 == -2 && e2 == 3 &&
          !slm_gguf_arr_i64(a, 3, &e0), "int32 array");
    double d0 = 0, d1 = 0;
    a = slm_gguf_find(g, "t.arr_f32");
    CHECK(a && slm_gguf_arr_f64(a, 0, &d0) && slm_gguf_arr_f64(a, 1, &d1) && d0 == 0.5 && d1 == 0.25, "f32 array");
    a = slm_gguf_find(g, "t.arr_str");
    CHECK(a && a->arr_type == SLM_GGUF_STRING && a->arr_n == 3 && a->arr_strs[0].len == 1 &&
          a->arr_strs[1].len == 0 && a->arr_strs[2].len == 5 && !memcmp(a->arr_strs[2].ptr, "\xc3\xbcn\xc3\xaf", 5),
          "string array");
    a = slm_gguf_find(g, "t.arr_arr");
    CHECK(a && a->arr_type == SLM_GGUF_ARRAY && a->arr_n == 2 && !slm_gguf_arr_i64(a, 0, &e0), "array of arrays");
    const slm_gguf_tensor *t = slm_gguf_find_tensor(g, "f32");
    CHECK(t && t->type == SLM_DTYPE_F32 && t->n_dims == 2 && t->ne[0] == 3 && t->ne[1] == 2 &&
          ((const float *)t->data)[5] == 5.0f, "f32 tensor");
    t = slm_gguf_find_tensor(g, "f16");
    CHECK(t && t->type == SLM_DTYPE_F16 && t->n_elems == 64 && slm_fp16_to_fp32(((const uint16_t *)t->data)[63]) == 63.0f / 8,
          "f16 tensor");
    t = slm_gguf_find_tensor(g, "q8");
    CHECK(t && t->type == SLM_DTYPE_Q8_0 && t->ne[0] == 32 && t->ne[1] == 2 && t->nbytes == 68 && t->offset % 32 == 0,
          "q8 tensor");
    if (t) {
        float y[64];
        slm_dtype_get(SLM_DTYPE_Q8_0)->to_float(t->data, y, 64);
        CHECK(fabsf(y[0] + 1.0f) < 1e-3f && fabsf(y[63] - 1.0f) < 1e-3f, "q8 values %g %g", y[0], y[63]);
    }
    CHECK(!slm_gguf_find_tensor(g, "f3") && !slm_gguf_find_tensor(g, "q"), "absent tensors");
    slm_gguf_close(g);
}

/* ---- hand-built files --------------------------------------------------- */

typedef struct buf { uint8_t *p; size_t n, cap; } buf;
static void put(buf *b, const void *x, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, x, n);
    b->n += n;
}
static void put32(buf *b, uint32_t v) { uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)}; put(b, x, 4); }
static void put64(buf *b, uint64_t v) { put32(b, (uint32_t)v); put32(b, (uint32_t)(v >> 32)); }
static void putstr(buf *b, const char *s) { put64(b, strlen(s)); put(b, s, strlen(s)); }
static void putkey(buf *b, const char *k, slm_gguf_type t) { putstr(b, k); put32(b, t); }

typedef enum fault {
    F_NONE, F_MAGIC, F_V1, F_V4, F_BIGENDIAN, F_HUGE_TENSORS, F_HUGE_KV, F_HUGE_STRING, F_BAD_UTF8, F_EMPTY_KEY,
    F_DUP_KEY, F_DUP_TENSOR, F_NDIMS, F_DIM_ZERO, F_DIM_OVERFLOW, F_TYPE, F_VALUE_TYPE, F_MISALIGNED, F_PAST_END,
    F_OVERLAP, F_ALIGN_NOT_POW2, F_DEEP_ARRAY, F_HUGE_ARRAY, F_BLOCK, F_NAME_NUL, F_COUNT
} fault;

/* Nested array value of the given depth: [[[...[7]...]]]. */
static void put_nested(buf *b, int depth) {
    if (depth == 1) { put32(b, SLM_GGUF_UINT8); put64(b, 1); put(b, "\x07", 1); return; }
    put32(b, SLM_GGUF_ARRAY);
    put64(b, 1);
    put_nested(b, depth - 1);
}

/* A small valid file (with one injected fault): one kv of every type and
 * two tensors, "a" F32 [4, 2] at 0 and "b" Q8_0 [32] at 32 (alignment 32,
 * or 64 via general.alignment when align64). */
static buf build(uint32_t version, fault f, bool align64) {
    buf b = {0};
    put(&b, f == F_MAGIC ? "GGUX" : "GGUF", 4);
    put32(&b, f == F_V1 ? 1 : f == F_V4 ? 4 : f == F_BIGENDIAN ? 0x03000000u : version);
    put64(&b, f == F_HUGE_TENSORS ? (1ULL << 60) : 2);
    int n_kv = 18 + (align64 || f == F_ALIGN_NOT_POW2) + (f == F_DUP_KEY);
    put64(&b, f == F_HUGE_KV ? (1ULL << 60) : (uint64_t)n_kv);
    putkey(&b, "general.architecture", SLM_GGUF_STRING); putstr(&b, "llama");
    if (align64 || f == F_ALIGN_NOT_POW2) { putkey(&b, "general.alignment", SLM_GGUF_UINT32); put32(&b, f ? 48 : 64); }
    putkey(&b, "u8", SLM_GGUF_UINT8); put(&b, "\xfe", 1);
    putkey(&b, "i8", SLM_GGUF_INT8); put(&b, "\xfe", 1);
    putkey(&b, "u16", SLM_GGUF_UINT16); put(&b, "\x34\x12", 2);
    putkey(&b, "i16", SLM_GGUF_INT16); put(&b, "\xfe\xff", 2);
    putkey(&b, "u32", SLM_GGUF_UINT32); put32(&b, 0xdeadbeef);
    putkey(&b, f == F_BAD_UTF8 ? "i\xff" : f == F_EMPTY_KEY ? "" : "i32", f == F_VALUE_TYPE ? 13 : SLM_GGUF_INT32);
    put32(&b, (uint32_t)-7);
    putkey(&b, "f32", SLM_GGUF_FLOAT32); put32(&b, 0x40490fdb); /* pi */
    putkey(&b, "bool", SLM_GGUF_BOOL); put(&b, "\x01", 1);
    putkey(&b, "str", SLM_GGUF_STRING);
    if (f == F_HUGE_STRING) put64(&b, 1ULL << 62); else putstr(&b, "x\xe2\x82\xac"); /* x + euro sign */
    putkey(&b, "u64", SLM_GGUF_UINT64); put64(&b, 1ULL << 40);
    putkey(&b, "i64", SLM_GGUF_INT64); put64(&b, (uint64_t)-3);
    putkey(&b, "f64", SLM_GGUF_FLOAT64); put64(&b, 0x3ff8000000000000ULL); /* 1.5 */
    putkey(&b, "arr.u16", SLM_GGUF_ARRAY); put32(&b, SLM_GGUF_UINT16);
    put64(&b, f == F_HUGE_ARRAY ? (1ULL << 62) : 3); put(&b, "\x01\x00\x02\x00\x03\x00", 6);
    putkey(&b, "arr.str", SLM_GGUF_ARRAY); put32(&b, SLM_GGUF_STRING); put64(&b, 2); putstr(&b, "ab"); putstr(&b, "");
    putkey(&b, "arr.nested", SLM_GGUF_ARRAY); put_nested(&b, f == F_DEEP_ARRAY ? 10 : 3);
    putkey(&b, "arr.empty", SLM_GGUF_ARRAY); put32(&b, SLM_GGUF_FLOAT32); put64(&b, 0);
    putkey(&b, f == F_DUP_KEY ? "u8" : "arr.bool", SLM_GGUF_ARRAY); put32(&b, SLM_GGUF_BOOL); put64(&b, 2); put(&b, "\x00\x01", 2);
    if (f == F_DUP_KEY) { putkey(&b, "arr.bool", SLM_GGUF_BOOL); put(&b, "\x00", 1); }
    /* tensor infos */
    putstr(&b, "a"); put32(&b, f == F_NDIMS ? 5 : 2);
    put64(&b, f == F_DIM_OVERFLOW ? (1ULL << 62) : 4); put64(&b, f == F_DIM_ZERO ? 0 : f == F_DIM_OVERFLOW ? 8 : 2);
    if (f == F_NDIMS) { put64(&b, 1); put64(&b, 1); put64(&b, 1); }
    put32(&b, f == F_TYPE ? 99 : SLM_DTYPE_F32); put64(&b, 0);
    if (f == F_NAME_NUL) put(&b, "\x02\0\0\0\0\0\0\0b\0", 10);
    else putstr(&b, f == F_DUP_TENSOR ? "a" : "b");
    put32(&b, 1); put64(&b, f == F_BLOCK ? 33 : 32); put32(&b, SLM_DTYPE_Q8_0);
    uint64_t align = align64 ? 64 : 32;
    put64(&b, f == F_MISALIGNED ? 33 : f == F_OVERLAP ? 0 : f == F_PAST_END ? 1024 : align);
    while (b.n % align) put(&b, "", 1);
    float a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    put(&b, a, sizeof a);
    while (b.n % align) put(&b, "", 1);
    uint8_t q[34] = {0x00, 0x3c}; /* d = 1 */
    for (int i = 0; i < 32; i++) q[2 + i] = (uint8_t)(int8_t)(i - 16);
    put(&b, q, sizeof q);
    return b;
}

static const char *write_tmp(const buf *b, const char *name) {
    const char *path = slm_test_path(slm_test_env("SLM_TEST_TMP", "/tmp"), name);
    FILE *fp = fopen(path, "wb");
    if (fp) { fwrite(b->p, 1, b->n, fp); fclose(fp); }
    return path;
}

static void check_valid(uint32_t version, bool align64) {
    buf b = build(version, F_NONE, align64);
    const char *path = write_tmp(&b, "gguf_valid.gguf");
    slm_gguf *g = NULL;
    if (!CHECK(slm_gguf_open(path, &g) == SLM_OK, "v%u valid file: %s", version, slm_last_error())) { free(b.p); return; }
    int64_t v = 0;
    float f = 0;
    bool bo = false;
    CHECK(g->version == version && g->alignment == (align64 ? 64u : 32u) && g->data_offset % g->alignment == 0, "v%u header", version);
    CHECK(slm_gguf_get_i64(g, "u8", &v) && v == 254, "u8");
    CHECK(slm_gguf_get_i64(g, "i8", &v) && v == -2, "i8");
    CHECK(slm_gguf_get_i64(g, "u16", &v) && v == 0x1234, "u16");
    CHECK(slm_gguf_get_i64(g, "i16", &v) && v == -2, "i16");
    CHECK(slm_gguf_get_i64(g, "u32", &v) && v == 0xdeadbeef, "u32");
    CHECK(slm_gguf_get_i64(g, "i32", &v) && v == -7, "i32");
    CHECK(slm_gguf_get_f32(g, "f32", &f) && f == 3.14159274f, "f32");
    CHECK(slm_gguf_get_bool(g, "bool", &bo) && bo && !slm_gguf_get_i64(g, "bool", &v), "bool");
    CHECK(kv_str_is(g, "str", "x\xe2\x82\xac"), "string");
    CHECK(slm_gguf_get_i64(g, "u64", &v) && v == (1LL << 40), "u64");
    CHECK(slm_gguf_get_i64(g, "i64", &v) && v == -3, "i64");
    CHECK(slm_gguf_get_f32(g, "f64", &f) && f == 1.5f, "f64");
    const slm_gguf_kv *a = slm_gguf_find(g, "arr.u16");
    CHECK(a && a->arr_n == 3 && slm_gguf_arr_i64(a, 2, &v) && v == 3, "u16 array");
    a = slm_gguf_find(g, "arr.str");
    CHECK(a && a->arr_n == 2 && a->arr_strs[0].len == 2 && a->arr_strs[1].len == 0, "string array");
    a = slm_gguf_find(g, "arr.nested");
    CHECK(a && a->arr_type == SLM_GGUF_ARRAY && a->arr_n == 1, "nested array kept raw");
    a = slm_gguf_find(g, "arr.empty");
    CHECK(a && a->arr_n == 0 && !slm_gguf_arr_f64(a, 0, &(double){0}), "empty array");
    const slm_gguf_tensor *ta = slm_gguf_find_tensor(g, "a"), *tb = slm_gguf_find_tensor(g, "b");
    CHECK(ta && ta->ne[0] == 4 && ta->ne[1] == 2 && ta->ne[2] == 1 && ta->n_elems == 8 && ta->nbytes == 32 &&
          ((const float *)ta->data)[7] == 8.0f, "tensor a");
    float y[32];
    if (CHECK(tb && tb->type == SLM_DTYPE_Q8_0 && tb->nbytes == 34, "tensor b")) {
        slm_dtype_get(SLM_DTYPE_Q8_0)->to_float(tb->data, y, 32);
        CHECK(y[0] == -16.0f && y[31] == 15.0f, "tensor b values");
    }
    slm_gguf_close(g);
    /* every proper prefix of the file is invalid and must fail cleanly */
    int survived = 0;
    for (size_t n = 0; n < b.n; n++) {
        buf t = {b.p, n, n};
        path = write_tmp(&t, "gguf_prefix.gguf");
        g = NULL;
        if (slm_gguf_open(path, &g) == SLM_OK) { survived++; slm_gguf_close(g); }
    }
    CHECK(survived == 0, "v%u: %d truncated prefixes of %zu opened", version, survived, b.n);
    free(b.p);
}

static void test_faults(void) {
    static const char *const want[F_COUNT] = {
        [F_MAGIC] = "bad magic", [F_V1] = "version 1 is not supported", [F_V4] = "unsupported GGUF version 4",
        [F_BIGENDIAN] = "big-endian", [F_HUGE_TENSORS] = "tensors, more than the file can hold",
        [F_HUGE_KV] = "metadata entries, more than", [F_HUGE_STRING] = "truncated", [F_BAD_UTF8] = "not valid UTF-8",
        [F_EMPTY_KEY] = "is empty", [F_DUP_KEY] = "duplicate key 'u8'", [F_DUP_TENSOR] = "duplicate tensor 'a'",
        [F_NDIMS] = "5 dimensions", [F_DIM_ZERO] = "dimension 1 is zero", [F_DIM_OVERFLOW] = "element count overflows",
        [F_TYPE] = "unsupported type 99", [F_VALUE_TYPE] = "unknown value type 13",
        [F_MISALIGNED] = "not a multiple of the alignment", [F_PAST_END] = "past end of file",
        [F_OVERLAP] = "overlap", [F_ALIGN_NOT_POW2] = "power of two", [F_DEEP_ARRAY] = "nested deeper",
        [F_HUGE_ARRAY] = "larger than the rest of the file", [F_BLOCK] = "block size", [F_NAME_NUL] = "contains NUL"};
    for (int f = 1; f < F_COUNT; f++) {
        buf b = build(3, (fault)f, false);
        const char *path = write_tmp(&b, "gguf_fault.gguf");
        slm_gguf *g = NULL;
        slm_status st = slm_gguf_open(path, &g);
        const char *msg = slm_last_error();
        CHECK(st != SLM_OK && !g && strstr(msg, want[f]) && !strncmp(msg, path, strlen(path)),
              "fault %d: status %d, message '%s' (want '%s')", f, st, msg, want[f]);
        slm_gguf_close(g);
        free(b.p);
    }
    slm_gguf *g = NULL;
    CHECK(slm_gguf_open("/nonexistent/x.gguf", &g) == SLM_ERR_IO && strstr(slm_last_error(), "/nonexistent/x.gguf"),
          "missing file");
}

/* ---- SmolLM2 against gguf-py -------------------------------------------- */

static int read_bits(const char *s, float *out, int n) {
    int k = 0;
    while (k < n && *s) {
        char *end;
        unsigned long u = strtoul(s, &end, 16);
        if (end == s) break;
        uint32_t u32 = (uint32_t)u;
        memcpy(&out[k++], &u32, 4);
        s = end;
    }
    return k;
}

static void test_model(void) {
    const char *model = slm_test_env("SLM_TEST_MODEL", "");
    const char *gpath = slm_test_path(slm_test_env("SLM_GOLDEN_DIR", "tests/golden"), "gguf_smollm2.txt");
    FILE *fp = fopen(gpath, "r");
    slm_gguf *g = NULL;
    if (!CHECK(fp, "cannot read %s", gpath)) return;
    if (!CHECK(slm_gguf_open(model, &g) == SLM_OK, "open model '%s': %s", model, slm_last_error())) { fclose(fp); return; }
    static char line[1 << 16];
    int n_tensors_checked = 0, n_values_checked = 0;
    float *deq = NULL;
    const slm_gguf_tensor *cur = NULL;
    while (fgets(line, sizeof line, fp)) {
        char name[256];
        long long a, b2, c;
        int nd;
        if (sscanf(line, "counts %lld %lld", &a, &b2) == 2) {
            CHECK(g->n_tensors == a && g->n_kv == b2, "counts %lld/%lld vs %lld/%lld", (long long)g->n_tensors,
                  (long long)g->n_kv, a, b2);
        } else if (sscanf(line, "alignment %lld", &a) == 1) {
            CHECK((long long)g->alignment == a, "alignment");
        } else if (sscanf(line, "data_offset %lld", &a) == 1) {
            CHECK((long long)g->data_offset == a, "data offset %zu vs %lld", g->data_offset, a);
        } else if (sscanf(line, "tensor %255s %lld %lld %d", name, &a, &b2, &nd) == 4) {
            const slm_gguf_tensor *t = slm_gguf_find_tensor(g, name);
            long long dims[4] = {1, 1, 1, 1};
            sscanf(line, "tensor %*s %*d %*d %*d %lld %lld %lld %lld", &dims[0], &dims[1], &dims[2], &dims[3]);
            bool ok = t && t->type == a && (long long)t->offset == b2 && t->n_dims == nd;
            for (int d = 0; ok && d < nd; d++) ok = t->ne[d] == dims[d];
            CHECK(ok, "tensor %s: type/offset/dims differ from gguf-py", name);
            n_tensors_checked++;
        } else if (sscanf(line, "values %255s %lld", name, &c) == 2) {
            cur = slm_gguf_find_tensor(g, name);
            free(deq);
            deq = NULL;
            if (CHECK(cur && cur->n_elems == c, "values tensor %s", name)) {
                deq = malloc((size_t)c * sizeof(float));
                slm_dtype_get(cur->type)->to_float(cur->data, deq, c);
            }
        } else if (deq && (!strncmp(line, "first ", 6) || !strncmp(line, "last ", 5))) {
            float want[64];
            bool first = line[0] == 'f';
            int k = read_bits(line + (first ? 6 : 5), want, 64);
            const float *got = first ? deq : deq + cur->n_elems - k;
            char what[300];
            snprintf(what, sizeof what, "%s %s (%s)", cur->name, first ? "first" : "last",
                     slm_dtype_get(cur->type)->name);
            CHECK(k == 64, "%s: 64 values in golden", what);
            CHECK(memcmp(got, want, (size_t)k * 4) == 0, "%s: bits differ from gguf-py", what);
            CHECK_CLOSE(what, got, want, (size_t)k, 0.0);
            n_values_checked += k;
        }
    }
    printf("SmolLM2: %d tensor infos and %d values compared with gguf-py\n", n_tensors_checked, n_values_checked);
    CHECK(n_tensors_checked == 272 && n_values_checked >= 7 * 128, "golden coverage");
    free(deq);
    fclose(fp);
    slm_gguf_close(g);
}

int main(void) {
    test_alltypes();
    check_valid(3, false);
    check_valid(2, true);
    test_faults();
    test_model();
    return slm_test_finish();
}
