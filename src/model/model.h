/* The one in-memory model every method shares (../shared/DESIGN.md):
 * a config, a plan per decoder block, and tensors that are either mapped
 * read-only from the checkpoint or owned by the model.
 *
 * Plan of a block: kept or dropped; its own MLP width d_ff (the first d_ff
 * channels of gate/up rows and down columns: weight sharing, no copy); and
 * seven linears, each a row of the linear-kind table (dense W, low-rank
 * A.B, later int8). Forward, backward, eval and export accept any plan.
 *
 * Storage conventions (shapes: see the legend in slimlm.h):
 *   every matrix is row-major fp32, [rows][ld] with ld >= the columns used;
 *   a linear computes y[n_out] = W[n_out][n_in] . x[n_in] (+ bias), i.e. the
 *   same memory as an HF weight of shape [n_out, n_in] and a GGUF tensor
 *   with dims [n_in, n_out].
 *
 * RoPE layout: GGUF files made by llama.cpp's converter for llama-style
 * architectures permute the rows of q and k so RoPE rotates adjacent pairs
 * (x0,x1),(x2,x3)...; HF checkpoints (and GGUF qwen2) rotate halves
 * (x_i, x_{i+Dh/2}). The model remembers which layout its q/k rows are in;
 * the forward pass rotates accordingly and writers permute when the target
 * format wants the other one (slm_rope_permute_rows).
 */
#ifndef SLM_MODEL_H
#define SLM_MODEL_H

#include "core/core.h"
#include "core/dtype.h"
#include "slimlm.h"

typedef enum slm_arch {
    SLM_ARCH_LLAMA = 0, /* LlamaForCausalLM: SmolLM, TinyLlama, LLaMA 1-3 */
    SLM_ARCH_MISTRAL,   /* MistralForCausalLM */
    SLM_ARCH_QWEN2      /* Qwen2ForCausalLM: q/k/v biases */
} slm_arch;
const char *slm_arch_name(slm_arch a); /* "llama", "mistral", "qwen2" (GGUF general.architecture) */

typedef enum slm_rope_layout {
    SLM_ROPE_HALVES = 0, /* rotate (x_i, x_{i+Dh/2}): HF, llama.cpp NEOX mode */
    SLM_ROPE_ADJACENT    /* rotate (x_{2i}, x_{2i+1}): llama.cpp GGUF llama/mistral */
} slm_rope_layout;

typedef enum slm_rope_scaling {
    SLM_ROPE_SCALING_NONE = 0,
    SLM_ROPE_SCALING_LINEAR, /* positions divided by factor */
    SLM_ROPE_SCALING_LLAMA3  /* frequency-dependent, LLaMA 3.1 */
} slm_rope_scaling;

typedef struct slm_config {
    slm_arch arch;
    int n_vocab;    /* V */
    int d_model;    /* D */
    int n_layers;   /* L */
    int n_heads;    /* H */
    int n_kv_heads; /* Hkv (H % Hkv == 0) */
    int head_dim;   /* Dh (usually D / H) */
    int d_ff;       /* F: the checkpoint's MLP width (blocks may use less) */
    int max_ctx;    /* context length the model was trained for */
    float norm_eps;
    float rope_theta;
    slm_rope_layout rope_layout;
    slm_rope_scaling rope_scaling;
    float rope_factor;           /* linear / llama3 */
    float rope_low_freq_factor;  /* llama3 */
    float rope_high_freq_factor; /* llama3 */
    int rope_orig_ctx;           /* llama3: original_max_position_embeddings */
    int sliding_window;          /* mistral; 0 = none (recorded, not applied) */
    bool tied_embeddings;        /* lm head shares the token embedding */
    bool attn_bias;              /* q/k/v have biases (qwen2) */
    int32_t bos_id, eos_id;      /* from the checkpoint's config, -1 if none */
} slm_config;

typedef enum slm_proj {
    SLM_PROJ_Q = 0, SLM_PROJ_K, SLM_PROJ_V, SLM_PROJ_O,
    SLM_PROJ_GATE, SLM_PROJ_UP, SLM_PROJ_DOWN,
    SLM_PROJ_COUNT
} slm_proj;
/* "attn_q", ... (GGUF names) and "self_attn.q_proj", ... (HF names). */
const char *slm_proj_gguf_name(slm_proj p);
const char *slm_proj_hf_name(slm_proj p);

typedef enum slm_linear_kind {
    SLM_LINEAR_DENSE = 0,
    SLM_LINEAR_LOWRANK, /* W ~= A . B */
    SLM_LINEAR_QBLOCK,  /* ggml Q4_0/Q4_1/Q8_0 rows, multiplied as llama.cpp does (linear_qblock.c) */
    SLM_LINEAR_INT8,    /* per-channel int8 weights x per-token int8 activations, dense or
                           low-rank, fp32 outlier columns (linear_int8.h) */
    SLM_LINEAR_KIND_COUNT
} slm_linear_kind;

typedef struct slm_linear {
    slm_linear_kind kind;
    int n_out, n_in;   /* logical shape used by the forward pass */
    /* dense: w [n_out][ld_w], ld_w >= n_in */
    const float *w;
    int64_t ld_w;
    /* low-rank: a [n_out][rank] (W1), b [rank][ld_b] (W2), ld_b >= n_in */
    int rank;
    const float *a;
    const float *b;
    int64_t ld_b;
    const float *bias; /* [n_out] or NULL */
    /* qblock: rows of ggml blocks [n_out][q_row_bytes] (n_in/32 blocks used,
     * n_in a multiple of 32), usually straight from a GGUF mapping */
    const void *qw;
    int qtype;          /* slm_dtype: Q4_0, Q4_1 or Q8_0 */
    size_t q_row_bytes; /* stride between rows, >= (n_in/32) * block bytes */
    /* int8 (model/linear_int8.h): rank 0: i8[0] = W; rank > 0: i8[0] = B
     * [rank][n_in], i8[1] = A [n_out][rank]. qw = i8[0]'s bytes as well, so
     * qw != NULL means "multiplied quantised" for every quantised kind. */
    const struct slm_i8_matrix *i8[2];
} slm_linear;

typedef struct slm_block {
    bool kept;
    int d_ff;                        /* this block's MLP width (<= cfg.d_ff) */
    slm_linear lin[SLM_PROJ_COUNT];
    const float *attn_norm;          /* [D] */
    const float *ffn_norm;           /* [D] */
} slm_block;

struct slm_model {
    slm_config cfg;
    slm_block *blocks;        /* [L] */
    const float *tok_embd;    /* [V][D]; NULL when tok_embd_i8 holds the embedding */
    const struct slm_i8_matrix *tok_embd_i8; /* [V][D] int8 rows, a scale per row (slimlm quantize
                                 --embd int8, docs/int8.md): read through slm_model_embed_row;
                                 when tied, the same matrix as lm_head_q's */
    const float *out_norm;    /* [D] */
    const float *lm_head;     /* [V][D]; == tok_embd when tied; NULL with an int8 embedding
                                 (lm_head_q is then the head) */
    slm_linear lm_head_q;     /* kind QBLOCK when the lm head is multiplied quantised
                                 (slm_load_params.keep_quantized), INT8 when it was quantised
                                 so (slimlm quantize); else unused (qw NULL) */
    const float *rope_freqs;  /* [Dh/2] or NULL: per-frequency divisors (llama3 scaling as
                                 llama.cpp stores it, GGUF rope_freqs.weight): the angle of
                                 pair i is pos * theta^(-2i/Dh) / rope_freqs[i] */
    slm_tokenizer *tok;       /* NULL when the checkpoint has none */
    char *path;               /* where it was loaded from */
    char format[64];          /* e.g. "GGUF v3" or "safetensors" */
    int src_dtype;            /* dominant weight type in the source (slm_dtype) */
    int src_type_counts[SLM_DTYPE_COUNT_]; /* tensors per source type (for info) */
    int64_t src_file_bytes;   /* bytes of the checkpoint file(s) */
    /* storage */
    slm_mapped_file *maps;
    int n_maps;
    void **owned;
    int n_owned, cap_owned;
};

/* A model with cfg's shape, every block kept with d_ff = cfg.d_ff and dense
 * linears of the right shapes but no tensors yet. */
slm_status slm_model_create(const slm_config *cfg, slm_model **out);
/* Registers a buffer the model frees. Returns p, or NULL (and frees p) on failure. */
void *slm_model_own(slm_model *m, void *p);
/* Allocates n floats (64-byte aligned) owned by the model. */
float *slm_model_alloc_f32(slm_model *m, size_t n, const char *what);
/* Keeps a mapping alive for the model's lifetime (takes ownership of *f). */
slm_status slm_model_add_map(slm_model *m, slm_mapped_file *f);
/* fp32 view of n elements of type t at src: zero-copy when t is F32 and
 * src is 4-byte aligned, else dequantised into an owned buffer. */
slm_status slm_model_tensor_f32(slm_model *m, const void *src, slm_dtype t, int64_t n,
                                const char *name, const float **out);
/* x [D] = token id's embedding in fp32: the float row, or scale * q of
 * the int8 one (0 <= id < V: the caller checks). Every lookup goes
 * through here, so an int8 embedding works wherever the model runs. */
void slm_model_embed_row(const slm_model *m, int32_t id, float *x);
/* *out = the token embedding [V][D] in fp32: m->tok_embd, or a
 * dequantised copy of the int8 one in *buf (malloc'd, the caller frees;
 * NULL otherwise). For writers of float formats. */
slm_status slm_model_embd_f32(const slm_model *m, const float **out, float **buf);
/* Checks every tensor of every kept block is present and shapes agree;
 * the message names the missing or inconsistent piece. */
slm_status slm_model_validate(const slm_model *m);
/* Sets block b's MLP width to k (first k channels), adjusting gate/up/down. */
slm_status slm_block_set_mlp_width(slm_model *m, int b, int k);
/* Checks the config is sane (positive dims, heads divide, ...); names file. */
slm_status slm_config_validate(const slm_config *c, const char *file);

/* ---- QBLOCK linears (model/linear_qblock.c) ---- */
/* Whether a weight of type qtype (slm_dtype) can stay quantised: Q4_0, Q4_1, Q8_0. */
bool slm_linear_qblock_supports(int qtype);
/* Makes l a QBLOCK linear over data: n_out rows of n_in/32 blocks, not
 * copied (data must outlive the model, e.g. the GGUF mapping). */
slm_status slm_linear_set_qblock(slm_linear *l, const void *data, int qtype, int n_out, int n_in, const char *name);
/* Bytes of the blocks the forward pass reads. */
int64_t slm_linear_qblock_bytes(const slm_linear *l);
/* For writers: *out = l, except a QBLOCK linear becomes a dense one over a
 * dequantised copy [n_out][n_in] in *buf (the caller frees; NULL otherwise). */
slm_status slm_linear_dequantized(const slm_linear *l, slm_linear *out, float **buf);

/* Permutes the rows of a q or k weight (rows = n_head * Dh, each cols long)
 * between the two RoPE layouts. to_adjacent: HF halves -> GGUF adjacent
 * (llama.cpp convert_hf_to_gguf permute); else the inverse. src != dst. */
void slm_rope_permute_rows(const float *src, float *dst, int n_head, int head_dim,
                           int64_t cols, bool to_adjacent);

#endif
