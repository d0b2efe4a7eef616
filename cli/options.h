/* One table-driven option parser for every subcommand. A command declares
 * {long, short, type, dest, default-text, help} rows; --help is generated
 * from the table. Values are written to dest, which holds the default. */
#ifndef SLM_CLI_OPTIONS_H
#define SLM_CLI_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum slm_opt_type {
    SLM_OPT_FLAG = 0, /* bool, set to true */
    SLM_OPT_INT,      /* int */
    SLM_OPT_I64,      /* int64_t */
    SLM_OPT_U64,      /* uint64_t */
    SLM_OPT_FLOAT,    /* float */
    SLM_OPT_STRING    /* const char * (points into argv) */
} slm_opt_type;

typedef struct slm_option {
    const char *long_name; /* without "--" */
    char short_name;       /* 0 for none */
    slm_opt_type type;
    void *dest;
    const char *metavar;   /* e.g. "N", "FILE"; NULL for flags */
    const char *help;      /* one line; the default is printed from dest */
} slm_option;

typedef struct slm_cli_spec {
    const char *name;       /* subcommand */
    const char *usage;      /* e.g. "MODEL --data FILE [options]" */
    const char *summary;    /* one line */
    const slm_option *opts; /* terminated by a row with long_name NULL */
    int min_pos, max_pos;   /* positional argument counts (max -1: any) */
} slm_cli_spec;

/* Parses argv (argv[0] is the subcommand name). Positional arguments are
 * returned in pos (pointers into argv; the caller frees the array when the
 * parse returns 0; otherwise it is already freed and NULL).
 * Returns 0 to go on, 1 when --help was printed (exit 0), 2 on a usage
 * error (message already printed as "error: ..."). */
int slm_opt_parse(const slm_cli_spec *spec, int argc, char **argv, char ***pos, int *n_pos);
/* The command's exit status for a non-zero slm_opt_parse result. */
static inline int slm_opt_exit_status(int parse_rc) { return parse_rc == 1 ? 0 : parse_rc; }
void slm_opt_print_help(const slm_cli_spec *spec);

#endif
