/* libFuzzer target: config.json -> slm_config, then the config checks. */
#include "formats/hf_config.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    slm_config cfg;
    if (slm_hf_config_parse((const char *)data, size, "config.json", &cfg) == SLM_OK)
        slm_config_validate(&cfg, "config.json");
    return 0;
}
