/* The automatic planner (rom.h): the paper tuned "last N blocks at module
 * budget b" by hand per target; here a few N are tried, each with the
 * largest b that meets the parameter budget, on a cheap proxy (the method
 * itself on a small calibration subset) and scored by next-token loss on
 * held-out calibration sequences that the proxy never saw. */
#include "compress/rom/rom.h"

#include <stdlib.h>
#include <string.h>

#define PROXY_FIT_SEQS 32

/* Puts back the linears saved before a trial. */
static void restore_linears(slm_model *m, const slm_linear *saved) {
    for (int i = 0; i < m->cfg.n_layers; i++)
        memcpy(m->blocks[i].lin, saved + (size_t)i * SLM_PROJ_COUNT, SLM_PROJ_COUNT * sizeof(slm_linear));
}

slm_status slm_rom_auto_plan(slm_model *m, const slm_calib *cal, double budget, const slm_rom_params *base,
                             slm_rom_plan *out, slm_rom_auto_report *rep) {
    memset(rep, 0, sizeof *rep);
    int L = m->cfg.n_layers;
    if (!cal || cal->n_seqs < 4)
        return slm_fail(SLM_ERR_ARG, "the automatic planner needs at least 4 calibration sequences (--batch)");
    int n_hold = cal->n_seqs / 8 < 2 ? 2 : cal->n_seqs / 8;
    int n_fit = cal->n_seqs - n_hold < PROXY_FIT_SEQS ? cal->n_seqs - n_hold : PROXY_FIT_SEQS;
    slm_calib fit = slm_calib_slice(cal, 0, n_fit);
    slm_calib hold = slm_calib_slice(cal, cal->n_seqs - n_hold, n_hold);
    rep->n_fit = n_fit;
    rep->n_heldout = n_hold;

    /* Smallest feasible N, then up to 4 values spread from it to L. */
    int n_min = 1;
    slm_rom_plan p;
    while (n_min <= L && slm_rom_plan_for_budget(m, budget, n_min, &p) != SLM_OK) n_min++;
    if (n_min > L) return slm_fail(SLM_ERR_ARG, "--budget %g cannot be met even by compressing every block", budget);
    slm_error_clear();
    int cands[4], nc = 0;
    for (int k = 0; k < 4; k++) {
        int n = n_min + (int)((double)(L - n_min) * k / 3.0 + 0.5);
        if (nc == 0 || cands[nc - 1] != n) cands[nc++] = n;
    }

    slm_linear *saved = slm_malloc((size_t)L * SLM_PROJ_COUNT * sizeof *saved, "saved linears");
    if (!saved) return SLM_ERR_NOMEM;
    for (int i = 0; i < L; i++)
        memcpy(saved + (size_t)i * SLM_PROJ_COUNT, m->blocks[i].lin, SLM_PROJ_COUNT * sizeof(slm_linear));
    slm_status st = SLM_OK;
    for (int c = 0; c < nc && !st; c++) {
        slm_rom_candidate *cd = &rep->cand[rep->n_cand];
        st = slm_rom_plan_for_budget(m, budget, cands[c], &cd->plan);
        if (st) break;
        slm_rom_params tp = *base;
        tp.plan = cd->plan;
        tp.detached = true;
        tp.observe = NULL;
        slm_rom_report tr;
        st = slm_rom_compress(m, &fit, &tp, &tr);
        cd->params = tr.params_after;
        if (!st) st = slm_calib_nll(m, &hold, &cd->heldout_nll);
        restore_linears(m, saved);
        slm_rom_report_free(&tr);
        if (!st) {
            if (!base->quiet)
                fprintf(stderr, "planner: last %d blocks at module budget %.4f: %.2f M params, held-out NLL %.4f\n",
                        L - cd->plan.first_block, cd->plan.module_budget, (double)cd->params / 1e6, cd->heldout_nll);
            if (rep->n_cand == 0 || cd->heldout_nll < rep->cand[rep->chosen].heldout_nll) rep->chosen = rep->n_cand;
            rep->n_cand++;
        }
    }
    free(saved);
    if (!st) *out = rep->cand[rep->chosen].plan;
    return st;
}
