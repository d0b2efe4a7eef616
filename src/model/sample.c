/* Token sampling: greedy, temperature, top-k, top-p (nucleus), with a
 * seeded splitmix64 generator (any seed, 0 included, gives a full-period
 * stream; the state is the caller's, so runs are reproducible).
 *
 * Order, as in llama.cpp's default chain: top-k, then temperature softmax,
 * then top-p over the remaining tokens, renormalise, draw. */
#include "core/core.h"

#include <math.h>
#include <stdlib.h>

slm_sampler_params slm_sampler_default_params(void) {
    return (slm_sampler_params){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .seed = 42};
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 24 random bits. */
static float rng_uniform(uint64_t *s) { return (float)(splitmix64(s) >> 40) * (1.0f / 16777216.0f); }

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct cand {
    float v; /* logit, then probability */
    int32_t id;
} cand;

static int cand_desc(const void *a, const void *b) {
    float x = ((const cand *)a)->v, y = ((const cand *)b)->v;
    if (x != y) return x < y ? 1 : -1;
    return ((const cand *)a)->id - ((const cand *)b)->id; /* stable for ties */
}

int32_t slm_sample(const float *logits, int n_vocab, const slm_sampler_params *p, uint64_t *rng_state) {
    if (n_vocab <= 0) return -1;
    if (!(p->temperature > 0.0f) || p->top_k == 1) return argmax(logits, n_vocab);
    cand *c = malloc((size_t)n_vocab * sizeof *c);
    if (!c) {
        slm_fail(SLM_ERR_NOMEM, "sampling: out of memory for %d candidates", n_vocab);
        return -1;
    }
    for (int i = 0; i < n_vocab; i++) c[i] = (cand){logits[i], i};
    int n = n_vocab;
    if (p->top_k > 0 && p->top_k < n) {
        /* Full sort of the candidates is O(V log V) ~ a few ms for V = 50k;
         * acceptable next to a forward pass, and keeps ties deterministic. */
        qsort(c, (size_t)n, sizeof *c, cand_desc);
        n = p->top_k;
    }
    float mx = c[0].v;
    for (int i = 1; i < n; i++) mx = c[i].v > mx ? c[i].v : mx;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        c[i].v = expf((c[i].v - mx) / p->temperature);
        sum += c[i].v;
    }
    for (int i = 0; i < n; i++) c[i].v = (float)(c[i].v / sum);
    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        /* Tokens with probability below (1 - top_p) / (n - 1) can never be
         * in the nucleus (all of them together hold less than 1 - top_p),
         * so only the rest need sorting (llama2.c's trick). */
        float cutoff = (1.0f - p->top_p) / (float)(n > 1 ? n - 1 : 1);
        int m = 0;
        for (int i = 0; i < n; i++)
            if (c[i].v >= cutoff) c[m++] = c[i];
        qsort(c, (size_t)m, sizeof *c, cand_desc);
        double cum = 0.0;
        int keep = m;
        for (int i = 0; i < m; i++) {
            cum += c[i].v;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    double total = 0.0;
    for (int i = 0; i < n; i++) total += c[i].v;
    double r = (double)rng_uniform(rng_state) * total, acc = 0.0;
    int32_t pick = c[n - 1].id;
    for (int i = 0; i < n; i++) {
        acc += c[i].v;
        if (r < acc) {
            pick = c[i].id;
            break;
        }
    }
    free(c);
    return pick;
}
