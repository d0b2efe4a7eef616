/* Checkpoint loaders and writers behind slm_model_load / slm_model_save.
 * Formats know nothing of methods; they fill or read the one model. */
#ifndef SLM_LOADERS_H
#define SLM_LOADERS_H

#include "model/model.h"

/* GGUF file (formats/gguf.c + model/load_gguf.c). */
slm_status slm_model_load_gguf(const char *path, const slm_load_params *p, slm_model **out);
slm_status slm_model_save_gguf(const slm_model *m, const char *path, const slm_save_params *p);
/* HF directory, or a .safetensors file with config.json beside it. */
slm_status slm_model_load_hf(const char *path, const slm_load_params *p, slm_model **out);
slm_status slm_model_save_hf(const slm_model *m, const char *dir, const slm_save_params *p);

#endif
