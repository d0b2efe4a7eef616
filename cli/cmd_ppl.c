/* PLACEHOLDER until its module lands in this session; replaced by the real command. */
#include "commands.h"
#include <stdio.h>
int slm_cmd_ppl(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "error: slimlm ppl: not built yet\n");
    return 1;
}
