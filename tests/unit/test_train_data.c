/* Training data and what a run needs besides it (src/train/data.c,
 * init.c), with the LLaMA SentencePiece vocabulary of llama.cpp's test
 * vectors (adds BOS, EOS 2):
 *   - packing: every document (a .txt file, or one jsonl line's "text") is
 *     BOS + its tokens + EOS, in file order, a directory's *.txt / *.jsonl
 *     sorted by name; the stream equals slm_tokenizer_encode per document;
 *   - windows: tokens [kT, kT+T), targets shifted by one; every epoch of the
 *     shuffled order visits each window once; same seed, same order; other
 *     seed or epoch, other order; the cache gives the same windows in any
 *     access order;
 *   - refusals, one line each: malformed jsonl (file:line), a missing
 *     "text", evaluation texts (wikitext / PTB test files) unless allowed,
 *     too little text, a missing file;
 *   - HF-style initialisation (std from config.json's initializer_range,
 *     norms 1, reproducible from the seed), a pruned GGUF's source blocks,
 *     tokenizers from a vocab-only GGUF and from tokenizer.json. */
#include "compress/prune/prune.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *g_tmp;

static const char *tmp_path(const char *name) { return slm_test_path(g_tmp, name); }

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!CHECK(f != NULL, "write %s", path)) return;
    fputs(text, f);
    fclose(f);
}

/* BOS + ids + EOS of text appended to want[*n]. */
static void expect_doc(const slm_tokenizer *tok, const char *text, int32_t *want, int64_t *n) {
    int32_t *ids;
    size_t k;
    if (!CHECK(slm_tokenizer_encode(tok, text, strlen(text), false, false, &ids, &k) == SLM_OK, "encode")) return;
    want[(*n)++] = slm_tokenizer_bos(tok);
    for (size_t i = 0; i < k; i++) want[(*n)++] = ids[i];
    want[(*n)++] = slm_tokenizer_eos(tok);
    free(ids);
}

static void packing(const slm_tokenizer *tok) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tmp_path("train_data_dir"));
    mkdir(dir, 0755);
    const char *d1 = "It was the best of times, it was the worst of times.";
    const char *j1 = "The quick brown fox.", *j2 = "Jumps over \"the\" lazy dog.";
    char p[4200];
    snprintf(p, sizeof p, "%s/b.jsonl", dir);
    write_file(p, "{\"text\": \"The quick brown fox.\", \"id\": 1}\n\n{\"text\": \"Jumps over \\\"the\\\" lazy dog.\"}\r\n");
    snprintf(p, sizeof p, "%s/a.txt", dir);
    write_file(p, d1);
    snprintf(p, sizeof p, "%s/notes.md", dir); /* not .txt / .jsonl: skipped */
    write_file(p, "ignored");
    slm_train_data d;
    enum { T = 8 };
    if (!CHECK(slm_train_data_load(tok, dir, NULL, T, 7, false, &d) == SLM_OK, "load dir: %s", slm_last_error())) return;
    int32_t want[512];
    int64_t n = 0;
    expect_doc(tok, d1, want, &n); /* a.txt before b.jsonl */
    expect_doc(tok, j1, want, &n);
    expect_doc(tok, j2, want, &n);
    printf("packed: %lld tokens, %d documents from %d files (%s), %lld windows of %d\n", (long long)d.n_tokens, d.n_docs,
           d.n_files, d.source, (long long)d.n_windows, T);
    CHECK(d.n_tokens == n && memcmp(d.tokens, want, sizeof(int32_t) * (size_t)n) == 0 && d.n_docs == 3 &&
              d.n_files == 2,
          "stream = BOS doc EOS per document, files sorted");
    CHECK(d.n_windows == (n - 1) / T, "windows");
    int32_t tk[T], tg[T];
    bool ok = true;
    for (int64_t k = 0; k < d.n_windows; k++) {
        slm_train_data_window(&d, k, false, tk, tg);
        ok = ok && memcmp(tk, want + k * T, sizeof tk) == 0 && memcmp(tg, want + k * T + 1, sizeof tg) == 0;
    }
    CHECK(ok, "unshuffled window k is tokens [kT, kT+T), targets shifted by one");
    uint64_t h8 = d.hash;
    slm_train_data_free(&d);
    CHECK(slm_train_data_load(tok, dir, NULL, 6, 7, false, &d) == SLM_OK && d.hash != h8, "the hash covers T");
    slm_train_data_free(&d);
}

/* order of epoch e of data d as window start tokens */
static void order(slm_train_data *d, int64_t e, int64_t *out) {
    int32_t tk[64], tg[64];
    for (int64_t i = 0; i < d->n_windows; i++) {
        slm_train_data_window(d, e * d->n_windows + i, true, tk, tg);
        out[i] = -1;
        for (int64_t w = 0; w < d->n_windows; w++)
            if (memcmp(tk, d->tokens + w * d->ctx, sizeof(int32_t) * (size_t)d->ctx) == 0) out[i] = w;
    }
}

static void shuffling(const slm_tokenizer *tok) {
    const char *path = slm_test_path(slm_test_env("SLM_DATA_DIR", "../shared/data"), "corpus/gutenberg-nltk/blake-poems.txt");
    slm_train_data a, b;
    if (!CHECK(slm_train_data_load(tok, path, NULL, 64, 11, false, &a) == SLM_OK &&
                   slm_train_data_load(tok, path, NULL, 64, 12, false, &b) == SLM_OK,
               "blake: %s", slm_last_error()))
        return;
    const int64_t W = a.n_windows;
    int64_t *o0 = malloc(sizeof(int64_t) * (size_t)W * 4), *o1 = o0 + W, *o0b = o0 + 2 * W, *ob = o0 + 3 * W;
    order(&a, 1, o1);
    order(&a, 0, o0); /* back to epoch 0 after epoch 1: the cache is rebuilt */
    order(&a, 0, o0b);
    order(&b, 0, ob);
    bool perm = true;
    for (int64_t w = 0; w < W; w++) {
        int hits = 0, hits1 = 0;
        for (int64_t i = 0; i < W; i++) hits += o0[i] == w, hits1 += o1[i] == w;
        perm = perm && hits == 1 && hits1 == 1;
    }
    int same01 = 0, same_seed = 0, moved = 0;
    for (int64_t i = 0; i < W; i++) same01 += o0[i] == o1[i], same_seed += o0[i] == ob[i], moved += o0[i] != i;
    printf("order: %lld windows of 64 (%lld tokens); epoch 0 starts %lld %lld %lld, epoch 1 %lld %lld %lld; "
           "%d positions agree between epochs, %d with seed 12\n", (long long)W, (long long)a.n_tokens,
           (long long)o0[0], (long long)o0[1], (long long)o0[2], (long long)o1[0], (long long)o1[1], (long long)o1[2],
           same01, same_seed);
    CHECK(W > 100 && perm, "each epoch visits every window once");
    CHECK(memcmp(o0, o0b, sizeof(int64_t) * (size_t)W) == 0, "same (seed, epoch), same order");
    CHECK(same01 < W / 10 && same_seed < W / 10 && moved > W / 2, "other epoch / seed: another order");
    free(o0);
    slm_train_data_free(&a);
    slm_train_data_free(&b);
}

static void refusals(const slm_tokenizer *tok) {
    slm_train_data d;
    const char *bad = tmp_path("bad.jsonl");
    write_file(bad, "{\"text\": \"fine\"}\n{\"text\": \"broken\"\n");
    CHECK(slm_train_data_load(tok, bad, NULL, 4, 1, false, &d) == SLM_ERR_FORMAT &&
              strstr(slm_last_error(), "bad.jsonl:2: not valid JSON"),
          "malformed jsonl names file and line");
    printf("malformed: %s\n", slm_last_error());
    write_file(bad, "{\"content\": \"no text field\"}\n");
    CHECK(slm_train_data_load(tok, bad, NULL, 4, 1, false, &d) == SLM_ERR_FORMAT &&
              strstr(slm_last_error(), ":1: no \"text\" string"),
          "a line without text");
    printf("no text: %s\n", slm_last_error());
    const char *wiki = slm_test_path(slm_test_env("SLM_DATA_DIR", "../shared/data"), "wikitext-2-raw/wiki.test.raw");
    CHECK(slm_train_data_load(tok, wiki, NULL, 64, 1, false, &d) == SLM_ERR_ARG &&
              strstr(slm_last_error(), "evaluation"),
          "wikitext test refused as training data");
    printf("eval text: %s\n", slm_last_error());
    const char *ptb = slm_test_path(slm_test_env("SLM_DATA_DIR", "../shared/data"), "ptb/ptb.test.txt");
    CHECK(slm_train_data_load(tok, ptb, NULL, 64, 1, false, &d) == SLM_ERR_ARG, "PTB test refused");
    CHECK(slm_train_data_load(tok, ptb, NULL, 64, 1, true, &d) == SLM_OK && d.n_windows > 100,
          "allowed as validation: %s", slm_last_error());
    slm_train_data_free(&d);
    const char *tiny = tmp_path("tiny.txt");
    write_file(tiny, "Too short.");
    CHECK(slm_train_data_load(tok, tiny, NULL, 64, 1, false, &d) == SLM_ERR_ARG && strstr(slm_last_error(), "fewer"),
          "too little text");
    printf("short: %s\n", slm_last_error());
    CHECK(slm_train_data_load(tok, "no/such/file.txt", NULL, 64, 1, false, &d) == SLM_ERR_IO &&
              strstr(slm_last_error(), "no/such/file.txt"),
          "missing file");
    /* relative paths are tried under the data directory */
    CHECK(slm_train_data_load(tok, "corpus/gutenberg-nltk/blake-poems.txt",
                              slm_test_env("SLM_DATA_DIR", "../shared/data"), 64, 1, false, &d) == SLM_OK,
          "relative to the data dir: %s", slm_last_error());
    slm_train_data_free(&d);
}

static void init(void) {
    const char *cfgp = slm_test_path(slm_test_env("SLM_DATA_DIR", "../shared/data"),
                                     "models/tiny-random-LlamaForCausalLM/config.json");
    slm_config cfg;
    float std = 0;
    if (!CHECK(slm_train_config_load(cfgp, &cfg, &std) == SLM_OK, "config: %s", slm_last_error())) return;
    CHECK(std == 0.02f && cfg.d_model == 16 && cfg.n_layers == 2 && cfg.n_vocab == 32000, "config fields");
    cfg.n_vocab = 4000; /* enough samples, less memory */
    slm_model *m, *m2, *m3;
    if (!CHECK(slm_train_model_init(&cfg, std, 5, &m) == SLM_OK && slm_train_model_init(&cfg, std, 5, &m2) == SLM_OK &&
                   slm_train_model_init(&cfg, std, 6, &m3) == SLM_OK,
               "init: %s", slm_last_error()))
        return;
    double s = 0, s2 = 0;
    int64_t n = (int64_t)cfg.n_vocab * cfg.d_model;
    for (int64_t i = 0; i < n; i++) s += m->tok_embd[i], s2 += (double)m->tok_embd[i] * m->tok_embd[i];
    double mean = s / n, sd = sqrt(s2 / n - mean * mean);
    const slm_linear *q = &m->blocks[1].lin[SLM_PROJ_DOWN];
    double qs2 = 0;
    for (int64_t i = 0; i < (int64_t)q->n_out * q->n_in; i++) qs2 += (double)q->w[i] * q->w[i];
    double qsd = sqrt(qs2 / ((double)q->n_out * q->n_in));
    bool norms = true;
    for (int i = 0; i < cfg.d_model; i++) norms = norms && m->out_norm[i] == 1.0f && m->blocks[0].attn_norm[i] == 1.0f;
    printf("init N(0, %.3f): embedding mean %.2e std %.5f (%lld values), down_proj std %.4f, norms 1: %s\n", (double)std,
           mean, sd, (long long)n, qsd, norms ? "yes" : "no");
    CHECK(fabs(sd - 0.02) < 0.0005 && fabs(mean) < 3e-4 && fabs(qsd - 0.02) < 0.002 && norms, "init statistics");
    CHECK(memcmp(m->tok_embd, m2->tok_embd, sizeof(float) * (size_t)n) == 0 &&
              memcmp(m->lm_head, m2->lm_head, sizeof(float) * (size_t)n) == 0 &&
              memcmp(m->tok_embd, m3->tok_embd, sizeof(float) * (size_t)n) != 0 && m->lm_head != m->tok_embd,
          "same seed same weights, other seed other weights; untied head");
    CHECK(slm_model_validate(m) == SLM_OK, "valid model");
    slm_model_free(m2);
    slm_model_free(m3);

    /* a pruned GGUF remembers where its blocks came from */
    cfg.n_layers = 4;
    slm_model_free(m);
    CHECK(slm_train_model_init(&cfg, std, 5, &m) == SLM_OK, "init 4");
    bool drop[4] = {false, true, false, false};
    CHECK(slm_prune_apply(m, drop) == SLM_OK, "prune");
    slm_save_params sp = slm_save_default_params();
    const char *out = tmp_path("pruned.gguf");
    int32_t src[8];
    int ns = -1;
    CHECK(slm_model_save(m, out, &sp) == SLM_OK && slm_train_source_blocks(out, src, 8, &ns) == SLM_OK && ns == 3 &&
              src[0] == 0 && src[1] == 2 && src[2] == 3,
          "source blocks 0 2 3 (got %d)", ns);
    CHECK(slm_train_source_blocks(cfgp, src, 8, &ns) == SLM_OK && ns == 0, "not a GGUF: no map");
    slm_model_free(m);
    CHECK(slm_train_config_load("no/such/config.json", &cfg, &std) == SLM_ERR_IO, "missing config");
}

int main(void) {
    slm_set_threads(2);
    g_tmp = slm_test_env("SLM_TEST_TMP", "/tmp");
    slm_tokenizer *tok = NULL, *tok2 = NULL;
    const char *voc = slm_test_path(slm_test_env("SLM_DATA_DIR", "../shared/data"), "tokenizer-vectors/ggml-vocab-llama-spm.gguf");
    if (!CHECK(slm_tokenizer_load_path(voc, &tok) == SLM_OK, "tokenizer %s: %s", voc, slm_last_error()))
        return slm_test_finish();
    CHECK(slm_tokenizer_adds_bos(tok) && slm_tokenizer_bos(tok) == 1 && slm_tokenizer_eos(tok) == 2, "llama spm BOS/EOS");
    const char *hf = slm_test_path(slm_test_env("SLM_GOLDEN_DIR", "tests/golden"), "tok_hf_bytelevel/tokenizer.json");
    CHECK(slm_tokenizer_load_path(hf, &tok2) == SLM_OK && slm_tokenizer_n_vocab(tok2) > 0, "tokenizer.json: %s",
          slm_last_error());
    slm_tokenizer_free(tok2);
    CHECK(slm_tokenizer_load_path("no/such.gguf", &tok2) == SLM_ERR_IO, "missing tokenizer");
    packing(tok);
    shuffling(tok);
    refusals(tok);
    init();
    slm_tokenizer_free(tok);
    return slm_test_finish();
}
