/* Status codes and the thread-local error message. */
#define _POSIX_C_SOURCE 200809L
#include "core/core.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_msg[1024];

const char *slm_status_str(slm_status s) {
    switch (s) {
    case SLM_OK: return "ok";
    case SLM_ERR_IO: return "I/O error";
    case SLM_ERR_FORMAT: return "malformed input";
    case SLM_ERR_UNSUPPORTED: return "unsupported";
    case SLM_ERR_NOMEM: return "out of memory";
    case SLM_ERR_ARG: return "bad argument";
    case SLM_ERR_NUMERIC: return "numerical failure";
    case SLM_ERR_STATE: return "bad state";
    }
    return "unknown status";
}

const char *slm_last_error(void) { return g_msg; }

void slm_error_clear(void) { g_msg[0] = 0; }

slm_status slm_fail(slm_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    /* One line only: the CLI prints exactly one error line. */
    for (char *p = g_msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return st;
}

void slm_error_prefix(const char *prefix) {
    size_t plen = strlen(prefix) + 2, mlen = strlen(g_msg);
    if (plen >= sizeof g_msg) return;
    if (plen + mlen >= sizeof g_msg) mlen = sizeof g_msg - plen - 1;
    memmove(g_msg + plen, g_msg, mlen);
    g_msg[plen + mlen] = 0;
    memcpy(g_msg, prefix, plen - 2);
    g_msg[plen - 2] = ':';
    g_msg[plen - 1] = ' ';
}

void *slm_malloc(size_t n, const char *what) {
    void *p = malloc(n ? n : 1);
    if (!p) slm_fail(SLM_ERR_NOMEM, "out of memory allocating %zu bytes for %s", n, what);
    return p;
}

void *slm_calloc(size_t count, size_t size, const char *what) {
    size_t n;
    if (!slm_mul_ok(count, size, &n)) {
        slm_fail(SLM_ERR_NOMEM, "size overflow allocating %s", what);
        return NULL;
    }
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) slm_fail(SLM_ERR_NOMEM, "out of memory allocating %zu bytes for %s", n, what);
    return p;
}

void *slm_aligned_alloc(size_t n, const char *what) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) {
        slm_fail(SLM_ERR_NOMEM, "out of memory allocating %zu bytes for %s", n, what);
        return NULL;
    }
    return p;
}
