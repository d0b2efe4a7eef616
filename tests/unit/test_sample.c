/* Sampling: greedy is the argmax; top-k and top-p restrict the support to
 * the expected tokens and the draws follow the renormalised distribution
 * (frequencies over 200k draws within 0.006, > 5 standard deviations);
 * temperature reshapes p into p^(1/T); the same seed gives the same stream. */
#include "slimlm.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { NDRAW = 200000 };

/* Empirical frequencies of NDRAW draws vs expected[n]; checks support too. */
static void check_dist(const char *name, const float *logits, int n, const slm_sampler_params *p,
                       const double *expected) {
    uint64_t rng = p->seed;
    double freq[64] = {0};
    for (int i = 0; i < NDRAW; i++) {
        int32_t t = slm_sample(logits, n, p, &rng);
        if (t < 0 || t >= n) {
            CHECK(0, "%s: token %d out of range", name, t);
            return;
        }
        freq[t] += 1.0 / NDRAW;
    }
    double worst = 0;
    for (int i = 0; i < n; i++) {
        if (expected[i] == 0.0) CHECK(freq[i] == 0.0, "%s: token %d outside the support drawn (%g)", name, i, freq[i]);
        worst = fmax(worst, fabs(freq[i] - expected[i]));
    }
    printf("%s: max |freq - p| = %.4f (tol 0.006)\n", name, worst);
    CHECK(worst < 0.006, "%s: frequencies off by %g", name, worst);
}

int main(void) {
    /* Greedy: argmax, first index on ties, whatever the other settings. */
    float lg[50];
    for (int i = 0; i < 50; i++) lg[i] = sinf((float)i * 1.7f) * 3.0f;
    int am = 0;
    for (int i = 1; i < 50; i++)
        if (lg[i] > lg[am]) am = i;
    slm_sampler_params g = slm_sampler_default_params();
    g.temperature = 0.0f;
    uint64_t rng = 1;
    CHECK(slm_sample(lg, 50, &g, &rng) == am, "greedy = argmax (%d)", am);
    float tie[4] = {1, 3, 3, 0};
    CHECK(slm_sample(tie, 4, &g, &rng) == 1, "greedy tie takes the first");

    /* Same seed, same stream; another seed, another stream. */
    slm_sampler_params s = slm_sampler_default_params();
    s.temperature = 1.5f;
    s.top_k = 0;
    s.top_p = 1.0f;
    int32_t a[200], b[200], d[200];
    uint64_t r1 = 1234, r2 = 1234, r3 = 1235;
    for (int i = 0; i < 200; i++) {
        a[i] = slm_sample(lg, 50, &s, &r1);
        b[i] = slm_sample(lg, 50, &s, &r2);
        d[i] = slm_sample(lg, 50, &s, &r3);
    }
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed gives the same tokens");
    CHECK(memcmp(a, d, sizeof a) != 0, "different seeds give different tokens");

    /* Known distribution p = (0.4, 0.25, 0.15, 0.1, 0.06, 0.04); logits = log p + 7. */
    const double p[6] = {0.4, 0.25, 0.15, 0.1, 0.06, 0.04};
    float lp[6];
    for (int i = 0; i < 6; i++) lp[i] = (float)log(p[i]) + 7.0f;
    slm_sampler_params q = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 99};
    check_dist("plain T=1", lp, 6, &q, p);

    q.top_k = 3; /* support {0,1,2}, renormalised by 0.8 */
    double ek[6] = {0.4 / 0.8, 0.25 / 0.8, 0.15 / 0.8, 0, 0, 0};
    check_dist("top-k 3", lp, 6, &q, ek);

    q.top_k = 0;
    q.top_p = 0.7f; /* cumulative 0.4, 0.65, 0.80 >= 0.7: support {0,1,2} */
    check_dist("top-p 0.7", lp, 6, &q, ek);
    q.top_p = 0.6f; /* 0.4, 0.65 >= 0.6: support {0,1} */
    double ep[6] = {0.4 / 0.65, 0.25 / 0.65, 0, 0, 0, 0};
    check_dist("top-p 0.6", lp, 6, &q, ep);

    q.top_p = 1.0f;
    q.temperature = 2.0f; /* p^(1/2), renormalised */
    double et[6], z = 0;
    for (int i = 0; i < 6; i++) z += et[i] = sqrt(p[i]);
    for (int i = 0; i < 6; i++) et[i] /= z;
    check_dist("temperature 2", lp, 6, &q, et);

    q.temperature = 2.0f; /* both: top-k 4 then temperature then top-p */
    q.top_k = 4;
    q.top_p = 0.55f;
    /* after k=4 and T=2: sqrt(p) of the first four renormalised: 0.296,0.234,0.181,0.148 (/0.859)
     * = 0.345, 0.272, 0.211, 0.172: cumulative 0.345, 0.617 >= 0.55 -> {0,1} */
    double s4 = sqrt(0.4) + sqrt(0.25);
    double eb[6] = {sqrt(0.4) / s4, sqrt(0.25) / s4, 0, 0, 0, 0};
    check_dist("top-k 4 + T 2 + top-p 0.55", lp, 6, &q, eb);
    return slm_test_finish();
}
