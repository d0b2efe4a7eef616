/* Byte-level BPE on one pre-tokenized piece, and the pair heap both BPE
 * kinds share.
 *
 * A piece of n raw bytes starts as n symbols, symbol i being the token of
 * the byte-level character of byte i. The adjacent pair with the lowest
 * merge rank is merged (leftmost first on ties, as llama.cpp and HF do)
 * until no adjacent pair has a merge. Symbols whose text is not a token
 * (a merge whose result is missing from the vocabulary) are emitted byte by
 * byte, as llama.cpp does.
 */
#include "tokenizer/tok_internal.h"

#include <string.h>

bool slm_tok_scratch_reserve(slm_tok_scratch *s, size_t n_syms, size_t n_buf) {
    if (n_syms > s->syms_cap) {
        size_t c = n_syms < 64 ? 64 : n_syms * 2;
        slm_tok_sym *v = realloc(s->syms, c * sizeof *v);
        if (!v) return !(s->oom = true);
        s->syms = v;
        s->syms_cap = c;
    }
    if (n_buf > s->buf_cap) {
        size_t c = n_buf < 256 ? 256 : n_buf * 2;
        char *b = realloc(s->buf, c);
        if (!b) return !(s->oom = true);
        s->buf = b;
        s->buf_cap = c;
    }
    return true;
}

/* a before b: higher score first, then the smaller left index */
static bool pair_before(const slm_tok_pair *a, const slm_tok_pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

void slm_tok_heap_push(slm_tok_scratch *s, slm_tok_pair p) {
    if (s->heap_n == s->heap_cap) {
        size_t c = s->heap_cap ? s->heap_cap * 2 : 64;
        slm_tok_pair *h = realloc(s->heap, c * sizeof *h);
        if (!h) { s->oom = true; return; }
        s->heap = h;
        s->heap_cap = c;
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_before(&p, &s->heap[up])) break;
        s->heap[i] = s->heap[up];
        i = up;
    }
    s->heap[i] = p;
}

slm_tok_pair slm_tok_heap_pop(slm_tok_scratch *s) {
    slm_tok_pair top = s->heap[0];
    slm_tok_pair last = s->heap[--s->heap_n];
    size_t n = s->heap_n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!pair_before(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static void bpe_try_pair(const slm_tokenizer *t, slm_tok_scratch *s, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    int32_t rank, res;
    if (!slm_tok_merge_find(t, s->syms[l].id, s->syms[r].id, &rank, &res)) return;
    slm_tok_heap_push(s, (slm_tok_pair){-(float)rank, l, r, s->syms[l].id, s->syms[r].id, res});
}

/* Byte-level text of raw bytes p[0..n) into s->buf; returns its length. */
static size_t byte_encode(slm_tok_scratch *s, const char *p, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)slm_tok_utf8_put(slm_tok_byte_to_cpt((uint8_t)p[i]), s->buf + k);
    return k;
}

/* Emits a symbol that is not a token: llama.cpp looks up each byte of its
 * byte-level text as a one-byte token. */
static void emit_fallback(const slm_tokenizer *t, slm_tok_scratch *s, const char *p, const slm_tok_sym *y,
                          slm_tok_out *out) {
    size_t k = byte_encode(s, p + y->start, y->len);
    for (size_t j = 0; j < k; j++) {
        int32_t id = slm_tok_lookup(t, s->buf + j, 1);
        if (id >= 0) slm_tok_push(out, id);
    }
}

void slm_tok_bpe_piece(const slm_tokenizer *t, slm_tok_scratch *s, const char *p, size_t n, slm_tok_out *out) {
    if (n == 0) return;
    if (!slm_tok_scratch_reserve(s, n, n * 2 + 8)) return;
    if (n == 1 && t->byte_tok[(uint8_t)p[0]] >= 0) { /* most common case: nothing to merge */
        slm_tok_push(out, t->byte_tok[(uint8_t)p[0]]);
        return;
    }
    if (t->ignore_merges) { /* llama3: a piece that is already a token stays whole */
        size_t k = byte_encode(s, p, n);
        int32_t id = slm_tok_lookup(t, s->buf, k);
        if (id >= 0) {
            slm_tok_push(out, id);
            return;
        }
    }
    slm_tok_sym *y = s->syms;
    for (size_t i = 0; i < n; i++)
        y[i] = (slm_tok_sym){t->byte_tok[(uint8_t)p[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, (uint32_t)i, 1};
    s->heap_n = 0;
    for (size_t i = 1; i < n; i++) bpe_try_pair(t, s, (int32_t)i - 1, (int32_t)i);
    while (s->heap_n) {
        slm_tok_pair b = slm_tok_heap_pop(s);
        slm_tok_sym *L = &y[b.left], *R = &y[b.right];
        /* stale: a side was merged away or grew since the pair was pushed */
        if (L->len == 0 || R->len == 0 || L->next != b.right || L->id != b.lid || R->id != b.rid) continue;
        L->len += R->len;
        L->id = b.result;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) y[R->next].prev = b.left;
        bpe_try_pair(t, s, L->prev, b.left);
        bpe_try_pair(t, s, b.left, L->next);
    }
    for (int32_t i = 0; i >= 0; i = y[i].next) {
        if (y[i].id >= 0) slm_tok_push(out, y[i].id);
        else emit_fallback(t, s, p, &y[i], out);
    }
}
