/* config.json of a Hugging Face LLaMA-family checkpoint.
 *
 * Architectures ("architectures"[0], else "model_type"):
 *   LlamaForCausalLM (llama), MistralForCausalLM (mistral),
 *   Qwen2ForCausalLM (qwen2: q/k/v always have biases). Others are refused
 *   naming the architecture.
 *
 * Fields (required unless a default is given):
 *   vocab_size, hidden_size, intermediate_size, num_hidden_layers,
 *   num_attention_heads                                   required
 *   num_key_value_heads        = num_attention_heads
 *   head_dim                   = hidden_size / num_attention_heads
 *   rms_norm_eps               = 1e-6
 *   rope_theta                 = 10000 (also read from rope_parameters, the
 *                                transformers 5 spelling)
 *   rope_scaling | rope_parameters: null, or {"rope_type" | "type":
 *       "default" | "linear" (factor) | "llama3" (factor, low_freq_factor,
 *       high_freq_factor, original_max_position_embeddings)}; others refused
 *   max_position_embeddings    = 2048 llama, 32768 qwen2, 131072 mistral
 *   tie_word_embeddings        = false (transformers' default for all three)
 *   attention_bias             = false (llama/mistral; q, k, v and o biases)
 *   bos_token_id, eos_token_id = none; an integer or a list (first is taken)
 *   sliding_window             mistral: int or null; qwen2: only when
 *                              use_sliding_window is true (recorded only)
 *   hidden_act must be "silu" and mlp_bias false when present.
 * Wrong JSON types are errors naming the field, never silently defaulted.
 */
#define _POSIX_C_SOURCE 200809L
#include "formats/hf_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct arch_row {
    const char *hf_name;   /* "architectures" entry */
    const char *model_type;
    slm_arch arch;
    int default_ctx;
} arch_row;

static const arch_row k_archs[] = {
    {"LlamaForCausalLM", "llama", SLM_ARCH_LLAMA, 2048},
    {"MistralForCausalLM", "mistral", SLM_ARCH_MISTRAL, 131072},
    {"Qwen2ForCausalLM", "qwen2", SLM_ARCH_QWEN2, 32768},
};
#define N_ARCHS (sizeof k_archs / sizeof k_archs[0])

static const char *json_type_name(const cJSON *j) {
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "invalid";
}

/* Integer field: absent or null gives def (or an error when required). */
static slm_status get_int(const cJSON *o, const char *key, bool required, int def, int *out, const char *file) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return slm_fail(SLM_ERR_FORMAT, "%s: missing field '%s'", file, key);
        *out = def;
        return SLM_OK;
    }
    if (!cJSON_IsNumber(j))
        return slm_fail(SLM_ERR_FORMAT, "%s: field '%s' must be an integer, not %s", file, key, json_type_name(j));
    double d = j->valuedouble;
    if (floor(d) != d || d < -2147483648.0 || d > 2147483647.0)
        return slm_fail(SLM_ERR_FORMAT, "%s: field '%s' = %g is not a 32-bit integer", file, key, d);
    *out = (int)d;
    return SLM_OK;
}

static slm_status get_float(const cJSON *o, const char *key, bool required, float def, float *out, const char *file) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return slm_fail(SLM_ERR_FORMAT, "%s: missing field '%s'", file, key);
        *out = def;
        return SLM_OK;
    }
    if (!cJSON_IsNumber(j))
        return slm_fail(SLM_ERR_FORMAT, "%s: field '%s' must be a number, not %s", file, key, json_type_name(j));
    if (!isfinite(j->valuedouble) || fabs(j->valuedouble) > 3.0e38)
        return slm_fail(SLM_ERR_FORMAT, "%s: field '%s' = %g out of range", file, key, j->valuedouble);
    *out = (float)j->valuedouble;
    return SLM_OK;
}

static slm_status get_bool(const cJSON *o, const char *key, bool def, bool *out, const char *file) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return SLM_OK;
    }
    if (!cJSON_IsBool(j))
        return slm_fail(SLM_ERR_FORMAT, "%s: field '%s' must be true or false, not %s", file, key, json_type_name(j));
    *out = cJSON_IsTrue(j);
    return SLM_OK;
}

/* bos/eos: an integer, a list of integers (the first is taken), or null. */
static slm_status get_token_id(const cJSON *o, const char *key, int32_t *out, const char *file) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = -1;
    if (!j || cJSON_IsNull(j)) return SLM_OK;
    if (cJSON_IsArray(j)) {
        if (!j->child) return SLM_OK;
        j = j->child;
    }
    if (!cJSON_IsNumber(j) || floor(j->valuedouble) != j->valuedouble || j->valuedouble < 0 ||
        j->valuedouble > 2147483647.0)
        return slm_fail(SLM_ERR_FORMAT, "%s: field '%s' must be a token id or a list of them", file, key);
    *out = (int32_t)j->valuedouble;
    return SLM_OK;
}

static slm_status parse_arch(const cJSON *root, slm_config *c, int *default_ctx, const char *file) {
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *name = NULL;
    bool by_type = false;
    if (archs && !cJSON_IsNull(archs)) {
        if (!cJSON_IsArray(archs) || !cJSON_IsString(archs->child))
            return slm_fail(SLM_ERR_FORMAT, "%s: field 'architectures' must be a list of names", file);
        name = archs->child->valuestring;
    } else if (cJSON_IsString(mt)) {
        name = mt->valuestring;
        by_type = true;
    } else {
        return slm_fail(SLM_ERR_FORMAT, "%s: missing field 'architectures'", file);
    }
    for (size_t i = 0; i < N_ARCHS; i++)
        if (strcmp(name, by_type ? k_archs[i].model_type : k_archs[i].hf_name) == 0) {
            c->arch = k_archs[i].arch;
            *default_ctx = k_archs[i].default_ctx;
            return SLM_OK;
        }
    return slm_fail(SLM_ERR_UNSUPPORTED,
                    "%s: unsupported architecture '%.64s' (slimlm reads LlamaForCausalLM, MistralForCausalLM, "
                    "Qwen2ForCausalLM)", file, name);
}

/* rope_scaling (transformers 4) or rope_parameters (transformers 5). */
static slm_status parse_rope(const cJSON *root, slm_config *c, const char *file) {
    slm_status st = get_float(root, "rope_theta", false, 10000.0f, &c->rope_theta, file);
    if (st) return st;
    const char *key = "rope_scaling";
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, key);
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (cJSON_IsObject(rp)) {
        st = get_float(rp, "rope_theta", false, c->rope_theta, &c->rope_theta, file);
        if (st) return st;
        if (!rs || cJSON_IsNull(rs)) {
            rs = rp;
            key = "rope_parameters";
        }
    } else if (rp && !cJSON_IsNull(rp)) {
        return slm_fail(SLM_ERR_FORMAT, "%s: field 'rope_parameters' must be an object, not %s", file, json_type_name(rp));
    }
    c->rope_scaling = SLM_ROPE_SCALING_NONE;
    if (!rs || cJSON_IsNull(rs)) return SLM_OK;
    if (!cJSON_IsObject(rs))
        return slm_fail(SLM_ERR_FORMAT, "%s: field '%s' must be an object or null, not %s", file, key, json_type_name(rs));
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!ty) ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(ty)) return slm_fail(SLM_ERR_FORMAT, "%s: field '%s' has no 'rope_type'", file, key);
    const char *t = ty->valuestring;
    if (strcmp(t, "default") == 0) return SLM_OK;
    if (strcmp(t, "linear") == 0) {
        c->rope_scaling = SLM_ROPE_SCALING_LINEAR;
        return get_float(rs, "factor", true, 1.0f, &c->rope_factor, file);
    }
    if (strcmp(t, "llama3") == 0) {
        c->rope_scaling = SLM_ROPE_SCALING_LLAMA3;
        if ((st = get_float(rs, "factor", true, 1.0f, &c->rope_factor, file)) ||
            (st = get_float(rs, "low_freq_factor", true, 1.0f, &c->rope_low_freq_factor, file)) ||
            (st = get_float(rs, "high_freq_factor", true, 1.0f, &c->rope_high_freq_factor, file)) ||
            (st = get_int(rs, "original_max_position_embeddings", true, 0, &c->rope_orig_ctx, file)))
            return st;
        if (!(c->rope_high_freq_factor > c->rope_low_freq_factor) || c->rope_orig_ctx <= 0)
            return slm_fail(SLM_ERR_FORMAT, "%s: llama3 rope scaling needs high_freq_factor > low_freq_factor and a "
                            "positive original_max_position_embeddings", file);
        return SLM_OK;
    }
    return slm_fail(SLM_ERR_UNSUPPORTED, "%s: rope scaling type '%.32s' is not supported (default, linear, llama3)",
                    file, t);
}

static slm_status parse_root(const cJSON *root, const char *file, slm_config *c) {
    int default_ctx = 2048;
    slm_status st;
    if ((st = parse_arch(root, c, &default_ctx, file))) return st;
    if ((st = get_int(root, "vocab_size", true, 0, &c->n_vocab, file)) ||
        (st = get_int(root, "hidden_size", true, 0, &c->d_model, file)) ||
        (st = get_int(root, "intermediate_size", true, 0, &c->d_ff, file)) ||
        (st = get_int(root, "num_hidden_layers", true, 0, &c->n_layers, file)) ||
        (st = get_int(root, "num_attention_heads", true, 0, &c->n_heads, file)) ||
        (st = get_int(root, "num_key_value_heads", false, c->n_heads, &c->n_kv_heads, file)))
        return st;
    if (c->n_heads <= 0) return slm_fail(SLM_ERR_FORMAT, "%s: num_attention_heads %d out of range", file, c->n_heads);
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    if ((!hd || cJSON_IsNull(hd)) && c->d_model % c->n_heads != 0)
        return slm_fail(SLM_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", file,
                        c->d_model, c->n_heads);
    if ((st = get_int(root, "head_dim", false, c->d_model / c->n_heads, &c->head_dim, file)) ||
        (st = get_float(root, "rms_norm_eps", false, 1e-6f, &c->norm_eps, file)) ||
        (st = get_int(root, "max_position_embeddings", false, default_ctx, &c->max_ctx, file)) ||
        (st = get_bool(root, "tie_word_embeddings", false, &c->tied_embeddings, file)) ||
        (st = get_bool(root, "attention_bias", false, &c->attn_bias, file)) ||
        (st = get_token_id(root, "bos_token_id", &c->bos_id, file)) ||
        (st = get_token_id(root, "eos_token_id", &c->eos_id, file)) || (st = parse_rope(root, c, file)))
        return st;
    if (c->arch == SLM_ARCH_QWEN2) c->attn_bias = true;
    bool use_sw = c->arch == SLM_ARCH_MISTRAL, mlp_bias = false;
    if (c->arch == SLM_ARCH_QWEN2 && (st = get_bool(root, "use_sliding_window", false, &use_sw, file))) return st;
    if (use_sw && (st = get_int(root, "sliding_window", false, 0, &c->sliding_window, file))) return st;
    if ((st = get_bool(root, "mlp_bias", false, &mlp_bias, file))) return st;
    if (mlp_bias) return slm_fail(SLM_ERR_UNSUPPORTED, "%s: mlp_bias true is not supported", file);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !cJSON_IsNull(act) && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
        return slm_fail(SLM_ERR_UNSUPPORTED, "%s: hidden_act %s%.32s%s is not supported (silu only)", file,
                        cJSON_IsString(act) ? "'" : "", cJSON_IsString(act) ? act->valuestring : json_type_name(act),
                        cJSON_IsString(act) ? "'" : "");
    c->rope_layout = SLM_ROPE_HALVES;
    return slm_config_validate(c, file);
}

slm_status slm_hf_config_parse(const char *text, size_t len, const char *file, slm_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) {
        const char *ep = cJSON_GetErrorPtr();
        long at = ep ? (long)(ep - text) : -1;
        return slm_fail(SLM_ERR_FORMAT, "%s: not valid JSON (error near byte %ld)", file, at);
    }
    slm_status st = cJSON_IsObject(root) ? parse_root(root, file, cfg)
                                          : slm_fail(SLM_ERR_FORMAT, "%s: not a JSON object", file);
    cJSON_Delete(root);
    return st;
}

slm_status slm_hf_config_load(const char *path, slm_config *cfg) {
    char *text = NULL;
    size_t len = 0;
    slm_status st = slm_read_file(path, &text, &len);
    if (st) return st;
    st = slm_hf_config_parse(text, len, path, cfg);
    free(text);
    return st;
}

/* ---- writer ------------------------------------------------------------ */

/* The shortest decimal that reads back as the same float, so 1e-6f is
 * written "1e-06" rather than the double expansion of the float. */
static double float_for_json(float f) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

static const arch_row *arch_row_of(slm_arch a) {
    for (size_t i = 0; i < N_ARCHS; i++)
        if (k_archs[i].arch == a) return &k_archs[i];
    return NULL;
}

char *slm_hf_config_write(const slm_config *c, const char *torch_dtype) {
    const arch_row *ar = arch_row_of(c->arch);
    if (!ar) {
        slm_fail(SLM_ERR_UNSUPPORTED, "architecture %d has no HF name", (int)c->arch);
        return NULL;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(ar->hf_name));
    cJSON_AddStringToObject(j, "model_type", ar->model_type);
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddNumberToObject(j, "vocab_size", c->n_vocab);
    cJSON_AddNumberToObject(j, "hidden_size", c->d_model);
    cJSON_AddNumberToObject(j, "intermediate_size", c->d_ff);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(j, "rms_norm_eps", float_for_json(c->norm_eps));
    cJSON_AddNumberToObject(j, "rope_theta", float_for_json(c->rope_theta));
    if (c->rope_scaling == SLM_ROPE_SCALING_NONE) {
        cJSON_AddNullToObject(j, "rope_scaling");
    } else {
        cJSON *rs = cJSON_AddObjectToObject(j, "rope_scaling");
        bool l3 = c->rope_scaling == SLM_ROPE_SCALING_LLAMA3;
        cJSON_AddStringToObject(rs, "rope_type", l3 ? "llama3" : "linear");
        cJSON_AddNumberToObject(rs, "factor", float_for_json(c->rope_factor));
        if (l3) {
            cJSON_AddNumberToObject(rs, "low_freq_factor", float_for_json(c->rope_low_freq_factor));
            cJSON_AddNumberToObject(rs, "high_freq_factor", float_for_json(c->rope_high_freq_factor));
            cJSON_AddNumberToObject(rs, "original_max_position_embeddings", c->rope_orig_ctx);
        }
    }
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_ctx);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tied_embeddings);
    if (c->arch != SLM_ARCH_QWEN2) cJSON_AddBoolToObject(j, "attention_bias", c->attn_bias);
    cJSON_AddBoolToObject(j, "mlp_bias", false);
    if (c->bos_id >= 0) cJSON_AddNumberToObject(j, "bos_token_id", c->bos_id);
    else cJSON_AddNullToObject(j, "bos_token_id");
    if (c->eos_id >= 0) cJSON_AddNumberToObject(j, "eos_token_id", c->eos_id);
    else cJSON_AddNullToObject(j, "eos_token_id");
    if (c->arch == SLM_ARCH_MISTRAL) {
        if (c->sliding_window > 0) cJSON_AddNumberToObject(j, "sliding_window", c->sliding_window);
        else cJSON_AddNullToObject(j, "sliding_window");
    } else if (c->arch == SLM_ARCH_QWEN2) {
        cJSON_AddBoolToObject(j, "use_sliding_window", c->sliding_window > 0);
        if (c->sliding_window > 0) cJSON_AddNumberToObject(j, "sliding_window", c->sliding_window);
    }
    cJSON_AddStringToObject(j, "torch_dtype", torch_dtype);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) slm_fail(SLM_ERR_NOMEM, "out of memory writing config.json");
    return text;
}
