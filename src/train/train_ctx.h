/* The training context's fields, shared by forward_train.c, backward.c and
 * loss.c only (callers use the functions in train.h). Legend as train.h. */
#ifndef SLM_TRAIN_CTX_H
#define SLM_TRAIN_CTX_H

#include "train/train.h"

struct slm_train_ctx {
    slm_model *m;
    slm_trainable *tv;       /* NULL: forward only */
    int B, T, N;
    bool recompute, forward_only;
    bool keep_attn_out;      /* attn_out[] kept for losses on it */
    int n_threads;           /* attention and loss scratch are sized for this many */
    float *rope_fwd;         /* [T][Dh/2][2] (cos, sin) */
    float *rope_bwd;         /* [T][Dh/2][2] (cos, -sin): the inverse rotation */
    int32_t *tokens;         /* [N] of the last forward */
    float **hidden;          /* [L+1] -> [N][D]; a dropped block's output aliases its input */
    float **hidden_own;      /* [L+1] the buffers: [0] and each block the context has room for (else NULL);
                                hidden[] is re-aliased by every forward, for the plan of that moment */
    bool elastic;            /* the view is elastic: room for every block at full MLP width */
    int *plan_ff;            /* [L] the plan of the last forward: each block's d_ff, 0 dropped */
    slm_block_acts *acts;    /* [L]: a kept block's own set, or all the one shared set */
    int shared_layer;        /* block whose activations the shared set holds (-1 none) */
    int last_kept;           /* index of the last kept block (-1: none) */
    float *rms_f;            /* [N] 1/rms of the final norm */
    float *xn_f;             /* [N][D] final normed hidden states (the lm head's input) */
    /* backward scratch (NULL when forward only) */
    float *dx, *dxn;         /* [N][D] residual gradient, gradient of a norm's output */
    float *dq, *datt;        /* [N][Q] */
    float *dk, *dv;          /* [N][KV] */
    float *dg, *du, *dh;     /* [N][F] */
    float *attn_scratch;     /* slm_attn_bwd_scratch_floats */
    float *lin_tmp, *lin_dtmp; /* [N][max rank] (forward uses lin_tmp for the plan's scratch) */
    float *logits;           /* [T][V] one sequence's logits, then their gradient */
    float *loss_scratch;     /* [n_threads][3V] */
    /* gradients injected by losses on intermediate activations (NULL until asked for) */
    float **d_hidden;        /* [L+1] */
    float *d_qkv[3];
    float **attn_out;        /* [L] -> [N][D] attention output of a kept block (keep_attn_out), else NULL */
    float **d_attn_out;      /* [L] -> [N][D] its injected gradient (NULL until asked for) */
    bool have_forward;
    bool head_done;          /* slm_train_backward_head ran since the forward */
    void *mem;               /* one allocation carved into the buffers above */
};

/* Runs kept block l from x_in [N][D] to x_out [N][D], storing into a. */
void slm_train_block_forward(slm_train_ctx *tc, int l, const float *x_in, float *x_out, slm_block_acts *a);

/* The lm head and the logit losses, sequence by sequence; when grad, the
 * gradient of the final norm's output goes to tc->dxn and the lm head's
 * gradient is added (loss.c). */
slm_status slm_train_head_loss(slm_train_ctx *tc, const int32_t *targets, slm_train_ctx *teacher,
                               const slm_loss_params *lp, bool grad, slm_loss_result *res);

#endif
