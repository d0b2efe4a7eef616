/* Subcommands: each lives in cli/cmd_<name>.c and returns the exit status. */
#ifndef SLM_CLI_COMMANDS_H
#define SLM_CLI_COMMANDS_H

#include "compress/calib.h"
#include "slimlm.h"
#include <stdbool.h>

typedef struct slm_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} slm_command;

int slm_cmd_info(int argc, char **argv);
int slm_cmd_ppl(int argc, char **argv);
int slm_cmd_generate(int argc, char **argv);
int slm_cmd_tokenize(int argc, char **argv);
int slm_cmd_convert(int argc, char **argv);
int slm_cmd_eval(int argc, char **argv);
int slm_cmd_rom(int argc, char **argv);
int slm_cmd_prune(int argc, char **argv);
int slm_cmd_quantize(int argc, char **argv);
int slm_cmd_nas(int argc, char **argv);
int slm_cmd_nas_finetune(int argc, char **argv); /* cmd_nas_finetune.c */
int slm_cmd_train(int argc, char **argv);

/* Prints "error: <slm_last_error()>" and returns the CLI's failure status 1. */
int slm_cli_report(slm_status st);
/* Loads a model, reporting failures; applies --threads first. */
slm_status slm_cli_load_model(const char *path, bool tokenizer, int threads, slm_model **out);
/* The same, keeping Q4_0/Q4_1/Q8_0 weights quantised when keep_quantized
 * (inference commands: ppl, eval, generate; --dequantize turns it off). */
slm_status slm_cli_load_model_q(const char *path, bool tokenizer, int threads, bool keep_quantized, slm_model **out);
/* Help line of the inference commands' --dequantize flag. */
#define SLM_CLI_DEQUANTIZE_HELP \
    "compute in fp32 from dequantised weights (default: multiply quantised weights as llama.cpp does)"

/* GGUF for a path ending in .gguf (any case), else an HF safetensors directory. */
slm_save_format slm_cli_format_for(const char *path);
/* Saves m (fp32) in the format of its path and prints "wrote PATH". */
slm_status slm_cli_save_model(const slm_model *m, const char *path);

/* Calibration windows chosen on the command line (rom, prune, quantize). */
typedef struct slm_cli_calib {
    const char *spec;     /* mix | task:NAME | text:FILE */
    const char *data_dir; /* where task and text data are found */
    int batch, seqlen;    /* sequences, tokens per sequence */
    uint64_t seed;        /* window offsets */
} slm_cli_calib;
/* The option rows that fill c (inside a slm_option table; needs options.h). */
#define SLM_CLI_CALIB_OPTIONS(c)                                                                          \
    {"calib", 'c', SLM_OPT_STRING, &(c).spec, "SRC", "calibration data: mix | task:NAME | text:FILE"},   \
    {"batch", 0, SLM_OPT_INT, &(c).batch, "N", "calibration sequences"},                                 \
    {"seqlen", 0, SLM_OPT_INT, &(c).seqlen, "N", "tokens per calibration sequence"},                     \
    {"seed", 0, SLM_OPT_U64, &(c).seed, "N", "seed for the calibration windows"},                        \
    {"data-dir", 'd', SLM_OPT_STRING, &(c).data_dir, "DIR", "data directory (see its MANIFEST.md)"}
/* Loads c's windows with m's tokenizer; says what was loaded unless quiet. */
slm_status slm_cli_calib_load(const slm_model *m, const slm_cli_calib *c, bool quiet, slm_calib *out);

/* Writes text to path atomically (for --output JSON); reports failures. */
int slm_cli_write_text(const char *path, const char *text);

#endif
