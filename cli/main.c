/* slimlm command-line entry: dispatches to one subcommand per file. */
#include "commands.h"

#include <stdio.h>
#include <string.h>

static const slm_command k_commands[] = {
    {"info", slm_cmd_info, "show a model's architecture, plan, parameters, MACs, tensor types"},
    {"ppl", slm_cmd_ppl, "perplexity on a text (llama.cpp or lm-eval protocol)"},
    {"generate", slm_cmd_generate, "generate text from a prompt"},
    {"tokenize", slm_cmd_tokenize, "show the token ids and pieces of a text"},
    {"eval", slm_cmd_eval, "zero-shot accuracy on benchmark tasks, as lm-evaluation-harness computes it"},
    {"rom", slm_cmd_rom, "compress with LLM-ROM (or svd-llm / svd baselines) to a parameter budget"},
    {"prune", slm_cmd_prune, "drop decoder blocks (truncation configs of Jha et al., or block influence)"},
    {"quantize", slm_cmd_quantize, "int8 weights and activations (per channel / per token, LLM.int8 outliers)"},
    {"train", slm_cmd_train, "continue pretraining, distil from a teacher, or train from scratch"},
    {"nas", slm_cmd_nas, "architecture search (LLaMA-NAS): search, extract, compare, report"},
    {"convert", slm_cmd_convert, "write a model as GGUF or safetensors (+config.json)"},
};
static const int k_n_commands = (int)(sizeof k_commands / sizeof k_commands[0]);

static void usage(FILE *f) {
    fprintf(f, "slimlm: make LLaMA-family models smaller and measure what it cost\n\n"
               "usage: slimlm <command> [options]   (slimlm <command> --help for its options)\n\ncommands:\n");
    for (int i = 0; i < k_n_commands; i++) fprintf(f, "  %-10s %s\n", k_commands[i].name, k_commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < k_n_commands; i++)
        if (strcmp(argv[1], k_commands[i].name) == 0) return k_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s' (see slimlm --help)\n", argv[1]);
    return 2;
}
