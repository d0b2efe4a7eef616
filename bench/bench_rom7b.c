/* LLM-ROM at LLaMA-7B's shapes on random data (docs/rom.md, "LLaMA-7B
 * shapes"): the paper's 80% plan compresses the last 12 of 32 blocks at
 * module budget 0.46 (84 linears of 4096 x 4096 and 4096 x 11008) from
 * 512 x 128 calibration tokens; it reports 13 s per layer and 21.8 min on 48
 * cores (1,046 core-minutes).
 *
 * Random weights and activations of the real shapes stand in for the
 * checkpoint: X [S][T][D] starts as random unit-variance rows (the input of
 * the first compressed block), and each block is a one-block random model
 * (tiny vocabulary) built, compressed by slm_rom_compress_rows (X carried to
 * the next block) and freed, as a layer-by-layer loader of a real
 * checkpoint would. Building a block's random weights is not timed.
 *
 * Prints a table per linear (factoring seconds, rank, GFLOP, GFLOP/s) and
 * per block (data passes: seconds, GFLOP, GFLOP/s), the total, seconds per
 * linear and core-minutes against the paper, the GFLOP/s sustained over the
 * run against the sgemm GFLOP/s OpenBLAS reaches in the same command, peak
 * RSS (VmHWM) and the load average (the machine may be shared). With
 * --blocks N < 12 the 12-block figures are extrapolated (every block has the
 * same shapes and work). Blocks are numbered as LLaMA-7B's last 12 (20..31).
 *
 *   bench_rom7b [--blocks N] [--seqs S] [--tokens T] [--threads N] [--budget b]
 *               [--dim D] [--ff F] [--heads H] [--engine cached|passes] [--seed N]
 */
#include "compress/rom/rom.h"

#include <cblas.h>
#include <math.h>
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The paper's figures (arXiv 2312.07046, LLaMA-7B at 80%). */
#define PAPER_S_PER_LAYER 13.0
#define PAPER_MINUTES 21.8
#define PAPER_CORES 48
#define PAPER_BLOCKS 12

static const char *const k_names[SLM_PROJ_COUNT] = {"q", "k", "v", "o", "gate", "up", "down"};

char *openblas_get_config(void);

static float rnd(uint64_t *s) { /* uniform [-1, 1) */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (float)((*s * 0x2545F4914F6CDD1Dull) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

/* GFLOP/s of C[M][N] = A[M][K] B[N][K]^T (syrk: C[N][N] += A[K][N]^T A), best of reps after a warm-up,
 * by the wall clock; *per_cpu gets GFLOP per CPU-second (all threads) of the same repetition. */
static double blas_gflops(int M, int N, int K, bool syrk, int reps, double *per_cpu) {
    *per_cpu = 0;
    size_t na = syrk ? (size_t)K * N : (size_t)M * K, nb = syrk ? 1 : (size_t)N * K, nc = syrk ? (size_t)N * N : (size_t)M * N;
    float *a = malloc(sizeof(float) * na), *b = malloc(sizeof(float) * nb), *c = malloc(sizeof(float) * nc);
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0;
    }
    uint64_t s = 99;
    for (size_t i = 0; i < na; i++) a[i] = rnd(&s);
    for (size_t i = 0; i < nb; i++) b[i] = rnd(&s);
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t = slm_time_now(), tc = slm_bench_cpu_now();
        if (syrk) cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, N, K, 1.0f, a, N, 0.0f, c, N);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        t = slm_time_now() - t;
        tc = slm_bench_cpu_now() - tc;
        if (r > 0 && t < best) best = t;
        if (r > 0 && tc < best_cpu) best_cpu = tc;
    }
    free(a), free(b), free(c);
    double flop = syrk ? (double)K * N * (N + 1) : 2.0 * M * N * K;
    *per_cpu = flop / best_cpu / 1e9;
    return flop / best / 1e9;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_rom7b [--blocks N] [--seqs S] [--tokens T] [--threads N] [--budget b]\n"
                    "                   [--dim D] [--ff F] [--heads H] [--engine cached|passes] [--seed N]\n");
}

int main(int argc, char **argv) {
    int blocks = PAPER_BLOCKS, S = 512, T = 128, threads = 2, D = 4096, F = 11008, H = 32;
    double b = 0.46;
    uint64_t seed = 1;
    slm_rom_engine engine = SLM_ROM_ENGINE_CACHED;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        if (!strcmp(a, "--blocks")) blocks = atoi(v);
        else if (!strcmp(a, "--seqs")) S = atoi(v);
        else if (!strcmp(a, "--tokens")) T = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--budget")) b = atof(v);
        else if (!strcmp(a, "--dim")) D = atoi(v);
        else if (!strcmp(a, "--ff")) F = atoi(v);
        else if (!strcmp(a, "--heads")) H = atoi(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--engine") && (!strcmp(v, "cached") || !strcmp(v, "passes")))
            engine = !strcmp(v, "cached") ? SLM_ROM_ENGINE_CACHED : SLM_ROM_ENGINE_PASSES;
        else {
            usage();
            return 2;
        }
        i++;
    }
    if (blocks < 1 || S < 1 || T < 1 || D < 1 || F < 1 || H < 1 || D % H || !(b > 0 && b < 1)) {
        usage();
        return 2;
    }
    slm_set_threads(threads);
    double la0[3];
    slm_bench_load_avg(la0);
    slm_config cfg = {.arch = SLM_ARCH_LLAMA, .n_vocab = 8, .d_model = D, .n_layers = 1, .n_heads = H,
                      .n_kv_heads = H, .head_dim = D / H, .d_ff = F, .max_ctx = T, .norm_eps = 1e-5f,
                      .rope_theta = 10000.0f, .rope_layout = SLM_ROPE_HALVES, .tied_embeddings = true,
                      .bos_id = -1, .eos_id = -1};
    int r_sq = slm_rom_rank(b, D, D), r_ff = slm_rom_rank(b, D, F);
    int64_t N = (int64_t)S * T;
    printf("LLM-ROM, LLaMA-7B-shaped synthetic run: %d block(s) of D %d / F %d (H %d), %d x %d = %lld calibration "
           "tokens, module budget %.2f (ranks %d and %d), %d threads, %s engine\n",
           blocks, D, F, H, S, T, (long long)N, b, r_sq, r_ff, threads,
           engine == SLM_ROM_ENGINE_CACHED ? "cached" : "reference (passes)");
    printf("load average at start: %.2f %.2f %.2f\n", la0[0], la0[1], la0[2]);

    /* The BLAS ceiling in this command: a square sgemm and the run's own shapes. */
    int Cr = T * (1024 / T > 1 ? 1024 / T : 1);
    struct {
        const char *what;
        int M, N, K;
        bool syrk;
    } shapes[] = {
        {"sgemm D x D x D (peak)", D, D, D, false},
        {"sgemm T x r x D (q/k/v, factored)", T, r_sq, D, false},
        {"sgemm 1024 x r x D (gate/up first half)", Cr, r_ff, D, false},
        {"sgemm 1024 x F x r (gate/up second half)", Cr, F, r_ff, false},
        {"sgemm 1024 x D x F (dense down: Y)", Cr, D, F, false},
        {"ssyrk D, 1024 rows (covariance)", 0, D, 1024, true},
    };
    double peak = 0, peak_cpu = 0;
    printf("BLAS in this command (%s):\n  %-42s %8s %14s\n", openblas_get_config(), "", "GFLOP/s",
           "GFLOP/CPU-s");
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        double gc, g = blas_gflops(shapes[i].M, shapes[i].N, shapes[i].K, shapes[i].syrk, i == 0 ? 3 : 5, &gc);
        printf("  %-42s %8.1f %14.1f\n", shapes[i].what, g, gc);
        if (i == 0) peak = g, peak_cpu = gc;
    }
    fflush(stdout);
    if (peak <= 0) {
        fprintf(stderr, "error: out of memory measuring sgemm\n");
        return 1;
    }

    float *X = malloc(sizeof(float) * (size_t)N * D);
    if (!X) {
        fprintf(stderr, "error: out of memory: X is %lld x %d floats\n", (long long)N, D);
        return 1;
    }
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
    /* sum of three uniforms: roughly normal, variance 1 */
    for (int64_t i = 0; i < N * D; i++) X[i] = (rnd(&s) + rnd(&s) + rnd(&s));

    slm_rom_params p = slm_rom_default_params();
    p.method = SLM_ROM_METHOD_ROM;
    p.engine = engine;
    p.plan.first_block = 0;
    p.plan.module_budget = b;
    p.quiet = false;
    double tot = 0, tot_cpu = 0, tot_pass_s = 0, tot_pass_f = 0, tot_pass_c = 0, tot_fac_s = 0, tot_fac_f = 0,
           tot_fac_c = 0;
    double part_s[SLM_ROM_PART_COUNT] = {0}, part_c[SLM_ROM_PART_COUNT] = {0}, part_f[SLM_ROM_PART_COUNT] = {0};
    int n_lin = 0;
    printf("\n%-6s %-7s %-11s %5s %9s %9s %9s %8s %9s\n", "block", "linear", "shape", "rank", "factor s", "CPU s",
           "GFLOP", "GFLOP/s", "GF/CPU-s");
    for (int l = 0; l < blocks; l++) {
        slm_model *m = NULL;
        slm_status st = slm_model_new_random(&cfg, seed * 1000 + (uint64_t)l, &m);
        if (st) {
            fprintf(stderr, "error: block %d: %s\n", l, slm_last_error());
            free(X);
            return 1;
        }
        slm_rom_report rep;
        st = slm_rom_compress_rows(m, X, S, T, &p, &rep);
        if (st) {
            fprintf(stderr, "error: block %d: %s\n", l, slm_last_error());
            slm_rom_report_free(&rep);
            slm_model_free(m);
            free(X);
            return 1;
        }
        const slm_rom_block_report *br = &rep.blocks[0];
        int id = 32 - PAPER_BLOCKS + l;
        for (int k = 0; k < SLM_PROJ_COUNT; k++) {
            const slm_rom_linear_report *lr = &br->lin[k];
            const slm_linear *lin = &m->blocks[0].lin[k];
            char shape[32];
            snprintf(shape, sizeof shape, "%dx%d", lin->n_out, lin->n_in);
            printf("%-6d %-7s %-11s %5d %9.2f %9.2f %9.1f %8.1f %9.1f\n", id, k_names[k], shape, lr->rank, lr->seconds,
                   lr->cpu_seconds, lr->flop / 1e9, lr->seconds > 0 ? lr->flop / lr->seconds / 1e9 : 0.0,
                   lr->cpu_seconds > 0 ? lr->flop / lr->cpu_seconds / 1e9 : 0.0);
            tot_fac_c += lr->cpu_seconds;
            tot_fac_f += lr->flop;
            n_lin += lr->rank > 0;
        }
        double pass_c = 0;
        for (int q = 0; q < SLM_ROM_PART_COUNT; q++) {
            if (br->part_seconds[q] <= 0) continue;
            printf("%-6d %-7s %-11s %5s %9.2f %9.2f %9.1f %8.1f %9.1f\n", id, "data:", slm_rom_part_name((slm_rom_part)q),
                   "", br->part_seconds[q], br->part_cpu_seconds[q], br->part_flop[q] / 1e9,
                   br->part_flop[q] / br->part_seconds[q] / 1e9,
                   br->part_cpu_seconds[q] > 0 ? br->part_flop[q] / br->part_cpu_seconds[q] / 1e9 : 0.0);
            part_s[q] += br->part_seconds[q];
            part_c[q] += br->part_cpu_seconds[q];
            part_f[q] += br->part_flop[q];
            pass_c += br->part_cpu_seconds[q];
        }
        /* linears factored at once overlap: their own seconds would count that time twice */
        printf("%-6d block total %.1f s wall, %.1f CPU-s; data passes %.1f s, %.1f TFLOP; factoring %.1f s wall "
               "(X to disk and back %.1f s)\n\n",
               id, br->seconds, br->cpu_seconds, br->pass_seconds, br->pass_flop / 1e12, br->factor_seconds,
               br->spill_seconds);
        tot_fac_s += br->factor_seconds;
        tot += br->seconds;
        tot_cpu += br->cpu_seconds;
        tot_pass_s += br->pass_seconds;
        tot_pass_f += br->pass_flop;
        tot_pass_c += pass_c;
        slm_rom_report_free(&rep);
        slm_model_free(m);
        fflush(stdout);
    }
    double la1[3];
    slm_bench_load_avg(la1);
    double x12 = (double)PAPER_BLOCKS / blocks, t12 = tot * x12, c12 = tot_cpu * x12;
    double paper_core_min = PAPER_MINUTES * PAPER_CORES, flop = tot_pass_f + tot_fac_f;
    long hwm = slm_bench_vm_hwm_kib();
    printf("%d block(s), %d linears factored: %.1f s wall, %.1f CPU-s (data passes %.1f s, %.2f TFLOP fp32; "
           "factoring %.1f s, %.2f TFLOP fp64)\n",
           blocks, n_lin, tot, tot_cpu, tot_pass_s, tot_pass_f / 1e12, tot_fac_s, tot_fac_f / 1e12);
    printf("by part over the run (wall s, CPU-s, TFLOP, GFLOP/CPU-s):");
    for (int q = 0; q < SLM_ROM_PART_COUNT; q++)
        if (part_s[q] > 0)
            printf(" %s %.1f/%.1f/%.2f/%.1f;", slm_rom_part_name((slm_rom_part)q), part_s[q], part_c[q], part_f[q] / 1e12,
                   part_c[q] > 0 ? part_f[q] / part_c[q] / 1e9 : 0.0);
    printf(" factoring %.1f/%.1f/%.2f/%.1f\n", tot_fac_s, tot_fac_c, tot_fac_f / 1e12,
           tot_fac_c > 0 ? tot_fac_f / tot_fac_c / 1e9 : 0.0);
    printf("per block %.1f s wall (%.1f CPU-s); per linear %.2f s wall (paper: %.0f s per layer)\n", tot / blocks,
           tot_cpu / blocks, tot / (7.0 * blocks), PAPER_S_PER_LAYER);
    const char *ex = blocks == PAPER_BLOCKS ? "" : "extrapolated to ";
    printf("%s12 blocks (84 linears), wall clock: %.1f min on %d threads = %.1f core-minutes; paper %.1f min on %d "
           "cores = %.0f core-minutes: %.1fx fewer (goal >= 17x, <= 30 min)\n",
           ex, t12 / 60, threads, t12 * threads / 60, PAPER_MINUTES, PAPER_CORES, paper_core_min,
           paper_core_min / (t12 * threads / 60));
    printf("%s12 blocks, CPU time: %.1f CPU-minutes (%.1fx fewer than the paper); on %d idle cores that is about "
           "%.1f min\n",
           ex, c12 / 60, paper_core_min / (c12 / 60), threads, c12 / threads / 60);
    printf("sustained over the run: %.1f GFLOP/s wall = %.0f%% of the %.1f GFLOP/s sgemm peak measured above; "
           "%.1f GFLOP per CPU-s = %.0f%% of sgemm's %.1f (goal >= 70%%); data passes alone %.0f%% (CPU)\n",
           flop / tot / 1e9, 100 * flop / tot / 1e9 / peak, peak, flop / tot_cpu / 1e9,
           100 * flop / tot_cpu / 1e9 / peak_cpu, peak_cpu, 100 * tot_pass_f / tot_pass_c / 1e9 / peak_cpu);
    printf("peak RSS (VmHWM) %.2f GiB = %.2f GB (goal <= 4 GB)\n", hwm / 1048576.0, hwm * 1024.0 / 1e9);
    printf("load average at end: %.2f %.2f %.2f\n", la1[0], la1[1], la1[2]);
    free(X);
    return 0;
}
