/* Super-network fine-tuning (LLaMA-NAS, InstaTune style): every training
 * step runs one architecture of the search space on an elastic trainable
 * view (train.h, slm_trainable_new_elastic), alternating the full network
 * (even steps) and a sub-network drawn uniformly from the space (odd
 * steps: depth and per-block MLP width genes each uniform, as
 * slm_nas_random). The draw depends on (seed, step) only, so a resumed run
 * trains exactly the architectures an uninterrupted one would, with no
 * state to save. Everything the sub-network does not use (dropped blocks,
 * MLP channels past its widths) gets no gradient that step and is skipped
 * by the optimizer. */
#ifndef SLM_NAS_FINETUNE_H
#define SLM_NAS_FINETUNE_H

#include "nas/space.h"

typedef struct slm_nas_ft_plan {
    const slm_nas_space *space;
    uint64_t seed;
    int *genes;  /* [1 + L] scratch */
    int *widths; /* [L] the architecture of the last step planned */
    bool sub;    /* whether that step was a sub-network */
} slm_nas_ft_plan;

/* The architecture of step `step`: widths[L] (0 dropped); *sub = odd step. */
slm_status slm_nas_ft_arch(const slm_nas_space *s, uint64_t seed, int64_t step, int *genes, int *widths, bool *sub);
/* The trainer's plan function (slm_trainer_params.plan, ud an slm_nas_ft_plan
 * with its buffers allocated): applies the architecture of the step. */
slm_status slm_nas_ft_apply(void *ud, slm_model *m, int64_t step);

#endif
