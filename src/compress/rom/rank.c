/* LLM-ROM's rank rule and plans: which blocks are compressed at which
 * module budget, and what the model's parameter count becomes. The budget
 * counts every parameter (embeddings, norms, lm head when untied), as the
 * paper's Table 1 does. */
#include "compress/rom/rom.h"

#include <math.h>
#include <string.h>

static const char *const k_method_names[SLM_ROM_METHOD_COUNT] = {"rom", "svd-llm", "svd"};

const char *slm_rom_method_name(slm_rom_method m) {
    return (unsigned)m < SLM_ROM_METHOD_COUNT ? k_method_names[m] : "?";
}

slm_status slm_rom_method_parse(const char *s, slm_rom_method *out) {
    for (int i = 0; i < SLM_ROM_METHOD_COUNT; i++)
        if (strcmp(s, k_method_names[i]) == 0) {
            *out = (slm_rom_method)i;
            return SLM_OK;
        }
    return slm_fail(SLM_ERR_ARG, "--method %s: expected rom, svd-llm or svd", s);
}

int slm_rom_rank(double b, int d1, int d2) {
    double r = floor(b * (double)d1 * (double)d2 / ((double)d1 + (double)d2));
    return r < 0 ? 0 : (int)r;
}

bool slm_rom_rank_saves(int r, int d1, int d2) {
    return r > 0 && (int64_t)r * ((int64_t)d1 + d2) < (int64_t)d1 * d2;
}

int slm_rom_plan_rank(const slm_rom_plan *p, int n_out, int n_in) {
    int full = n_out < n_in ? n_out : n_in;
    if (p->rank_override > 0) return p->rank_override < full ? p->rank_override : full;
    int r = slm_rom_rank(p->module_budget, n_in, n_out);
    return slm_rom_rank_saves(r, n_in, n_out) ? r : 0;
}

static int64_t linear_params(const slm_linear *l) {
    if (l->kind == SLM_LINEAR_LOWRANK) return (int64_t)l->rank * (l->n_out + l->n_in);
    return (int64_t)l->n_out * l->n_in;
}

int64_t slm_rom_plan_params(const slm_model *m, const slm_rom_plan *p) {
    int64_t n = slm_model_get_stats(m, 1).n_params;
    for (int i = p->first_block < 0 ? 0 : p->first_block; i < m->cfg.n_layers; i++) {
        const slm_block *b = &m->blocks[i];
        if (!b->kept) continue;
        for (int k = 0; k < SLM_PROJ_COUNT; k++) {
            const slm_linear *l = &b->lin[k];
            if (l->kind == SLM_LINEAR_LOWRANK) continue; /* already factored: left as it is */
            int r = slm_rom_plan_rank(p, l->n_out, l->n_in);
            if (r > 0) n += (int64_t)r * (l->n_out + l->n_in) - linear_params(l);
        }
    }
    return n;
}

slm_status slm_rom_plan_for_budget(const slm_model *m, double budget, int n_blocks, slm_rom_plan *out) {
    int L = m->cfg.n_layers;
    if (n_blocks < 1 || n_blocks > L) return slm_fail(SLM_ERR_ARG, "last:%d: the model has %d blocks", n_blocks, L);
    if (!(budget > 0 && budget <= 1)) return slm_fail(SLM_ERR_ARG, "--budget %g: expected a fraction in (0, 1]", budget);
    double target = budget * (double)slm_model_get_stats(m, 1).n_params_dense;
    slm_rom_plan p = {.first_block = L - n_blocks, .module_budget = 1.0, .rank_override = 0};
    if ((double)slm_rom_plan_params(m, &p) <= target) { /* b = 1 factors nothing and already fits */
        *out = p;
        return SLM_OK;
    }
    /* Parameters grow with b (ranks are floors of a linear function of b):
     * bisect for the largest b that fits, starting from the smallest b that
     * gives every linear rank >= 1. */
    double lo = 0.0, hi = 1.0;
    p.module_budget = lo;
    for (int it = 0; it < 40 && hi - lo > 1e-5; it++) {
        p.module_budget = 0.5 * (lo + hi);
        if ((double)slm_rom_plan_params(m, &p) <= target) lo = p.module_budget;
        else hi = p.module_budget;
    }
    p.module_budget = floor(lo * 1e4) / 1e4;
    /* A linear left dense because its rank is 0 is not a useful plan. */
    const slm_block *b = &m->blocks[p.first_block];
    for (int k = 0; k < SLM_PROJ_COUNT; k++)
        if (slm_rom_rank(p.module_budget, b->lin[k].n_in, b->lin[k].n_out) < 1)
            return slm_fail(SLM_ERR_ARG, "budget %.3f cannot be met by compressing the last %d blocks "
                            "(module budget would be %.4f)", budget, n_blocks, p.module_budget);
    *out = p;
    return SLM_OK;
}
