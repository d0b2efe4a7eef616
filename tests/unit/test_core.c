/* Core helpers: fp16/bf16 conversion against known bit patterns, atomic
 * files (no partial output on abort), error message formatting. */
#include "core/core.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
    /* fp16: exact values and rounding (bit patterns from IEEE 754 binary16). */
    CHECK(slm_fp32_to_fp16(1.0f) == 0x3c00, "fp16(1)");
    CHECK(slm_fp32_to_fp16(-2.0f) == 0xc000, "fp16(-2)");
    CHECK(slm_fp32_to_fp16(65504.0f) == 0x7bff, "fp16 max");
    CHECK(slm_fp32_to_fp16(1e6f) == 0x7c00, "fp16 overflow -> inf");
    CHECK(slm_fp32_to_fp16(5.9604644775390625e-8f) == 0x0001, "fp16 smallest subnormal");
    CHECK(slm_fp32_to_fp16(1.0f + 1.0f / 2048.0f) == 0x3c00, "fp16 tie rounds to even");
    CHECK(slm_fp16_to_fp32(0x3555) == 0.333251953125f, "fp16 1/3");
    CHECK(slm_fp16_to_fp32(0x0001) == 5.9604644775390625e-8f, "fp16 subnormal decode");
    CHECK(isinf(slm_fp16_to_fp32(0xfc00)) && slm_fp16_to_fp32(0xfc00) < 0, "fp16 -inf");
    for (uint32_t h = 0; h < 0x7c00; h++) /* every finite positive half round-trips */
        if (slm_fp32_to_fp16(slm_fp16_to_fp32((uint16_t)h)) != h) { CHECK(0, "fp16 round trip %u", h); break; }
    CHECK(slm_fp32_to_bf16(1.0f) == 0x3f80, "bf16(1)");
    CHECK(slm_bf16_to_fp32(0x4049) == 3.140625f, "bf16 pi");
    CHECK(slm_fp32_to_bf16(1.00390625f) == 0x3f80, "bf16 tie to even");

    /* Atomic files: abort leaves nothing, commit leaves exactly the content. */
    const char *dir = slm_test_env("SLM_TEST_TMP", "/tmp");
    const char *path = slm_test_path(dir, "core_atomic.txt");
    remove(path);
    slm_atomic_file af;
    CHECK(slm_atomic_open(path, &af) == SLM_OK, "atomic open");
    slm_atomic_write(&af, "half", 4);
    slm_atomic_abort(&af);
    CHECK(access(path, F_OK) != 0, "aborted file must not exist");
    CHECK(slm_atomic_open(path, &af) == SLM_OK, "atomic open 2");
    slm_atomic_write(&af, "whole", 5);
    CHECK(slm_atomic_commit(&af) == SLM_OK, "commit");
    size_t n = 0;
    char *txt = slm_test_read_file(path, &n);
    CHECK(txt && n == 5 && memcmp(txt, "whole", 5) == 0, "committed content");
    free(txt);

    /* Errors are one line. */
    slm_fail(SLM_ERR_FORMAT, "%s: bad\nthing", "f.gguf");
    CHECK(strcmp(slm_last_error(), "f.gguf: bad thing") == 0, "one-line error: '%s'", slm_last_error());
    slm_error_prefix("outer");
    CHECK(strcmp(slm_last_error(), "outer: f.gguf: bad thing") == 0, "prefix");
    return slm_test_finish();
}
