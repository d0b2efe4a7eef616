/* LLM-ROM rank rule and budget plans: the paper's LLaMA-7B ranks
 * (arXiv 2312.07046: 1228 / 1791 at module budget 0.60, 675 / 985 at 0.33),
 * the "factor only when it saves" rule, and plan_for_budget meeting the
 * overall budget with the largest module budget (b + 1e-4 must not fit). */
#include "compress/rom/rom.h"
#include "test_util.h"

#include <stdio.h>

static void check_rank(double b, int d1, int d2, int want) {
    int r = slm_rom_rank(b, d1, d2);
    CHECK(r == want, "rank(b %.2f, %d x %d) = %d, want %d", b, d1, d2, r, want);
    printf("rank(b %.2f, %d x %d) = %d (paper %d)\n", b, d1, d2, r, want);
}

int main(void) {
    check_rank(0.60, 4096, 4096, 1228);
    check_rank(0.60, 4096, 11008, 1791);
    check_rank(0.60, 11008, 4096, 1791);
    check_rank(0.33, 4096, 4096, 675);
    check_rank(0.33, 4096, 11008, 985);
    /* r (d1 + d2) < d1 d2 decides; b = 1 gives exactly d1 d2 / (d1 + d2) -> no saving for a square. */
    CHECK(!slm_rom_rank_saves(slm_rom_rank(1.0, 4096, 4096), 4096, 4096), "b = 1 must not factor a square");
    CHECK(slm_rom_rank_saves(2047, 4096, 4096), "rank 2047 of 4096^2 saves");
    CHECK(!slm_rom_rank_saves(2048, 4096, 4096), "rank 2048 of 4096^2 saves nothing");
    slm_rom_plan p = {.first_block = 0, .module_budget = 0.5, .rank_override = 0};
    CHECK(slm_rom_plan_rank(&p, 96, 64) == 19, "plan rank of 96x64 at 0.5: %d", slm_rom_plan_rank(&p, 96, 64));

    /* Budget plans on a random model shaped like SmolLM2 in miniature. */
    slm_config c = {.arch = SLM_ARCH_LLAMA, .n_vocab = 301, .d_model = 64, .n_layers = 6, .n_heads = 4,
                    .n_kv_heads = 2, .head_dim = 16, .d_ff = 160, .max_ctx = 128, .norm_eps = 1e-5f,
                    .rope_theta = 10000.0f, .rope_layout = SLM_ROPE_HALVES, .tied_embeddings = true,
                    .bos_id = -1, .eos_id = -1};
    slm_model *m;
    if (!CHECK(slm_model_new_random(&c, 3, &m) == SLM_OK, "model: %s", slm_last_error())) return slm_test_finish();
    double dense = (double)slm_model_get_stats(m, 1).n_params_dense;
    for (int n = 2; n <= 6; n += 2) {
        slm_rom_plan q;
        if (!CHECK(slm_rom_plan_for_budget(m, 0.8, n, &q) == SLM_OK, "budget 0.8 last %d: %s", n, slm_last_error()))
            continue;
        double frac = (double)slm_rom_plan_params(m, &q) / dense;
        slm_rom_plan up = q;
        up.module_budget += 2e-4;
        double frac_up = (double)slm_rom_plan_params(m, &up) / dense;
        printf("budget 0.8, last %d: module budget %.4f -> %.4f of dense (b + 2e-4: %.4f)\n", n, q.module_budget,
               frac, frac_up);
        CHECK(frac <= 0.8 && q.first_block == 6 - n, "plan over budget: %.5f", frac);
        CHECK(frac_up > 0.8 || frac_up == frac, "a larger module budget also fits: %.5f", frac_up);
    }
    slm_rom_plan q;
    CHECK(slm_rom_plan_for_budget(m, 0.3, 1, &q) != SLM_OK, "budget 0.3 with one block must be refused");
    printf("refused as expected: %s\n", slm_last_error());
    slm_model_free(m);
    return slm_test_finish();
}
