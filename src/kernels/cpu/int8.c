/* Int8 kernels: the plain C references and the run-time choice of kernel
 * (see int8.h). The AVX2 kernels are in int8_avx2.c, the VNNI ones in
 * int8_vnni.c. */
#include "kernels/cpu/int8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- references ------------------------------------------------------------ */

/* Grouped product (int8.h): each group's exact int32 sum, then one fma per
 * group in group order. */
static void gemm_ref_grouped(const slm_i8_gemm *g) {
    const int G = g->group;
    for (int t = 0; t < g->T; t++) {
        const int8_t *a = g->a + (int64_t)t * g->lda;
        const float *as = g->a_scale + (int64_t)t * g->lds;
        for (int o = 0; o < g->N; o++) {
            const int8_t *w = g->w + (int64_t)o * g->ldw;
            float f = 0.0f;
            for (int k0 = 0, j = 0; k0 < g->K; k0 += G, j++) {
                const int k1 = k0 + G < g->K ? k0 + G : g->K;
                int32_t c = 0;
                for (int k = k0; k < k1; k++) c += (int32_t)a[k] * (int32_t)w[k];
                f = fmaf((float)c, as[j], f);
            }
            slm_i8_store_grouped(g, t, o, f);
        }
    }
}

void slm_i8_act_sums(int T, const int8_t *a, int64_t lda, int K, int G, int32_t *sums, int64_t lds) {
    const int span = G > 0 ? G : K;
    for (int t = 0; t < T; t++) {
        const int8_t *at = a + (int64_t)t * lda;
        int32_t *st = G > 0 ? sums + (int64_t)t * lds : sums + t;
        for (int k0 = 0, j = 0; k0 < K; k0 += span, j++) {
            const int k1 = k0 + span < K ? k0 + span : K;
            int32_t s = 0;
            for (int k = k0; k < k1; k++) s += at[k];
            st[j] = s;
        }
    }
}

void slm_i8_gemm_ref(const slm_i8_gemm *g) {
    if (g->group > 0) {
        gemm_ref_grouped(g);
        return;
    }
    for (int t = 0; t < g->T; t++) {
        const int8_t *a = g->a + (int64_t)t * g->lda;
        for (int o = 0; o < g->N; o++) {
            const int8_t *w = g->w + (int64_t)o * g->ldw;
            int32_t acc = 0;
            for (int k = 0; k < g->K; k++) acc += (int32_t)a[k] * (int32_t)w[k];
            slm_i8_store(g, t, o, acc);
        }
    }
}

/* Quantises columns [k0, k1) of one row (k1 <= n) with the absmax of
 * those columns outside skip; *scale = amax / 127. The skip columns in
 * the span are set to 0 by the caller. */
static void quantize_span_ref(const float *xt, int8_t *qt, int k0, int k1, const int32_t *skip, int n_skip,
                              float *scale) {
    float amax = 0.0f;
    int s = 0;
    while (s < n_skip && skip[s] < k0) s++;
    for (int k = k0; k < k1; k++) {
        if (s < n_skip && skip[s] == k) {
            s++;
            continue;
        }
        const float v = fabsf(xt[k]);
        if (v > amax) amax = v;
    }
    const float id = amax >= 1e-30f ? 127.0f / amax : 0.0f; /* 127/amax stays finite */
    *scale = amax / 127.0f;
    for (int k = k0; k < k1; k++) {
        float v = nearbyintf(xt[k] * id); /* default rounding: ties to even, as cvtps2dq */
        qt[k] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v == v ? v : 0.0f);
    }
}

void slm_i8_quantize_groups_ref(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip, int K,
                                int G, int8_t *q, int64_t ldq, float *scale, int64_t lds) {
    const int span = G > 0 ? G : K;
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * ldx;
        int8_t *qt = q + (int64_t)t * ldq;
        float *st = G > 0 ? scale + (int64_t)t * lds : scale + t;
        for (int k0 = 0, j = 0; k0 < K; k0 += span, j++) {
            const int k1 = k0 + span < n ? k0 + span : n;
            if (k1 > k0) quantize_span_ref(xt, qt, k0, k1, skip, n_skip, &st[j]);
            else st[j] = 0.0f; /* padding only */
        }
        for (int s = 0; s < n_skip; s++) qt[skip[s]] = 0;
        if (K > n) memset(qt + n, 0, (size_t)(K - n));
    }
}

void slm_i8_quantize_rows_ref(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip, int K,
                              int8_t *q, int64_t ldq, float *scale) {
    slm_i8_quantize_groups_ref(T, x, ldx, n, skip, n_skip, K, 0, q, ldq, scale, 1);
}

/* ---- dispatch --------------------------------------------------------------- */

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* The OS saves the given XCR0 state bits (AVX: 0x6, AVX-512: 0xe6). */
static bool os_saves(unsigned mask) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & mask) == mask;
}

static int detect(slm_i8_isa isa) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    /* the grouped AVX2 kernel uses FMA (leaf 1, ecx bit 12); every AVX2 CPU made has it */
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    const bool fma = __get_cpuid(1, &a1, &b1, &c1, &d1) && (c1 & (1u << 12));
    const bool avx2 = (b & (1u << 5)) && fma && os_saves(0x6);
    switch (isa) {
    case SLM_I8_ISA_AVX2: return avx2;
    case SLM_I8_ISA_AVX512VNNI: /* avx512f (b16), avx512bw (b30), avx512vl (b31), avx512_vnni (c11) */
        return (b & (1u << 16)) && (b & (1u << 30)) && (b & (1u << 31)) && (c & (1u << 11)) && os_saves(0xe6);
    case SLM_I8_ISA_AVXVNNI: /* leaf 7 sub-leaf 1, eax bit 4 */
        return avx2 && a >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 & (1u << 4));
    default: return 0;
    }
}
#else
static int detect(slm_i8_isa isa) {
    (void)isa;
    return 0;
}
#endif

static const char *const k_isa_names[SLM_I8_ISA_COUNT] = {"ref", "avx2", "avxvnni", "avx512vnni"};

const char *slm_i8_isa_name(slm_i8_isa isa) { return (unsigned)isa < SLM_I8_ISA_COUNT ? k_isa_names[isa] : "?"; }

bool slm_i8_isa_runs(slm_i8_isa isa) {
    static int cache[SLM_I8_ISA_COUNT] = {-1, -1, -1, -1}; /* a benign race: every thread computes the same */
    if ((unsigned)isa >= SLM_I8_ISA_COUNT) return false;
    if (isa == SLM_I8_ISA_REF) return true;
    if (cache[isa] < 0) cache[isa] = detect(isa);
    return cache[isa] == 1;
}

slm_i8_isa slm_i8_isa_best(void) {
    static int best = -1;
    if (best < 0) {
        int cap = SLM_I8_ISA_COUNT - 1;
        const char *env = getenv("SLM_INT8_ISA");
        for (int i = 0; env && i < SLM_I8_ISA_COUNT; i++)
            if (!strcmp(env, k_isa_names[i])) cap = i;
        int b = SLM_I8_ISA_REF;
        for (int i = 1; i <= cap; i++)
            if (slm_i8_isa_runs((slm_i8_isa)i)) b = i;
        best = b;
    }
    return (slm_i8_isa)best;
}

slm_i8_gemm_fn slm_i8_gemm_get(slm_i8_isa isa) {
    switch (isa) {
    case SLM_I8_ISA_AVX2: return slm_i8_gemm_avx2;
    case SLM_I8_ISA_AVXVNNI: return slm_i8_gemm_avxvnni;
    case SLM_I8_ISA_AVX512VNNI: return slm_i8_gemm_avx512vnni;
    default: return slm_i8_gemm_ref;
    }
}

slm_i8_gemm_fn slm_i8_gemm_for(int group) {
    slm_i8_isa isa = slm_i8_isa_best();
    /* grouped: AVX-512 VNNI has its own form for G % 64 == 0 (and hands
     * other groups to AVX2); AVX-VNNI has none */
    if (group > 0 && isa == SLM_I8_ISA_AVXVNNI) isa = SLM_I8_ISA_AVX2;
    return slm_i8_gemm_get(isa);
}

bool slm_i8_group_ok(int G) { return G >= 32 && G <= 1024 && G % 32 == 0; }

void slm_i8_quantize_groups(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip, int K, int G,
                            int8_t *q, int64_t ldq, float *scale, int64_t lds) {
    if (slm_i8_isa_runs(SLM_I8_ISA_AVX2)) slm_i8_quantize_groups_avx2(T, x, ldx, n, skip, n_skip, K, G, q, ldq, scale, lds);
    else slm_i8_quantize_groups_ref(T, x, ldx, n, skip, n_skip, K, G, q, ldq, scale, lds);
}

void slm_i8_quantize_rows(int T, const float *x, int64_t ldx, int n, const int32_t *skip, int n_skip, int K,
                          int8_t *q, int64_t ldq, float *scale) {
    if (slm_i8_isa_runs(SLM_I8_ISA_AVX2)) slm_i8_quantize_rows_avx2(T, x, ldx, n, skip, n_skip, K, q, ldq, scale);
    else slm_i8_quantize_rows_ref(T, x, ldx, n, skip, n_skip, K, q, ldq, scale);
}
