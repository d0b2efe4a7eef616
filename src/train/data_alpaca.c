/* Instruction data in the Alpaca format (trainer.h): instruction / input /
 * output items, each made one training window whose loss is taken on the
 * response only, as Stanford Alpaca's supervised fine-tuning does (its
 * train.py sets the labels of the prompt tokens to IGNORE_INDEX).
 *
 * Template (tatsu-lab/stanford_alpaca, train.py PROMPT_DICT), with input:
 *   Below is an instruction that describes a task, paired with an input that
 *   provides further context. Write a response that appropriately completes
 *   the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n
 * and without (empty or absent input):
 *   Below is an instruction that describes a task. Write a response that
 *   appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n
 * followed by {output} and EOS. The prompt and the output are tokenised
 * separately (the prompt ends in a newline, so the boundary is where the
 * tokenizer of the joined text would put it for the byte-level BPE of
 * SmolLM2 too, and the masking is exact by construction).
 *
 * Window of T tokens: seq = [BOS] prompt output EOS, tokens[t] = seq[t],
 * targets[t] = seq[t + 1] when seq[t + 1] belongs to the output or EOS, else
 * -1; padding with EOS (no target) past the end; cut at T + 1 tokens.
 */
#define _POSIX_C_SOURCE 200809L
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char k_with_input[] =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Input:\n%s\n\n"
    "### Response:\n";
static const char k_no_input[] =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    "\n\n### Instruction:\n%s\n\n### Response:\n";

char *slm_alpaca_prompt(const char *instruction, const char *input) {
    bool has_input = input && *input;
    size_t n = strlen(k_with_input) + strlen(instruction) + (has_input ? strlen(input) : 0) + 1;
    char *s = slm_malloc(n, "prompt");
    if (!s) return NULL;
    if (has_input) snprintf(s, n, k_with_input, instruction, input);
    else snprintf(s, n, k_no_input, instruction);
    return s;
}

/* ---- windows ------------------------------------------------------------------------------------ */

typedef struct sft_out {
    int32_t *tok, *lab; /* [cap][T] */
    int64_t n, cap;
    int T;
} sft_out;

static slm_status grow(sft_out *o) {
    if (o->n < o->cap) return SLM_OK;
    int64_t cap = o->cap ? 2 * o->cap : 256;
    size_t bytes = sizeof(int32_t) * (size_t)cap * (size_t)o->T;
    int32_t *t = realloc(o->tok, bytes);
    if (t) o->tok = t;
    int32_t *l = t ? realloc(o->lab, bytes) : NULL;
    if (!t || !l) return slm_fail(SLM_ERR_NOMEM, "instruction data: %lld windows", (long long)cap);
    o->lab = l;
    o->cap = cap;
    return SLM_OK;
}

static const char *field(const cJSON *item, const char *name) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(item, name);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

/* One item -> one window (or none: the prompt alone fills T). */
static slm_status add_item(const slm_tokenizer *tok, const cJSON *item, const char *where, sft_out *o,
                           slm_train_data *d) {
    const char *ins = field(item, "instruction"), *inp = field(item, "input"), *outp = field(item, "output");
    const cJSON *fi = cJSON_GetObjectItemCaseSensitive(item, "input");
    if (!cJSON_IsObject(item) || !ins || !outp || (fi && !cJSON_IsString(fi)))
        return slm_fail(SLM_ERR_FORMAT, "%s: an Alpaca item needs \"instruction\" and \"output\" strings (and "
                        "\"input\" a string when present)", where);
    char *prompt = slm_alpaca_prompt(ins, inp);
    if (!prompt) return SLM_ERR_NOMEM;
    int32_t *pi = NULL, *ri = NULL;
    size_t np = 0, nr = 0;
    slm_status st = slm_tokenizer_encode(tok, prompt, strlen(prompt), false, false, &pi, &np);
    if (!st) st = slm_tokenizer_encode(tok, outp, strlen(outp), false, false, &ri, &nr);
    free(prompt);
    if (st) slm_error_prefix(where);
    const int T = o->T;
    const int32_t bos = slm_tokenizer_adds_bos(tok) ? slm_tokenizer_bos(tok) : -1, eos = slm_tokenizer_eos(tok);
    const int64_t n_pre = (bos >= 0 ? 1 : 0) + (int64_t)np, n_seq = n_pre + (int64_t)nr + 1;
    if (!st && n_pre >= T) {
        d->n_skipped++;
    } else if (!st && !(st = grow(o))) {
        int32_t *tk = o->tok + o->n * T, *lb = o->lab + o->n * T;
        for (int t = 0; t <= T; t++) { /* seq[t], t = 0..T, written as token t and as target t - 1 */
            int32_t v;
            if (t >= n_seq) v = eos;
            else if (bos >= 0 && t == 0) v = bos;
            else if (t < n_pre) v = pi[t - (bos >= 0)];
            else if (t < n_pre + (int64_t)nr) v = ri[t - n_pre];
            else v = eos;
            if (t < T) tk[t] = v;
            if (t > 0) lb[t - 1] = t >= n_pre && t < n_seq ? v : -1;
        }
        if (n_seq > T + 1) d->n_truncated++;
        o->n++;
    }
    free(pi);
    free(ri);
    return st;
}

/* Items of one file: a JSON array, or one object per line. */
static slm_status add_file(const slm_tokenizer *tok, const char *path, int64_t first, int64_t count,
                           int64_t *index, sft_out *o, slm_train_data *d) {
    char *text = NULL;
    size_t len = 0;
    slm_status st = slm_read_file(path, &text, &len);
    if (st) return st;
    size_t i0 = 0;
    while (i0 < len && (text[i0] == ' ' || text[i0] == '\n' || text[i0] == '\r' || text[i0] == '\t')) i0++;
    char where[4200];
    if (i0 < len && text[i0] == '[') {
        cJSON *arr = cJSON_ParseWithLength(text, len);
        if (!cJSON_IsArray(arr)) st = slm_fail(SLM_ERR_FORMAT, "%s: not a valid JSON array", path);
        int k = 0;
        for (const cJSON *it = arr ? arr->child : NULL; it && !st; it = it->next, k++, (*index)++) {
            if (*index < first || (count > 0 && *index >= first + count)) continue;
            snprintf(where, sizeof where, "%s: item %d", path, k);
            st = add_item(tok, it, where, o, d);
        }
        cJSON_Delete(arr);
    } else {
        char *p = text, *end = text + len;
        for (int line = 1; p < end && !st; line++) {
            char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end;
            size_t n = (size_t)(le - p);
            while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
            if (n) {
                bool take = *index >= first && (count <= 0 || *index < first + count);
                (*index)++;
                /* every line is parsed, taken or not, so a bad line is reported whichever range
                 * (training or held out) is loaded first, as for a JSON array */
                cJSON *j = cJSON_ParseWithLength(p, n);
                snprintf(where, sizeof where, "%s:%d", path, line);
                if (!j) st = slm_fail(SLM_ERR_FORMAT, "%s: not valid JSON", where);
                else if (take) st = add_item(tok, j, where, o, d);
                cJSON_Delete(j);
            }
            p = le + (nl ? 1 : 0);
        }
    }
    free(text);
    return st;
}

slm_status slm_train_data_load_alpaca(const slm_tokenizer *tok, const char *files, const char *data_dir, int ctx,
                                      uint64_t seed, int64_t first, int64_t count, slm_train_data *out) {
    memset(out, 0, sizeof *out);
    out->perm_epoch = -1;
    if (!tok) return slm_fail(SLM_ERR_ARG, "instruction data: the model has no tokenizer");
    if (slm_tokenizer_eos(tok) < 0) return slm_fail(SLM_ERR_ARG, "instruction data: the tokenizer has no EOS token");
    if (ctx < 2 || ctx > (1 << 20)) return slm_fail(SLM_ERR_ARG, "instruction data: window length %d", ctx);
    if (first < 0) return slm_fail(SLM_ERR_ARG, "instruction data: first item %lld", (long long)first);
    sft_out o = {.T = ctx};
    int64_t index = 0;
    slm_status st = SLM_OK;
    char *spec = strdup(files), *save = NULL;
    if (!spec) return slm_fail(SLM_ERR_NOMEM, "instruction data: file list");
    size_t used = 0;
    for (char *it = strtok_r(spec, ",", &save); it && !st; it = strtok_r(NULL, ",", &save)) {
        if (!*it) continue;
        char full[4096];
        struct stat sb;
        const char *use = it;
        if (stat(it, &sb) != 0 && it[0] != '/' && data_dir) { /* relative: also under the data directory */
            snprintf(full, sizeof full, "%s/%s", data_dir, it);
            if (stat(full, &sb) == 0) use = full;
        }
        const bool found = stat(use, &sb) == 0; /* sb is unset when stat fails */
        if (!found || S_ISDIR(sb.st_mode)) {
            st = slm_fail(SLM_ERR_IO, "%s: cannot open instruction data: %s", it,
                          found ? "a directory (name the .json files)" : strerror(errno));
            break;
        }
        st = add_file(tok, use, first, count, &index, &o, out);
        out->n_files++;
        if (!st && used < sizeof out->source)
            used += (size_t)snprintf(out->source + used, sizeof out->source - used, "%s%s", used ? "," : "", use);
    }
    free(spec);
    if (!st && o.n == 0)
        st = slm_fail(SLM_ERR_ARG, "instruction data %s: no item in [%lld, %lld) of the %lld items makes a window of "
                      "%d tokens", files, (long long)first, (long long)(count > 0 ? first + count : index),
                      (long long)index, ctx);
    if (st) {
        free(o.tok);
        free(o.lab);
        memset(out, 0, sizeof *out);
        return st;
    }
    out->tokens = o.tok;
    out->labels = o.lab;
    out->n_windows = o.n;
    out->n_tokens = o.n * ctx;
    out->n_docs = (int)o.n;
    out->ctx = ctx;
    out->seed = seed;
    for (int64_t i = 0; i < out->n_tokens; i++) out->max_id = o.tok[i] > out->max_id ? o.tok[i] : out->max_id;
    uint64_t h = slm_fnv1a(0xcbf29ce484222325ull, &ctx, sizeof ctx);
    h = slm_fnv1a(h, o.tok, sizeof *o.tok * (size_t)out->n_tokens);
    out->hash = slm_fnv1a(h, o.lab, sizeof *o.lab * (size_t)out->n_tokens);
    return SLM_OK;
}
