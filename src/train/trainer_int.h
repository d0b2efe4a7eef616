/* The trainer's fields, shared by trainer.c and checkpoint.c only (callers
 * use trainer.h). */
#ifndef SLM_TRAINER_INT_H
#define SLM_TRAINER_INT_H

#include "train/trainer.h"

struct slm_trainer {
    slm_model *student, *teacher;
    slm_train_data *data;
    slm_trainer_params p;   /* drop_order and kd.src point at the copies below */
    int *drop_order;        /* [n_drop] */
    int *src;               /* [L_student] teacher block of each student block, or NULL */
    slm_trainable *tv;
    slm_optim *opt;
    slm_train_ctx *sc;      /* the student's (trainable) */
    slm_train_ctx *tc;      /* the teacher's (forward only), or NULL */
    slm_lr_schedule sched;
    int64_t step;           /* optimizer steps done */
    int64_t cursor;         /* next window number of the training order */
    int64_t tokens;         /* tokens trained on */
    int n_dropped;          /* drop_order[0..n_dropped) are removed */
    int32_t *tok, *tgt;     /* [B][T] one micro-batch */
};

/* (Re)makes the student's context for its current plan (after a removal). */
slm_status slm_trainer_student_ctx(slm_trainer *tr);
/* Removes drop_order[n_dropped] from the student's plan and remakes its context. */
slm_status slm_trainer_drop_next(slm_trainer *tr);

#endif
