/* INT8 quantisation of a model (docs/int8.md): every linear of every kept
 * block, dense or low-rank, and optionally the lm head, becomes an INT8
 * linear (model/linear_int8.h): per-output-channel symmetric int8 weights
 * (absmax / 127 scales), activations quantised per token at run time.
 * Norms and biases stay fp32; the token embedding stays float (fp16
 * values by default), or, opt-in (embd SLM_QUANT_EMBD_INT8), becomes the
 * int8 lm head's rows: one int8 [V][D] matrix for a tied model, its own
 * per-row int8 matrix for an untied one, dequantised row by row at lookup.
 *
 * Outliers (LLM.int8, Dettmers et al. 2022): an input feature column whose
 * magnitude exceeds outlier_threshold on the calibration data (max |x| over
 * every calibration token; bitsandbytes' default threshold is 6.0) is kept
 * in fp32, in the weights and in the activations, for every linear that
 * reads that input: q/k/v share the attention input's columns, gate/up the
 * MLP input's, o and down their own, the lm head the final norm's, and a
 * low-rank linear's second factor A those of its intermediate B x. Unlike
 * bitsandbytes, which picks the columns per batch at run time, the columns
 * are fixed here from calibration, so a product has a fixed shape, and at
 * most max_outlier_frac of an input's columns (the largest) are kept: in
 * small models whole inputs exceed the threshold (SmolLM2's last MLP
 * down-projection inputs exceed 6.0 in 1291 of 1536 columns), which would
 * leave little int8 in them.
 */
#ifndef SLM_COMPRESS_QUANT_H
#define SLM_COMPRESS_QUANT_H

#include "compress/calib.h"
#include "model/forward.h"

/* How the token embedding is kept (the paper keeps embeddings float). */
typedef enum slm_quant_embd {
    SLM_QUANT_EMBD_F16 = 0, /* fp16 values (and an untied fp32 lm head's), so an int8 GGUF
                               stores them as F16, losslessly */
    SLM_QUANT_EMBD_F32,     /* unchanged */
    SLM_QUANT_EMBD_INT8,    /* per-row int8 + a scale per row, the lm head's quantisation
                               (needs lm_head): tied, the head's matrix itself */
    SLM_QUANT_EMBD_COUNT
} slm_quant_embd;
/* "f16", "f32", "int8" (the CLI's --embd values); NULL out of range. */
const char *slm_quant_embd_name(slm_quant_embd e);

typedef struct slm_quant_params {
    float outlier_threshold; /* > 0: keep input columns above it in fp32 (needs calibration); 0: pure int8 */
    float max_outlier_frac;  /* at most this fraction of an input's columns (the largest) stay fp32 */
    bool lm_head;            /* quantise the lm head too */
    slm_quant_embd embd;     /* the token embedding: fp16 values (default), fp32, or int8 */
    int act_group;           /* 0: activations quantised per token; G (multiple of 32 in
                                [32, 1024]): per token and G input columns, each group its own
                                absmax scale (docs/int8.md "Grouped activations") */
    bool quiet;              /* no progress bar */
} slm_quant_params;
/* Threshold 6.0 (bitsandbytes' llm_int8_threshold), at most 2% of an
 * input's columns, lm head quantised, fp16 embedding, per-token activations. */
slm_quant_params slm_quant_default_params(void);

typedef struct slm_quant_report {
    int n_layers;
    int (*outliers)[SLM_FWD_POINT_COUNT]; /* [L]: columns kept fp32 at each block input point */
    int (*above)[SLM_FWD_POINT_COUNT];    /* [L]: columns over the threshold there (>= kept: the cap) */
    int lm_head_outliers, lm_head_above;
    int lowrank_outliers;                 /* over every low-rank intermediate */
    int n_linears;                        /* linears made int8, the lm head included */
    int64_t bytes_before, bytes_after;    /* slm_model_stats.weight_bytes */
    double seconds;
} slm_quant_report;
void slm_quant_report_free(slm_quant_report *r);

/* Quantises m in place. cal: calibration sequences, needed when
 * p->outlier_threshold > 0 (else may be NULL). Refuses a model whose
 * linears are already int8. On failure m may be partly quantised (every
 * linear still valid). */
slm_status slm_quant_int8(slm_model *m, const slm_quant_params *p, const slm_calib *cal, slm_quant_report *rep);

/* Turns every INT8 linear of m (and an INT8 lm head) back into fp32 dense
 * or low-rank linears holding the dequantised values (owned by m): what a
 * safetensors export writes, and the "weights only" reference. */
slm_status slm_quant_dequantize(slm_model *m);

#endif
