/* Writing NAS sub-networks (save_gguf.c with slm_save_params.gguf_mlp_per_block):
 *  - a random model with block 1 dropped and MLP widths 48/16/32/48 is
 *    written as GGUF: general.architecture "deci", deci.block_count 4,
 *    deci.feed_forward_length the INT32 array [48, 16, 32, 48] of the kept
 *    blocks, ffn_gate/up/down at their own widths (no padding), no
 *    slimlm.feed_forward_length;
 *  - slimlm reads it back with those widths and gives the in-memory
 *    sub-network's logits (1e-4: the file keeps q/k in llama.cpp's
 *    adjacent-pair RoPE order, so the rotation runs in the other layout);
 *  - the same plan without the flag is still the llama file with padding
 *    (what test_gguf_model checks in detail), and equal widths with the
 *    flag stay "llama" with a scalar width;
 *  - after channel reordering (a QBLOCK-free dense model) the written
 *    sub-network still matches the in-memory one.
 * llama.cpp itself is checked by tools/check_nas_llamacpp.py (max
 * |slimlm - llama.cpp| 3.8e-4 on SmolLM2 logits up to 59).
 */
#define _POSIX_C_SOURCE 200809L
#include "formats/gguf.h"
#include "model/forward.h"
#include "nas/nsga2.h"
#include "nas/space.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { L = 5, F = 48, T = 10 };
static const int32_t k_tok[T] = {1, 7, 22, 3, 40, 61, 5, 19, 33, 2};

static slm_model *random_model(void) {
    slm_config c = {.n_vocab = 67, .d_model = 32, .n_layers = L, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                    .d_ff = F, .max_ctx = 64, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .tied_embeddings = true,
                    .bos_id = 1, .eos_id = 2};
    slm_model *m = NULL;
    CHECK(slm_model_new_random(&c, 5, &m) == SLM_OK, "random model: %s", slm_last_error());
    return m;
}

static void logits_of(const slm_model *m, float *out) {
    slm_context_params cp = {.n_ctx = T, .n_batch = T};
    slm_context *c = NULL;
    CHECK(slm_context_new(m, &cp, &c) == SLM_OK && slm_decode(c, k_tok, T, true, out) == SLM_OK, "decode: %s",
          slm_last_error());
    slm_context_free(c);
}

static const char *tmp_path(const char *name) { return slm_test_path(slm_test_env("SLM_TEST_TMP", "/tmp"), name); }

/* Saves m, checks the file's MLP metadata, reads it back and compares logits. */
static void roundtrip(slm_model *m, bool per_block, const char *want_arch, const int *want_ff, int n_kept,
                      bool want_pad, const char *what) {
    const char *path = tmp_path("nas_extract.gguf");
    slm_save_params sp = slm_save_default_params();
    sp.gguf_mlp_per_block = per_block;
    if (!CHECK(slm_model_save(m, path, &sp) == SLM_OK, "%s: save: %s", what, slm_last_error())) return;
    slm_gguf *g = NULL;
    if (CHECK(slm_gguf_open(path, &g) == SLM_OK, "%s: open: %s", what, slm_last_error())) {
        slm_gguf_str a;
        char key[64], ffkey[64];
        CHECK(slm_gguf_get_str(g, "general.architecture", &a) && a.len == strlen(want_arch) &&
                  !memcmp(a.ptr, want_arch, a.len),
              "%s: architecture '%.*s', want %s", what, (int)a.len, a.ptr, want_arch);
        snprintf(ffkey, sizeof ffkey, "%s.feed_forward_length", want_arch);
        const slm_gguf_kv *ff = slm_gguf_find(g, ffkey);
        int mx = 0;
        for (int i = 0; i < n_kept; i++) mx = want_ff[i] > mx ? want_ff[i] : mx;
        for (int b = 0; b < n_kept; b++) {
            int64_t v = -1;
            if (ff && ff->type == SLM_GGUF_ARRAY) slm_gguf_arr_i64(ff, (uint64_t)b, &v);
            else slm_gguf_get_i64(g, ffkey, &v);
            CHECK(v == (per_block && !want_pad ? want_ff[b] : mx), "%s: %s[%d] = %lld", what, ffkey, b, (long long)v);
            snprintf(key, sizeof key, "blk.%d.ffn_gate.weight", b);
            const slm_gguf_tensor *tg = slm_gguf_find_tensor(g, key);
            snprintf(key, sizeof key, "blk.%d.ffn_down.weight", b);
            const slm_gguf_tensor *td = slm_gguf_find_tensor(g, key);
            int64_t want = want_pad ? mx : want_ff[b];
            CHECK(tg && td && tg->ne[1] == want && td->ne[0] == want, "%s: block %d MLP tensors %lld/%lld wide, want %lld",
                  what, b, tg ? (long long)tg->ne[1] : -1, td ? (long long)td->ne[0] : -1, (long long)want);
        }
        bool has_slm_ff = slm_gguf_find(g, "slimlm.feed_forward_length") != NULL;
        bool differ = false;
        for (int b = 1; b < n_kept; b++) differ |= want_ff[b] != want_ff[0];
        CHECK(has_slm_ff == (want_pad && differ), "%s: slimlm.feed_forward_length %s", what, has_slm_ff ? "present" : "absent");
        slm_gguf_close(g);
    }
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = false;
    slm_model *r = NULL;
    if (CHECK(slm_model_load(path, &lp, &r) == SLM_OK, "%s: load: %s", what, slm_last_error())) {
        int ok = r->cfg.n_layers == n_kept;
        for (int b = 0; ok && b < n_kept; b++) ok = r->blocks[b].d_ff == want_ff[b];
        CHECK(ok, "%s: read back %d blocks with the planned widths", what, r->cfg.n_layers);
        float *a = malloc(sizeof(float) * T * m->cfg.n_vocab), *b = malloc(sizeof(float) * T * m->cfg.n_vocab);
        logits_of(m, a);
        logits_of(r, b);
        char nm[96];
        snprintf(nm, sizeof nm, "%s: written vs in-memory logits", what);
        CHECK_CLOSE(nm, a, b, (size_t)T * m->cfg.n_vocab, 1e-4);
        free(a);
        free(b);
        slm_model_free(r);
    }
    remove(path);
}

int main(void) {
    slm_set_threads(1);
    slm_model *m = random_model();
    if (!m) return slm_test_finish();
    int widths[L] = {F, 0, 16, 32, F}, kept_ff[4] = {F, 16, 32, F};
    CHECK(slm_nas_apply(m, widths) == SLM_OK, "apply: %s", slm_last_error());
    roundtrip(m, true, "deci", kept_ff, 4, false, "per-block widths");
    roundtrip(m, false, "llama", kept_ff, 4, true, "padded (default)");
    int same[L] = {32, 32, 0, 32, 32}, same_ff[4] = {32, 32, 32, 32};
    slm_nas_apply(m, same);
    roundtrip(m, true, "llama", same_ff, 4, false, "equal widths");
    /* reordered channels, then narrowed */
    int full[L];
    slm_nas_full_widths(m, full);
    slm_nas_apply(m, full);
    int32_t *perm = malloc(sizeof(int32_t) * L * F);
    uint64_t rng = 9;
    for (int b = 0; b < L; b++) {
        int32_t *p = perm + (size_t)b * F;
        for (int j = 0; j < F; j++) p[j] = j;
        for (int j = F - 1; j > 0; j--) {
            int k = slm_nas_rng_int(&rng, j + 1);
            int32_t t = p[j];
            p[j] = p[k];
            p[k] = t;
        }
    }
    CHECK(slm_nas_reorder_channels(m, perm) == SLM_OK, "reorder: %s", slm_last_error());
    slm_nas_apply(m, widths);
    roundtrip(m, true, "deci", kept_ff, 4, false, "reordered, per-block widths");
    free(perm);
    slm_model_free(m);
    return slm_test_finish();
}
