/* Super-network fine-tuning plans (finetune.h). */
#include "nas/finetune.h"

slm_status slm_nas_ft_arch(const slm_nas_space *s, uint64_t seed, int64_t step, int *genes, int *widths, bool *sub) {
    *sub = (step & 1) != 0;
    if (!*sub) {
        genes[0] = s->n_depths - 1; /* the full network: every block at the widest width */
        for (int i = 0; i < s->n_layers; i++) genes[1 + i] = s->n_widths - 1;
        slm_status st = slm_nas_decode(s, genes, widths);
        if (st) return st;
        for (int i = 0; i < s->n_layers; i++) widths[i] = s->d_ff;
        return SLM_OK;
    }
    /* splitmix64 of (seed, step): a fresh stream per step, never zero */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (uint64_t)(step + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    uint64_t rng = (z ^ (z >> 31)) | 1;
    slm_nas_random(s, &rng, genes);
    return slm_nas_decode(s, genes, widths);
}

slm_status slm_nas_ft_apply(void *ud, slm_model *m, int64_t step) {
    slm_nas_ft_plan *p = ud;
    if (p->space->n_layers != m->cfg.n_layers || p->space->d_ff != m->cfg.d_ff)
        return slm_fail(SLM_ERR_ARG, "nas finetune: the space is for %d blocks of width %d, the model has %d of %d",
                        p->space->n_layers, p->space->d_ff, m->cfg.n_layers, m->cfg.d_ff);
    slm_status st = slm_nas_ft_arch(p->space, p->seed, step, p->genes, p->widths, &p->sub);
    return st ? st : slm_nas_apply(m, p->widths);
}
