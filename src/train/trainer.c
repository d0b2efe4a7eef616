/* The training loop (trainer.h): one optimizer step is
 *   scheduled block removals (gradual removal: the k-th listed block goes
 *   once k * drop_every tokens were trained on; it was frozen from the start)
 *   M micro-batches, each of B windows taken in the data's seeded order:
 *     slm_train_microstep (forward, CE + normalised distillation terms,
 *     backward into the view, gradients summed over micro-batches with the
 *     denominator of the whole batch)
 *   slm_optim_step at lr = slm_lr_at(schedule, step) (warm-up, cosine decay).
 * Everything a later step reads is in the trainer's fields, which
 * checkpoint.c saves and restores; nothing else carries over between steps
 * (contexts are scratch), which is what makes a resume exact.
 */
#include "train/trainer_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

slm_trainer_params slm_trainer_default_params(void) {
    return (slm_trainer_params){.n_seq = 4, .n_tok = 128, .accum = 1, .n_steps = 1, .lr = 3e-4f, .warmup = 0,
                                .final_frac = 0.1f, .optim = slm_optim_default_params(SLM_OPTIM_ADAMW),
                                .kd = {.terms = 0, .lambda = 1.0f, .tau = 1.0f}};
}

slm_status slm_trainer_student_ctx(slm_trainer *tr) {
    slm_train_ctx_free(tr->sc);
    tr->sc = NULL;
    slm_train_ctx_params cp = {.n_seq = tr->p.n_seq, .n_tok = tr->p.n_tok, .recompute = tr->p.recompute,
                               .keep_attn_out = (tr->p.kd.terms & SLM_KD_HIDDEN) != 0};
    return slm_train_ctx_new(tr->student, tr->tv, &cp, &tr->sc);
}

slm_status slm_trainer_drop_next(slm_trainer *tr) {
    if (tr->n_dropped >= tr->p.n_drop) return slm_fail(SLM_ERR_STATE, "train: no block left to remove");
    tr->student->blocks[tr->drop_order[tr->n_dropped]].kept = false;
    tr->n_dropped++;
    return slm_trainer_student_ctx(tr);
}

static slm_status check_params(const slm_model *s, const slm_model *t, const slm_train_data *d,
                               const slm_trainer_params *p) {
    const char *who = s->path ? s->path : "model";
    if (p->n_seq < 1 || p->n_tok < 2 || p->accum < 1 || (int64_t)p->n_seq * p->n_tok > (1 << 22))
        return slm_fail(SLM_ERR_ARG, "train: batch %d x %d tokens, %d micro-batches", p->n_seq, p->n_tok, p->accum);
    if (p->n_tok > s->cfg.max_ctx || (t && p->n_tok > t->cfg.max_ctx))
        return slm_fail(SLM_ERR_ARG, "train: context %d is longer than the model's %d", p->n_tok,
                        p->n_tok > s->cfg.max_ctx ? s->cfg.max_ctx : t->cfg.max_ctx);
    if (p->n_steps < 1) return slm_fail(SLM_ERR_ARG, "train: %lld steps", (long long)p->n_steps);
    if (!(p->lr > 0) || p->warmup < 0 || !(p->final_frac >= 0 && p->final_frac <= 1))
        return slm_fail(SLM_ERR_ARG, "train: learning rate %g, warm-up %lld, final fraction %g", (double)p->lr,
                        (long long)p->warmup, (double)p->final_frac);
    if (d->ctx != p->n_tok)
        return slm_fail(SLM_ERR_ARG, "train: data packed for context %d, training at %d", d->ctx, p->n_tok);
    if (d->max_id >= s->cfg.n_vocab)
        return slm_fail(SLM_ERR_ARG, "%s: the data has token id %d, the model's vocabulary %d (tokenizer and model "
                        "do not match)", who, d->max_id, s->cfg.n_vocab);
    if (p->kd.terms) {
        if (!t) return slm_fail(SLM_ERR_ARG, "train: distillation needs a teacher");
        if (!(p->kd.lambda >= 0) || !(p->kd.tau > 0))
            return slm_fail(SLM_ERR_ARG, "train: KD weight %g, temperature %g", (double)p->kd.lambda, (double)p->kd.tau);
        if (t->cfg.n_vocab != s->cfg.n_vocab)
            return slm_fail(SLM_ERR_ARG, "train: teacher vocabulary %d, student %d", t->cfg.n_vocab, s->cfg.n_vocab);
        if ((p->kd.terms & SLM_KD_HIDDEN) && !p->kd.src)
            return slm_fail(SLM_ERR_ARG, "train: homotopic KD needs the teacher block of each student block");
    }
    if (p->elastic && p->n_drop > 0)
        return slm_fail(SLM_ERR_ARG, "train: super-network training sets the plan every step: no gradual removal");
    if (p->n_drop > 0 && p->drop_every <= 0)
        return slm_fail(SLM_ERR_ARG, "train: gradual removal needs the tokens between removals");
    const int L = s->cfg.n_layers;
    int kept = 0;
    for (int i = 0; i < L; i++) kept += s->blocks[i].kept;
    if (p->n_drop < 0 || p->n_drop >= kept)
        return slm_fail(SLM_ERR_ARG, "train: removing %d of %d kept blocks", p->n_drop, kept);
    for (int k = 0; k < p->n_drop; k++) {
        int b = p->drop_order[k];
        bool dup = false;
        for (int j = 0; j < k; j++) dup = dup || p->drop_order[j] == b;
        if (b < 0 || b >= L || !s->blocks[b].kept || dup)
            return slm_fail(SLM_ERR_ARG, "train: block %d cannot be removed (not a kept block, or listed twice)", b);
    }
    return SLM_OK;
}

slm_status slm_trainer_new(slm_model *student, slm_model *teacher, slm_train_data *data,
                           const slm_trainer_params *p, slm_trainer **out) {
    *out = NULL;
    slm_status st = check_params(student, teacher, data, p);
    if (st) return st;
    slm_trainer *tr = slm_calloc(1, sizeof *tr, "trainer");
    if (!tr) return SLM_ERR_NOMEM;
    tr->student = student;
    tr->teacher = p->kd.terms ? teacher : NULL;
    tr->data = data;
    tr->p = *p;
    const int L = student->cfg.n_layers, N = p->n_seq * p->n_tok;
    tr->drop_order = slm_calloc((size_t)p->n_drop + 1, sizeof(int), "removal order");
    tr->tok = slm_malloc(sizeof(int32_t) * (size_t)N, "batch tokens");
    tr->tgt = slm_malloc(sizeof(int32_t) * (size_t)N, "batch targets");
    if (!tr->drop_order || !tr->tok || !tr->tgt) st = SLM_ERR_NOMEM;
    if (!st && p->n_drop) memcpy(tr->drop_order, p->drop_order, sizeof(int) * (size_t)p->n_drop);
    tr->p.drop_order = tr->drop_order;
    if (!st && p->kd.src) {
        if (!(tr->src = slm_malloc(sizeof(int) * (size_t)L, "block map"))) st = SLM_ERR_NOMEM;
        else memcpy(tr->src, p->kd.src, sizeof(int) * (size_t)L);
    }
    tr->p.kd.src = tr->src;
    if (!st) st = p->elastic ? slm_trainable_new_elastic(student, &tr->tv) : slm_trainable_new(student, &tr->tv);
    for (int k = 0; !st && k < p->n_drop; k++) { /* to be removed: frozen from the start */
        char pre[48];
        snprintf(pre, sizeof pre, "model.layers.%d.", p->drop_order[k]);
        slm_trainable_set_frozen(tr->tv, pre, true);
    }
    if (!st) st = slm_optim_new(tr->tv, &p->optim, &tr->opt);
    if (!st) st = slm_trainer_student_ctx(tr);
    if (!st && tr->teacher) {
        slm_train_ctx_params tp = {.n_seq = p->n_seq, .n_tok = p->n_tok, .forward_only = true,
                                   .keep_attn_out = (p->kd.terms & SLM_KD_HIDDEN) != 0};
        st = slm_train_ctx_new(tr->teacher, NULL, &tp, &tr->tc);
    }
    if (st) {
        slm_trainer_free(tr);
        return st;
    }
    tr->sched = (slm_lr_schedule){.peak = p->lr, .warmup = p->warmup, .total = p->n_steps, .final_frac = p->final_frac};
    *out = tr;
    return SLM_OK;
}

void slm_trainer_free(slm_trainer *tr) {
    if (!tr) return;
    slm_train_ctx_free(tr->sc);
    slm_train_ctx_free(tr->tc);
    slm_optim_free(tr->opt);
    slm_trainable_free(tr->tv);
    free(tr->drop_order);
    free(tr->src);
    free(tr->tok);
    free(tr->tgt);
    free(tr);
}

slm_trainable *slm_trainer_view(slm_trainer *tr) { return tr->tv; }
int64_t slm_trainer_steps_done(const slm_trainer *tr) { return tr->step; }
int64_t slm_trainer_tokens_done(const slm_trainer *tr) { return tr->tokens; }

slm_status slm_trainer_step(slm_trainer *tr, slm_step_stats *out) {
    const slm_trainer_params *p = &tr->p;
    memset(out, 0, sizeof *out);
    out->dropped_block = -1;
    if (tr->step >= p->n_steps)
        return slm_fail(SLM_ERR_STATE, "train: all %lld steps are done", (long long)p->n_steps);
    double t0 = slm_time_now();
    slm_status st = SLM_OK;
    while (!st && tr->n_dropped < p->n_drop && tr->tokens >= (int64_t)(tr->n_dropped + 1) * p->drop_every) {
        out->dropped_block = tr->drop_order[tr->n_dropped];
        st = slm_trainer_drop_next(tr);
    }
    if (st) return st;
    const int B = p->n_seq, T = p->n_tok, M = p->accum;
    double denom = (double)B * T * M; /* packed text: every window position has a target */
    if (tr->data->labels) { /* instruction data: the response tokens of the whole batch */
        int64_t n = 0;
        for (int64_t k = 0; k < (int64_t)B * M && !st; k++) {
            st = slm_train_data_window(tr->data, tr->cursor + k, true, tr->tok, tr->tgt);
            for (int t = 0; t < T; t++) n += tr->tgt[t] >= 0;
        }
        denom = n > 0 ? (double)n : 1.0;
    }
    if (!st && p->plan) st = p->plan(p->plan_ud, tr->student, tr->step);
    if (st) {
        slm_error_prefix("train");
        return st;
    }
    out->lr = slm_lr_at(&tr->sched, tr->step);
    slm_trainable_zero_grad(tr->tv);
    for (int mi = 0; mi < M && !st; mi++) {
        for (int b = 0; b < B && !st; b++)
            st = slm_train_data_window(tr->data, tr->cursor++, true, tr->tok + (int64_t)b * T, tr->tgt + (int64_t)b * T);
        slm_kd_result r;
        if (!st) st = slm_train_microstep(tr->sc, tr->tc, tr->tok, tr->tgt, denom, &p->kd, &r);
        if (st) break;
        out->loss += r.loss;
        out->ce += r.ce;
        out->kd_logits += r.logits;
        out->kd_rel += r.rel / M;
        out->kd_hid += r.hid / M;
    }
    if (!st) st = slm_optim_step(tr->opt, tr->tv, out->lr, &out->grad_norm);
    if (st) {
        slm_error_prefix("train");
        return st;
    }
    tr->step++;
    tr->tokens += (int64_t)B * T * M;
    out->step = tr->step;
    out->tokens = tr->tokens;
    out->seconds = slm_time_now() - t0;
    return SLM_OK;
}

slm_status slm_trainer_validate(slm_trainer *tr, slm_train_data *val, int64_t max_windows, double *nll,
                                int64_t *n_tokens) {
    const int B = tr->p.n_seq, T = tr->p.n_tok;
    *nll = 0;
    *n_tokens = 0;
    if (val->ctx != T) return slm_fail(SLM_ERR_ARG, "train: validation data packed for %d tokens, not %d", val->ctx, T);
    if (val->max_id >= tr->student->cfg.n_vocab)
        return slm_fail(SLM_ERR_ARG, "%s: token id %d past the model's vocabulary %d", val->source, val->max_id,
                        tr->student->cfg.n_vocab);
    int64_t n = max_windows > 0 && max_windows < val->n_windows ? max_windows : val->n_windows;
    double sum = 0;
    int64_t count = 0;
    slm_loss_params lp = slm_loss_default_params();
    slm_status st = SLM_OK;
    for (int64_t w0 = 0; w0 < n && !st; w0 += B) {
        for (int b = 0; b < B && !st; b++) {
            int32_t *tk = tr->tok + (int64_t)b * T, *tg = tr->tgt + (int64_t)b * T;
            st = slm_train_data_window(val, w0 + b < n ? w0 + b : 0, false, tk, tg);
            if (w0 + b >= n) /* padding of the last batch: nothing scored */
                for (int t = 0; t < T; t++) tg[t] = -1;
        }
        slm_loss_result r;
        if (!st) st = slm_train_forward(tr->sc, tr->tok);
        if (!st) st = slm_train_loss(tr->sc, tr->tgt, NULL, &lp, &r);
        if (!st) {
            sum += r.ce * (double)r.n_pred;
            count += r.n_pred;
        }
    }
    if (st) return st;
    *nll = count ? sum / (double)count : 0;
    *n_tokens = count;
    return SLM_OK;
}
