/* libFuzzer target: the GGUF reader, then the whole GGUF model loader
 * (config from metadata, tensor checks, tokenizer from metadata). */
#include "formats/gguf.h"
#include "fuzz_io.h"
#include "slimlm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    if (!slm_fuzz_file_open(data, size, path, sizeof path)) return 0;
    slm_gguf *g = NULL;
    if (slm_gguf_open(path, &g) == SLM_OK) slm_gguf_close(g);
    slm_load_params lp = slm_load_default_params();
    slm_model *m = NULL;
    if (slm_model_load(path, &lp, &m) == SLM_OK) slm_model_free(m);
    slm_fuzz_file_close();
    return 0;
}
