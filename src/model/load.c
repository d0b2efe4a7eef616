/* slm_model_load / slm_model_save: pick the format from the path. */
#define _POSIX_C_SOURCE 200809L
#include "model/loaders.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

slm_status slm_model_load(const char *path, const slm_load_params *p, slm_model **out) {
    *out = NULL;
    slm_load_params def = slm_load_default_params();
    if (!p) p = &def;
    struct stat st;
    if (stat(path, &st) != 0) return slm_fail(SLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode) || has_suffix(path, ".safetensors") || has_suffix(path, ".json"))
        return slm_model_load_hf(path, p, out);
    /* Anything else must be GGUF: the magic decides, and the GGUF reader
     * reports a wrong magic with the file name. */
    return slm_model_load_gguf(path, p, out);
}

slm_save_params slm_save_default_params(void) {
    return (slm_save_params){.format = SLM_SAVE_GGUF, .dtype = SLM_DTYPE_F32};
}

slm_status slm_model_save(const slm_model *m, const char *path, const slm_save_params *p) {
    slm_save_params def = slm_save_default_params();
    if (!p) p = &def;
    if (p->format == SLM_SAVE_SAFETENSORS) return slm_model_save_hf(m, path, p);
    return slm_model_save_gguf(m, path, p);
}
