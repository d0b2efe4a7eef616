#define _POSIX_C_SOURCE 200809L
/* slimlm nas finetune MODEL --data FILES --depths D --widths W --steps N -o OUT:
 * super-network fine-tuning (LLaMA-NAS item 2, InstaTune style) on
 * Alpaca-format instruction data. Every step trains one architecture of
 * the search space on an elastic view of the full tensors: even steps the
 * full network, odd steps a random sub-network (nas/finetune.h); the loss is
 * on the response tokens only (train/data_alpaca.c). The trainer of
 * src/train does the rest (AdamW, warm-up + cosine, clipping, atomic
 * checkpoints that --resume continues exactly). The output is the full
 * super-network, for slimlm nas search. docs/nas.md describes it. */
#include "commands.h"
#include "nas/finetune.h"
#include "options.h"
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct ft_args {
    const char *model, *data, *out, *depths, *widths, *order, *checkpoint, *data_dir;
    int64_t steps, tokens, warmup, checkpoint_every, max_steps, val_items, val_every;
    int batch, accum, ctx, threads, log_every;
    float lr, min_lr, clip, wd;
    uint64_t seed;
    bool resume, recompute, quiet;
} ft_args;

/* Mean response NLL of the held-out items under architecture widths[]
 * (NULL: the full network); the full plan is restored. */
static slm_status held_out(slm_trainer *tr, slm_model *m, slm_train_data *val, const int *widths, double *nll) {
    int64_t n = 0;
    int *full = slm_malloc(sizeof(int) * (size_t)m->cfg.n_layers, "architecture");
    if (!full) return SLM_ERR_NOMEM;
    slm_nas_full_widths(m, full);
    slm_status st = slm_nas_apply(m, widths ? widths : full);
    if (!st) st = slm_trainer_validate(tr, val, 0, nll, &n);
    slm_status st2 = slm_nas_apply(m, full);
    free(full);
    return st ? st : st2;
}

static void print_widths(FILE *f, const int *w, int L) {
    for (int i = 0; i < L; i++) fprintf(f, "%s%d", i ? "," : "", w[i]);
}

int slm_cmd_nas_finetune(int argc, char **argv) {
    ft_args a = {.depths = NULL, .widths = "50%,100%", .order = "first", .data_dir = SLM_DEFAULT_DATA_DIR,
                 .warmup = -1, .checkpoint_every = 50, .val_items = 50, .batch = 4, .accum = 1, .ctx = 256,
                 .log_every = 5, .lr = 5e-5f, .min_lr = 0.1f, .clip = 1.0f, .wd = 0.0f, .seed = 1};
    const slm_option opts[] = {
        {"data", 0, SLM_OPT_STRING, &a.data, "FILES", "Alpaca-format .json / .jsonl files (instruction, input, output), comma-separated"},
        {"depths", 0, SLM_OPT_STRING, &a.depths, "LIST", "allowed block counts (default 2/3, 5/6 and all blocks)"},
        {"widths", 0, SLM_OPT_STRING, &a.widths, "LIST", "allowed MLP widths: numbers or percentages of d_ff"},
        {"order", 0, SLM_OPT_STRING, &a.order, "ORDER", "blocks a depth keeps: first | max-gap | input | output | middle | both"},
        {"steps", 0, SLM_OPT_I64, &a.steps, "N", "optimizer steps (half full network, half sub-networks)"},
        {"tokens", 'n', SLM_OPT_I64, &a.tokens, "N", "or: window tokens to train on (steps = N / (batch x ctx x accum))"},
        {"output-model", 'o', SLM_OPT_STRING, &a.out, "OUT", "write the fine-tuned super-network: OUT.gguf, else safetensors"},
        {"val-items", 0, SLM_OPT_I64, &a.val_items, "N", "hold out the first N items (in file order) for validation"},
        {"val-every", 0, SLM_OPT_I64, &a.val_every, "STEPS", "validate every STEPS steps (0: start and end only)"},
        {"lr", 0, SLM_OPT_FLOAT, &a.lr, "LR", "peak learning rate (AdamW, betas 0.9, 0.95)"},
        {"min-lr", 0, SLM_OPT_FLOAT, &a.min_lr, "F", "cosine decay ends at F x the peak"},
        {"warmup", 0, SLM_OPT_I64, &a.warmup, "STEPS", "linear warm-up steps (-1: 5% of the steps)"},
        {"batch", 'b', SLM_OPT_INT, &a.batch, "B", "items per micro-batch"},
        {"accum", 0, SLM_OPT_INT, &a.accum, "M", "micro-batches per optimizer step"},
        {"ctx", 'c', SLM_OPT_INT, &a.ctx, "T", "tokens per item (longer items are cut, shorter padded)"},
        {"clip", 0, SLM_OPT_FLOAT, &a.clip, "NORM", "clip the global gradient norm (0: off)"},
        {"wd", 0, SLM_OPT_FLOAT, &a.wd, "WD", "decoupled weight decay (not on norms and biases)"},
        {"seed", 0, SLM_OPT_U64, &a.seed, "N", "item order and the sub-networks drawn"},
        {"recompute", 0, SLM_OPT_FLAG, &a.recompute, NULL, "recompute activations in the backward (less memory)"},
        {"checkpoint", 0, SLM_OPT_STRING, &a.checkpoint, "FILE", "checkpoint path (default OUT.ckpt)"},
        {"checkpoint-every", 0, SLM_OPT_I64, &a.checkpoint_every, "STEPS", "write the checkpoint every STEPS steps (0: never)"},
        {"resume", 0, SLM_OPT_FLAG, &a.resume, NULL, "continue from the checkpoint (same model, data and options)"},
        {"max-steps", 0, SLM_OPT_I64, &a.max_steps, "N", "stop after step N of the schedule (checkpoint written; 0: to the end)"},
        {"log-every", 0, SLM_OPT_INT, &a.log_every, "STEPS", "progress line every STEPS steps"},
        {"data-dir", 'd', SLM_OPT_STRING, &a.data_dir, "DIR", "data directory (relative --data paths)"},
        {"quiet", 'q', SLM_OPT_FLAG, &a.quiet, NULL, "no progress lines"},
        {"threads", 't', SLM_OPT_INT, &a.threads, "N", "threads (0: all cores)"},
        {0}};
    const slm_cli_spec spec = {"nas finetune", "MODEL --data FILES --steps N -o OUT [options]",
                               "Fine-tune the super-network (InstaTune style: the full network and a random "
                               "sub-network on alternate steps) on Alpaca-format instruction data.",
                               opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    a.model = pos[0];
    slm_status st = SLM_OK;
    if (!a.data) st = slm_fail(SLM_ERR_ARG, "nas finetune: --data FILES is required");
    else if (!a.out) st = slm_fail(SLM_ERR_ARG, "nas finetune: -o OUT is required");
    else if ((a.steps > 0) == (a.tokens > 0)) st = slm_fail(SLM_ERR_ARG, "nas finetune: give --steps N or --tokens N (> 0)");
    else if (a.batch < 1 || a.accum < 1 || a.ctx < 2 || a.val_items < 0 || a.log_every < 1 || a.checkpoint_every < 0 ||
             a.max_steps < 0 || a.val_every < 0)
        st = slm_fail(SLM_ERR_ARG, "nas finetune: --batch %d, --accum %d, --ctx %d, --val-items %lld or a step count "
                      "out of range", a.batch, a.accum, a.ctx, (long long)a.val_items);
    else if (!(a.lr > 0) || !(a.clip >= 0) || !(a.wd >= 0) || !(a.min_lr >= 0 && a.min_lr <= 1))
        st = slm_fail(SLM_ERR_ARG, "nas finetune: --lr %g, --clip %g, --wd %g, --min-lr %g out of range", (double)a.lr,
                      (double)a.clip, (double)a.wd, (double)a.min_lr);
    char ckpt_buf[4096];
    if (!a.checkpoint && a.out) {
        snprintf(ckpt_buf, sizeof ckpt_buf, "%s.ckpt", a.out);
        a.checkpoint = ckpt_buf;
    }
    struct stat sb;
    if (!st && a.resume && stat(a.checkpoint, &sb) != 0)
        st = slm_fail(SLM_ERR_IO, "%s: --resume: no checkpoint there", a.checkpoint);
    if (st) {
        free(pos);
        return slm_cli_report(st);
    }
    slm_set_threads(a.threads);

    slm_model *m = NULL;
    slm_train_data data = {0}, val = {0};
    slm_nas_space space = {0};
    slm_trainer *tr = NULL;
    int *genes = NULL, *widths = NULL, *small = NULL;
    slm_load_params lp = slm_load_default_params(); /* fp32: Q4_1 and the like are dequantised */
    st = slm_model_load(a.model, &lp, &m);
    if (!st && !slm_model_tokenizer(m)) st = slm_fail(SLM_ERR_ARG, "%s: the model has no tokenizer", a.model);
    const int L = m ? m->cfg.n_layers : 0;
    char dbuf[96];
    if (!st && !a.depths) { /* the search's default: 2/3, 5/6 and all of the blocks */
        snprintf(dbuf, sizeof dbuf, "%d,%d,%d", (2 * L + 2) / 3, (5 * L + 5) / 6, L);
        a.depths = dbuf;
    }
    if (!st) st = slm_nas_space_parse(&space, L, m->cfg.d_ff, a.depths, a.widths, a.order);
    if (!st && (!(genes = slm_calloc((size_t)L + 1, sizeof *genes, "genes")) ||
                !(widths = slm_calloc((size_t)L, sizeof *widths, "widths")) ||
                !(small = slm_calloc((size_t)L, sizeof *small, "widths"))))
        st = SLM_ERR_NOMEM;
    if (!st) { /* the smallest sub-network of the space: the validation's second architecture */
        genes[0] = 0;
        st = slm_nas_decode(&space, genes, small);
    }
    const slm_tokenizer *tok = m ? slm_model_tokenizer(m) : NULL;
    if (!st) st = slm_train_data_load_alpaca(tok, a.data, a.data_dir, a.ctx, a.seed, a.val_items, 0, &data);
    if (!st && a.val_items > 0)
        st = slm_train_data_load_alpaca(tok, a.data, a.data_dir, a.ctx, 0, 0, a.val_items, &val);
    slm_nas_ft_plan plan = {.space = &space, .seed = a.seed, .genes = genes, .widths = widths};
    slm_trainer_params tp = slm_trainer_default_params();
    const int64_t per_step = (int64_t)a.batch * a.ctx * a.accum;
    if (!st) {
        tp.n_seq = a.batch;
        tp.n_tok = a.ctx;
        tp.accum = a.accum;
        tp.n_steps = a.steps > 0 ? a.steps : (a.tokens + per_step - 1) / per_step;
        tp.lr = a.lr;
        tp.final_frac = a.min_lr;
        tp.warmup = a.warmup >= 0 ? a.warmup : tp.n_steps / 20;
        tp.optim.clip_norm = a.clip;
        tp.optim.weight_decay = a.wd;
        tp.recompute = a.recompute;
        tp.elastic = true;
        tp.plan = slm_nas_ft_apply;
        tp.plan_ud = &plan;
        if (tp.warmup > tp.n_steps)
            st = slm_fail(SLM_ERR_ARG, "nas finetune: --warmup %lld is longer than the run (%lld steps)",
                          (long long)tp.warmup, (long long)tp.n_steps);
    }
    if (!st) st = slm_trainer_new(m, NULL, &data, &tp, &tr);
    if (!st && a.resume) st = slm_trainer_resume(tr, a.checkpoint);
    const int64_t first = tr ? slm_trainer_steps_done(tr) : 0;
    const int64_t stop = a.max_steps > 0 && a.max_steps < tp.n_steps ? a.max_steps : tp.n_steps;
    if (!st && !a.quiet) {
        fprintf(stderr, "nas finetune: %lld training items (%lld cut at %d tokens, %lld left out), %lld held out; "
                "space: depths %s, widths %s (%.3g sub-networks); %lld steps of %d x %d x %d, lr %g, warm-up %lld%s\n",
                (long long)data.n_windows, (long long)data.n_truncated, a.ctx, (long long)data.n_skipped,
                (long long)val.n_windows, a.depths, a.widths, slm_nas_space_size(&space), (long long)tp.n_steps,
                a.batch, a.accum, a.ctx, (double)a.lr, (long long)tp.warmup, a.resume ? " (resumed)" : "");
        if (a.resume) fprintf(stderr, "resumed at step %lld\n", (long long)first);
    }
    double v_full0 = NAN, v_small0 = NAN, v_full = NAN, v_small = NAN;
    if (!st && val.n_windows) {
        st = held_out(tr, m, &val, NULL, &v_full0);
        if (!st) st = held_out(tr, m, &val, small, &v_small0);
        if (!st && !a.quiet)
            fprintf(stderr, "held-out @ step %lld: full %.4f  smallest sub-network %.4f\n", (long long)first, v_full0,
                    v_small0);
    }
    double t0 = slm_time_now(), ce_full = 0, ce_sub = 0;
    int n_full = 0, n_sub = 0;
    while (!st && slm_trainer_steps_done(tr) < stop) {
        slm_step_stats s;
        if ((st = slm_trainer_step(tr, &s))) break;
        if (plan.sub) ce_sub += s.ce, n_sub++;
        else ce_full += s.ce, n_full++;
        double el = slm_time_now() - t0;
        if (!a.quiet && (s.step % a.log_every == 0 || s.step == stop || s.step == first + 1)) {
            int kept = 0;
            for (int i = 0; i < L; i++) kept += widths[i] > 0;
            fprintf(stderr, "step %lld/%lld  %s (%d blocks)  ce %.4f  lr %.3g  |g| %.3f  %.1f s/step\n",
                    (long long)s.step, (long long)tp.n_steps, plan.sub ? "sub " : "full", kept, s.ce, (double)s.lr,
                    s.grad_norm, el / (double)(s.step - first));
        }
        if (val.n_windows && a.val_every > 0 && s.step % a.val_every == 0 && s.step != stop) {
            double f, sm;
            st = held_out(tr, m, &val, NULL, &f);
            if (!st) st = held_out(tr, m, &val, small, &sm);
            if (!st && !a.quiet) fprintf(stderr, "held-out @ step %lld: full %.4f  smallest %.4f\n", (long long)s.step, f, sm);
        }
        if (!st && ((a.checkpoint_every > 0 && s.step % a.checkpoint_every == 0) || (s.step == stop && stop < tp.n_steps))) {
            st = slm_trainer_save(tr, a.checkpoint);
            if (!st && !a.quiet) fprintf(stderr, "checkpoint %s at step %lld\n", a.checkpoint, (long long)s.step);
        }
    }
    const int64_t last = tr ? slm_trainer_steps_done(tr) : 0;
    if (!st && m) { /* the super-network is the full plan */
        slm_nas_full_widths(m, widths);
        st = slm_nas_apply(m, widths);
    }
    if (!st && val.n_windows && last > first) {
        st = held_out(tr, m, &val, NULL, &v_full);
        if (!st) st = held_out(tr, m, &val, small, &v_small);
    }
    if (!st) {
        printf("steps %lld -> %lld in %.1f s; train CE: full-network steps %.4f (%d), sub-network steps %.4f (%d)\n",
               (long long)first, (long long)last, slm_time_now() - t0, n_full ? ce_full / n_full : NAN, n_full,
               n_sub ? ce_sub / n_sub : NAN, n_sub);
        if (val.n_windows) {
            printf("held-out response NLL (%lld items): full network %.4f -> %.4f; smallest sub-network (", 
                   (long long)val.n_windows, v_full0, v_full);
            print_widths(stdout, small, L);
            printf(") %.4f -> %.4f\n", v_small0, v_small);
        }
        st = slm_cli_save_model(m, a.out);
        if (!st && !a.quiet) fprintf(stderr, "wrote %s (search it with slimlm nas search %s ...)\n", a.out, a.out);
    }
    if (st) rc = slm_cli_report(st);
    slm_trainer_free(tr);
    slm_train_data_free(&data);
    slm_train_data_free(&val);
    slm_nas_space_free(&space);
    free(genes);
    free(widths);
    free(small);
    slm_model_free(m);
    free(pos);
    return rc;
}
