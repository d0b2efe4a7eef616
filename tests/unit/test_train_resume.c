/* Checkpoints resume exactly (src/train/trainer.c, checkpoint.c): a run of
 * 2N steps without stopping and a run of N steps, a checkpoint, a new
 * process state (fresh model, view, optimizer and trainer) resumed from it
 * and N more steps give bit-identical weights, optimizer moments and step
 * losses. Two configurations on tiny random models:
 *   A: 1000 + 1000 steps (42 epochs of the windows), 1 thread, AdamW, plain CE,
 *      2 micro-batches of 2 x 16 tokens, the embedding frozen;
 *   B: 5 + 5 steps, 2 threads, Lion, homotopic + MiniLM KD from a 4-block teacher,
 *      gradual removal of 2 blocks (one before the checkpoint, one after),
 *      recompute on.
 * Also refused, each with one line and without touching the trainer: a
 * corrupt byte (checksum), a truncated file, another seed, another batch,
 * another frozen set, a file that is not a checkpoint, an unknown format
 * version (3); and a run that steps past its schedule. The same file
 * relabelled as format version 1 (what slimlm wrote before elastic views:
 * bytes 124.. of the header zero, no per-unit block) still resumes. */
#include "train/trainer.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { V = 96, T = 16, N_TOK = 3000, MAX_STEPS = 2000 };

static const char *g_tmp;

static slm_config cfg4(void) {
    return (slm_config){.arch = SLM_ARCH_LLAMA, .n_vocab = V, .d_model = 32, .n_layers = 4, .n_heads = 4,
                        .n_kv_heads = 2, .head_dim = 8, .d_ff = 48, .max_ctx = 64, .norm_eps = 1e-5f,
                        .rope_theta = 10000.0f, .bos_id = -1, .eos_id = -1};
}

/* Synthetic token stream with some structure (so losses move). */
static void make_data(slm_train_data *d, uint64_t seed) {
    memset(d, 0, sizeof *d);
    d->tokens = malloc(sizeof(int32_t) * N_TOK);
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < N_TOK; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        d->tokens[i] = i % 5 == 0 ? (int32_t)(s % V) : (d->tokens[i - 1] * 7 + 3) % V;
    }
    d->n_tokens = N_TOK;
    d->ctx = T;
    d->n_windows = (N_TOK - 1) / T;
    d->max_id = V - 1;
    d->seed = seed;
    d->hash = 0x1234;
    d->perm_epoch = -1;
    strcpy(d->source, "synthetic");
}

typedef struct run_cfg {
    const char *name;
    int half; /* N: 2N straight vs N + resume + N */
    slm_trainer_params p;
    bool teacher, freeze_embd;
    uint64_t seed;
} run_cfg;

typedef struct run {
    slm_model *m, *t;
    slm_train_data d;
    slm_trainer *tr;
} run;

static bool run_open(const run_cfg *rc, run *r) {
    memset(r, 0, sizeof *r);
    slm_config c = cfg4();
    make_data(&r->d, rc->seed);
    if (!CHECK(slm_model_new_random(&c, 31, &r->m) == SLM_OK, "model")) return false;
    if (rc->teacher && !CHECK(slm_model_new_random(&c, 32, &r->t) == SLM_OK, "teacher")) return false;
    if (!CHECK(slm_trainer_new(r->m, r->t, &r->d, &rc->p, &r->tr) == SLM_OK, "%s: trainer: %s", rc->name,
               slm_last_error()))
        return false;
    if (rc->freeze_embd) slm_trainable_set_frozen(slm_trainer_view(r->tr), "model.embed_tokens.", true);
    return true;
}

static void run_close(run *r) {
    slm_trainer_free(r->tr);
    slm_model_free(r->m);
    slm_model_free(r->t);
    slm_train_data_free(&r->d);
}

static bool steps(run *r, int n, double *loss) {
    for (int i = 0; i < n; i++) {
        slm_step_stats s;
        if (!CHECK(slm_trainer_step(r->tr, &s) == SLM_OK, "step: %s", slm_last_error())) return false;
        loss[s.step - 1] = s.loss;
        if (s.dropped_block >= 0) printf("    removed block %d before step %lld\n", s.dropped_block, (long long)s.step);
    }
    return true;
}

static void exact(const run_cfg *rc) {
    const char *ck = slm_test_path(g_tmp, "resume.ckpt");
    static double la[MAX_STEPS], lb[MAX_STEPS];
    const int half = rc->half;
    run a, b, c;
    printf("%s:\n", rc->name);
    if (!run_open(rc, &a) || !steps(&a, 2 * half, la)) return;
    if (!run_open(rc, &b) || !steps(&b, half, lb)) return;
    CHECK(slm_trainer_save(b.tr, ck) == SLM_OK, "save: %s", slm_last_error());
    run_close(&b);
    if (!run_open(rc, &c)) return;
    if (!CHECK(slm_trainer_resume(c.tr, ck) == SLM_OK, "resume: %s", slm_last_error())) return;
    CHECK(slm_trainer_steps_done(c.tr) == half, "resumed at step %d", half);
    if (!steps(&c, half, lb)) return;
    const slm_trainable *va = slm_trainer_view(a.tr), *vc = slm_trainer_view(c.tr);
    size_t bytes = sizeof(float) * (size_t)va->n_floats;
    bool same_w = va->n_floats == vc->n_floats && memcmp(va->t[0].w, vc->t[0].w, bytes) == 0;
    bool same_l = memcmp(la, lb, sizeof(double) * 2 * (size_t)half) == 0;
    int kept_a = 0, kept_c = 0;
    for (int i = 0; i < 4; i++) kept_a += a.m->blocks[i].kept, kept_c += c.m->blocks[i].kept;
    /* moments: one more step each from identical states must stay identical,
     * which needs identical moments; also compare the saved files */
    const char *ka = slm_test_path(g_tmp, "resume_a.ckpt"), *kc = slm_test_path(g_tmp, "resume_c.ckpt");
    CHECK(slm_trainer_save(a.tr, ka) == SLM_OK && slm_trainer_save(c.tr, kc) == SLM_OK, "save both");
    size_t na, nc;
    char *fa = slm_test_read_file(ka, &na), *fc = slm_test_read_file(kc, &nc);
    bool same_file = fa && fc && na == nc && memcmp(fa, fc, na) == 0;
    printf("  %d straight steps vs %d + resume + %d: weights (%lld floats) %s, losses %s (%.6f -> %.6f), "
           "checkpoints (%zu bytes: weights, moments, cursor) %s; %d blocks kept\n", 2 * half, half, half,
           (long long)va->n_floats, same_w ? "bit-identical" : "DIFFER", same_l ? "bit-identical" : "DIFFER", la[0],
           la[2 * half - 1], na, same_file ? "byte-identical" : "DIFFER", kept_c);
    CHECK(same_w && same_l && same_file && kept_a == kept_c, "%s: resume is exact", rc->name);
    CHECK(la[2 * half - 1] < la[0], "%s: the loss went down", rc->name);
    free(fa), free(fc);
    run_close(&a);
    run_close(&c);
}

/* f[0..n) relabelled as checkpoint format version v, checksum redone, written to path. */
static bool write_version(const char *path, char *f, size_t n, uint32_t v) {
    uint32_t v0;
    memcpy(&v0, f + 8, 4);
    memcpy(f + 8, &v, 4);
    uint64_t h = 0xcbf29ce484222325ull, h0;
    for (size_t i = 0; i + 8 < n; i++) h = (h ^ (unsigned char)f[i]) * 0x100000001b3ull;
    memcpy(&h0, f + n - 8, 8);
    memcpy(f + n - 8, &h, 8);
    FILE *o = fopen(path, "wb");
    bool ok = o && fwrite(f, 1, n, o) == n;
    if (o) ok = fclose(o) == 0 && ok;
    memcpy(f + 8, &v0, 4);
    memcpy(f + n - 8, &h0, 8);
    return ok;
}

static void refusals(const run_cfg *rc) {
    const char *ck = slm_test_path(g_tmp, "resume.ckpt"), *bad = slm_test_path(g_tmp, "resume_bad.ckpt");
    size_t n;
    char *f = slm_test_read_file(ck, &n);
    if (!CHECK(f && n > 1000, "read checkpoint")) return;
    run r;
    if (!run_open(rc, &r)) return;
    const slm_trainable *tv = slm_trainer_view(r.tr);
    float *w0 = malloc(sizeof(float) * (size_t)tv->n_floats);
    memcpy(w0, tv->t[0].w, sizeof(float) * (size_t)tv->n_floats);
    struct {
        const char *what, *frag;
        size_t len;
        long flip;
    } cases[] = {{"corrupt byte", "checksum", n, (long)n / 2},
                 {"truncated", "bytes", n - 100, -1},
                 {"not a checkpoint", "not a slimlm training checkpoint", n, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *o = fopen(bad, "wb");
        if (cases[i].flip >= 0) f[cases[i].flip] ^= 0x40;
        fwrite(f, 1, cases[i].len, o);
        fclose(o);
        if (cases[i].flip >= 0) f[cases[i].flip] ^= 0x40;
        CHECK(slm_trainer_resume(r.tr, bad) != SLM_OK && strstr(slm_last_error(), cases[i].frag), "%s: %s",
              cases[i].what, slm_last_error());
        printf("  %s: %s\n", cases[i].what, slm_last_error());
    }
    uint32_t version;
    memcpy(&version, f + 8, 4);
    CHECK(version == 2, "this slimlm writes checkpoint version 2 (got %u)", version);
    if (CHECK(write_version(bad, f, n, 3), "write %s", bad)) {
        CHECK(slm_trainer_resume(r.tr, bad) == SLM_ERR_UNSUPPORTED && strstr(slm_last_error(), "version 3") &&
              !strchr(slm_last_error(), '\n'), "version 3: %s", slm_last_error());
        printf("  format version 3: %s\n", slm_last_error());
    }
    CHECK(memcmp(w0, tv->t[0].w, sizeof(float) * (size_t)tv->n_floats) == 0 && slm_trainer_steps_done(r.tr) == 0,
          "a refused checkpoint changes nothing");
    /* a plain run's checkpoint of format version 1 is read as before */
    int64_t done;
    memcpy(&done, f + 16, 8);
    if (CHECK(write_version(bad, f, n, 1), "write %s", bad)) {
        CHECK(slm_trainer_resume(r.tr, bad) == SLM_OK && slm_trainer_steps_done(r.tr) == done &&
              memcmp(w0, tv->t[0].w, sizeof(float) * (size_t)tv->n_floats) != 0,
              "format version 1 resumes (step %lld): %s", (long long)done, slm_last_error());
        printf("  format version 1: resumed at step %lld\n", (long long)slm_trainer_steps_done(r.tr));
    }
    run_close(&r);
    free(w0);
    free(f);

    run_cfg other = *rc;
    other.seed = rc->seed + 1;
    if (run_open(&other, &r)) {
        CHECK(slm_trainer_resume(r.tr, ck) == SLM_ERR_ARG && strstr(slm_last_error(), "--seed"), "seed: %s",
              slm_last_error());
        printf("  other seed: %s\n", slm_last_error());
        run_close(&r);
    }
    other = *rc;
    other.p.n_seq = 1;
    if (run_open(&other, &r)) {
        CHECK(slm_trainer_resume(r.tr, ck) == SLM_ERR_ARG && strstr(slm_last_error(), "--batch"), "batch: %s",
              slm_last_error());
        printf("  other batch: %s\n", slm_last_error());
        run_close(&r);
    }
    other = *rc;
    other.freeze_embd = !rc->freeze_embd;
    if (run_open(&other, &r)) {
        CHECK(slm_trainer_resume(r.tr, ck) == SLM_ERR_ARG && strstr(slm_last_error(), "--freeze"), "freeze: %s",
              slm_last_error());
        printf("  other frozen set: %s\n", slm_last_error());
        run_close(&r);
    }
    other = *rc;
    other.p.n_steps = 3;
    if (run_open(&other, &r)) {
        double l[3];
        slm_step_stats s;
        CHECK(steps(&r, 3, l) && slm_trainer_step(r.tr, &s) == SLM_ERR_STATE, "a 4th step of 3 is refused");
        run_close(&r);
    }
}

int main(void) {
    slm_set_threads(2);
    g_tmp = slm_test_env("SLM_TEST_TMP", "/tmp");
    run_cfg a = {.name = "A (AdamW, CE, 2 micro-batches, embedding frozen)", .half = 1000, .freeze_embd = true,
                 .seed = 3};
    a.p = slm_trainer_default_params();
    a.p.n_seq = 2, a.p.n_tok = T, a.p.accum = 2, a.p.n_steps = 2 * a.half, a.p.lr = 3e-3f, a.p.warmup = 20;
    slm_set_threads(1); /* 2000 tiny steps: a parallel region costs more than the work on a loaded machine */
    exact(&a);
    refusals(&a);
    slm_set_threads(2);

    static const int src[4] = {0, 1, 2, 3}, order[2] = {2, 1};
    run_cfg b = {.name = "B (Lion, homotopic + MiniLM KD, gradual removal of blocks 2 and 1, recompute)",
                 .half = 5, .teacher = true, .seed = 4};
    b.p = slm_trainer_default_params();
    b.p.n_seq = 2, b.p.n_tok = T, b.p.n_steps = 2 * b.half, b.p.lr = 1e-3f, b.p.warmup = 1, b.p.recompute = true;
    b.p.optim = slm_optim_default_params(SLM_OPTIM_LION);
    b.p.kd = (slm_kd_params){.terms = SLM_KD_HIDDEN | SLM_KD_LOGITS | SLM_KD_RELATION, .lambda = 0.5f, .tau = 2.0f,
                             .src = src};
    b.p.drop_order = order, b.p.n_drop = 2, b.p.drop_every = 3 * 2 * T; /* after steps 3 and 6 */
    exact(&b);
    return slm_test_finish();
}
