/* Training runs (issue #6, item 5) on top of the engine of train.h: token
 * data packed into windows, fresh initialisation from a config, the
 * training loop (gradient accumulation, warm-up + cosine schedule,
 * distillation, gradual block removal), validation, and checkpoints that
 * resume exactly. cli/cmd_train.c is a thin layer over this.
 *
 * Legend as train.h: B sequences per micro-batch, T tokens per window
 * (--ctx), M micro-batches per optimizer step (--accum), L blocks.
 */
#ifndef SLM_TRAINER_H
#define SLM_TRAINER_H

#include "train/train.h"

/* ---- data (data.c) ---------------------------------------------------------------------------- */

/* The training text as one packed token stream: every document's tokens
 * (BOS first when the tokenizer adds one) followed by EOS, documents in the
 * order of the files and of their lines. Windows are disjoint T-token
 * slices; window w is tokens [wT, wT + T) and its targets the next tokens
 * [wT + 1, wT + T], so every position is predicted. */
typedef struct slm_train_data {
    int32_t *tokens;   /* [n_tokens] */
    int64_t n_tokens;
    int ctx;           /* T */
    int64_t n_windows; /* (n_tokens - 1) / T */
    int n_docs, n_files;
    int32_t max_id;    /* largest token id (checked against the model's vocabulary) */
    uint64_t seed;     /* the order of windows */
    uint64_t hash;     /* FNV-1a of T and the tokens: a checkpoint refuses other data */
    char source[512];  /* the files, for reports */
    int64_t *perm;     /* [n_windows] the order of epoch perm_epoch (cache) */
    int64_t perm_epoch;
    /* instruction data (slm_train_data_load_alpaca): one example per window,
     * tokens [n_windows][T] and their targets [n_windows][T], -1 where no
     * loss is taken (the prompt, padding); NULL for packed text */
    int32_t *labels;
    int64_t n_truncated, n_skipped; /* examples cut at T + 1 tokens; dropped (prompt alone fills T) */
} slm_train_data;

/* files: paths separated by ',' (a directory stands for its *.txt and
 * *.jsonl files, sorted by name); a relative path not found as given is
 * tried under data_dir. A .jsonl file holds one JSON object per line with a
 * "text" string (one document each); any other file is one document.
 * Evaluation texts (wikitext-2 and PTB test / validation files) are refused
 * unless allow_eval (validation data). Fails when the text makes fewer than
 * one window (T + 1 tokens) or the tokenizer has no EOS. */
slm_status slm_train_data_load(const slm_tokenizer *tok, const char *files, const char *data_dir, int ctx,
                               uint64_t seed, bool allow_eval, slm_train_data *out);
void slm_train_data_free(slm_train_data *d);
/* Instruction data in Alpaca format (data_alpaca.c): files (',' separated,
 * relative ones also under data_dir) each a JSON array of objects, or JSON
 * lines, with "instruction", "input" (may be empty or absent) and "output"
 * strings. Items are numbered in file order; items [first, first + count)
 * are taken (count <= 0: to the end), so one list splits into training and
 * held-out parts. Each item is one window: the Stanford Alpaca prompt
 * (slm_alpaca_prompt) with BOS when the tokenizer adds one, then the output
 * and EOS; the loss is on the output and EOS only. Longer than T + 1 tokens:
 * cut (counted); shorter: padded with EOS, no loss there. An item whose
 * prompt alone fills T is left out (counted). */
slm_status slm_train_data_load_alpaca(const slm_tokenizer *tok, const char *files, const char *data_dir, int ctx,
                                      uint64_t seed, int64_t first, int64_t count, slm_train_data *out);
/* The Stanford Alpaca template (tatsu-lab/stanford_alpaca, train.py
 * PROMPT_DICT) for one item, into a malloc'd string the caller frees. */
char *slm_alpaca_prompt(const char *instruction, const char *input);
/* Tokens [T] and targets [T] of window number k of the training order:
 * epoch e = k / n_windows visits every window once, in a permutation drawn
 * from (seed, e) (shuffled), or in file order (not shuffled: validation). */
slm_status slm_train_data_window(slm_train_data *d, int64_t k, bool shuffled, int32_t *tokens, int32_t *targets);

/* ---- models and tokenizers for training (init.c) ----------------------------------------------- */

/* An HF config.json: the architecture (formats/hf_config.c) and its
 * initializer_range (0.02 when absent). */
slm_status slm_train_config_load(const char *path, slm_config *cfg, float *init_std);
/* A model of cfg's shape initialised as transformers initialises
 * LlamaForCausalLM: embedding, lm head and every linear ~ N(0, std^2),
 * biases 0, norm weights 1. Reproducible from seed. */
slm_status slm_train_model_init(const slm_config *cfg, float std, uint64_t seed, slm_model **out);
/* The source block of each block of a GGUF written by slimlm from a pruned
 * model (its slimlm.source_blocks); *n = 0 when the file has none (or is
 * not a GGUF). cap: size of out. */
slm_status slm_train_source_blocks(const char *path, int32_t *out, int cap, int *n);

/* ---- the training loop (trainer.c) ------------------------------------------------------------- */

typedef struct slm_trainer_params {
    int n_seq, n_tok, accum;  /* B, T, M */
    int64_t n_steps;          /* optimizer steps of the whole run (the schedule's length) */
    float lr;                 /* peak learning rate */
    int64_t warmup;           /* linear warm-up steps */
    float final_frac;         /* cosine decay to final_frac * lr (0.1) */
    slm_optim_params optim;
    bool recompute;           /* recompute block activations in the backward */
    slm_kd_params kd;         /* kd.terms 0: plain next-token CE */
    /* gradual removal: blocks drop_order[0..n_drop) of the student are
     * frozen from the start and removed one at a time, the k-th (from 1)
     * once k * drop_every tokens have been trained on */
    const int *drop_order;
    int n_drop;
    int64_t drop_every;
    /* super-network training: the student gets an elastic view
     * (slm_trainable_new_elastic) and plan(plan_ud, student, step) sets its
     * plan before every step (a function of the step only, so a resumed run
     * sees the same plans); no gradual removal then */
    bool elastic;
    slm_status (*plan)(void *ud, slm_model *m, int64_t step);
    void *plan_ud;
} slm_trainer_params;
slm_trainer_params slm_trainer_default_params(void);

typedef struct slm_step_stats {
    int64_t step;       /* steps done after this one (1, 2, ...) */
    float lr;
    double loss, ce;    /* means over the step's micro-batches (loss: CE + normalised KD terms) */
    double kd_logits, kd_rel, kd_hid; /* raw distillation terms, means over micro-batches */
    double grad_norm;   /* before clipping */
    int64_t tokens;     /* tokens trained on so far */
    double seconds;     /* of this step */
    int dropped_block;  /* block removed just before this step, -1 none */
} slm_step_stats;

typedef struct slm_trainer slm_trainer;

/* student: the model to train (its trainable view is made here: frozen
 * tensors are set on slm_trainer_view before the first step); teacher: NULL,
 * or the distillation teacher (p->kd.terms != 0). data must outlive the
 * trainer. */
slm_status slm_trainer_new(slm_model *student, slm_model *teacher, slm_train_data *data,
                           const slm_trainer_params *p, slm_trainer **out);
void slm_trainer_free(slm_trainer *tr);
slm_trainable *slm_trainer_view(slm_trainer *tr);
/* Steps done so far (restored by a resume). */
int64_t slm_trainer_steps_done(const slm_trainer *tr);
int64_t slm_trainer_tokens_done(const slm_trainer *tr);
/* One optimizer step: the scheduled block removals, M micro-batches of B
 * windows each, the update. SLM_ERR_STATE after n_steps. */
slm_status slm_trainer_step(slm_trainer *tr, slm_step_stats *st);
/* Mean next-token NLL of the student over the first max_windows windows of
 * val (in file order; <= 0: all), B at a time; *n_tokens gets the count. */
slm_status slm_trainer_validate(slm_trainer *tr, slm_train_data *val, int64_t max_windows, double *nll,
                                int64_t *n_tokens);

/* ---- checkpoints (checkpoint.c) ----------------------------------------------------------------- */

/* Writes everything the next step depends on (format in checkpoint.c and
 * docs/train.md: weights, optimizer moments and step count, data position
 * and order seed, removed blocks), atomically (temporary file + rename). */
slm_status slm_trainer_save(const slm_trainer *tr, const char *path);
/* Restores a checkpoint into a trainer built with the same model, data and
 * parameters (each checked, with one line naming what differs). The file is
 * verified (checksum) before anything is changed. */
slm_status slm_trainer_resume(slm_trainer *tr, const char *path);

/* FNV-1a over n bytes, continuing from h (0xcbf29ce484222325 to start): the
 * data hash a checkpoint keeps and the checkpoint's own checksum. */
static inline uint64_t slm_fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#endif
