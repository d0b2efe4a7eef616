/* Tokenizer loading (internal). The encode/decode API is public (slimlm.h).
 * Owner: the tokenizer module (issue #3). */
#ifndef SLM_TOKENIZER_H
#define SLM_TOKENIZER_H

#include "slimlm.h"

struct slm_gguf;       /* formats/gguf.h */
struct slm_gguf_writer;

/* From GGUF metadata (tokenizer.ggml.*). path names the file in errors. */
slm_status slm_tokenizer_load_gguf(const struct slm_gguf *g, const char *path, slm_tokenizer **out);
/* From an HF directory: tokenizer.json (+ tokenizer_config.json when present). */
slm_status slm_tokenizer_load_hf(const char *dir, slm_tokenizer **out);
/* From a GGUF file (its metadata), an HF directory, or a tokenizer.json
 * (its directory is read, for tokenizer_config.json). */
slm_status slm_tokenizer_load_path(const char *path, slm_tokenizer **out);
/* The same from memory: tokenizer.json text and optional tokenizer_config.json
 * text (NULL when absent); name is used in error messages. */
slm_status slm_tokenizer_load_hf_json(const char *json, size_t len, const char *cfg_json, size_t cfg_len,
                                      const char *name, slm_tokenizer **out);
/* Writes the tokenizer.ggml.* metadata so llama.cpp can load the GGUF. */
slm_status slm_tokenizer_write_gguf(const slm_tokenizer *t, struct slm_gguf_writer *w);
void slm_tokenizer_free(slm_tokenizer *t);

/* Like slm_tokenize, into a malloc'd array the caller frees (*ids; not NULL
 * on success, even when *n_ids is 0). */
slm_status slm_tokenizer_encode(const slm_tokenizer *t, const char *text, size_t len, bool add_special,
                                bool parse_special, int32_t **ids, size_t *n_ids);

#endif
