/* Calibration data shared by the compression methods (rom, svd-llm, layer
 * pruning by block influence): token windows from a text file, a task's
 * training split, or a mix of tasks, and the model's next-token loss over
 * them. */
#ifndef SLM_COMPRESS_CALIB_H
#define SLM_COMPRESS_CALIB_H

#include "model/model.h"

typedef struct slm_calib {
    int32_t *tokens; /* [n_seqs][seq_len] */
    int n_seqs, seq_len;
    char source[256]; /* what it was drawn from, for reports */
} slm_calib;

/* spec: "mix" (training splits of arc_easy, arc_challenge, openbookqa,
 * documents shuffled), "task:NAME" (one of those), or "text:FILE" (a path,
 * relative ones tried as given and then under data_dir). n_seqs windows of
 * seq_len tokens at random offsets (seed) of the tokenised text; the first
 * token is BOS when the vocabulary adds one. Refuses wikitext test text. */
slm_status slm_calib_load(const slm_tokenizer *tok, const char *spec, const char *data_dir, int n_seqs,
                              int seq_len, uint64_t seed, slm_calib *out);
void slm_calib_free(slm_calib *c);
/* Views of sequences [first, first + n) of c (no copy). */
slm_calib slm_calib_slice(const slm_calib *c, int first, int n);

/* Mean next-token NLL (nats) of m over the calibration sequences (the
 * planner's proxy and the report's before/after loss). */
slm_status slm_calib_nll(const slm_model *m, const slm_calib *c, double *nll);

#endif
