/* Hugging Face config.json <-> slm_config (internal API). The fields read,
 * their defaults and the accepted architectures are listed in hf_config.c. */
#ifndef SLM_HF_CONFIG_H
#define SLM_HF_CONFIG_H

#include "model/model.h"

/* Parses config.json text (len bytes) into *cfg and validates it. The
 * result has rope_layout HALVES (HF checkpoints rotate half-split pairs).
 * file names the file in errors: "x/config.json: missing field 'hidden_size'". */
slm_status slm_hf_config_parse(const char *text, size_t len, const char *file, slm_config *cfg);
/* Reads and parses the file at path. */
slm_status slm_hf_config_load(const char *path, slm_config *cfg);

/* config.json text for cfg, as transformers writes it (legacy rope_theta /
 * rope_scaling fields, which transformers 4 and 5 both read). torch_dtype is
 * "float32", "float16" or "bfloat16". Returns malloc'd text, or NULL with
 * the error set. */
char *slm_hf_config_write(const slm_config *cfg, const char *torch_dtype);

#endif
