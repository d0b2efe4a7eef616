/* Training checkpoints: everything the next step of a run depends on, so
 * that a resumed run computes bit for bit what an uninterrupted one would.
 *
 * File layout (little-endian, as x86/ARM hosts write it; the magic rejects
 * anything else):
 *   offset size
 *   0      8    magic "SLMTRCK\0"
 *   8      4    u32 version (2; version 1 is read too, see below)
 *   12     4    u32 header size H (256)
 *   16     8    i64 optimizer steps done
 *   24     8    i64 data cursor: the next window number of the training order
 *   32     8    i64 tokens trained on
 *   40     8    u64 order seed (the order's RNG: epoch e's permutation is drawn
 *                   from (seed, e), so seed and cursor are its whole state)
 *   48     8    u64 data hash (FNV-1a of T and the packed tokens)
 *   56     8    i64 data tokens
 *   64     8    i64 steps of the whole run (the schedule's length)
 *   72     4    i32 T        76  4  i32 B        80  4  i32 M (accumulation)
 *   84     4    i32 optimizer kind (0 AdamW, 1 Lion)
 *   88     8    i64 optimizer step count t (bias corrections)
 *   96     4    i32 L (student blocks)   100 4 i32 tensors   104 8 i64 floats F
 *   112    4    u32 distillation terms (SLM_KD_*)
 *   116    4    u32 moment arrays (1 Lion, 2 AdamW)
 *   120    4    i32 blocks removed so far (gradual removal)
 *   124    4    u32 flags: bit 0 elastic view (super-network training)
 *   128    8    i64 units U (elastic: the view's n_units, else 0)
 *   136    120  zero
 *   H      L    u8 per block: 1 kept, 0 dropped
 *   ...    112  per tensor: name[96] (NUL-padded), i32 rows, i32 cols, u8 frozen, 7 zero bytes
 *   ...    4F   f32 weights (the view's flat array, tensor i at its offset)
 *   ...    4F   f32 first moment (AdamW m, Lion momentum)
 *   ...    4F   f32 second moment (AdamW v; absent for Lion)
 *   ...    8U   i64 per unit: optimizer steps it took part in (elastic only;
 *                   a unit is a tensor, or one MLP channel of gate/up/down)
 *   end-8  8    u64 FNV-1a of every byte before it
 * An elastic run's plan changes every step (set by the trainer's plan
 * function from the step number), so its kept bytes record the plan of the
 * last step and are not compared on resume.
 * Version 1 (before super-network training) is this layout with bytes
 * 124..255 zero and no per-unit block: it is read as a plain run's
 * checkpoint (flags 0, U 0), so plain runs resume across the change.
 * Version 2 added flags and U; the number was raised so that a slimlm that
 * knows only version 1 refuses an elastic file by its version, not by its
 * size. Any other version or header size is refused.
 * Written to a temporary file and renamed (slm_atomic_*). A resume first
 * reads the whole file to check size and checksum, then compares every
 * setting with the running trainer, and only then overwrites its state.
 */
#define _POSIX_C_SOURCE 200809L
#include "train/trainer_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CK_HEADER = 256, CK_TENSOR = 112, CK_VERSION = 2, CK_VERSION_PLAIN = 1 };
static const char k_magic[8] = "SLMTRCK";

typedef struct ck_header {
    int64_t step, cursor, tokens;
    uint64_t seed, data_hash;
    int64_t data_tokens, n_steps;
    int32_t T, B, M, opt_kind;
    int64_t opt_t;
    int32_t L, n_tensors;
    int64_t n_floats;
    uint32_t kd_terms, n_moments;
    int32_t n_dropped;
    uint32_t flags;
    int64_t n_units;
} ck_header;

static void put(unsigned char *buf, size_t off, const void *v, size_t n) { memcpy(buf + off, v, n); }
static void get(const unsigned char *buf, size_t off, void *v, size_t n) { memcpy(v, buf + off, n); }

static void header_pack(const ck_header *h, unsigned char *b) {
    uint32_t version = CK_VERSION, hsize = CK_HEADER;
    memset(b, 0, CK_HEADER);
    put(b, 0, k_magic, 8);
    put(b, 8, &version, 4);
    put(b, 12, &hsize, 4);
    put(b, 16, &h->step, 8);
    put(b, 24, &h->cursor, 8);
    put(b, 32, &h->tokens, 8);
    put(b, 40, &h->seed, 8);
    put(b, 48, &h->data_hash, 8);
    put(b, 56, &h->data_tokens, 8);
    put(b, 64, &h->n_steps, 8);
    put(b, 72, &h->T, 4);
    put(b, 76, &h->B, 4);
    put(b, 80, &h->M, 4);
    put(b, 84, &h->opt_kind, 4);
    put(b, 88, &h->opt_t, 8);
    put(b, 96, &h->L, 4);
    put(b, 100, &h->n_tensors, 4);
    put(b, 104, &h->n_floats, 8);
    put(b, 112, &h->kd_terms, 4);
    put(b, 116, &h->n_moments, 4);
    put(b, 120, &h->n_dropped, 4);
    put(b, 124, &h->flags, 4);
    put(b, 128, &h->n_units, 8);
}

static void header_unpack(const unsigned char *b, ck_header *h) {
    get(b, 16, &h->step, 8);
    get(b, 24, &h->cursor, 8);
    get(b, 32, &h->tokens, 8);
    get(b, 40, &h->seed, 8);
    get(b, 48, &h->data_hash, 8);
    get(b, 56, &h->data_tokens, 8);
    get(b, 64, &h->n_steps, 8);
    get(b, 72, &h->T, 4);
    get(b, 76, &h->B, 4);
    get(b, 80, &h->M, 4);
    get(b, 84, &h->opt_kind, 4);
    get(b, 88, &h->opt_t, 8);
    get(b, 96, &h->L, 4);
    get(b, 100, &h->n_tensors, 4);
    get(b, 104, &h->n_floats, 8);
    get(b, 112, &h->kd_terms, 4);
    get(b, 116, &h->n_moments, 4);
    get(b, 120, &h->n_dropped, 4);
    get(b, 124, &h->flags, 4);
    get(b, 128, &h->n_units, 8);
}

static ck_header trainer_header(const slm_trainer *tr) {
    const slm_optim_params *op = slm_optim_get_params(tr->opt);
    return (ck_header){.step = tr->step, .cursor = tr->cursor, .tokens = tr->tokens, .seed = tr->data->seed,
                       .data_hash = tr->data->hash, .data_tokens = tr->data->n_tokens, .n_steps = tr->p.n_steps,
                       .T = tr->p.n_tok, .B = tr->p.n_seq, .M = tr->p.accum, .opt_kind = (int32_t)op->kind,
                       .opt_t = slm_optim_steps(tr->opt), .L = tr->student->cfg.n_layers,
                       .n_tensors = tr->tv->n_tensors, .n_floats = tr->tv->n_floats, .kd_terms = tr->p.kd.terms,
                       .n_moments = op->kind == SLM_OPTIM_ADAMW ? 2u : 1u, .n_dropped = tr->n_dropped,
                       .flags = tr->tv->elastic ? 1u : 0u, .n_units = tr->tv->elastic ? tr->tv->n_units : 0};
}

static void tensor_pack(const slm_train_tensor *t, unsigned char *b) {
    memset(b, 0, CK_TENSOR);
    memcpy(b, t->name, strnlen(t->name, 95));
    int32_t rows = t->rows, cols = t->cols;
    put(b, 96, &rows, 4);
    put(b, 100, &cols, 4);
    b[104] = t->frozen ? 1 : 0;
}

/* ---- save ---------------------------------------------------------------------------------------- */

typedef struct hashed_out {
    slm_atomic_file af;
    uint64_t h;
} hashed_out;

static slm_status out_write(hashed_out *o, const void *p, size_t n) {
    o->h = slm_fnv1a(o->h, p, n);
    return slm_atomic_write(&o->af, p, n);
}

slm_status slm_trainer_save(const slm_trainer *tr, const char *path) {
    hashed_out o = {.h = 0xcbf29ce484222325ull};
    slm_status st = slm_atomic_open(path, &o.af);
    if (st) return st;
    ck_header h = trainer_header(tr);
    unsigned char hb[CK_HEADER], tb[CK_TENSOR];
    header_pack(&h, hb);
    st = out_write(&o, hb, CK_HEADER);
    for (int i = 0; i < h.L && !st; i++) {
        unsigned char k = tr->student->blocks[i].kept ? 1 : 0;
        st = out_write(&o, &k, 1);
    }
    for (int i = 0; i < h.n_tensors && !st; i++) {
        tensor_pack(&tr->tv->t[i], tb);
        st = out_write(&o, tb, CK_TENSOR);
    }
    const size_t bytes = sizeof(float) * (size_t)h.n_floats;
    if (!st) st = out_write(&o, tr->tv->t[0].w, bytes); /* the view's values are one array */
    for (uint32_t k = 0; k < h.n_moments && !st; k++) st = out_write(&o, slm_optim_moment(tr->opt, (int)k), bytes);
    int64_t n_units = 0, *ut = slm_optim_unit_steps(tr->opt, &n_units);
    if (!st && h.n_units) st = out_write(&o, ut, sizeof(int64_t) * (size_t)n_units);
    if (!st) st = slm_atomic_write(&o.af, &o.h, sizeof o.h);
    if (st) {
        slm_atomic_abort(&o.af);
        return st;
    }
    return slm_atomic_commit(&o.af);
}

/* ---- resume -------------------------------------------------------------------------------------- */

static slm_status read_all(FILE *f, const char *path, void *p, size_t n, uint64_t *h) {
    if (fread(p, 1, n, f) != n) return slm_fail(SLM_ERR_FORMAT, "%s: checkpoint truncated", path);
    if (h) *h = slm_fnv1a(*h, p, n);
    return SLM_OK;
}

/* Size and checksum of the whole file, before anything is believed. */
static slm_status verify(FILE *f, const char *path, int64_t want_size) {
    if (fseek(f, 0, SEEK_END) != 0) return slm_fail(SLM_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    long size = ftell(f);
    if (size != want_size)
        return slm_fail(SLM_ERR_FORMAT, "%s: checkpoint is %ld bytes, its header says %lld (truncated or not this "
                        "run's)", path, size, (long long)want_size);
    rewind(f);
    unsigned char *buf = slm_malloc(1 << 20, "checkpoint buffer");
    if (!buf) return SLM_ERR_NOMEM;
    uint64_t h = 0xcbf29ce484222325ull, stored = 0;
    int64_t left = want_size - 8;
    slm_status st = SLM_OK;
    while (left > 0 && !st) {
        size_t n = left > (1 << 20) ? (size_t)1 << 20 : (size_t)left;
        st = read_all(f, path, buf, n, &h);
        left -= (int64_t)n;
    }
    free(buf);
    if (!st) st = read_all(f, path, &stored, 8, NULL);
    if (!st && stored != h) st = slm_fail(SLM_ERR_FORMAT, "%s: checkpoint checksum mismatch (corrupt file)", path);
    rewind(f);
    return st;
}

#define DIFFER(what, fmt, a, b) \
    slm_fail(SLM_ERR_ARG, "%s: checkpoint made with " what " " fmt ", this run has " fmt, path, a, b)

static slm_status compare(const ck_header *c, const ck_header *r, const char *path) {
    if (c->data_hash != r->data_hash || c->data_tokens != r->data_tokens || c->T != r->T)
        return slm_fail(SLM_ERR_ARG, "%s: checkpoint made on other training data or context (%lld tokens at ctx %d; "
                        "this run: %lld at ctx %d)", path, (long long)c->data_tokens, c->T, (long long)r->data_tokens,
                        r->T);
    if (c->seed != r->seed) return DIFFER("--seed", "%llu", (unsigned long long)c->seed, (unsigned long long)r->seed);
    if (c->B != r->B) return DIFFER("--batch", "%d", c->B, r->B);
    if (c->M != r->M) return DIFFER("--accum", "%d", c->M, r->M);
    if (c->n_steps != r->n_steps) return DIFFER("a schedule of", "%lld steps", (long long)c->n_steps, (long long)r->n_steps);
    if (c->opt_kind != r->opt_kind) return DIFFER("optimizer", "%d", c->opt_kind, r->opt_kind);
    if (c->kd_terms != r->kd_terms) return DIFFER("distillation terms", "%u", c->kd_terms, r->kd_terms);
    if (c->flags != r->flags || c->n_units != r->n_units)
        return slm_fail(SLM_ERR_ARG, "%s: checkpoint of a %s run, this run is %s", path,
                        c->flags & 1 ? "super-network (elastic)" : "plain", r->flags & 1 ? "super-network" : "plain");
    if (c->L != r->L || c->n_tensors != r->n_tensors || c->n_floats != r->n_floats)
        return slm_fail(SLM_ERR_ARG, "%s: checkpoint of another model shape (%d blocks, %d tensors, %lld parameters; "
                        "this run %d, %d, %lld)", path, c->L, c->n_tensors, (long long)c->n_floats, r->L, r->n_tensors,
                        (long long)r->n_floats);
    if (c->step > c->n_steps || c->cursor < 0 || c->n_dropped < 0)
        return slm_fail(SLM_ERR_FORMAT, "%s: checkpoint at step %lld of %lld", path, (long long)c->step,
                        (long long)c->n_steps);
    return SLM_OK;
}

slm_status slm_trainer_resume(slm_trainer *tr, const char *path) {
    if (tr->step != 0 || tr->n_dropped != 0)
        return slm_fail(SLM_ERR_STATE, "%s: a checkpoint resumes into a trainer that has not stepped", path);
    FILE *f = fopen(path, "rb");
    if (!f) return slm_fail(SLM_ERR_IO, "%s: cannot open checkpoint: %s", path, strerror(errno));
    unsigned char hb[CK_HEADER], tb[CK_TENSOR], want[CK_TENSOR];
    ck_header c = {0}, r = trainer_header(tr);
    slm_status st = read_all(f, path, hb, CK_HEADER, NULL);
    uint32_t version = 0, hsize = 0;
    if (!st) {
        get(hb, 8, &version, 4);
        get(hb, 12, &hsize, 4);
        if (memcmp(hb, k_magic, 8) != 0) st = slm_fail(SLM_ERR_FORMAT, "%s: not a slimlm training checkpoint", path);
        else if ((version != CK_VERSION && version != CK_VERSION_PLAIN) || hsize != CK_HEADER)
            st = slm_fail(SLM_ERR_UNSUPPORTED, "%s: checkpoint version %u with a %u-byte header (this slimlm reads "
                          "versions %d and %d, %d bytes)", path, version, hsize, CK_VERSION_PLAIN, CK_VERSION, CK_HEADER);
    }
    if (!st) {
        header_unpack(hb, &c);
        if (version == CK_VERSION_PLAIN) c.flags = 0, c.n_units = 0; /* reserved (zero) in version 1 */
        if (c.L < 1 || c.L > (1 << 16) || c.n_tensors < 1 || c.n_tensors > (1 << 20) || c.n_floats < 1 ||
            c.n_floats > ((int64_t)1 << 40) || c.n_moments < 1 || c.n_moments > 2 || c.n_units < 0 ||
            c.n_units > ((int64_t)1 << 32))
            st = slm_fail(SLM_ERR_FORMAT, "%s: checkpoint header out of range", path);
    }
    if (!st)
        st = verify(f, path, CK_HEADER + c.L + (int64_t)c.n_tensors * CK_TENSOR +
                                 (int64_t)(1 + c.n_moments) * 4 * c.n_floats + 8 * c.n_units + 8);
    if (!st) st = compare(&c, &r, path);
    if (!st && fseek(f, CK_HEADER, SEEK_SET) != 0) st = slm_fail(SLM_ERR_IO, "%s: cannot seek", path);
    /* removed blocks: a prefix of this run's removal order */
    unsigned char *kept = st ? NULL : slm_malloc((size_t)c.L, "checkpoint plan");
    if (!st && !kept) st = SLM_ERR_NOMEM;
    if (!st) st = read_all(f, path, kept, (size_t)c.L, NULL);
    if (!st && c.n_dropped > tr->p.n_drop)
        st = slm_fail(SLM_ERR_ARG, "%s: checkpoint removed %d blocks, this run removes at most %d", path, c.n_dropped,
                      tr->p.n_drop);
    for (int i = 0; i < c.L && !st; i++) {
        bool removed = false;
        for (int k = 0; k < c.n_dropped; k++) removed = removed || tr->drop_order[k] == i;
        if (!tr->p.elastic && (kept[i] != 0) != (tr->student->blocks[i].kept && !removed))
            st = slm_fail(SLM_ERR_ARG, "%s: block %d is %s in the checkpoint; this run's plan and removal order "
                          "disagree (--drop, --strategy)", path, i, kept[i] ? "kept" : "dropped");
    }
    free(kept);
    for (int i = 0; i < c.n_tensors && !st; i++) {
        st = read_all(f, path, tb, CK_TENSOR, NULL);
        tensor_pack(&tr->tv->t[i], want);
        if (!st && memcmp(tb, want, 104) != 0) {
            int32_t rows, cols;
            get(tb, 96, &rows, 4);
            get(tb, 100, &cols, 4);
            tb[95] = 0;
            st = slm_fail(SLM_ERR_ARG, "%s: checkpoint tensor %d is %s [%d x %d], this run has %s [%d x %d]", path, i,
                          (const char *)tb, rows, cols, tr->tv->t[i].name, tr->tv->t[i].rows, tr->tv->t[i].cols);
        }
        else if (!st && tb[104] != want[104])
            st = slm_fail(SLM_ERR_ARG, "%s: %s is %s in the checkpoint, %s in this run (--freeze differs)", path,
                          tr->tv->t[i].name, tb[104] ? "frozen" : "trained", want[104] ? "frozen" : "trained");
    }
    /* everything checked: take the state */
    const size_t bytes = sizeof(float) * (size_t)c.n_floats;
    if (!st) st = read_all(f, path, tr->tv->t[0].w, bytes, NULL);
    for (uint32_t k = 0; k < c.n_moments && !st; k++) st = read_all(f, path, slm_optim_moment(tr->opt, (int)k), bytes, NULL);
    int64_t n_units = 0, *ut = slm_optim_unit_steps(tr->opt, &n_units);
    if (!st && c.n_units) st = read_all(f, path, ut, sizeof(int64_t) * (size_t)n_units, NULL);
    fclose(f);
    while (!st && tr->n_dropped < c.n_dropped) st = slm_trainer_drop_next(tr);
    if (st) return st;
    slm_optim_set_steps(tr->opt, c.opt_t);
    tr->step = c.step;
    tr->cursor = c.cursor;
    tr->tokens = c.tokens;
    return SLM_OK;
}
