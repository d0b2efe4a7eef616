#include "options.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_default(const slm_option *o) {
    switch (o->type) {
    case SLM_OPT_FLAG: break;
    case SLM_OPT_INT: printf(" (default %d)", *(int *)o->dest); break;
    case SLM_OPT_I64: printf(" (default %" PRId64 ")", *(int64_t *)o->dest); break;
    case SLM_OPT_U64: printf(" (default %" PRIu64 ")", *(uint64_t *)o->dest); break;
    case SLM_OPT_FLOAT: printf(" (default %g)", (double)*(float *)o->dest); break;
    case SLM_OPT_STRING:
        if (*(const char **)o->dest) printf(" (default %s)", *(const char **)o->dest);
        break;
    }
}

void slm_opt_print_help(const slm_cli_spec *spec) {
    printf("usage: slimlm %s %s\n\n%s\n\noptions:\n", spec->name, spec->usage, spec->summary);
    for (const slm_option *o = spec->opts; o && o->long_name; o++) {
        char left[64];
        if (o->short_name)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->long_name, o->metavar ? " " : "",
                     o->metavar ? o->metavar : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->long_name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        printf("  %-28s %s", left, o->help);
        print_default(o);
        printf("\n");
    }
    printf("  %-28s %s\n", "-h, --help", "show this help");
}

static int set_value(const slm_cli_spec *spec, const slm_option *o, const char *v) {
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case SLM_OPT_FLAG: *(bool *)o->dest = true; return 0;
    case SLM_OPT_INT: {
        long x = strtol(v, &end, 10);
        if (errno || *end || end == v || x < -2147483647L || x > 2147483647L) break;
        *(int *)o->dest = (int)x;
        return 0;
    }
    case SLM_OPT_I64: {
        long long x = strtoll(v, &end, 10);
        if (errno || *end || end == v) break;
        *(int64_t *)o->dest = x;
        return 0;
    }
    case SLM_OPT_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || *end || end == v || v[0] == '-') break;
        *(uint64_t *)o->dest = x;
        return 0;
    }
    case SLM_OPT_FLOAT: {
        float x = strtof(v, &end);
        if (errno || *end || end == v) break;
        *(float *)o->dest = x;
        return 0;
    }
    case SLM_OPT_STRING: *(const char **)o->dest = v; return 0;
    }
    fprintf(stderr, "error: slimlm %s: --%s: bad value '%s'\n", spec->name, o->long_name, v);
    return 2;
}

static int parse_impl(const slm_cli_spec *spec, int argc, char **argv, char ***pos, int *n_pos) {
    *pos = calloc((size_t)argc + 1, sizeof **pos);
    *n_pos = 0;
    if (!*pos) {
        fprintf(stderr, "error: out of memory\n");
        return 2;
    }
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) {
            (*pos)[(*n_pos)++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            slm_opt_print_help(spec);
            return 1;
        }
        const slm_option *o = NULL;
        const char *inline_val = NULL;
        if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            for (const slm_option *c = spec->opts; c && c->long_name; c++)
                if (strlen(c->long_name) == len && strncmp(c->long_name, name, len) == 0) o = c;
            if (eq) inline_val = eq + 1;
        } else if (a[2] == 0) {
            for (const slm_option *c = spec->opts; c && c->long_name; c++)
                if (c->short_name == a[1]) o = c;
        }
        if (!o) {
            fprintf(stderr, "error: slimlm %s: unknown option '%s' (see slimlm %s --help)\n", spec->name, a, spec->name);
            return 2;
        }
        if (o->type == SLM_OPT_FLAG) {
            if (inline_val) {
                fprintf(stderr, "error: slimlm %s: --%s takes no value\n", spec->name, o->long_name);
                return 2;
            }
            *(bool *)o->dest = true;
            continue;
        }
        const char *v = inline_val;
        if (!v) {
            if (i + 1 >= argc) {
                fprintf(stderr, "error: slimlm %s: --%s needs a value (%s)\n", spec->name, o->long_name,
                        o->metavar ? o->metavar : "value");
                return 2;
            }
            v = argv[++i];
        }
        int rc = set_value(spec, o, v);
        if (rc) return rc;
    }
    if (*n_pos < spec->min_pos || (spec->max_pos >= 0 && *n_pos > spec->max_pos)) {
        fprintf(stderr, "error: slimlm %s: usage: slimlm %s %s\n", spec->name, spec->name, spec->usage);
        return 2;
    }
    return 0;
}

int slm_opt_parse(const slm_cli_spec *spec, int argc, char **argv, char ***pos, int *n_pos) {
    int rc = parse_impl(spec, argc, argv, pos, n_pos);
    if (rc) { /* nothing to go on with: the caller only returns */
        free(*pos);
        *pos = NULL;
        *n_pos = 0;
    }
    return rc;
}
