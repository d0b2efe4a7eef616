/* tokenizer.json loading:
 *   - two tokenizer.json files trained and serialised by HF tokenizers
 *     (byte-level with Digits + ByteLevel and pair-form merges; SentencePiece
 *     style with byte fallback and a BOS template): ids identical to HF's
 *     (golden.tsv from tools/make_tokenizer_golden.py);
 *   - SmolLM2's GGUF vocabulary written out as tokenizer.json (string-form
 *     merges, SmolLM2's pre-tokenizer) gives the same ids as the GGUF on all
 *     of wikitext-2 test, and names the family "smollm" for GGUF write-back;
 *   - malformed files fail with one message naming the file. */
#define _POSIX_C_SOURCE 200809L
#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int hexval(int c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

static void run_golden(const char *dir) {
    slm_tokenizer *t = NULL;
    slm_status st = slm_tokenizer_load_hf(dir, &t);
    if (!CHECK(st == SLM_OK, "load %s: %s", dir, slm_last_error())) return;
    size_t len;
    char *txt = slm_test_read_file(slm_test_path(dir, "golden.tsv"), &len);
    if (!CHECK(txt != NULL, "read golden of %s", dir)) { slm_tokenizer_free(t); return; }
    int n = 0, pass = 0;
    char *save = NULL;
    for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char hex[4096];
        int add, special, off = 0;
        if (sscanf(line, "%4095s %d %d %n", hex, &add, &special, &off) < 3) continue;
        char in[2048];
        size_t inn = strcmp(hex, "-") == 0 ? 0 : strlen(hex) / 2;
        for (size_t i = 0; i < inn; i++) in[i] = (char)(hexval(hex[2 * i]) * 16 + hexval(hex[2 * i + 1]));
        int32_t want[2048];
        size_t nw = 0;
        for (char *q = line + off; *q;) {
            char *e;
            long v = strtol(q, &e, 10);
            if (e == q) break;
            want[nw++] = (int32_t)v;
            q = e;
        }
        int32_t *got;
        size_t ng;
        st = slm_tokenizer_encode(t, in, inn, add, special, &got, &ng);
        n++;
        if (st == SLM_OK && ng == nw && memcmp(got, want, nw * sizeof *got) == 0) pass++;
        else CHECK(false, "%s: '%.*s' add=%d special=%d: %zu ids, want %zu", dir, (int)inn, in, add, special, ng, nw);
        free(got);
    }
    printf("%s: %d/%d cases identical to HF tokenizers\n", dir, pass, n);
    CHECK(n >= 20, "only %d cases", n);
    free(txt);
    slm_tokenizer_free(t);
}

/* Writes text to dir/name (creating dir). */
static void write_file(const char *dir, const char *name, const char *text) {
    mkdir(dir, 0755);
    FILE *f = fopen(slm_test_path(dir, name), "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* SmolLM2's GGUF vocabulary as an HF tokenizer.json. */
static char *smollm2_json(const char *model_path) {
    slm_gguf *g;
    if (slm_gguf_open(model_path, &g)) return NULL;
    const slm_gguf_kv *tok = slm_gguf_find(g, "tokenizer.ggml.tokens"), *mer = slm_gguf_find(g, "tokenizer.ggml.merges");
    const slm_gguf_kv *typ = slm_gguf_find(g, "tokenizer.ggml.token_type");
    cJSON *root = cJSON_CreateObject(), *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *model = cJSON_AddObjectToObject(root, "model"), *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *pre = cJSON_Parse("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"
                             "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}]}");
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    char buf[4096];
    for (uint64_t i = 0; i < tok->arr_n; i++) {
        size_t l = tok->arr_strs[i].len < 4095 ? tok->arr_strs[i].len : 4095;
        memcpy(buf, tok->arr_strs[i].ptr, l);
        buf[l] = 0;
        cJSON_AddNumberToObject(vocab, buf, (double)i);
        int64_t ty = 1;
        slm_gguf_arr_i64(typ, i, &ty);
        if (ty == 3) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", buf);
            cJSON_AddBoolToObject(a, "special", true);
            cJSON_AddItemToArray(added, a);
        }
    }
    for (uint64_t i = 0; i < mer->arr_n; i++) {
        size_t l = mer->arr_strs[i].len < 4095 ? mer->arr_strs[i].len : 4095;
        memcpy(buf, mer->arr_strs[i].ptr, l);
        buf[l] = 0;
        cJSON_AddItemToArray(merges, cJSON_CreateString(buf));
    }
    slm_gguf_close(g);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static void test_smollm2_json(const char *model_path, const char *tmp, const char *data) {
    char *js = smollm2_json(model_path);
    if (!CHECK(js != NULL, "cannot build SmolLM2 tokenizer.json from %s", model_path)) return;
    const char *dir = slm_test_path(tmp, "tok_smollm2_hf");
    write_file(dir, "tokenizer.json", js);
    write_file(dir, "tokenizer_config.json", "{\"add_bos_token\": false, \"bos_token\": \"<|im_start|>\", \"eos_token\": \"<|im_end|>\"}");
    free(js);
    char d[1024];
    snprintf(d, sizeof d, "%s", dir);
    slm_tokenizer *h = NULL, *g = NULL;
    slm_gguf *gg;
    CHECK(slm_tokenizer_load_hf(d, &h) == SLM_OK, "load generated json: %s", slm_last_error());
    if (slm_gguf_open(model_path, &gg) == SLM_OK) {
        slm_tokenizer_load_gguf(gg, model_path, &g);
        slm_gguf_close(gg);
    }
    if (!h || !g) { slm_tokenizer_free(h); slm_tokenizer_free(g); return; }
    CHECK(slm_tokenizer_bos(h) == 1 && slm_tokenizer_eos(h) == 2 && !slm_tokenizer_adds_bos(h), "config tokens");
    size_t rl;
    char *raw = slm_test_read_file(slm_test_path(data, "wikitext-2-raw/wiki.test.raw"), &rl);
    if (raw) {
        int32_t *a, *b;
        size_t na, nb;
        slm_tokenizer_encode(h, raw, rl, false, true, &a, &na);
        slm_tokenizer_encode(g, raw, rl, false, true, &b, &nb);
        bool same = na == nb && memcmp(a, b, na * sizeof *a) == 0;
        printf("SmolLM2 via tokenizer.json vs via GGUF on wikitext-2 test: %zu vs %zu ids, %s\n", na, nb,
               same ? "identical" : "DIFFERENT");
        CHECK(same, "tokenizer.json and GGUF tokenizers differ");
        free(a);
        free(b);
        free(raw);
    }
    /* the family is recognised, so a GGUF written from it names pre "smollm" */
    slm_gguf_writer *w = slm_gguf_writer_new();
    const char *gp = slm_test_path(tmp, "tok_from_hf.gguf");
    char gpath[1024];
    snprintf(gpath, sizeof gpath, "%s", gp);
    slm_status st = slm_tokenizer_write_gguf(h, w);
    if (!st) st = slm_gguf_writer_write(w, gpath);
    slm_gguf_writer_free(w);
    slm_gguf_str pre = {0};
    if (CHECK(st == SLM_OK && slm_gguf_open(gpath, &gg) == SLM_OK, "write/reopen: %s", slm_last_error())) {
        CHECK(slm_gguf_get_str(gg, "tokenizer.ggml.pre", &pre) && pre.len == 6 && memcmp(pre.ptr, "smollm", 6) == 0,
              "pre-tokenizer written as '%.*s'", (int)pre.len, pre.ptr ? pre.ptr : "");
        slm_gguf_close(gg);
    }
    remove(gpath);
    slm_tokenizer_free(h);
    slm_tokenizer_free(g);
}

/* Malformed tokenizer.json files: each fails, naming the file. */
static void test_bad(const char *tmp) {
    static const struct { const char *what, *json; slm_status want; } k[] = {
        {"not JSON", "{\"model\": ", SLM_ERR_FORMAT},
        {"no model", "{\"added_tokens\": []}", SLM_ERR_FORMAT},
        {"missing merges", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}", SLM_ERR_FORMAT},
        {"merge of unknown tokens", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a zz\"]}}", SLM_ERR_FORMAT},
        {"merge not a pair", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[[\"a\"]]}}", SLM_ERR_FORMAT},
        {"bad regex", "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\\\\p{L\"},\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\",\"use_regex\":false}]},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", SLM_ERR_FORMAT},
        {"duplicate token", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[]},\"added_tokens\":[{\"id\":1,\"content\":\"a\",\"special\":true}]}", SLM_ERR_FORMAT},
        {"id gap", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":5},\"merges\":[]}}", SLM_ERR_FORMAT},
        {"negative id", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}}", SLM_ERR_FORMAT},
        {"Unigram", "{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]]}}", SLM_ERR_UNSUPPORTED},
        {"WordPiece", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}", SLM_ERR_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/tok_bad_%zu", tmp, i);
        write_file(dir, "tokenizer.json", k[i].json);
        slm_tokenizer *t = NULL;
        slm_status st = slm_tokenizer_load_hf(dir, &t);
        const char *msg = slm_last_error();
        printf("bad tokenizer.json (%s): %s\n", k[i].what, msg);
        CHECK(st == k[i].want && t == NULL && strstr(msg, "tokenizer.json") && !strchr(msg, '\n'),
              "%s: status %d (want %d), message '%s'", k[i].what, st, k[i].want, msg);
        slm_tokenizer_free(t);
    }
}

int main(void) {
    const char *golden = slm_test_env("SLM_GOLDEN_DIR", "tests/golden");
    const char *tmp = slm_test_env("SLM_TEST_TMP", "/tmp");
    const char *data = slm_test_env("SLM_DATA_DIR", "../shared/data");
    char g[1024];
    snprintf(g, sizeof g, "%s", golden);
    run_golden(slm_test_path(g, "tok_hf_bytelevel"));
    run_golden(slm_test_path(g, "tok_hf_spm"));
    test_smollm2_json(slm_test_env("SLM_TEST_MODEL", ""), tmp, data);
    test_bad(tmp);
    return slm_test_finish();
}
