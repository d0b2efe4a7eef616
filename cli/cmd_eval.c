/* PLACEHOLDER until its module lands in this session; replaced by the real command. */
#include "commands.h"
#include <stdio.h>
int slm_cmd_eval(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "error: slimlm eval: not built yet\n");
    return 1;
}
