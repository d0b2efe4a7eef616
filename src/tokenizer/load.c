/* A tokenizer on its own, from whatever path a user gives (tokenizer.h). */
#define _POSIX_C_SOURCE 200809L
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

slm_status slm_tokenizer_load_path(const char *path, slm_tokenizer **out) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return slm_fail(SLM_ERR_IO, "%s: cannot open tokenizer", path);
    if (S_ISDIR(st.st_mode)) return slm_tokenizer_load_hf(path, out);
    size_t n = strlen(path);
    if (n > 5 && strcmp(path + n - 5, ".json") == 0) { /* tokenizer.json itself: load its directory */
        char *dir = strdup(path);
        if (!dir) return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else strcpy(dir, ".");
        slm_status s = slm_tokenizer_load_hf(dir, out);
        free(dir);
        return s;
    }
    slm_gguf *g = NULL;
    slm_status s = slm_gguf_open(path, &g);
    if (!s) s = slm_tokenizer_load_gguf(g, path, out);
    slm_gguf_close(g);
    return s;
}
