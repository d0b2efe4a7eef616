/* slimlm public API.
 *
 * Opaque handles, *_default_params() structs that callers edit, and one
 * status enum. Every function that can fail returns slm_status; on failure
 * slm_last_error() holds one line "<file or object>: <what is wrong>" (the
 * CLI prints it as "error: <that line>"). Library code never exits.
 *
 * Ownership: a function named *_new / *_load gives the caller a handle to
 * free with the matching *_free. Pointers returned by getters stay owned by
 * the handle and live as long as it does.
 *
 * Legend used in shape comments: V vocab, D model dim, F MLP width,
 * H query heads, Hkv key/value heads, Dh head dim, T tokens, L blocks.
 */
#ifndef SLIMLM_H
#define SLIMLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ------------------------------------------------------------ */

typedef enum slm_status {
    SLM_OK = 0,
    SLM_ERR_IO,          /* open/read/write/mmap failed */
    SLM_ERR_FORMAT,      /* file content is malformed or inconsistent */
    SLM_ERR_UNSUPPORTED, /* well-formed, but a feature slimlm does not handle */
    SLM_ERR_NOMEM,       /* allocation failed or size overflow */
    SLM_ERR_ARG,         /* bad argument from the caller */
    SLM_ERR_NUMERIC,     /* NaN/Inf or a failed factorisation */
    SLM_ERR_STATE        /* call made in the wrong state (e.g. KV cache full) */
} slm_status;

const char *slm_status_str(slm_status s);
/* The detail of the last failure on this thread ("" when none). */
const char *slm_last_error(void);

/* ---- threads ----------------------------------------------------------- */

/* Sets the threads used by OpenMP loops and by OpenBLAS (n <= 0: all cores). */
void slm_set_threads(int n);
int slm_get_threads(void);

/* ---- model ------------------------------------------------------------- */

typedef struct slm_model slm_model;
typedef struct slm_tokenizer slm_tokenizer;
typedef struct slm_context slm_context;

typedef struct slm_load_params {
    bool load_tokenizer; /* also load the tokenizer (GGUF metadata or tokenizer.json) */
    bool verbose;        /* print what was loaded to stderr */
    /* GGUF only: Q4_0/Q4_1/Q8_0 linear weights (attention, MLP, lm head) stay
     * in their blocks, zero-copy from the mapping, and are multiplied as
     * llama.cpp does (activations quantised to Q8_1/Q8_0 per 32-block), so
     * results match llama.cpp on the same file and decode reads ~6x fewer
     * bytes. Default false: everything dequantised to fp32 (what compression
     * methods and fp32 references want). The token embedding stays fp32. */
    bool keep_quantized;
} slm_load_params;
slm_load_params slm_load_default_params(void);

/* Loads a GGUF file, an HF model directory (config.json + safetensors) or a
 * single .safetensors file with config.json beside it. */
slm_status slm_model_load(const char *path, const slm_load_params *p, slm_model **out);
void slm_model_free(slm_model *m);

/* The model's tokenizer, or NULL when it has none (e.g. an HF dir without
 * tokenizer.json). Owned by the model. */
slm_tokenizer *slm_model_tokenizer(const slm_model *m);

typedef struct slm_model_stats {
    int64_t n_params;        /* parameters as stored (low-rank counts its factors) */
    int64_t n_params_dense;  /* parameters of the same architecture, dense and all blocks kept */
    int64_t macs_per_token;  /* multiply-accumulates per token, at context length ctx */
    int64_t weight_bytes;    /* bytes of the weights as held in memory */
    int n_layers_kept;
} slm_model_stats;
/* MACs count the linears and the lm head, plus attention (QK^T and AV) at ctx. */
slm_model_stats slm_model_get_stats(const slm_model *m, int ctx);

/* Output formats. */
typedef enum slm_save_format {
    SLM_SAVE_GGUF = 0,
    SLM_SAVE_SAFETENSORS /* path is a directory: model.safetensors + config.json */
} slm_save_format;

typedef struct slm_save_params {
    slm_save_format format;
    int dtype;  /* slm_dtype of the weight matrices: F32, F16, BF16 or Q8_0 (GGUF only) */
    /* GGUF only, when kept blocks differ in MLP width: write each block at its
     * own width as llama.cpp's "deci" architecture (per-layer
     * deci.feed_forward_length array) instead of zero-padding to the widest
     * block under "llama" (the default, which any llama.cpp reader loads). */
    bool gguf_mlp_per_block;
} slm_save_params;
slm_save_params slm_save_default_params(void);
/* Written to a temporary file and renamed, so a failure never leaves a half file. */
slm_status slm_model_save(const slm_model *m, const char *path, const slm_save_params *p);

/* ---- tokenizer --------------------------------------------------------- */

/* Encodes UTF-8 text. add_special: add BOS/EOS as the vocabulary says;
 * parse_special: match special-token strings in the text. On success
 * *n_out is the number of ids written; when the buffer is too small
 * returns SLM_ERR_ARG with *n_out = the size needed. */
slm_status slm_tokenize(const slm_tokenizer *t, const char *text, size_t len,
                        bool add_special, bool parse_special,
                        int32_t *ids, size_t cap, size_t *n_out);
/* The bytes of one token's text (after reversing byte-level / ▁ mapping).
 * Returns the number of bytes written; when the piece is longer than cap,
 * writes nothing and returns -(bytes needed) (< -1 unless the piece is 1 byte
 * and cap 0); -1 also for a bad id, so callers check id range first. */
int slm_token_to_piece(const slm_tokenizer *t, int32_t id, char *buf, int cap);
int slm_tokenizer_n_vocab(const slm_tokenizer *t);
int32_t slm_tokenizer_bos(const slm_tokenizer *t); /* -1 when none */
int32_t slm_tokenizer_eos(const slm_tokenizer *t);
bool slm_tokenizer_adds_bos(const slm_tokenizer *t);

/* ---- inference --------------------------------------------------------- */

typedef struct slm_context_params {
    int n_ctx;   /* KV cache length in tokens (0: min(model max, 4096)) */
    int n_batch; /* most tokens per forward call (0: n_ctx) */
} slm_context_params;
slm_context_params slm_context_default_params(void);

slm_status slm_context_new(const slm_model *m, const slm_context_params *p, slm_context **out);
void slm_context_free(slm_context *c);
/* Number of tokens in the KV cache. */
int slm_context_n_past(const slm_context *c);
/* Drops cached positions >= n (n = 0 clears), so a shared prefix can be reused. */
void slm_context_truncate(slm_context *c, int n);

/* Runs tokens[0..n) at positions n_past.. and appends them to the KV cache.
 * logits: NULL, or [n][V] when all_logits, or [V] for the last token. */
slm_status slm_decode(slm_context *c, const int32_t *tokens, int n, bool all_logits, float *logits);

/* Rows of a packed decode: several sequences that share prefixes (a token
 * tree) run together. Row t is written to cache slot n_past + t, is rotated
 * by RoPE as position pos[t] (a plain decode uses its slot), and attends to
 * the cache slots of its spans: span[2s] <= slot < span[2s + 1] for s in
 * [span_off[t], span_off[t + 1]), spans ascending and disjoint, none past
 * the row's own slot (so a row sees only keys already written), at least
 * one per row. A tree laid out depth first keeps each node's ancestors in a
 * few runs of slots, so the lists are short. Logits are made only for rows
 * out_rows[0..n_out) (ascending): the lm head is the largest matrix. */
typedef struct slm_packed_rows {
    int n;                   /* T rows */
    const int32_t *tokens;   /* [T] */
    const int32_t *pos;      /* [T] RoPE positions, < n_ctx */
    const int32_t *span_off; /* [T + 1], span_off[0] = 0 */
    const int32_t *span;     /* [span_off[T]][2] cache slot ranges [lo, hi) */
    const int32_t *out_rows; /* [n_out] */
    int n_out;
} slm_packed_rows;

/* Runs p's rows (in steps of n_batch) and appends them to the KV cache;
 * logits: NULL or [n_out][V]. Slots hold whatever the rows put there, so
 * truncate back before a plain decode relies on positions = slots again.
 * A failed call leaves n_past where it was. */
slm_status slm_decode_packed(slm_context *c, const slm_packed_rows *p, float *logits);

/* ---- sampling / generation -------------------------------------------- */

typedef struct slm_sampler_params {
    float temperature; /* 0: greedy */
    int top_k;         /* 0: off */
    float top_p;       /* 1: off */
    uint64_t seed;
} slm_sampler_params;
slm_sampler_params slm_sampler_default_params(void);

/* Picks a token from logits[V]; rng_state is advanced (seed it from p->seed). */
int32_t slm_sample(const float *logits, int n_vocab, const slm_sampler_params *p, uint64_t *rng_state);

#ifdef __cplusplus
}
#endif
#endif
