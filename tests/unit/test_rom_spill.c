/* X on disk while gate and up are factored at once, and while o is
 * factored (spill.c, stream.c):
 *  1. a round trip gives back every byte (odd size, pointer not on a page
 *     boundary), X's pages are given back meanwhile (mincore), and the file
 *     is already gone from $TMPDIR while in use;
 *  2. failures are one SLM_ERR_IO line naming the file, and leave X intact
 *     when they happen before its pages are released: $TMPDIR missing,
 *     a write refused (RLIMIT_FSIZE), a file that ends early on read-back;
 *  3. slm_rom_compress with the spill forced (spill_min_bytes = 1) gives
 *     bit-identical factors and reports to the run without it, one thread
 *     (no pairing) spills only around o, and a missing $TMPDIR makes the run fail
 *     with that line. (Paired factors equal those of each linear factored
 *     on one thread; OpenBLAS's dpotrf and dsymv round differently on two,
 *     so they agree with the one-after-the-other order on every thread to
 *     rounding only: test_rom_engine compares the cached engine with the
 *     reference engine, which factors one linear after the other.) */
#define _DEFAULT_SOURCE /* setenv, ftruncate, mincore */
#include "compress/rom/rom_engine.h"
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[512]; /* a private $TMPDIR */

static int files_in(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static float *random_floats(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = slm_test_uniform(&seed, -3.0f, 3.0f);
    return x;
}

/* Resident pages among the whole pages of x [bytes] (-1: cannot tell). */
static long resident_pages(const void *x, size_t bytes) {
    long ps = sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)x + (uintptr_t)ps - 1) & ~((uintptr_t)ps - 1);
    uintptr_t hi = ((uintptr_t)x + bytes) & ~((uintptr_t)ps - 1);
    size_t np = (hi - lo) / (size_t)ps;
    unsigned char *v = malloc(np + 1);
    long n = 0;
    if (mincore((void *)lo, hi - lo, v) != 0) n = -1;
    for (size_t i = 0; n >= 0 && i < np; i++) n += v[i] & 1;
    free(v);
    return n;
}

/* ---- 1. round trip ------------------------------------------------------------------------ */

static void round_trip(void) {
    size_t n = (3u << 20) / sizeof(float) + 1237; /* 3 MiB and a bit: partial pages at both ends */
    float *buf = random_floats(n + 3, 11), *x = buf + 3, *ref = malloc(n * sizeof(float));
    memcpy(ref, x, n * sizeof(float));
    slm_rom_spill sp;
    CHECK(slm_rom_spill_out(&sp, x, n * sizeof(float)) == SLM_OK, "spill out: %s", slm_last_error());
    CHECK(files_in(g_dir) == 0, "the spill file is still listed in %s", g_dir);
    long resident = resident_pages(x, n * sizeof(float));
    printf("pages of X still resident while spilled: %ld\n", resident);
    CHECK(resident == 0, "%ld pages of X still resident", resident);
    CHECK(slm_rom_spill_in(&sp) == SLM_OK, "spill in: %s", slm_last_error());
    CHECK(memcmp(x, ref, n * sizeof(float)) == 0, "X differs after the round trip");
    CHECK(sp.fd == -1, "the file is still open");
    printf("round trip of %zu bytes through %s: identical\n", n * sizeof(float), g_dir);
    free(buf);
    free(ref);
}

/* ---- 2. failures ---------------------------------------------------------------------------- */

static void expect_io(slm_status st, const char *what, const char *needle) {
    const char *msg = slm_last_error();
    printf("%s: \"%s\"\n", what, msg);
    CHECK(st == SLM_ERR_IO, "%s: status %d, want SLM_ERR_IO", what, (int)st);
    CHECK(strstr(msg, needle) != NULL, "%s: message lacks \"%s\"", what, needle);
    CHECK(strchr(msg, '\n') == NULL, "%s: message is not one line", what);
}

static void failures(void) {
    size_t n = (1u << 20) / sizeof(float) + 5;
    float *x = random_floats(n, 12), *ref = malloc(n * sizeof(float));
    memcpy(ref, x, n * sizeof(float));
    slm_rom_spill sp;

    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such-dir", g_dir);
    setenv("TMPDIR", missing, 1);
    expect_io(slm_rom_spill_out(&sp, x, n * sizeof(float)), "TMPDIR missing", missing);
    CHECK(memcmp(x, ref, n * sizeof(float)) == 0, "X changed by a failed spill (TMPDIR missing)");
    setenv("TMPDIR", g_dir, 1);

    /* the file may not grow past 64 KiB: write() fails with EFBIG */
    struct rlimit old, small;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0, "getrlimit");
    small = old;
    small.rlim_cur = 64 << 10;
    signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0, "setrlimit: %s", strerror(errno));
    expect_io(slm_rom_spill_out(&sp, x, n * sizeof(float)), "write refused", strerror(EFBIG));
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0, "setrlimit back: %s", strerror(errno));
    CHECK(memcmp(x, ref, n * sizeof(float)) == 0, "X changed by a failed spill (write refused)");
    CHECK(sp.fd == -1, "a failed spill left its file open");

    /* a file shorter than X on read-back */
    CHECK(slm_rom_spill_out(&sp, x, n * sizeof(float)) == SLM_OK, "spill out: %s", slm_last_error());
    CHECK(ftruncate(sp.fd, (off_t)(n * sizeof(float) / 2)) == 0, "ftruncate");
    expect_io(slm_rom_spill_in(&sp), "file ends early", "the file ends after");
    CHECK(sp.fd == -1, "a failed read-back left its file open");
    CHECK(files_in(g_dir) == 0, "files left in %s", g_dir);
    free(x);
    free(ref);
}

/* ---- 3. the engine with and without the spill ---------------------------------------------- */

static slm_config config(void) {
    slm_config c = {.arch = SLM_ARCH_LLAMA, .n_vocab = 97, .d_model = 48, .n_layers = 3, .n_heads = 4,
                    .n_kv_heads = 2, .head_dim = 12, .d_ff = 80, .max_ctx = 64, .norm_eps = 1e-5f,
                    .rope_theta = 10000.0f, .rope_layout = SLM_ROPE_HALVES, .tied_embeddings = true,
                    .bos_id = -1, .eos_id = -1};
    return c;
}

enum { S = 40, T = 16 };

/* Compresses a fresh random model (the last two blocks) on `threads`
 * threads with spill_min_bytes = spill. */
static slm_model *compress(int threads, int64_t spill, slm_rom_report *rep, slm_status *st) {
    slm_config cfg = config();
    slm_model *m = NULL;
    CHECK(slm_model_new_random(&cfg, 3, &m) == SLM_OK, "model");
    int32_t tok[S * T];
    for (int i = 0; i < S * T; i++) tok[i] = (int32_t)((i * 37 + (i / T) * 11 + 5) % 97);
    slm_calib cal = {.tokens = tok, .n_seqs = S, .seq_len = T};
    slm_rom_params p = slm_rom_default_params();
    p.quiet = true;
    p.plan.first_block = 1;
    p.plan.module_budget = 0.35;
    p.spill_min_bytes = spill;
    slm_set_threads(threads);
    *st = slm_rom_compress(m, &cal, &p, rep);
    slm_set_threads(2);
    return m;
}

/* Whether every linear of a and b has the same kind, rank and factor bits. */
static bool same_bits(const slm_model *a, const slm_model *b, const slm_rom_report *ra, const slm_rom_report *rb) {
    bool same = true;
    for (int l = 0; l < a->cfg.n_layers; l++)
        for (int k = 0; k < SLM_PROJ_COUNT; k++) {
            const slm_linear *x = &a->blocks[l].lin[k], *y = &b->blocks[l].lin[k];
            if (x->kind != y->kind || x->rank != y->rank) {
                same = false;
                continue;
            }
            if (x->kind == SLM_LINEAR_LOWRANK &&
                (memcmp(x->a, y->a, sizeof(float) * x->n_out * x->rank) ||
                 memcmp(x->b, y->b, sizeof(float) * x->rank * x->ld_b)))
                same = false;
            if (memcmp(&ra->blocks[l].lin[k].rel_err, &rb->blocks[l].lin[k].rel_err, sizeof(double))) same = false;
        }
    return same;
}

static void engine(void) {
    slm_rom_report r_plain, r_spill, r_one;
    slm_status st;
    slm_model *plain = compress(2, 0, &r_plain, &st);
    CHECK(st == SLM_OK, "without spill: %s", slm_last_error());
    slm_model *spill = compress(2, 1, &r_spill, &st);
    CHECK(st == SLM_OK, "with spill: %s", slm_last_error());
    slm_model *one = compress(1, 1, &r_one, &st);
    CHECK(st == SLM_OK, "one thread: %s", slm_last_error());
    double spill_s = 0, plain_s = 0, one_s = 0;
    for (int l = 0; l < 3; l++) {
        spill_s += r_spill.blocks[l].spill_seconds;
        plain_s += r_plain.blocks[l].spill_seconds;
        one_s += r_one.blocks[l].spill_seconds;
    }
    printf("spill: %.4f s in the forced run (X %d x %d x 48 fp32), %.4f s without, %.4f s on one thread\n", spill_s,
           S, T, plain_s, one_s);
    CHECK(spill_s > 0, "the forced run did not spill");
    CHECK(plain_s == 0, "the run without spill spilled");
    CHECK(one_s > 0, "one thread: X not spilled around o");
    bool same = same_bits(plain, spill, &r_plain, &r_spill);
    printf("factors and discarded energies with vs without spill: %s\n", same ? "bit-identical" : "DIFFER");
    CHECK(same, "the spill changed the factors");
    CHECK(files_in(g_dir) == 0, "files left in %s", g_dir);
    slm_rom_report_free(&r_plain);
    slm_rom_report_free(&r_spill);
    slm_rom_report_free(&r_one);
    slm_model_free(plain);
    slm_model_free(spill);
    slm_model_free(one);

    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such-dir", g_dir);
    setenv("TMPDIR", missing, 1);
    slm_rom_report r_bad;
    slm_model *bad = compress(2, 1, &r_bad, &st);
    expect_io(st, "compress with TMPDIR missing", missing);
    setenv("TMPDIR", g_dir, 1);
    slm_rom_report_free(&r_bad);
    slm_model_free(bad);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/rom-spill-%d", slm_test_env("SLM_TEST_TMP", "/tmp"), (int)getpid());
    CHECK(mkdir(g_dir, 0700) == 0, "mkdir %s: %s", g_dir, strerror(errno));
    setenv("TMPDIR", g_dir, 1);
    slm_set_threads(2);
    round_trip();
    failures();
    engine();
    rmdir(g_dir);
    return slm_test_finish();
}
