/* SentencePiece-style BPE (LLaMA-1/2, Mistral, Phi-3, TinyLlama): the
 * fragment's spaces become ▁ (U+2581), a ▁ is put in front when the
 * vocabulary asks for a dummy prefix, the text starts as one symbol per
 * UTF-8 character, and the adjacent pair whose concatenation is the token
 * with the highest score merges first (leftmost on ties), as llama.cpp's
 * llm_tokenizer_spm does. A final symbol that is not a token is written as
 * its bytes through the <0xNN> tokens (byte fallback), or unk without them.
 * Loaded from tokenizer.json (merges present), pairs merge by merge rank
 * instead of score, which is what HF's BPE model does.
 */
#include "tokenizer/tok_internal.h"

#include <string.h>

static void spm_try_pair(const slm_tokenizer *t, slm_tok_scratch *s, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const slm_tok_sym *L = &s->syms[l], *R = &s->syms[r];
    int32_t id;
    float score;
    if (t->mhash) { /* from tokenizer.json: HF BPE, only listed merges, lowest rank first */
        int32_t rank;
        if (!slm_tok_merge_find(t, L->id, R->id, &rank, &id) || id < 0) return;
        score = -(float)rank;
    } else {
        id = slm_tok_lookup(t, s->buf + L->start, L->len + R->len);
        if (id < 0) return;
        score = t->scores ? t->scores[id] : 0.0f;
    }
    slm_tok_heap_push(s, (slm_tok_pair){score, l, r, (int32_t)L->len, (int32_t)R->len, id});
}

void slm_tok_spm_fragment(const slm_tokenizer *t, slm_tok_scratch *s, const char *p, size_t n, bool prefix,
                          slm_tok_out *out) {
    /* escaped text: at most 3 bytes per input byte, plus the prefix */
    if (!slm_tok_scratch_reserve(s, n + 1, n * 3 + 4)) return;
    char *b = s->buf;
    size_t k = 0;
    if (prefix) { memcpy(b, "\xe2\x96\x81", 3); k = 3; }
    for (size_t i = 0; i < n; i++) {
        if (p[i] == ' ') { memcpy(b + k, "\xe2\x96\x81", 3); k += 3; }
        else b[k++] = p[i];
    }
    if (k == 0) return;
    slm_tok_sym *y = s->syms;
    int32_t ns = 0;
    for (size_t off = 0; off < k;) {
        size_t len = slm_tok_utf8_len((uint8_t)b[off]);
        if (len > k - off) len = k - off;
        int32_t cid = t->mhash ? slm_tok_lookup(t, b + off, len) : -1; /* rank path merges by id */
        y[ns] = (slm_tok_sym){cid, ns - 1, -1, (uint32_t)off, (uint32_t)len};
        off += len;
        if (off < k) y[ns].next = ns + 1;
        ns++;
    }
    s->heap_n = 0;
    for (int32_t i = 1; i < ns; i++) spm_try_pair(t, s, i - 1, i);
    while (s->heap_n) {
        slm_tok_pair q = slm_tok_heap_pop(s);
        slm_tok_sym *L = &y[q.left], *R = &y[q.right];
        if (L->len == 0 || R->len == 0 || (int32_t)L->len != q.lid || (int32_t)R->len != q.rid) continue;
        L->len += R->len;
        L->id = q.result;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) y[R->next].prev = q.left;
        spm_try_pair(t, s, L->prev, q.left);
        spm_try_pair(t, s, q.left, L->next);
    }
    for (int32_t i = 0; i >= 0; i = y[i].next) {
        int32_t id = y[i].id >= 0 ? y[i].id : slm_tok_lookup(t, b + y[i].start, y[i].len);
        if (id >= 0) {
            slm_tok_push(out, id);
            continue;
        }
        for (uint32_t j = 0; j < y[i].len; j++) {
            int32_t bt = t->byte_tok[(uint8_t)b[y[i].start + j]];
            if (bt < 0) bt = t->ids[SLM_TOKID_UNK];
            if (bt >= 0) slm_tok_push(out, bt);
        }
    }
}
