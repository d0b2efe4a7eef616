/* Layer pruning: choose K decoder blocks to drop and mark them dropped in
 * the model's plan (writers then emit a standard, shallower model).
 *
 * The five truncation configurations of Jha et al., "How to Train Your
 * (Compressed) Large Language Model" (arXiv 2305.14864) keep the first and
 * the last block; for L blocks and K dropped (K <= L - 2), with the
 * candidates 1..L-2 in between:
 *   max-gap  keep L-K blocks spread as evenly as possible from 0 to L-1
 *            (the kept index i is round(i (L-1) / (L-K-1))), so the gaps
 *            between kept blocks are as equal as they can be;
 *   input    keep the blocks nearest the input: drop L-1-K .. L-2;
 *   output   keep the blocks nearest the output: drop 1 .. K;
 *   middle   drop a contiguous run of K centred in the stack;
 *   both     drop ceil(K/2) right after the first block and floor(K/2)
 *            right before the last, keeping the middle.
 * block-influence (ShortGPT, Men et al. 2024): BI_i = 1 - mean over
 * calibration tokens of cos(x_i, x_{i+1}), the cosine between a block's
 * input and output residual streams; the K blocks with the lowest BI are
 * dropped (any block may go; the scores come from the unpruned model).
 */
#ifndef SLM_COMPRESS_PRUNE_H
#define SLM_COMPRESS_PRUNE_H

#include "compress/calib.h"
#include "model/model.h"

typedef enum slm_prune_strategy {
    SLM_PRUNE_MAX_GAP = 0,
    SLM_PRUNE_INPUT,
    SLM_PRUNE_OUTPUT,
    SLM_PRUNE_MIDDLE,
    SLM_PRUNE_BOTH,
    SLM_PRUNE_BLOCK_INFLUENCE,
    SLM_PRUNE_STRATEGY_COUNT
} slm_prune_strategy;

const char *slm_prune_strategy_name(slm_prune_strategy s);
/* Names as above ("max-gap", ..., "block-influence"); the error lists them. */
slm_status slm_prune_strategy_parse(const char *s, slm_prune_strategy *out);

/* drop[L] = which blocks go. bi[L] (block influence) is needed only by
 * SLM_PRUNE_BLOCK_INFLUENCE. Fails when K is out of range for the strategy. */
slm_status slm_prune_select(int L, int K, slm_prune_strategy s, const double *bi, bool *drop);

/* bi[L] = block influence of every kept block of m over the calibration
 * sequences (dropped blocks get NAN). One forward pass over the data,
 * streamed block by block. */
slm_status slm_prune_block_influence(const slm_model *m, const slm_calib *cal, bool quiet, double *bi);

/* Marks the chosen blocks dropped. Fails (changing nothing) if one is
 * already dropped or every block would go. */
slm_status slm_prune_apply(slm_model *m, const bool *drop);

#endif
