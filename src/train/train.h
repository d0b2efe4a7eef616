/* The training engine (issue #6): a trainable view of a model, the training
 * forward pass that keeps what the backward needs, the backward pass over
 * any plan, losses on logits, and optimizers. fp32 throughout; GEMMs through
 * OpenBLAS, row-wise kernels in OpenMP loops (as model/forward.c).
 *
 * A step, with gradient accumulation over M micro-batches:
 *     slm_trainable *tv;  slm_trainable_new(model, &tv);      // model now points at tv's copies
 *     slm_train_ctx *tc;  slm_train_ctx_new(model, tv, &cp, &tc);
 *     slm_optim *opt;     slm_optim_new(tv, &op, &opt);
 *     for each step: slm_trainable_zero_grad(tv);
 *         for each micro-batch: slm_train_forward(tc, tokens);
 *                               slm_train_backward(tc, targets, teacher_or_NULL, &lp, &res);
 *         slm_optim_step(opt, tv, slm_lr_at(&sched, step), &grad_norm);
 * with lp.denom = the predicted tokens of all M micro-batches, so the summed
 * gradients are those of the mean loss over the whole batch.
 *
 * Legend: B sequences, T tokens per sequence, N = B*T rows, D model dim,
 * Q = H*Dh, KV = Hkv*Dh, F a block's MLP width, V vocab, L blocks.
 * Activations are row-major [N][...], sequence b's rows at b*T .. b*T+T-1.
 */
#ifndef SLM_TRAIN_H
#define SLM_TRAIN_H

#include "model/forward.h"

/* ---- trainable view of a model (params.c) ------------------------------------------ */

/* One parameter tensor: an owned, writable fp32 copy the model points at,
 * and its gradient, both [rows][cols] contiguous. */
typedef struct slm_train_tensor {
    char name[96];   /* HF style: "model.layers.3.self_attn.q_proj.weight"; low-rank
                        factors "...q_proj.lr_a.weight" [n_out][r] and "...lr_b.weight" [r][n_in] */
    float *w;        /* value (owned by the model: it outlives the view) */
    float *g;        /* gradient, summed over backward calls until zeroed */
    int64_t n;       /* rows * cols */
    int rows, cols;
    int64_t offset;  /* of w (and g) in the view's flat arrays (optimizer state uses it) */
    bool no_decay;   /* norm weight or bias: weight decay is not applied */
    bool frozen;     /* no update, and the backward does not compute its gradient */
    /* The part the plan uses, for elastic views (below). unit_axis 0: the
     * tensor is one unit; 1: each row is one (gate/up: a row per MLP
     * channel); 2: each column (down). n_units: 1, rows or cols. active:
     * units (the first ones) some forward used since the last zero_grad;
     * units past it had no gradient and the optimizer skips them. In a
     * plain view always n_units. */
    int unit_axis, n_units, active;
} slm_train_tensor;

/* Indices into the tensor list, -1 where absent. */
typedef struct slm_train_linear_ix {
    int w, a, b, bias;
} slm_train_linear_ix;

typedef struct slm_train_block_ix {
    int attn_norm, ffn_norm;
    slm_train_linear_ix lin[SLM_PROJ_COUNT];
} slm_train_block_ix;

typedef struct slm_trainable {
    slm_model *m;
    slm_train_tensor *t;     /* [n_tensors] in model order: embedding, blocks, norm, head */
    int n_tensors;
    slm_train_block_ix *blk; /* [L]; every index -1 for a dropped block */
    int tok_embd, out_norm, lm_head; /* lm_head == tok_embd when tied */
    float *grad;             /* [n_floats] every gradient, one allocation */
    int64_t n_floats;
    bool elastic;            /* slm_trainable_new_elastic */
    int64_t n_units;         /* sum of the tensors' n_units */
} slm_trainable;

/* Copies every parameter the plan uses into writable fp32 tensors and points
 * the model at them, so slm_decode sees the trained weights. Dropped blocks
 * get none; a block narrowed to d_ff < cfg.d_ff gets only its first d_ff
 * channels (the model then cannot be widened again: validation fails). The
 * copies belong to the model (freed with it); the view owns the gradients.
 * QBLOCK linears (and a quantised lm head) are refused: load with
 * keep_quantized = false to train. */
slm_status slm_trainable_new(slm_model *m, slm_trainable **out);
/* An elastic view (super-network training, LLaMA-NAS / InstaTune): copies
 * every tensor at full size from a model whose plan is full (every block
 * kept at cfg.d_ff, dense linears), after which the plan may change freely
 * between forwards: blocks dropped and brought back, MLP widths narrowed
 * and widened (slm_block_set_mlp_width, slm_nas_apply). Each forward runs
 * the plan as it is; the backward gives gradients to what the plan used
 * only (the first d_ff rows of gate/up, columns of down; the kept blocks)
 * and marks it active. The optimizer skips everything else: no moment
 * decay, no weight decay, no step count (PyTorch's semantics for a
 * parameter whose grad is None, applied per MLP channel). */
slm_status slm_trainable_new_elastic(slm_model *m, slm_trainable **out);
void slm_trainable_free(slm_trainable *tv);
void slm_trainable_zero_grad(slm_trainable *tv);
/* Index of the tensor with that name, or -1. */
int slm_trainable_find(const slm_trainable *tv, const char *name);
/* Sets frozen on every tensor whose name starts with prefix ("" = all);
 * returns how many matched. */
int slm_trainable_set_frozen(slm_trainable *tv, const char *prefix, bool frozen);
/* SLM_ERR_STATE when the model's plan no longer matches the view (a block
 * dropped, narrowed or refactored after the view was made). */
slm_status slm_trainable_check(const slm_trainable *tv);
/* Elastic views: widens every tensor's active part to what the current
 * plan uses (after slm_trainable_check). Nothing for a plain view. */
void slm_trainable_mark_plan(slm_trainable *tv);

/* ---- training context: forward and backward (forward_train.c, backward.c) ------------ */

typedef struct slm_train_ctx_params {
    int n_seq;      /* B */
    int n_tok;      /* T (<= the model's max_ctx) */
    bool recompute; /* keep only each block's input; recompute the block in the backward */
    bool forward_only; /* a teacher: keeps hidden states and the final norm only */
    bool keep_attn_out; /* keep every kept block's attention output [N][D] (homotopic KD) */
} slm_train_ctx_params;
slm_train_ctx_params slm_train_ctx_default_params(void);

/* What one block's backward needs (pointers into the context's memory). */
typedef struct slm_block_acts {
    float *xn1, *rms1;  /* [N][D] normed attention input, [N] its 1/rms */
    float *q, *k, *v;   /* [N][Q], [N][KV], [N][KV]; q and k after RoPE */
    float *p;           /* [B][H][T][T] attention probabilities, 0 above the diagonal */
    float *att;         /* [N][Q] attention output (the o projection's input) */
    float *xmid;        /* [N][D] residual after attention (the MLP norm's input) */
    float *xn2, *rms2;  /* [N][D] normed MLP input, [N] its 1/rms */
    float *g, *u, *h;   /* [N][F] gate and up before SwiGLU, h = silu(g)*u */
} slm_block_acts;

typedef struct slm_train_ctx slm_train_ctx;

/* tv NULL: a forward-only context over the model's own weights (a teacher).
 * Else tv must be a view of m. */
slm_status slm_train_ctx_new(slm_model *m, slm_trainable *tv, const slm_train_ctx_params *p,
                             slm_train_ctx **out);
void slm_train_ctx_free(slm_train_ctx *tc);

/* Runs tokens [B][T] (each sequence at positions 0..T-1, causal attention
 * inside it) and keeps the activations. Clears the injected gradients. */
slm_status slm_train_forward(slm_train_ctx *tc, const int32_t *tokens);

/* After a forward: the residual stream after i blocks [N][D], i in 0..L
 * (0: the embeddings; a dropped block's output is its input). */
const float *slm_train_hidden(const slm_train_ctx *tc, int i);
/* After a forward (and before the backward): q, k (after RoPE), v of the
 * last kept block, [N][Q], [N][KV], [N][KV]; *layer gets its index. */
slm_status slm_train_last_qkv(const slm_train_ctx *tc, const float **q, const float **k, const float **v,
                              int *layer);
/* Gradient buffers a loss on intermediate activations fills after the
 * forward; the backward adds them in. Allocated (zeroed) on first request,
 * zeroed again by every forward. NULL (with a message) on failure.
 * hidden: dLoss/d hidden(i), [N][D]. qkv: which 0 q, 1 k, 2 v of the last
 * kept block ([N][Q] or [N][KV], q and k after RoPE). */
float *slm_train_hidden_grad(slm_train_ctx *tc, int i);
float *slm_train_qkv_grad(slm_train_ctx *tc, int which);
/* With keep_attn_out, after a forward: block l's attention output, what its
 * attention sub-layer adds to the residual stream (the o projection's
 * output) [N][D]; NULL for a dropped block or without keep_attn_out. Its
 * gradient buffer (as above) reaches the o projection and what feeds it,
 * not the residual path around it. */
const float *slm_train_attn_out(const slm_train_ctx *tc, int l);
float *slm_train_attn_out_grad(slm_train_ctx *tc, int l);

/* logits [T][V] of sequence b after a forward. */
slm_status slm_train_logits(slm_train_ctx *tc, int b, float *logits);

/* ---- losses on logits (loss.c) ------------------------------------------------------ */

/* Per predicted row, loss = ce_weight * CE + kd_weight * KD with
 *   CE = -log softmax(z)[target]                        (rows with target < 0 skipped)
 *   KD = tau^2 * KL(softmax(zt/tau) || softmax(z/tau))  (teacher logits zt; every
 *        row with target >= 0, the rows the student is trained to predict)
 * and the reported/differentiated loss is the sum over rows / denom
 * (denom <= 0: the number of predicted rows of this call). tau^2 keeps the
 * gradient's size independent of tau (Hinton et al.); this is
 * torch kl_div(log_softmax(z/tau), softmax(zt/tau), 'batchmean') * tau^2. */
typedef struct slm_loss_params {
    float ce_weight;      /* 1 */
    float kd_weight;      /* 0: no KD term */
    float kd_temperature; /* 1 */
    double denom;         /* 0: mean over this call's predicted rows */
} slm_loss_params;
slm_loss_params slm_loss_default_params(void);

typedef struct slm_loss_result {
    double loss;    /* ce_weight * ce + kd_weight * kd */
    double ce, kd;  /* each term, summed over rows / denom */
    int64_t n_pred; /* rows with a target */
} slm_loss_result;

/* One row. z [V] student logits, replaced by scale * dLoss/dz when grad;
 * zt [V] teacher logits or NULL (clobbered); scratch [3V]. *ce and *kd get
 * the row's unweighted, unscaled terms. Stable for any finite logits
 * (log-sum-exp with the max subtracted, sums in double). */
void slm_loss_row(float *z, float *zt, int V, int32_t target, const slm_loss_params *lp, float scale, bool grad,
                  float *scratch, double *ce, double *kd);

/* targets[b][t] = tokens[b][t+1], the last of each sequence -1. */
void slm_targets_next_token(const int32_t *tokens, int B, int T, int32_t *targets);

/* The loss of the last forward, no gradient (teacher: NULL, or a context
 * that ran forward on the same tokens, for KD). */
slm_status slm_train_loss(slm_train_ctx *tc, const int32_t *targets, slm_train_ctx *teacher,
                          const slm_loss_params *lp, slm_loss_result *res);
/* The loss of the last forward and its gradient: the lm head and loss one
 * sequence at a time (one [T][V] buffer), then every kept block in reverse,
 * adding into the view's gradients (frozen tensors skipped, and the pass
 * stops below the lowest block that still needs a gradient). */
slm_status slm_train_backward(slm_train_ctx *tc, const int32_t *targets, slm_train_ctx *teacher,
                              const slm_loss_params *lp, slm_loss_result *res);
/* The same in two halves: the head and logit losses (the final norm's input
 * gradient is kept), then the blocks. Between them a caller may fill the
 * injection buffers using the CE the head measured (slm_kd_norm_scale). */
slm_status slm_train_backward_head(slm_train_ctx *tc, const int32_t *targets, slm_train_ctx *teacher,
                                   const slm_loss_params *lp, slm_loss_result *res);
slm_status slm_train_backward_blocks(slm_train_ctx *tc);

/* ---- distillation on intermediate activations (kd.c) ------------------------------------ */

/* MiniLM relation KD between the last kept blocks of student and teacher
 * (both ran forward on the same tokens; same query and key/value head
 * counts, head widths may differ), per query head h with its key head and
 * per key/value head g, each row i over keys j <= i:
 *   L = mean_{b,h,i} KL(softmax(q^t k^t/sqrt(Dh_t)) || softmax(q^s k^s/sqrt(Dh_s)))
 *     + mean_{b,g,i} KL(softmax(v^t v^t/sqrt(Dh_t)) || softmax(v^s v^s/sqrt(Dh_s)))
 * (q, k after RoPE). *value gets L; grad_scale != 0 adds grad_scale * dL
 * into the student's q/k/v gradient buffers. */
slm_status slm_kd_relation(slm_train_ctx *student, const slm_train_ctx *teacher, float grad_scale, double *value);

typedef struct slm_kd_hidden_parts {
    double emb, hidden, attn; /* MSE of the embeddings; sums over blocks of the hidden / attention-output MSEs */
    int n_blocks;             /* student blocks compared */
} slm_kd_hidden_parts;
/* Homotopic / TinyBERT-style KD: L = MSE(embeddings) + sum over kept
 * student blocks l of MSE(output of l, output of teacher block src[l])
 * + MSE(attention output of l, of teacher block src[l]); MSE = mean over
 * the N x D elements. Both contexts need keep_attn_out; src [L_student]
 * names the teacher block each kept student block came from. grad_scale as
 * above (into the hidden-state and attention-output buffers); parts may be NULL. */
slm_status slm_kd_hidden(slm_train_ctx *student, const slm_train_ctx *teacher, const int *src, float grad_scale,
                         double *value, slm_kd_hidden_parts *parts);

/* The normalisation of Jha et al.: a distillation term L enters the loss as
 * lambda * L * CE~ / L~ (~: detached values of this micro-batch), i.e. with
 * the magnitude of the cross-entropy; its gradient scale is returned:
 * lambda * ce / term, or 0 when term <= 1e-12 (student equals teacher there). */
double slm_kd_norm_scale(double lambda, double ce, double term);

/* ---- the combined loss (Eq. 8 of Jha et al.) of one micro-batch (kd.c) ------------------- */

/* Distillation terms, combinable. */
enum {
    SLM_KD_LOGITS = 1u << 0,   /* vanilla KD: tau^2 KL of the logits (loss.c) */
    SLM_KD_RELATION = 1u << 1, /* MiniLM Q-K and V-V relations of the last block */
    SLM_KD_HIDDEN = 1u << 2    /* embeddings, block outputs and attention outputs (MSE) */
};
/* "none", "vanilla", "minilm", "hidden", "homotopic" (= hidden + vanilla, as
 * HomoDistil distils both), or several joined by '+' ("minilm+vanilla"). */
slm_status slm_kd_parse(const char *s, unsigned *terms);
/* "none", or the term names joined by '+' (buf of at least 32 bytes). */
const char *slm_kd_name(unsigned terms, char *buf, size_t cap);

typedef struct slm_kd_params {
    unsigned terms;    /* SLM_KD_* (0: plain CE) */
    float lambda;      /* weight of each normalised term */
    float tau;         /* vanilla KD temperature */
    const int *src;    /* [L_student] teacher block of each student block (SLM_KD_HIDDEN) */
} slm_kd_params;

typedef struct slm_kd_result {
    double loss;                 /* ce + sum of the normalised terms (each lambda * ce when active) */
    double ce;                   /* this micro-batch's CE (summed / denom) */
    double logits, rel, hid;     /* raw terms: vanilla KD (summed / denom), relation, homotopic (means) */
    slm_kd_hidden_parts parts;   /* of hid */
    double scale_logits, scale_rel, scale_hid; /* gradient scales lambda * ce / term applied (0: inactive) */
    int64_t n_pred;
} slm_kd_result;

/* One micro-batch of training: forward of the student (and of the teacher
 * when a term needs it, on the same tokens), then
 *   L = CE + sum over active terms i of lambda * L_i * CE~ / L_i~
 * differentiated into the student's view (gradients add, as the backward
 * does). denom: predicted tokens of the whole accumulated batch (<= 0: this
 * micro-batch's). The vanilla term's scale needs its value before the head's
 * backward, which costs one extra lm-head pass of both models. Contexts:
 * the student's trainable, the teacher's forward only; both with
 * keep_attn_out for SLM_KD_HIDDEN. */
slm_status slm_train_microstep(slm_train_ctx *student, slm_train_ctx *teacher, const int32_t *tokens,
                               const int32_t *targets, double denom, const slm_kd_params *kp, slm_kd_result *res);

/* ---- optimizers and schedule (optim.c) ---------------------------------------------- */

typedef enum slm_optim_kind { SLM_OPTIM_ADAMW = 0, SLM_OPTIM_LION } slm_optim_kind;

typedef struct slm_optim_params {
    slm_optim_kind kind;
    float beta1, beta2;  /* 0.9, 0.95 */
    float eps;           /* AdamW only: 1e-8 */
    float weight_decay;  /* decoupled (p -= lr*wd*p), not on norms and biases: 0.1 */
    float clip_norm;     /* clip the global gradient norm to this; 0: off. 1.0 */
} slm_optim_params;
slm_optim_params slm_optim_default_params(slm_optim_kind kind);

typedef struct slm_optim slm_optim;
slm_status slm_optim_new(const slm_trainable *tv, const slm_optim_params *p, slm_optim **out);
void slm_optim_free(slm_optim *o);
/* One update at learning rate lr from the gradients as they are (summed
 * over micro-batches); frozen tensors untouched. *grad_norm (may be NULL)
 * gets the global L2 norm before clipping. SLM_ERR_NUMERIC (naming the
 * tensor) and no update when a gradient is not finite. */
slm_status slm_optim_step(slm_optim *o, slm_trainable *tv, float lr, double *grad_norm);
int64_t slm_optim_steps(const slm_optim *o);
const slm_optim_params *slm_optim_get_params(const slm_optim *o);
/* The state a checkpoint saves: moment arrays (which 0: m, 1: v, NULL for
 * Lion), parallel to the view's flat arrays (tensor i at t[i].offset), and
 * the step count the bias corrections use. */
float *slm_optim_moment(slm_optim *o, int which);
void slm_optim_set_steps(slm_optim *o, int64_t t);
/* Elastic views: the step count of every unit (each tensor's units in view
 * order; *n of them), which a checkpoint saves too. NULL (n 0) otherwise. */
int64_t *slm_optim_unit_steps(slm_optim *o, int64_t *n);

/* Linear warm-up then cosine decay to final_frac * peak:
 *   s < warmup:  lr = peak * (s + 1) / warmup
 *   else:        lr = peak * (f + (1 - f) * (1 + cos(pi * min(1, (s - warmup) / (total - warmup)))) / 2)
 * for step s = 0, 1, ... (the step about to be taken). */
typedef struct slm_lr_schedule {
    float peak;
    int64_t warmup, total;
    float final_frac; /* 0.1 */
} slm_lr_schedule;
float slm_lr_at(const slm_lr_schedule *s, int64_t step);

#endif
