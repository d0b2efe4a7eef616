/* libFuzzer target: random bytes through SmolLM2's tokenizer (or the GGUF
 * named by $SLM_FUZZ_VOCAB). Must not crash; every id must be in range; for
 * valid UTF-8 without special parsing, decode(encode(x)) must equal x
 * unless x has a byte the vocabulary has no token for (SmolLM2 lacks 21,
 * e.g. 0x04, 0x1D, 0xF1; llama.cpp and HF drop those bytes too). */
#include "formats/gguf.h"
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static slm_tokenizer *g_tok;

static bool utf8_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!l || i + l > n) return false;
        uint32_t cp = l == 1 ? c : c & (0x3Fu >> (l - 1));
        for (size_t k = 1; k < l; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((l == 2 && cp < 0x80) || (l == 3 && cp < 0x800) || (l == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += l;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tok) {
        const char *p = getenv("SLM_FUZZ_VOCAB");
        if (!p) p = SLM_DEFAULT_MODEL_CACHE "/SmolLM2-135M-Instruct.Q4_1.gguf";
        slm_gguf *g;
        if (slm_gguf_open(p, &g) || slm_tokenizer_load_gguf(g, p, &g_tok)) abort();
        slm_gguf_close(g);
    }
    bool special = size && (data[0] & 1);
    int32_t *ids;
    size_t n;
    if (slm_tokenizer_encode(g_tok, (const char *)data, size, true, special, &ids, &n) != SLM_OK) abort();
    /* Pieces can be long (SmolLM2 has an 80-'#' token, up to 162 bytes):
     * size each one first so a short buffer can't hide a mismatch. */
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= slm_tokenizer_n_vocab(g_tok)) abort();
        int need = slm_token_to_piece(g_tok, ids[i], NULL, 0);
        cap += (size_t)(need < 0 ? -need : need);
    }
    char *out = malloc(cap + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && slm_tokenizer_adds_bos(g_tok)) continue;
        int m = slm_token_to_piece(g_tok, ids[i], out + k, (int)(cap - k));
        if (m < 0) abort();
        k += (size_t)m;
    }
    bool all_bytes = true;
    for (size_t i = 0; i < size; i++) all_bytes &= g_tok->byte_tok[data[i]] >= 0;
    if (!special && all_bytes && utf8_valid(data, size) && (k != size || memcmp(out, data, size) != 0)) abort();
    free(out);
    free(ids);
    return 0;
}
