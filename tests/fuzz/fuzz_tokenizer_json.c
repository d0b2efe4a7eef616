/* libFuzzer target: tokenizer.json text -> tokenizer; when it loads, a few
 * encodes (with and without special tokens) must not crash. */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    slm_tokenizer *t = NULL;
    if (slm_tokenizer_load_hf_json((const char *)data, size, NULL, 0, "tokenizer.json", &t) == SLM_OK) {
        static const char *const texts[] = {"Hello world 123", "<s> a</s>\n\n  x", "\xff\xfe caf\xc3\xa9"};
        for (int i = 0; i < 3; i++) {
            int32_t *ids;
            size_t n;
            for (int k = 0; k < 4; k++)
                if (slm_tokenizer_encode(t, texts[i], __builtin_strlen(texts[i]), k & 1, k & 2, &ids, &n) == SLM_OK) free(ids);
        }
        slm_tokenizer_free(t);
    }
    return 0;
}
