/* slimlm convert MODEL -o OUT: rewrites a checkpoint (any plan: pruned,
 * narrowed, low-rank) as GGUF or as an HF safetensors directory. */
#include "commands.h"
#include "core/core.h"
#include "core/dtype.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct dtype_name {
    const char *name;
    int dtype;
} dtype_name;

static const dtype_name k_dtypes[] = {
    {"f32", SLM_DTYPE_F32}, {"f16", SLM_DTYPE_F16}, {"bf16", SLM_DTYPE_BF16}, {"q8_0", SLM_DTYPE_Q8_0}};

int slm_cmd_convert(int argc, char **argv) {
    const char *output = NULL, *format = NULL, *dtype = "f32";
    int threads = 0;
    bool quiet = false;
    const slm_option opts[] = {
        {"output", 'o', SLM_OPT_STRING, &output, "OUT", "output: a .gguf file, or a directory for safetensors"},
        {"format", 'f', SLM_OPT_STRING, &format, "FMT", "gguf or safetensors (default: from OUT's extension)"},
        {"dtype", 0, SLM_OPT_STRING, &dtype, "TYPE", "weight type: f32, f16, bf16, q8_0 (q8_0: GGUF only)"},
        {"threads", 't', SLM_OPT_INT, &threads, "N", "threads (0: all cores)"},
        {"quiet", 'q', SLM_OPT_FLAG, &quiet, NULL, "print nothing on success"},
        {0}};
    const slm_cli_spec spec = {"convert", "MODEL -o OUT [options]",
                               "Write a model as GGUF or as an HF directory (model.safetensors + config.json).",
                               opts, 1, 1};
    char **pos;
    int npos;
    int rc = slm_opt_parse(&spec, argc, argv, &pos, &npos);
    if (rc) return slm_opt_exit_status(rc);
    slm_save_params sp = slm_save_default_params();
    slm_status st = SLM_OK;
    if (!output) st = slm_fail(SLM_ERR_ARG, "convert: missing -o OUT");
    if (!st) {
        if (!format) sp.format = slm_cli_format_for(output);
        else if (strcasecmp(format, "gguf") == 0) sp.format = SLM_SAVE_GGUF;
        else if (strcasecmp(format, "safetensors") == 0 || strcasecmp(format, "hf") == 0)
            sp.format = SLM_SAVE_SAFETENSORS;
        else st = slm_fail(SLM_ERR_ARG, "convert: unknown --format '%s' (gguf, safetensors)", format);
    }
    sp.dtype = -1;
    for (size_t i = 0; !st && i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (strcasecmp(dtype, k_dtypes[i].name) == 0) sp.dtype = k_dtypes[i].dtype;
    if (!st && sp.dtype < 0) st = slm_fail(SLM_ERR_ARG, "convert: unknown --dtype '%s' (f32, f16, bf16, q8_0)", dtype);
    if (!st && sp.format == SLM_SAVE_SAFETENSORS && sp.dtype == SLM_DTYPE_Q8_0)
        st = slm_fail(SLM_ERR_UNSUPPORTED, "%s: q8_0 is GGUF only (safetensors: f32, f16, bf16)", output);
    if (st) {
        free(pos);
        return slm_cli_report(st);
    }
    slm_model *m = NULL;
    double t0 = slm_time_now();
    /* The tokenizer rides along so GGUF output can carry it (the HF writer
     * copies tokenizer files from an HF source instead). */
    if (slm_cli_load_model(pos[0], sp.format == SLM_SAVE_GGUF, threads, &m)) {
        free(pos);
        return 1;
    }
    st = slm_model_save(m, output, &sp);
    if (st) rc = slm_cli_report(st);
    else if (!quiet)
        printf("wrote %s (%s, %s) in %.1f s\n", output, sp.format == SLM_SAVE_GGUF ? "GGUF" : "safetensors", dtype,
               slm_time_now() - t0);
    slm_model_free(m);
    free(pos);
    return rc;
}
