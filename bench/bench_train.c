/* Training speed (issue #6): tokens/s and model FLOP utilisation of full
 * training steps (forward, lm head + cross-entropy, backward, AdamW) of a
 * model with every parameter trainable, against the sgemm GFLOP/s OpenBLAS
 * reaches on the step's own GEMM shapes in the same run.
 *
 * Model FLOPs are the convention of Kaplan et al. / PaLM: 6 * P * tokens per
 * step (2 forward + 4 backward per parameter per token), P = every trainable
 * parameter, the token embedding included (for a tied model it is also the
 * lm head, whose GEMMs it then counts exactly); the non-embedding variant
 * leaves out the vocabulary matrices (embedding and lm head). Attention's
 * T x T products are not in 6 P tokens; the GEMM FLOPs the step actually
 * executes (attention by causal query blocks, recompute's second forward)
 * are printed beside it.
 *
 * The peak is the time-weighted sgemm rate over every GEMM shape of the
 * linears and the lm head in a step, forward (X W^T), input gradient (dY W)
 * and weight gradient (dY^T X), each weighted by its FLOPs in the step:
 * the rate a step spending all its time in those GEMMs would reach. It is
 * measured before and after the training steps (the machine may be shared;
 * the better of the two per shape is kept). MFU = model FLOP/s / that peak,
 * by the wall clock of the best and the median step, and per CPU-second
 * (model FLOP per CPU-second of the step / sgemm FLOP per CPU-second), which
 * is steadier when other jobs share the cores.
 *
 * Each step is zero_grad, M micro-batches of B x T tokens (forward, head,
 * backward; the loss is the batch mean), one AdamW step; the first step is a
 * warm-up (pages, caches) and not counted. Prints a table, or one JSON object
 * with --json; bench/run_train_bench.sh runs it with the defaults.
 *
 *   bench_train [MODEL] [--threads N] [--batch B] [--ctx T] [--accum M] [--steps S]
 *               [--reps R] [--recompute] [--json]
 */
#include "train/ops.h" /* SLM_ATTN_QBLOCK */
#include "train/train.h"

#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *openblas_get_config(void);

/* ---- phases of a step ----------------------------------------------------------------- */

enum { PH_FWD, PH_HEAD, PH_BWD, PH_OPT, PH_COUNT };
static const char *const k_phase[PH_COUNT] = {"forward (blocks)", "lm head + loss (fwd + bwd)", "backward (blocks)",
                                             "optimizer (zero grad + AdamW)"};
static const char *const k_phase_key[PH_COUNT] = {"forward", "head", "backward", "optimizer"};

typedef struct step_time {
    double wall, cpu;
    double ph_wall[PH_COUNT], ph_cpu[PH_COUNT];
    double loss;
} step_time;

typedef struct stopwatch {
    double wall, cpu;
} stopwatch;

static stopwatch sw_start(void) { return (stopwatch){slm_time_now(), slm_bench_cpu_now()}; }

static void sw_add(stopwatch s, double *wall, double *cpu) {
    *wall += slm_time_now() - s.wall;
    *cpu += slm_bench_cpu_now() - s.cpu;
}

static int cmp_wall(const void *a, const void *b) {
    double x = ((const step_time *)a)->wall, y = ((const step_time *)b)->wall;
    return (x > y) - (x < y);
}

/* ---- the step's GEMM shapes ----------------------------------------------------------- */

typedef struct gemm_shape {
    char what[48];
    bool ta, tb;
    int M, N, K;
    double count;          /* calls per step */
    double gflops, per_cpu; /* measured: best of the runs before and after the steps */
} gemm_shape;

/* The three GEMMs of a dense linear [n_out][n_in] over rows, count times per step. */
static int add_linear(gemm_shape *s, int n, const char *name, int rows, int n_out, int n_in, double count) {
    snprintf(s[n].what, sizeof s[n].what, "%s fwd  X W^T", name);
    s[n].ta = false, s[n].tb = true, s[n].M = rows, s[n].N = n_out, s[n].K = n_in, s[n].count = count;
    n++;
    snprintf(s[n].what, sizeof s[n].what, "%s dX = dY W", name);
    s[n].ta = false, s[n].tb = false, s[n].M = rows, s[n].N = n_in, s[n].K = n_out, s[n].count = count;
    n++;
    snprintf(s[n].what, sizeof s[n].what, "%s dW = dY^T X", name);
    s[n].ta = true, s[n].tb = false, s[n].M = n_out, s[n].N = n_in, s[n].K = rows, s[n].count = count;
    return n + 1;
}

static double shape_flop(const gemm_shape *s) { return 2.0 * s->M * s->N * s->K * s->count; }

enum { MAX_SHAPES = 18 };

/* FLOP-weighted rate of the shapes at rates rate[i]: total FLOPs / total time. */
static double weighted_rate(const gemm_shape *s, int n, const double *rate) {
    double flop = 0, t = 0;
    for (int i = 0; i < n; i++) {
        flop += shape_flop(&s[i]);
        t += shape_flop(&s[i]) / rate[i];
    }
    return flop / t;
}

/* Measures every shape, keeping in s the better rate of this and earlier
 * runs; returns this run's weighted GFLOP/s, *per_cpu the same per
 * CPU-second; 0 when out of memory. */
static double measure_shapes(gemm_shape *s, int n, int reps, double *per_cpu) {
    double g[MAX_SHAPES], pc[MAX_SHAPES];
    for (int i = 0; i < n; i++) {
        g[i] = slm_bench_sgemm_gflops(s[i].ta, s[i].tb, s[i].M, s[i].N, s[i].K, reps, &pc[i]);
        if (g[i] <= 0 || pc[i] <= 0) return 0;
        if (g[i] > s[i].gflops) s[i].gflops = g[i];
        if (pc[i] > s[i].per_cpu) s[i].per_cpu = pc[i];
    }
    *per_cpu = weighted_rate(s, n, pc);
    return weighted_rate(s, n, g);
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr, "usage: bench_train [MODEL] [--threads N] [--batch B] [--ctx T] [--accum M] [--steps S]\n"
                    "                   [--reps R] [--recompute] [--json]\n");
}

int main(int argc, char **argv) {
    static char def_path[1024];
    const char *home = getenv("HOME");
    snprintf(def_path, sizeof def_path, "%s/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : ".");
    const char *path = def_path;
    int threads = 2, B = 1, T = 512, M = 1, steps = 4, reps = 3;
    bool recompute = false, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *iv = !strcmp(a, "--threads") ? &threads : !strcmp(a, "--batch") ? &B : !strcmp(a, "--ctx") ? &T
                : !strcmp(a, "--accum") ? &M : !strcmp(a, "--steps") ? &steps : !strcmp(a, "--reps") ? &reps : NULL;
        if (iv && v) *iv = atoi(argv[++i]);
        else if (!strcmp(a, "--recompute")) recompute = true;
        else if (!strcmp(a, "--json")) json = true;
        else if (a[0] != '-' && path == def_path) path = a;
        else {
            usage();
            return 2;
        }
    }
    if (threads < 1 || B < 1 || T < 2 || M < 1 || steps < 1 || reps < 1) {
        usage();
        return 2;
    }
    slm_set_threads(threads);
    double la0[3], la1[3];
    slm_bench_load_avg(la0);

    slm_load_params lp = slm_load_default_params(); /* keep_quantized false: fp32 weights */
    lp.load_tokenizer = false;
    slm_model *m = NULL;
    slm_trainable *tv = NULL;
    slm_train_ctx *tc = NULL;
    slm_optim *opt = NULL;
    int32_t *tok = NULL, *tgt = NULL;
    step_time *st = NULL;
    slm_train_ctx_params cp = slm_train_ctx_default_params();
    cp.n_seq = B, cp.n_tok = T, cp.recompute = recompute;
    slm_optim_params op = slm_optim_default_params(SLM_OPTIM_ADAMW);
    if (slm_model_load(path, &lp, &m) || slm_trainable_new(m, &tv) || slm_train_ctx_new(m, tv, &cp, &tc) ||
        slm_optim_new(tv, &op, &opt))
        goto fail;
    const slm_config *cfg = &m->cfg;
    const int64_t N = (int64_t)B * T, V = cfg->n_vocab;
    tok = malloc(sizeof *tok * (size_t)(N * M));
    tgt = malloc(sizeof *tgt * (size_t)(N * M));
    st = calloc((size_t)steps + 1, sizeof *st);
    if (!tok || !tgt || !st) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    /* Pseudo-random tokens (xorshift), different in each micro-batch. */
    uint64_t rs = 88172645463325252ull;
    for (int64_t i = 0; i < N * M; i++) {
        rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
        tok[i] = (int32_t)(rs % (uint64_t)V);
    }
    for (int mb = 0; mb < M; mb++) slm_targets_next_token(tok + mb * N, B, T, tgt + mb * N);

    /* Parameters: all, the vocabulary matrices, those in 2-D matrices (GEMMs). */
    int64_t P = tv->n_floats, P_vocab = tv->t[tv->tok_embd].n, P_gemm = 0;
    bool tied = tv->lm_head == tv->tok_embd;
    if (!tied) P_vocab += tv->t[tv->lm_head].n;
    for (int i = 0; i < tv->n_tensors; i++)
        if (tv->t[i].rows > 1 && (tied || i != tv->tok_embd)) P_gemm += tv->t[i].n;
    int L_kept = 0;
    for (int l = 0; l < cfg->n_layers; l++) L_kept += m->blocks[l].kept;
    const int64_t tokens = N * M;
    const double flop_model = 6.0 * (double)P * tokens, flop_ne = 6.0 * (double)(P - P_vocab) * tokens;
    const int Dh = cfg->head_dim, H = cfg->n_heads;
    /* executed: every matrix 2 fwd + 4 bwd; attention per head and query block [r0, r1) of
     * SLM_ATTN_QBLOCK rows against keys 0 .. r1-1, 2 fwd + 4 bwd GEMMs of 2 (r1 - r0) r1 Dh each;
     * recompute's second block forward */
    double attn_fwd = 0;
    for (int r0 = 0; r0 < T; r0 += SLM_ATTN_QBLOCK) {
        int r1 = r0 + SLM_ATTN_QBLOCK < T ? r0 + SLM_ATTN_QBLOCK : T;
        attn_fwd += 4.0 * (r1 - r0) * r1 * Dh * H * B * L_kept * M;
    }
    double flop_exec = 6.0 * (double)P_gemm * tokens + 3.0 * attn_fwd;
    if (recompute) flop_exec += 2.0 * (double)(P_gemm - (tied ? P_vocab : tv->t[tv->lm_head].n)) * tokens + attn_fwd;

    /* GEMM shapes of a dense plan (other kinds: approximate), measured before the steps. */
    const int D = cfg->d_model, Q = H * Dh, KV = cfg->n_kv_heads * Dh, F = cfg->d_ff;
    gemm_shape shp[MAX_SHAPES] = {0};
    int ns = 0;
    ns = add_linear(shp, ns, "q, o", (int)N, Q, D, 2.0 * L_kept * M); /* o is [D][Q], Q = D here */
    ns = add_linear(shp, ns, "k, v", (int)N, KV, D, 2.0 * L_kept * M);
    ns = add_linear(shp, ns, "gate, up", (int)N, F, D, 2.0 * L_kept * M);
    ns = add_linear(shp, ns, "down", (int)N, D, F, 1.0 * L_kept * M);
    ns = add_linear(shp, ns, "lm head", T, (int)V, D, (double)B * M); /* per sequence */
    if (Q != D) { /* o [D][Q] separately */
        shp[0].count = shp[1].count = shp[2].count = L_kept * M;
        ns = add_linear(shp, ns, "o", (int)N, D, Q, 1.0 * L_kept * M);
    }
    double peak_cpu0, peak0 = measure_shapes(shp, ns, reps, &peak_cpu0);
    double peak_cpu1, peak1 = 0;
    if (peak0 <= 0) {
        fprintf(stderr, "error: out of memory measuring sgemm\n");
        return 1;
    }

    /* The steps: step 0 is the warm-up. */
    slm_loss_params lossp = slm_loss_default_params();
    lossp.denom = (double)M * B * (T - 1);
    for (int s = 0; s <= steps; s++) {
        step_time *t = &st[s];
        stopwatch all = sw_start(), w = all;
        slm_trainable_zero_grad(tv);
        sw_add(w, &t->ph_wall[PH_OPT], &t->ph_cpu[PH_OPT]);
        for (int mb = 0; mb < M; mb++) {
            slm_loss_result res;
            w = sw_start();
            if (slm_train_forward(tc, tok + mb * N)) goto fail;
            sw_add(w, &t->ph_wall[PH_FWD], &t->ph_cpu[PH_FWD]);
            w = sw_start();
            if (slm_train_backward_head(tc, tgt + mb * N, NULL, &lossp, &res)) goto fail;
            sw_add(w, &t->ph_wall[PH_HEAD], &t->ph_cpu[PH_HEAD]);
            w = sw_start();
            if (slm_train_backward_blocks(tc)) goto fail;
            sw_add(w, &t->ph_wall[PH_BWD], &t->ph_cpu[PH_BWD]);
            t->loss += res.loss;
        }
        w = sw_start();
        if (slm_optim_step(opt, tv, 1e-4f, NULL)) goto fail;
        sw_add(w, &t->ph_wall[PH_OPT], &t->ph_cpu[PH_OPT]);
        sw_add(all, &t->wall, &t->cpu);
        if (!json)
            fprintf(stderr, "step %d%s: %.2f s wall, %.2f CPU-s, loss %.4f\n", s, s ? "" : " (warm-up)", t->wall,
                    t->cpu, t->loss);
    }
    peak1 = measure_shapes(shp, ns, reps, &peak_cpu1);
    double best_g[MAX_SHAPES], best_pc[MAX_SHAPES];
    for (int i = 0; i < ns; i++) best_g[i] = shp[i].gflops, best_pc[i] = shp[i].per_cpu;
    double peak = weighted_rate(shp, ns, best_g), peak_cpu = weighted_rate(shp, ns, best_pc);
    slm_bench_load_avg(la1);
    long rss_kib = slm_bench_vm_hwm_kib();

    /* best and median step (by wall clock) of the timed ones */
    step_time *timed = st + 1;
    qsort(timed, (size_t)steps, sizeof *timed, cmp_wall);
    const step_time *best = &timed[0], *med = &timed[steps / 2];
    double step_cpu_min = timed[0].cpu;
    for (int s = 0; s < steps; s++)
        if (timed[s].cpu < step_cpu_min) step_cpu_min = timed[s].cpu;
    double tps_best = tokens / best->wall, tps_med = tokens / med->wall, tps_cpu = tokens / step_cpu_min;
    double mf_best = flop_model / best->wall / 1e9, mf_med = flop_model / med->wall / 1e9;
    double mf_cpu = flop_model / step_cpu_min / 1e9;
    double mfu_best = mf_best / peak, mfu_med = mf_med / peak, mfu_cpu = mf_cpu / peak_cpu;

    if (json) {
        printf("{\"model\":\"%s\",\"threads\":%d,\"batch\":%d,\"ctx\":%d,\"accum\":%d,\"recompute\":%s,"
               "\"steps\":%d,\"params\":%lld,\"params_non_embedding\":%lld,\"tokens_per_step\":%lld,"
               "\"step_s_best\":%.4f,\"step_s_median\":%.4f,\"step_cpu_s_min\":%.4f,"
               "\"tok_s_best\":%.2f,\"tok_s_median\":%.2f,\"tok_per_cpu_s\":%.2f,"
               "\"model_gflops_best\":%.2f,\"model_gflops_median\":%.2f,\"model_gflop_per_cpu_s\":%.2f,"
               "\"model_gflop_per_step\":%.2f,\"non_embedding_gflop_per_step\":%.2f,\"executed_gflop_per_step\":%.2f,"
               "\"sgemm_gflops\":%.2f,\"sgemm_gflops_before\":%.2f,\"sgemm_gflops_after\":%.2f,"
               "\"sgemm_gflop_per_cpu_s\":%.2f,\"mfu_best\":%.4f,\"mfu_median\":%.4f,\"mfu_cpu\":%.4f,"
               "\"mfu_non_embedding_best\":%.4f,\"executed_util_best\":%.4f,",
               path, threads, B, T, M, recompute ? "true" : "false", steps, (long long)P, (long long)(P - P_vocab),
               (long long)tokens, best->wall, med->wall, step_cpu_min, tps_best, tps_med, tps_cpu, mf_best, mf_med,
               mf_cpu, flop_model / 1e9, flop_ne / 1e9, flop_exec / 1e9, peak, peak0, peak1, peak_cpu, mfu_best,
               mfu_med, mfu_cpu, flop_ne / best->wall / 1e9 / peak, flop_exec / best->wall / 1e9 / peak);
        for (int p = 0; p < PH_COUNT; p++)
            printf("\"%s_s_median\":%.4f,\"%s_cpu_s_median\":%.4f,", k_phase_key[p], med->ph_wall[p], k_phase_key[p],
                   med->ph_cpu[p]);
        printf("\"peak_rss_mib\":%.1f,\"load_start\":%.2f,\"load_end\":%.2f}\n", rss_kib / 1024.0, la0[0], la1[0]);
    } else {
        printf("model      %s: %.1f M trainable parameters (vocabulary matrices %.1f M, %s), %d blocks, fp32\n", path,
               P / 1e6, P_vocab / 1e6, tied ? "tied lm head" : "untied lm head", L_kept);
        printf("setup      %d x %d tokens x %d micro-batch(es) = %lld tokens/step, AdamW, %d threads%s; "
               "%d timed steps after 1 warm-up\n",
               B, T, M, (long long)tokens, threads, recompute ? ", recompute" : "", steps);
        printf("load       %.2f at start, %.2f at end (1-minute average; %s)\n", la0[0], la1[0], openblas_get_config());
        printf("\n%-32s %10s %10s %10s %10s\n", "step time", "best s", "CPU-s", "median s", "CPU-s");
        for (int p = 0; p < PH_COUNT; p++)
            printf("%-32s %10.3f %10.3f %10.3f %10.3f\n", k_phase[p], best->ph_wall[p], best->ph_cpu[p],
                   med->ph_wall[p], med->ph_cpu[p]);
        printf("%-32s %10.3f %10.3f %10.3f %10.3f\n", "step", best->wall, best->cpu, med->wall, med->cpu);
        printf("\ntokens/s   %.1f best, %.1f median (wall); %.1f per CPU-second\n", tps_best, tps_med, tps_cpu);
        printf("model FLOP 6 x %.1f M params x %lld tokens = %.1f GFLOP/step (non-embedding %.1f; executed GEMMs incl. "
               "attention%s %.1f)\n",
               P / 1e6, (long long)tokens, flop_model / 1e9, flop_ne / 1e9, recompute ? " and recompute" : "",
               flop_exec / 1e9);
        printf("model FLOP/s %.1f GFLOP/s best, %.1f median; %.1f GFLOP per CPU-second\n", mf_best, mf_med, mf_cpu);
        printf("\n%-28s %12s %12s %10s %8s\n", "sgemm on the step's shapes", "M x N x K", "GFLOP/s", "GFLOP/CPU-s",
               "share");
        double fl_all = 0;
        for (int i = 0; i < ns; i++) fl_all += shape_flop(&shp[i]);
        for (int i = 0; i < ns; i++) {
            char dims[40];
            snprintf(dims, sizeof dims, "%dx%dx%d", shp[i].M, shp[i].N, shp[i].K);
            printf("%-28s %12s %12.1f %10.1f %7.1f%%\n", shp[i].what, dims, shp[i].gflops, shp[i].per_cpu,
                   100 * shape_flop(&shp[i]) / fl_all);
        }
        printf("time-weighted peak: %.1f GFLOP/s (%.1f before the steps, %.1f after), %.1f GFLOP per CPU-second\n",
               peak, peak0, peak1, peak_cpu);
        printf("\nMFU        %.1f%% best step, %.1f%% median (wall); %.1f%% per CPU-second; non-embedding %.1f%% "
               "(goal >= 40%%)\n",
               100 * mfu_best, 100 * mfu_med, 100 * mfu_cpu, 100 * flop_ne / best->wall / 1e9 / peak);
        printf("executed   %.1f GFLOP/s = %.1f%% of the peak (best step: every GEMM the step runs)\n",
               flop_exec / best->wall / 1e9, 100 * flop_exec / best->wall / 1e9 / peak);
        printf("peak RSS   %.1f MiB (VmHWM)\n", rss_kib / 1024.0);
    }
    free(tok), free(tgt), free(st);
    slm_optim_free(opt);
    slm_train_ctx_free(tc);
    slm_trainable_free(tv);
    slm_model_free(m);
    return 0;
fail:
    fprintf(stderr, "error: %s\n", slm_last_error());
    return 1;
}
