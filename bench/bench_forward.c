/* Forward-pass speed: prefill of a chunk of T tokens (default 512, last-token
 * logits only, as llama.cpp computes by default), token-by-token decode, the
 * GFLOP/s both reach, the sgemm GFLOP/s OpenBLAS gives on the model's own
 * GEMM shapes (the ceiling for prefill), and peak RSS (VmHWM) against the
 * fp32 weight size. Each timing is the best of --reps runs, since the
 * machine may be shared. Run by bench/run_forward_bench.sh next to
 * llama.cpp; prints a table, or one JSON object with --json.
 *
 *   bench_forward MODEL [--threads N] [--prefill T] [--decode N] [--reps R] [--json]
 */
#include "model/forward.h"

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double best_of(double a, double b) { return a < b ? a : b; }

typedef struct result {
    double prefill_s, decode_s;
    double prefill_tps, decode_tps, prefill_gflops;
    double sgemm_shapes_gflops, sgemm_peak_gflops;
    long rss_kib;
    double weight_mib;
} result;

int main(int argc, char **argv) {
    const char *path = NULL;
    int threads = 2, T = 512, n_dec = 128, reps = 5;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prefill") && i + 1 < argc) T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc) n_dec = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = true;
        else if (!path && argv[i][0] != '-') path = argv[i];
        else {
            fprintf(stderr, "usage: bench_forward MODEL [--threads N] [--prefill T] [--decode N] [--reps R] [--json]\n");
            return 2;
        }
    }
    if (!path || T <= 0 || n_dec <= 0 || reps <= 0) {
        fprintf(stderr, "usage: bench_forward MODEL [--threads N] [--prefill T] [--decode N] [--reps R] [--json]\n");
        return 2;
    }
    slm_set_threads(threads);
    slm_load_params lp = slm_load_default_params();
    lp.load_tokenizer = false;
    slm_model *m;
    if (slm_model_load(path, &lp, &m)) {
        fprintf(stderr, "error: %s\n", slm_last_error());
        return 1;
    }
    const slm_config *cfg = &m->cfg;
    slm_context_params cp = {.n_ctx = T + n_dec, .n_batch = 512};
    slm_context *c;
    float *logits = malloc(sizeof(float) * (size_t)cfg->n_vocab);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(T + n_dec));
    if (!logits || !tok || slm_context_new(m, &cp, &c)) {
        fprintf(stderr, "error: %s\n", slm_last_error());
        return 1;
    }
    for (int i = 0; i < T + n_dec; i++) tok[i] = (int32_t)((i * 7919 + 13) % cfg->n_vocab);

    result r = {.prefill_s = 1e30, .decode_s = 1e30};
    for (int k = 0; k < reps + 1; k++) { /* the first run pages the weights in */
        slm_context_truncate(c, 0);
        double t = slm_time_now();
        if (slm_decode(c, tok, T, false, logits)) goto fail;
        t = slm_time_now() - t;
        if (k > 0) r.prefill_s = best_of(r.prefill_s, t);
    }
    /* Decode: n_dec single-token steps from an empty cache (llama-bench tg). */
    for (int k = 0; k < (reps + 1) / 2 + 1; k++) {
        slm_context_truncate(c, 0);
        double t = slm_time_now();
        for (int i = 0; i < n_dec; i++)
            if (slm_decode(c, tok + i, 1, false, logits)) goto fail;
        r.decode_s = best_of(r.decode_s, slm_time_now() - t);
    }
    r.rss_kib = slm_bench_vm_hwm_kib();
    slm_model_stats st = slm_model_get_stats(m, T / 2); /* mean causal context over the chunk */
    /* Prefill FLOPs: every linear on all T rows, the lm head on the last one. */
    int64_t lm = (int64_t)cfg->n_vocab * cfg->d_model;
    double flops = 2.0 * ((double)(st.macs_per_token - lm) * T + (double)lm);
    r.prefill_tps = T / r.prefill_s;
    r.decode_tps = n_dec / r.decode_s;
    r.prefill_gflops = flops / r.prefill_s / 1e9;
    r.weight_mib = (double)st.weight_bytes / 1048576.0;

    /* sgemm on the block's own shapes, time-weighted: the rate a perfect
     * prefill (all time in GEMMs) would reach; and the best single shape. */
    int D = cfg->d_model, Q = cfg->n_heads * cfg->head_dim, KV = cfg->n_kv_heads * cfg->head_dim, F = cfg->d_ff;
    const int shapes[5][3] = {{T, Q, D}, {T, KV, D}, {T, D, Q}, {T, F, D}, {T, D, F}};
    const int count[5] = {1, 2, 1, 2, 1};
    double tot_flop = 0, tot_time = 0;
    for (int s = 0; s < 5; s++) {
        double g = slm_bench_sgemm_gflops(false, true, shapes[s][0], shapes[s][1], shapes[s][2], reps, NULL);
        double f = 2.0 * shapes[s][0] * shapes[s][1] * shapes[s][2] * count[s];
        tot_flop += f;
        tot_time += f / (g * 1e9);
        if (g > r.sgemm_peak_gflops) r.sgemm_peak_gflops = g;
    }
    r.sgemm_shapes_gflops = tot_flop / tot_time / 1e9;
    double sq = slm_bench_sgemm_gflops(false, true, 1024, 1024, 1024, reps, NULL);
    if (sq > r.sgemm_peak_gflops) r.sgemm_peak_gflops = sq;

    if (json) {
        printf("{\"threads\":%d,\"prefill_tokens\":%d,\"prefill_tok_s\":%.2f,\"prefill_gflops\":%.2f,"
               "\"decode_tokens\":%d,\"decode_tok_s\":%.2f,\"sgemm_model_shapes_gflops\":%.2f,"
               "\"sgemm_peak_gflops\":%.2f,\"peak_rss_mib\":%.1f,\"weight_mib\":%.1f,\"macs_per_token\":%lld}\n",
               threads, T, r.prefill_tps, r.prefill_gflops, n_dec, r.decode_tps, r.sgemm_shapes_gflops,
               r.sgemm_peak_gflops, r.rss_kib / 1024.0, r.weight_mib, (long long)slm_model_get_stats(m, 1).macs_per_token);
    } else {
        printf("model            %s (%d threads)\n", path, threads);
        printf("prefill %-4d     %.1f tok/s  (%.1f GFLOP/s)\n", T, r.prefill_tps, r.prefill_gflops);
        printf("decode %-4d      %.1f tok/s\n", n_dec, r.decode_tps);
        printf("sgemm            %.1f GFLOP/s on the model's shapes at T=%d, %.1f peak\n", r.sgemm_shapes_gflops, T,
               r.sgemm_peak_gflops);
        printf("prefill / sgemm  %.0f%% of the model-shape rate, %.0f%% of peak\n",
               100 * r.prefill_gflops / r.sgemm_shapes_gflops, 100 * r.prefill_gflops / r.sgemm_peak_gflops);
        printf("peak RSS         %.1f MiB = %.2fx the fp32 weights (%.1f MiB)\n", r.rss_kib / 1024.0,
               r.rss_kib / 1024.0 / r.weight_mib, r.weight_mib);
    }
    slm_context_free(c);
    slm_model_free(m);
    free(logits), free(tok);
    return 0;
fail:
    fprintf(stderr, "error: %s\n", slm_last_error());
    return 1;
}
