/* safetensors reader/writer and config.json parser on hand-built inputs:
 * every kind of damage gives one clear error (status, file name, what),
 * the writer's output reads back exactly, and config fields (defaults,
 * Qwen2 biases, llama3 / linear rope scaling, transformers-5 rope_parameters)
 * land where they should. */
#include "core/core.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_tmp;

/* Writes [u64 hlen][header][n_data bytes of pattern]; hlen_override >= 0
 * replaces the true header length. Returns the path. */
static const char *write_st(const char *name, const char *header, size_t n_data, long long hlen_override) {
    const char *path = slm_test_path(g_tmp, name);
    FILE *f = fopen(path, "wb");
    uint64_t hlen = hlen_override >= 0 ? (uint64_t)hlen_override : strlen(header);
    uint8_t lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (uint8_t)(hlen >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < n_data; i++) fputc((int)(i & 0x7f), f);
    fclose(f);
    return path;
}

static void expect_st_error(const char *path, slm_status want, const char *frag) {
    slm_st_file *f = NULL;
    slm_status st = slm_st_open(path, &f);
    const char *msg = slm_last_error();
    CHECK(st == want, "%s: status %d, want %d (%s)", path, (int)st, (int)want, msg);
    CHECK(f == NULL, "%s: no reader on failure", path);
    CHECK(strstr(msg, path) == msg, "%s: message starts with the file: '%s'", path, msg);
    CHECK(strstr(msg, frag) != NULL, "%s: message '%s' lacks '%s'", path, msg, frag);
    CHECK(strchr(msg, '\n') == NULL, "%s: one line", path);
    printf("  %-28s -> %s\n", strrchr(path, '/') + 1, msg);
    if (f) slm_st_close(f);
}

static void test_bad_files(void) {
    printf("bad safetensors files:\n");
    /* truncated inside the 8-byte length */
    const char *p = slm_test_path(g_tmp, "st_tiny.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite("\x10\0\0", 1, 3, f);
    fclose(f);
    expect_st_error(p, SLM_ERR_FORMAT, "too small");
    const char *ok_hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    expect_st_error(write_st("st_hlen_past_end.safetensors", ok_hdr, 16, 5000), SLM_ERR_FORMAT, "past end of file");
    expect_st_error(write_st("st_hlen_huge.safetensors", ok_hdr, 16, 200000000LL), SLM_ERR_FORMAT, "exceeds");
    expect_st_error(write_st("st_hlen_overflow.safetensors", ok_hdr, 16, -2 /* unused */ + 0x7ffffffffffffff0LL),
                    SLM_ERR_FORMAT, "exceeds");
    expect_st_error(write_st("st_hlen_zero.safetensors", "", 16, 0), SLM_ERR_FORMAT, "too short");
    expect_st_error(write_st("st_bad_json.safetensors", "{\"a\": {\"dtype\": \"F32\", ", 16, -1), SLM_ERR_FORMAT,
                    "not valid JSON");
    expect_st_error(write_st("st_not_object.safetensors", "[1, 2, 3]", 16, -1), SLM_ERR_FORMAT, "not a JSON object");
    expect_st_error(write_st("st_trailing.safetensors", "{}   xyz", 0, -1), SLM_ERR_FORMAT, "trailing bytes");
    expect_st_error(write_st("st_past_end.safetensors",
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[8,24]}}", 16, -1),
                    SLM_ERR_FORMAT, "past end of data");
    expect_st_error(write_st("st_reversed.safetensors",
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,0]}}", 16, -1),
                    SLM_ERR_FORMAT, "begin after end");
    expect_st_error(write_st("st_overlap.safetensors",
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, -1),
                    SLM_ERR_FORMAT, "overlap");
    expect_st_error(write_st("st_wrong_shape.safetensors",
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,16]}}", 16, -1),
                    SLM_ERR_FORMAT, "shape needs 24 bytes");
    expect_st_error(write_st("st_shape_overflow.safetensors",
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,16]}}",
                             16, -1), SLM_ERR_FORMAT, "overflows");
    expect_st_error(write_st("st_shape_negative.safetensors",
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 16, -1),
                    SLM_ERR_FORMAT, "shape entry 0");
    expect_st_error(write_st("st_offset_fraction.safetensors",
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,15.5]}}", 16, -1),
                    SLM_ERR_FORMAT, "data_offsets");
    expect_st_error(write_st("st_i64.safetensors",
                             "{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, -1),
                    SLM_ERR_UNSUPPORTED, "unsupported dtype 'I64'");
    expect_st_error(write_st("st_no_dtype.safetensors", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 16, -1),
                    SLM_ERR_FORMAT, "'dtype'");
    expect_st_error(write_st("st_dup.safetensors",
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                             "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, -1),
                    SLM_ERR_FORMAT, "duplicate tensor 'a'");
    expect_st_error(write_st("st_meta_type.safetensors", "{\"__metadata__\":{\"format\":3}}", 0, -1), SLM_ERR_FORMAT,
                    "__metadata__ value of 'format'");
    expect_st_error(write_st("st_too_many_dims.safetensors",
                             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 16,
                             -1), SLM_ERR_FORMAT, "dimensions");

    /* A valid hand-made file: zero-size tensors may sit anywhere, metadata is read. */
    p = write_st("st_good.safetensors",
                 "{\"__metadata__\":{\"format\":\"pt\"},\"z\":{\"dtype\":\"F16\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
                 "\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[4,16]}}   ",
                 16, -1);
    slm_st_file *g = NULL;
    CHECK(slm_st_open(p, &g) == SLM_OK, "good file: %s", slm_last_error());
    if (g) {
        CHECK(g->n_tensors == 3, "3 tensors, got %lld", (long long)g->n_tensors);
        const slm_st_tensor *b = slm_st_find(g, "b"), *z = slm_st_find(g, "z");
        CHECK(b && b->type == SLM_DTYPE_F32 && b->n_elems == 3 && b->begin == 4, "tensor b");
        CHECK(z && z->n_elems == 0 && z->n_dims == 2, "tensor z");
        CHECK(slm_st_find(g, "nope") == NULL, "absent name");
        CHECK(slm_st_meta(g, "format") && strcmp(slm_st_meta(g, "format"), "pt") == 0, "metadata");
        if (b) CHECK(((const uint8_t *)b->data)[0] == 4, "data pointer at data section + begin");
        slm_st_close(g);
    }
}

/* Writer -> reader: F32 exact (strided source), F16/BF16 rounded as core's
 * converters round, header padded to 8 bytes, metadata kept. */
static void test_writer_roundtrip(void) {
    enum { R = 5, C = 7, LD = 9 };
    float src[R * LD];
    for (int i = 0; i < R * LD; i++) src[i] = sinf((float)i * 0.37f) * 3.0f + (float)i * 1e-3f;
    slm_st_writer *w = slm_st_writer_new();
    const int64_t shape[2] = {R, C}, shape1[1] = {C};
    float *owned = malloc(C * sizeof(float));
    for (int i = 0; i < C; i++) owned[i] = (float)i - 2.5f;
    CHECK(slm_st_writer_add(w, "m.f32", SLM_DTYPE_F32, 2, shape, src, LD, false) == SLM_OK, "add f32");
    CHECK(slm_st_writer_add(w, "m.f16", SLM_DTYPE_F16, 2, shape, src, LD, false) == SLM_OK, "add f16");
    CHECK(slm_st_writer_add(w, "m.bf16", SLM_DTYPE_BF16, 2, shape, src, LD, false) == SLM_OK, "add bf16");
    CHECK(slm_st_writer_add(w, "v \"quoted\"", SLM_DTYPE_F32, 1, shape1, owned, C, true) == SLM_OK, "add owned");
    CHECK(slm_st_writer_add(w, "bad", SLM_DTYPE_Q8_0, 1, shape1, src, C, false) == SLM_ERR_UNSUPPORTED,
          "q8_0 refused");
    CHECK(slm_st_writer_meta(w, "slimlm.test", "yes") == SLM_OK, "meta");
    const char *path = slm_test_path(g_tmp, "st_written.safetensors");
    CHECK(slm_st_writer_write(w, path) == SLM_OK, "write: %s", slm_last_error());
    slm_st_writer_free(w);

    slm_st_file *f = NULL;
    CHECK(slm_st_open(path, &f) == SLM_OK, "read back: %s", slm_last_error());
    if (!f) return;
    CHECK(f->data_offset % 8 == 0, "data section at a multiple of 8 (%zu)", f->data_offset);
    const slm_st_tensor *t32 = slm_st_find(f, "m.f32"), *t16 = slm_st_find(f, "m.f16"),
                        *tb = slm_st_find(f, "m.bf16"), *tv = slm_st_find(f, "v \"quoted\"");
    CHECK(t32 && t16 && tb && tv, "all tensors present");
    if (t32 && t16 && tb && tv) {
        CHECK(t32->shape[0] == R && t32->shape[1] == C && t16->type == SLM_DTYPE_F16 && tb->type == SLM_DTYPE_BF16,
              "shapes and dtypes");
        int bad32 = 0, bad16 = 0, badb = 0;
        const float *g32 = t32->data;
        const uint16_t *g16 = t16->data, *gb = tb->data;
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) {
                float x = src[r * LD + c];
                bad32 += memcmp(&g32[r * C + c], &x, 4) != 0;
                bad16 += g16[r * C + c] != slm_fp32_to_fp16(x);
                badb += gb[r * C + c] != slm_fp32_to_bf16(x);
            }
        CHECK(bad32 == 0 && bad16 == 0 && badb == 0, "values: %d f32, %d f16, %d bf16 mismatches", bad32, bad16, badb);
        CHECK(((const float *)tv->data)[C - 1] == (float)(C - 1) - 2.5f, "owned 1-d tensor");
    }
    CHECK(slm_st_meta(f, "slimlm.test") && strcmp(slm_st_meta(f, "slimlm.test"), "yes") == 0, "metadata read back");
    slm_st_close(f);
}

/* ---- config.json ------------------------------------------------------- */

static const char *k_base =
    "\"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 3, \"num_attention_heads\": 4, "
    "\"vocab_size\": 100";

static slm_status parse_cfg(const char *body, slm_config *c) {
    char text[2048];
    snprintf(text, sizeof text, "{%s}", body);
    return slm_hf_config_parse(text, strlen(text), "dir/config.json", c);
}

static void expect_cfg_error(const char *body, slm_status want, const char *frag) {
    slm_config c;
    slm_status st = parse_cfg(body, &c);
    const char *msg = slm_last_error();
    CHECK(st == want && strstr(msg, "dir/config.json: ") == msg && strstr(msg, frag),
          "config error: status %d (want %d), '%s' should contain '%s'", (int)st, (int)want, msg, frag);
    printf("  config -> %s\n", msg);
}

static void test_config(void) {
    char body[1024];
    slm_config c;
    printf("config.json:\n");
    /* defaults of a minimal llama config */
    snprintf(body, sizeof body, "\"architectures\": [\"LlamaForCausalLM\"], %s", k_base);
    CHECK(parse_cfg(body, &c) == SLM_OK, "minimal llama: %s", slm_last_error());
    CHECK(c.arch == SLM_ARCH_LLAMA && c.n_kv_heads == 4 && c.head_dim == 16 && c.rope_theta == 10000.0f &&
              c.norm_eps == 1e-6f && c.max_ctx == 2048 && !c.tied_embeddings && !c.attn_bias && c.bos_id == -1 &&
              c.rope_scaling == SLM_ROPE_SCALING_NONE && c.rope_layout == SLM_ROPE_HALVES,
          "llama defaults");

    /* Qwen2: biases implied; sliding window only when enabled; eos list -> first */
    snprintf(body, sizeof body,
             "\"architectures\": [\"Qwen2ForCausalLM\"], %s, \"num_key_value_heads\": 2, \"tie_word_embeddings\": true,"
             " \"sliding_window\": 4096, \"use_sliding_window\": false, \"eos_token_id\": [7, 9], \"bos_token_id\": 5,"
             " \"rope_theta\": 1000000.0, \"rms_norm_eps\": 1e-5, \"max_position_embeddings\": 32768",
             k_base);
    CHECK(parse_cfg(body, &c) == SLM_OK, "qwen2: %s", slm_last_error());
    CHECK(c.arch == SLM_ARCH_QWEN2 && c.attn_bias && c.tied_embeddings && c.n_kv_heads == 2 && c.eos_id == 7 &&
              c.bos_id == 5 && c.sliding_window == 0 && c.rope_theta == 1e6f && c.norm_eps == 1e-5f,
          "qwen2 fields (bias %d, tied %d, eos %d, sw %d)", c.attn_bias, c.tied_embeddings, c.eos_id, c.sliding_window);

    /* llama3 rope scaling (transformers-4 spelling) */
    snprintf(body, sizeof body,
             "\"architectures\": [\"LlamaForCausalLM\"], %s, \"rope_theta\": 500000.0, \"rope_scaling\": {"
             "\"rope_type\": \"llama3\", \"factor\": 32.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
             " \"original_max_position_embeddings\": 8192}, \"head_dim\": 32",
             k_base);
    CHECK(parse_cfg(body, &c) == SLM_OK, "llama3: %s", slm_last_error());
    CHECK(c.rope_scaling == SLM_ROPE_SCALING_LLAMA3 && c.rope_factor == 32.0f && c.rope_low_freq_factor == 1.0f &&
              c.rope_high_freq_factor == 4.0f && c.rope_orig_ctx == 8192 && c.rope_theta == 500000.0f &&
              c.head_dim == 32,
          "llama3 rope fields");
    /* the same in transformers-5 rope_parameters, with theta inside */
    snprintf(body, sizeof body,
             "\"architectures\": [\"LlamaForCausalLM\"], %s, \"rope_parameters\": {\"rope_theta\": 250000.0,"
             " \"rope_type\": \"linear\", \"factor\": 4.0}",
             k_base);
    CHECK(parse_cfg(body, &c) == SLM_OK, "rope_parameters: %s", slm_last_error());
    CHECK(c.rope_scaling == SLM_ROPE_SCALING_LINEAR && c.rope_factor == 4.0f && c.rope_theta == 250000.0f,
          "rope_parameters linear");
    snprintf(body, sizeof body, "\"architectures\": [\"MistralForCausalLM\"], %s, \"sliding_window\": 4096, "
             "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}", k_base);
    CHECK(parse_cfg(body, &c) == SLM_OK && c.arch == SLM_ARCH_MISTRAL && c.sliding_window == 4096 &&
              c.rope_scaling == SLM_ROPE_SCALING_LINEAR && c.rope_factor == 2.0f,
          "mistral + legacy 'type' key: %s", slm_last_error());
    snprintf(body, sizeof body, "\"model_type\": \"llama\", %s", k_base);
    CHECK(parse_cfg(body, &c) == SLM_OK && c.arch == SLM_ARCH_LLAMA, "model_type fallback");

    /* errors */
    expect_cfg_error("\"architectures\": [\"LlamaForCausalLM\"], \"intermediate_size\": 96, \"num_hidden_layers\": 3,"
                     " \"num_attention_heads\": 4, \"vocab_size\": 100",
                     SLM_ERR_FORMAT, "missing field 'hidden_size'");
    snprintf(body, sizeof body, "\"architectures\": [\"GPT2LMHeadModel\"], %s", k_base);
    expect_cfg_error(body, SLM_ERR_UNSUPPORTED, "unsupported architecture 'GPT2LMHeadModel'");
    expect_cfg_error(k_base, SLM_ERR_FORMAT, "missing field 'architectures'");
    snprintf(body, sizeof body, "\"architectures\": [\"LlamaForCausalLM\"], %s, \"num_key_value_heads\": \"2\"", k_base);
    expect_cfg_error(body, SLM_ERR_FORMAT, "field 'num_key_value_heads' must be an integer, not a string");
    snprintf(body, sizeof body, "\"architectures\": [\"LlamaForCausalLM\"], %s, \"head_dim\": 16.5", k_base);
    expect_cfg_error(body, SLM_ERR_FORMAT, "'head_dim' = 16.5 is not a 32-bit integer");
    snprintf(body, sizeof body, "\"architectures\": [\"LlamaForCausalLM\"], %s, \"tie_word_embeddings\": 1", k_base);
    expect_cfg_error(body, SLM_ERR_FORMAT, "'tie_word_embeddings' must be true or false");
    snprintf(body, sizeof body, "\"architectures\": [\"LlamaForCausalLM\"], %s, \"rope_scaling\": {\"rope_type\": \"yarn\","
             " \"factor\": 4.0}", k_base);
    expect_cfg_error(body, SLM_ERR_UNSUPPORTED, "rope scaling type 'yarn'");
    snprintf(body, sizeof body, "\"architectures\": [\"LlamaForCausalLM\"], %s, \"rope_scaling\": {\"rope_type\": "
             "\"llama3\", \"factor\": 8.0}", k_base);
    expect_cfg_error(body, SLM_ERR_FORMAT, "missing field 'low_freq_factor'");
    snprintf(body, sizeof body, "\"architectures\": [\"LlamaForCausalLM\"], %s, \"num_key_value_heads\": 3", k_base);
    expect_cfg_error(body, SLM_ERR_FORMAT, "does not divide");
    snprintf(body, sizeof body, "\"architectures\": [\"LlamaForCausalLM\"], %s, \"hidden_act\": \"gelu\"", k_base);
    expect_cfg_error(body, SLM_ERR_UNSUPPORTED, "hidden_act 'gelu'");
    snprintf(body, sizeof body, "\"architectures\": [\"LlamaForCausalLM\"], %s, \"max_position_embeddings\": 1e12", k_base);
    expect_cfg_error(body, SLM_ERR_FORMAT, "not a 32-bit integer");
    CHECK(slm_hf_config_parse("{\"a\": ", 6, "dir/config.json", &c) == SLM_ERR_FORMAT &&
              strstr(slm_last_error(), "not valid JSON"),
          "malformed JSON: %s", slm_last_error());

    /* writer -> parser keeps every field */
    slm_config in = c;
    snprintf(body, sizeof body,
             "\"architectures\": [\"LlamaForCausalLM\"], %s, \"rope_theta\": 500000.0, \"rms_norm_eps\": 1e-5, "
             "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 32.0, \"low_freq_factor\": 1.0, "
             "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}, \"num_key_value_heads\": 2, "
             "\"bos_token_id\": 1, \"eos_token_id\": 2, \"tie_word_embeddings\": true",
             k_base);
    CHECK(parse_cfg(body, &in) == SLM_OK, "writer input");
    char *text = slm_hf_config_write(&in, "float16");
    slm_config back;
    CHECK(text && slm_hf_config_parse(text, strlen(text), "written/config.json", &back) == SLM_OK,
          "written config parses: %s", slm_last_error());
    CHECK(memcmp(&in, &back, sizeof in) == 0, "written config round-trips every field");
    CHECK(text && strstr(text, "\"rms_norm_eps\":\t1e-05"), "eps written as the float's shortest decimal");
    free(text);
}

int main(void) {
    g_tmp = slm_test_env("SLM_TEST_TMP", "/tmp");
    test_bad_files();
    test_writer_roundtrip();
    test_config();
    return slm_test_finish();
}
