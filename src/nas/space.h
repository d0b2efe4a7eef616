/* LLaMA-NAS search space as data: an elastic super-network over the number
 * of decoder blocks and each block's MLP width, and the sub-networks in it.
 *
 * A space holds the allowed block counts (depths, e.g. 20, 25, 30), the
 * allowed MLP widths (e.g. 768, 1536 = 50% and 100% of d_ff; any ascending
 * set), and an order saying which blocks a depth keeps: "first" keeps blocks
 * 0..N-1 as LLaMA-NAS does; "max-gap", "input", "output", "middle", "both"
 * are the truncation configurations of compress/prune (first and last block
 * kept).
 *
 * A sub-network is encoded as an integer vector of 1 + L genes:
 *   genes[0]     index into depths;
 *   genes[1 + i] index into widths for block i (ignored when i is dropped).
 * Its architecture is widths[L]: block i's MLP width, 0 when dropped.
 * Applying it to a model only changes the plan (kept flags and per-block
 * d_ff through slm_block_set_mlp_width: the first d_ff channels, no copy);
 * applying the full architecture restores the model.
 *
 * Channel order (reorder.c): a narrow block keeps its first k channels, so
 * which channels come first matters for un-fine-tuned sub-networks. The
 * importance of channel j of a block is E|h_j| * ||W_down[:, j]||, with
 * h = silu(gate) * up over calibration tokens: the expected size of that
 * channel's contribution to the block output. Sorting channels by it and
 * permuting gate/up rows and down columns the same way leaves the full
 * model's function unchanged.
 */
#ifndef SLM_NAS_SPACE_H
#define SLM_NAS_SPACE_H

#include "compress/calib.h"
#include "model/model.h"

#define SLM_NAS_MAX_CHOICES 16

typedef struct slm_nas_space {
    int n_layers;  /* L of the model */
    int d_ff;      /* the model's F */
    int n_depths;
    int depths[SLM_NAS_MAX_CHOICES]; /* ascending, in 1..L */
    int n_widths;
    int widths[SLM_NAS_MAX_CHOICES]; /* ascending, in 1..F */
    char order[32];                  /* "first" or a prune truncation name */
    bool *keep;                      /* [n_depths][L]: blocks kept at each depth */
} slm_nas_space;

/* Parses "20,25,30" (block counts) and "768,1536" or "50%,100%" (MLP
 * widths, percentages of d_ff rounded to a multiple of 32 when d_ff is one,
 * so quantised down projections can be narrowed) into a space for a model
 * with L blocks and MLP width F. Every bad value is named. */
slm_status slm_nas_space_parse(slm_nas_space *s, int L, int F, const char *depths, const char *widths,
                               const char *order);
/* From numbers (sorted and deduplicated here). */
slm_status slm_nas_space_init(slm_nas_space *s, int L, int F, const int *depths, int n_depths, const int *widths,
                              int n_widths, const char *order);
void slm_nas_space_free(slm_nas_space *s);

/* 1 + L. */
int slm_nas_n_genes(const slm_nas_space *s);
/* Number of distinct sub-networks (as a double: it overflows integers). */
double slm_nas_space_size(const slm_nas_space *s);

/* genes -> widths[L] (0 = dropped). Fails on a gene out of range. */
slm_status slm_nas_decode(const slm_nas_space *s, const int *genes, int *widths);
/* widths[L] -> genes; fails when the architecture is not in the space
 * (kept set of no allowed depth, or a width not in the set). Genes of
 * dropped blocks become 0. */
slm_status slm_nas_encode(const slm_nas_space *s, const int *widths, int *genes);
/* A copy of genes with the genes of dropped blocks set to 0, so equal
 * architectures have equal vectors. */
void slm_nas_canon(const slm_nas_space *s, const int *genes, int *out);
/* Uniformly random genes (each gene independently). */
void slm_nas_random(const slm_nas_space *s, uint64_t *rng, int *genes);
/* Predictor features [L + 1]: kept blocks / L, then width_i / F (0 when
 * dropped). */
void slm_nas_features(const slm_nas_space *s, const int *genes, double *feat);

/* Sets m's plan to widths[L] (0 = dropped, else kept with that MLP width).
 * The model must be unnarrowed-capable: its gate/up/down still hold cfg.d_ff
 * channels (a loaded model does). Fails without a kept block. */
slm_status slm_nas_apply(slm_model *m, const int *widths);
/* The full architecture: every block kept at cfg.d_ff. */
void slm_nas_full_widths(const slm_model *m, int *widths);

/* ---- channel importance and reordering (reorder.c) ---------------------------------- */

/* score[L][F]: importance of every MLP channel of every block (see above)
 * over the calibration sequences, on the full model (its plan is set to
 * the full architecture for the pass and restored). */
slm_status slm_nas_channel_importance(slm_model *m, const slm_calib *cal, bool quiet, double *score);
/* perm[L][F]: channels of each block by descending score (ties: lower
 * index first). perm[b][k] is the original channel placed at position k. */
void slm_nas_importance_order(const double *score, int L, int F, int32_t *perm);
/* Permutes every block's gate/up rows and down columns by perm[L][F] into
 * buffers the model owns. Dense and QBLOCK gate/up rows move as they are;
 * a QBLOCK down projection becomes dense fp32 (its exact dequantised
 * values), since a permutation of its columns crosses quantisation blocks.
 * Low-rank MLP linears are refused. Blocks must be at full width. */
slm_status slm_nas_reorder_channels(slm_model *m, const int32_t *perm);

#endif
