/* NAS results: the search state as JSON (the checkpoint and the result are
 * one file), a table of the Pareto front, and an SVG plot of size (or
 * throughput) against accuracy.
 *
 * JSON ("format": "slimlm-nas/1"):
 *   config      the command's settings (model, task, limit, ...; free-form,
 *               compared on --resume by the CLI)
 *   space       {n_layers, d_ff, depths[], widths[], order}
 *   params      {objective, evals, n_init, per_round, population,
 *               generations, folds, random, seed, tput_tokens, tput_reps}
 *   rng         the random state, 16 hex digits; round
 *   reference   the full model, an evaluation object
 *   evaluated   [evaluation]: {genes[], mlp_widths[] (0 = dropped), blocks,
 *               params, bytes, macs, accuracy, tokens_per_s, seconds,
 *               round, predicted_accuracy, predicted_tokens_per_s}
 *   pending     [{genes[], predicted_accuracy, predicted_tokens_per_s}]
 *   fits        per round: chosen predictor kinds and cross-validated MAPEs
 *   channel_order  [L][F] MLP channel permutation the search ran with, or null
 *   summary (written, ignored on reading): front (indices into evaluated),
 *               hypervolume, width_probability [L][n_widths + 1]
 * Numbers that are not finite are written as null.
 */
#ifndef SLM_NAS_REPORT_H
#define SLM_NAS_REPORT_H

#include "nas/search.h"

#include <cjson/cJSON.h>
#include <stdio.h>

/* The state as JSON; config (may be NULL) is taken over; channel_order
 * [L][F] or NULL. NULL when out of memory. */
cJSON *slm_nas_state_to_json(const slm_nas_state *s, cJSON *config, const int32_t *channel_order);
/* Reads a state; *config (may be NULL to ignore) gets a copy of the config
 * object and *order (may be NULL) a malloc'd [L][F] permutation or NULL.
 * path names the file in messages. */
slm_status slm_nas_state_from_json(const cJSON *j, const char *path, slm_nas_state *s, cJSON **config,
                                   int32_t **order);
/* Reads a JSON file into a cJSON tree (one-line errors naming the file). */
slm_status slm_nas_read_json(const char *path, cJSON **out);

/* The front as a table, with the reference and the hypervolume. */
void slm_nas_print_front(FILE *f, const slm_nas_state *s);
/* Per-block probability of each MLP width among the front members. */
void slm_nas_print_width_probability(FILE *f, const slm_nas_state *s);

/* SVG (malloc'd text): every evaluated point of each state, its front as a
 * step line, the reference model marked. x = parameters (M) or tokens/s,
 * y = accuracy. names label the states in the legend. */
char *slm_nas_svg(const slm_nas_state *const *states, const char *const *names, int n, const char *title);

#endif
