/* A trainable view of a model: writable fp32 copies of every parameter the
 * plan uses, their gradients, and the model re-pointed at the copies.
 *
 * Why copies: a loaded model's tensors are usually read-only mappings of
 * the checkpoint (or shared between plans through a row stride); training
 * needs contiguous writable tensors. The copies are allocated through the
 * model (slm_model_alloc_f32) so they live exactly as long as the pointers
 * into them; the originals stay until the model is freed (a mapping costs
 * no memory once its pages are dropped).
 *
 * Layout: all values are one model-owned allocation and all gradients one
 * view-owned allocation, tensor i at t[i].offset in both (the optimizers'
 * moment arrays use the same offsets).
 */
#include "train/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a tensor is copied from before the model is re-pointed. */
typedef struct tensor_src {
    const float *p;
    int64_t ld;
} tensor_src;

typedef struct builder {
    slm_trainable *tv;
    tensor_src *src;
    int cap;
} builder;

static int add(builder *bd, const char *name, int rows, int cols, const float *src, int64_t ld, bool no_decay) {
    slm_trainable *tv = bd->tv;
    if (tv->n_tensors == bd->cap) return -1; /* sized in advance; cannot happen */
    int i = tv->n_tensors++;
    slm_train_tensor *t = &tv->t[i];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->n = (int64_t)rows * cols;
    t->offset = tv->n_floats;
    t->no_decay = no_decay;
    t->unit_axis = 0;
    t->n_units = t->active = 1;
    tv->n_floats += t->n;
    bd->src[i] = (tensor_src){src, ld};
    return i;
}

static slm_status add_linear(builder *bd, int layer, slm_proj p, const slm_linear *l, slm_train_linear_ix *ix) {
    char pre[80], nm[96];
    snprintf(pre, sizeof pre, "model.layers.%d.%s", layer, slm_proj_hf_name(p));
    *ix = (slm_train_linear_ix){-1, -1, -1, -1};
    if (l->kind == SLM_LINEAR_DENSE) {
        snprintf(nm, sizeof nm, "%s.weight", pre);
        ix->w = add(bd, nm, l->n_out, l->n_in, l->w, l->ld_w, false);
    } else if (l->kind == SLM_LINEAR_LOWRANK) {
        snprintf(nm, sizeof nm, "%s.lr_a.weight", pre);
        ix->a = add(bd, nm, l->n_out, l->rank, l->a, l->rank, false);
        snprintf(nm, sizeof nm, "%s.lr_b.weight", pre);
        ix->b = add(bd, nm, l->rank, l->n_in, l->b, l->ld_b, false);
    } else {
        return slm_fail(SLM_ERR_UNSUPPORTED, "block %d: %s is a quantised (%s) linear: training needs fp32 weights "
                        "(load without keep_quantized)", layer, slm_proj_hf_name(p),
                        slm_linear_ops_get(l->kind) ? slm_linear_ops_get(l->kind)->name : "unknown");
    }
    if (l->bias) {
        snprintf(nm, sizeof nm, "%s.bias", pre);
        ix->bias = add(bd, nm, 1, l->n_out, l->bias, l->n_out, true);
    }
    return SLM_OK;
}

/* Lists every tensor of the plan with its source. */
static slm_status build_list(builder *bd) {
    slm_trainable *tv = bd->tv;
    const slm_model *m = tv->m;
    const slm_config *c = &m->cfg;
    char nm[96];
    tv->tok_embd = add(bd, "model.embed_tokens.weight", c->n_vocab, c->d_model, m->tok_embd, c->d_model, false);
    for (int i = 0; i < c->n_layers; i++) {
        const slm_block *b = &m->blocks[i];
        slm_train_block_ix *bx = &tv->blk[i];
        bx->attn_norm = bx->ffn_norm = -1;
        for (int p = 0; p < SLM_PROJ_COUNT; p++) bx->lin[p] = (slm_train_linear_ix){-1, -1, -1, -1};
        if (!b->kept) continue;
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", i);
        bx->attn_norm = add(bd, nm, 1, c->d_model, b->attn_norm, c->d_model, true);
        for (int p = SLM_PROJ_Q; p <= SLM_PROJ_O; p++) {
            slm_status st = add_linear(bd, i, (slm_proj)p, &b->lin[p], &bx->lin[p]);
            if (st) return st;
        }
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", i);
        bx->ffn_norm = add(bd, nm, 1, c->d_model, b->ffn_norm, c->d_model, true);
        for (int p = SLM_PROJ_GATE; p <= SLM_PROJ_DOWN; p++) {
            slm_status st = add_linear(bd, i, (slm_proj)p, &b->lin[p], &bx->lin[p]);
            if (st) return st;
        }
    }
    tv->out_norm = add(bd, "model.norm.weight", 1, c->d_model, m->out_norm, c->d_model, true);
    tv->lm_head = c->tied_embeddings || m->lm_head == m->tok_embd
                      ? tv->tok_embd
                      : add(bd, "lm_head.weight", c->n_vocab, c->d_model, m->lm_head, c->d_model, false);
    return SLM_OK;
}

static float *tw(const slm_trainable *tv, int i) { return i >= 0 ? tv->t[i].w : NULL; }

/* Points the model at the copies (strides become the copies' widths). */
static void repoint(slm_trainable *tv) {
    slm_model *m = tv->m;
    m->tok_embd = tw(tv, tv->tok_embd);
    m->out_norm = tw(tv, tv->out_norm);
    m->lm_head = tw(tv, tv->lm_head);
    for (int i = 0; i < m->cfg.n_layers; i++) {
        slm_block *b = &m->blocks[i];
        const slm_train_block_ix *bx = &tv->blk[i];
        if (!b->kept) continue;
        b->attn_norm = tw(tv, bx->attn_norm);
        b->ffn_norm = tw(tv, bx->ffn_norm);
        for (int p = 0; p < SLM_PROJ_COUNT; p++) {
            slm_linear *l = &b->lin[p];
            const slm_train_linear_ix *ix = &bx->lin[p];
            if (l->kind == SLM_LINEAR_DENSE) {
                l->w = tw(tv, ix->w);
                l->ld_w = tv->t[ix->w].cols; /* n_in, except an elastic view's narrowed down projection */
            } else {
                l->a = tw(tv, ix->a);
                l->b = tw(tv, ix->b);
                l->ld_b = l->n_in;
            }
            if (l->bias) l->bias = tw(tv, ix->bias);
        }
    }
}

/* Units of the MLP tensors of an elastic view: a row of gate/up and a
 * column of down per channel, so a plan of width k uses the first k. */
static void elastic_units(slm_trainable *tv) {
    for (int i = 0; i < tv->m->cfg.n_layers; i++)
        for (int p = SLM_PROJ_GATE; p <= SLM_PROJ_DOWN; p++) {
            slm_train_tensor *t = &tv->t[tv->blk[i].lin[p].w];
            t->unit_axis = p == SLM_PROJ_DOWN ? 2 : 1;
            t->n_units = t->active = p == SLM_PROJ_DOWN ? t->cols : t->rows;
        }
    tv->n_units = 0;
    for (int i = 0; i < tv->n_tensors; i++) tv->n_units += tv->t[i].n_units;
}

static slm_status view_new(slm_model *m, bool elastic, slm_trainable **out) {
    *out = NULL;
    slm_status st = slm_model_validate(m);
    if (st) return st;
    const char *who = m->path ? m->path : "model";
    for (int i = 0; elastic && i < m->cfg.n_layers; i++) {
        const slm_block *b = &m->blocks[i];
        if (!b->kept || b->d_ff != m->cfg.d_ff)
            return slm_fail(SLM_ERR_ARG, "%s: an elastic view is made from the full plan (block %d is %s)", who, i,
                            b->kept ? "narrowed" : "dropped");
        for (int p = 0; p < SLM_PROJ_COUNT; p++)
            if (b->lin[p].kind != SLM_LINEAR_DENSE)
                return slm_fail(SLM_ERR_UNSUPPORTED, "%s: block %d: %s is not dense: an elastic view trains dense "
                                "fp32 linears only", who, i, slm_proj_hf_name((slm_proj)p));
    }
    if (m->tok_embd_i8)
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: the token embedding is int8: training needs fp32 weights "
                        "(quantise after training)", who);
    if (m->lm_head_q.qw)
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: the lm head is quantised: training needs fp32 weights "
                        "(load without keep_quantized)", who);
    slm_trainable *tv = slm_calloc(1, sizeof *tv, "trainable view");
    if (!tv) return SLM_ERR_NOMEM;
    tv->m = m;
    int cap = 3 + m->cfg.n_layers * (2 + 3 * SLM_PROJ_COUNT);
    builder bd = {tv, slm_calloc((size_t)cap, sizeof(tensor_src), "tensor sources"), cap};
    tv->t = slm_calloc((size_t)cap, sizeof *tv->t, "trainable tensors");
    tv->blk = slm_calloc((size_t)m->cfg.n_layers, sizeof *tv->blk, "trainable blocks");
    if (!bd.src || !tv->t || !tv->blk) {
        free(bd.src);
        slm_trainable_free(tv);
        return SLM_ERR_NOMEM;
    }
    st = build_list(&bd);
    if (st) {
        slm_error_prefix(who);
        free(bd.src);
        slm_trainable_free(tv);
        return st;
    }
    float *w = slm_model_alloc_f32(m, (size_t)tv->n_floats, "trainable weights");
    tv->grad = slm_aligned_alloc((size_t)tv->n_floats * sizeof(float), "gradients");
    if (!w || !tv->grad) {
        free(bd.src);
        slm_trainable_free(tv);
        return SLM_ERR_NOMEM;
    }
    for (int i = 0; i < tv->n_tensors; i++) {
        slm_train_tensor *t = &tv->t[i];
        t->w = w + t->offset;
        t->g = tv->grad + t->offset;
        for (int r = 0; r < t->rows; r++)
            memcpy(t->w + (int64_t)r * t->cols, bd.src[i].p + (int64_t)r * bd.src[i].ld, (size_t)t->cols * sizeof(float));
    }
    free(bd.src);
    tv->elastic = elastic;
    tv->n_units = tv->n_tensors;
    if (elastic) elastic_units(tv);
    repoint(tv);
    slm_trainable_zero_grad(tv);
    *out = tv;
    return SLM_OK;
}

slm_status slm_trainable_new(slm_model *m, slm_trainable **out) { return view_new(m, false, out); }
slm_status slm_trainable_new_elastic(slm_model *m, slm_trainable **out) { return view_new(m, true, out); }

void slm_trainable_free(slm_trainable *tv) {
    if (!tv) return;
    free(tv->t);
    free(tv->blk);
    free(tv->grad);
    free(tv);
}

void slm_trainable_zero_grad(slm_trainable *tv) {
    memset(tv->grad, 0, (size_t)tv->n_floats * sizeof(float));
    if (tv->elastic) /* nothing has a gradient until a forward marks what its plan uses */
        for (int i = 0; i < tv->n_tensors; i++) tv->t[i].active = 0;
}

static void mark(slm_trainable *tv, int ix, int units) {
    if (ix >= 0 && tv->t[ix].active < units) tv->t[ix].active = units;
}

void slm_trainable_mark_plan(slm_trainable *tv) {
    if (!tv->elastic) return;
    const slm_model *m = tv->m;
    mark(tv, tv->tok_embd, 1);
    mark(tv, tv->out_norm, 1);
    mark(tv, tv->lm_head, 1);
    for (int i = 0; i < m->cfg.n_layers; i++) {
        const slm_train_block_ix *bx = &tv->blk[i];
        if (!m->blocks[i].kept) continue;
        mark(tv, bx->attn_norm, 1);
        mark(tv, bx->ffn_norm, 1);
        for (int p = 0; p < SLM_PROJ_COUNT; p++) {
            bool mlp = p >= SLM_PROJ_GATE;
            mark(tv, bx->lin[p].w, mlp ? m->blocks[i].d_ff : 1);
            mark(tv, bx->lin[p].bias, 1);
        }
    }
}

int slm_trainable_find(const slm_trainable *tv, const char *name) {
    for (int i = 0; i < tv->n_tensors; i++)
        if (strcmp(tv->t[i].name, name) == 0) return i;
    return -1;
}

int slm_trainable_set_frozen(slm_trainable *tv, const char *prefix, bool frozen) {
    size_t n = strlen(prefix);
    int hit = 0;
    for (int i = 0; i < tv->n_tensors; i++)
        if (strncmp(tv->t[i].name, prefix, n) == 0) {
            tv->t[i].frozen = frozen;
            hit++;
        }
    return hit;
}

/* ---- plan check ------------------------------------------------------------------------ */

static bool same(const slm_trainable *tv, int ix, const float *p, int rows, int cols) {
    if (ix < 0) return p == NULL;
    const slm_train_tensor *t = &tv->t[ix];
    return t->w == p && t->rows == rows && t->cols == cols;
}

static bool linear_matches(const slm_trainable *tv, const slm_train_linear_ix *ix, const slm_linear *l) {
    if (l->kind == SLM_LINEAR_DENSE) {
        if (!same(tv, ix->w, l->w, l->n_out, l->n_in) || ix->a >= 0 || l->ld_w != l->n_in) return false;
    } else if (l->kind == SLM_LINEAR_LOWRANK) {
        if (!same(tv, ix->a, l->a, l->n_out, l->rank) || !same(tv, ix->b, l->b, l->rank, l->n_in) ||
            l->ld_b != l->n_in)
            return false;
    } else {
        return false;
    }
    return same(tv, ix->bias, l->bias, 1, l->n_out);
}

/* An elastic view's linear: the same tensor, its full row stride, and
 * the plan's shape inside it (only MLP widths may be narrower). */
static bool elastic_linear_ok(const slm_trainable *tv, const slm_train_linear_ix *ix, const slm_linear *l, int p,
                              int d_ff) {
    if (l->kind != SLM_LINEAR_DENSE || ix->w < 0) return false;
    const slm_train_tensor *t = &tv->t[ix->w];
    int rows = p == SLM_PROJ_GATE || p == SLM_PROJ_UP ? d_ff : t->rows;
    int cols = p == SLM_PROJ_DOWN ? d_ff : t->cols;
    if (l->w != t->w || l->ld_w != t->cols || l->n_out != rows || l->n_in != cols || rows > t->rows ||
        cols > t->cols)
        return false;
    return ix->bias < 0 ? l->bias == NULL : l->bias == tv->t[ix->bias].w;
}

static slm_status elastic_check(const slm_trainable *tv, const char *who) {
    const slm_model *m = tv->m;
    for (int i = 0; i < m->cfg.n_layers; i++) {
        const slm_block *b = &m->blocks[i];
        const slm_train_block_ix *bx = &tv->blk[i];
        if (!b->kept) continue; /* dropped for this step: its tensors wait */
        if (b->attn_norm != tw(tv, bx->attn_norm) || b->ffn_norm != tw(tv, bx->ffn_norm))
            return slm_fail(SLM_ERR_STATE, "%s: block %d: norm weights replaced since the elastic view was made", who, i);
        for (int p = 0; p < SLM_PROJ_COUNT; p++)
            if (!elastic_linear_ok(tv, &bx->lin[p], &b->lin[p], p, b->d_ff))
                return slm_fail(SLM_ERR_STATE, "%s: block %d: %s is no longer the elastic view's tensor (replaced, "
                                "refactored or reshaped)", who, i, slm_proj_hf_name((slm_proj)p));
    }
    return SLM_OK;
}

slm_status slm_trainable_check(const slm_trainable *tv) {
    const slm_model *m = tv->m;
    const char *who = m->path ? m->path : "model";
    if (m->tok_embd != tw(tv, tv->tok_embd) || m->out_norm != tw(tv, tv->out_norm) ||
        m->lm_head != tw(tv, tv->lm_head))
        return slm_fail(SLM_ERR_STATE, "%s: embedding, final norm or lm head replaced since the trainable view was made",
                        who);
    if (tv->elastic) return elastic_check(tv, who);
    for (int i = 0; i < m->cfg.n_layers; i++) {
        const slm_block *b = &m->blocks[i];
        const slm_train_block_ix *bx = &tv->blk[i];
        if (!b->kept) {
            /* Dropped after the view was made (gradual removal): allowed once
             * its tensors are frozen, so no optimizer touches them. */
            int ixs[2 + 4 * SLM_PROJ_COUNT], n = 0;
            ixs[n++] = bx->attn_norm;
            ixs[n++] = bx->ffn_norm;
            for (int p = 0; p < SLM_PROJ_COUNT; p++) {
                ixs[n++] = bx->lin[p].w;
                ixs[n++] = bx->lin[p].a;
                ixs[n++] = bx->lin[p].b;
                ixs[n++] = bx->lin[p].bias;
            }
            for (int k = 0; k < n; k++)
                if (ixs[k] >= 0 && !tv->t[ixs[k]].frozen)
                    return slm_fail(SLM_ERR_STATE, "%s: block %d was dropped after the trainable view was made; "
                                    "freeze its tensors (prefix model.layers.%d.)", who, i, i);
            continue;
        }
        if (bx->attn_norm < 0)
            return slm_fail(SLM_ERR_STATE, "%s: block %d is kept but was dropped when the trainable view was made", who,
                            i);
        if (!same(tv, bx->attn_norm, b->attn_norm, 1, m->cfg.d_model) ||
            !same(tv, bx->ffn_norm, b->ffn_norm, 1, m->cfg.d_model))
            return slm_fail(SLM_ERR_STATE, "%s: block %d: norm weights replaced since the trainable view was made", who, i);
        for (int p = 0; p < SLM_PROJ_COUNT; p++)
            if (!linear_matches(tv, &bx->lin[p], &b->lin[p]))
                return slm_fail(SLM_ERR_STATE, "%s: block %d: %s changed (kind, shape, MLP width or tensor) since the "
                                "trainable view was made", who, i, slm_proj_hf_name((slm_proj)p));
    }
    return SLM_OK;
}
