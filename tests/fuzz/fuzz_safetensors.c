/* libFuzzer target: the safetensors reader (header JSON, offsets, dtypes). */
#include "formats/safetensors.h"
#include "fuzz_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    if (!slm_fuzz_file_open(data, size, path, sizeof path)) return 0;
    slm_st_file *f = NULL;
    if (slm_st_open(path, &f) == SLM_OK) {
        slm_st_find(f, "model.norm.weight");
        slm_st_meta(f, "format");
        slm_st_close(f);
    }
    slm_fuzz_file_close();
    return 0;
}
