#define _GNU_SOURCE
#include "fuzz_io.h"

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static int g_fd = -1;

const char *slm_fuzz_file_open(const uint8_t *data, size_t size, char *buf, size_t cap) {
    slm_fuzz_file_close();
    g_fd = memfd_create("slm_fuzz", 0);
    if (g_fd < 0) return NULL;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(g_fd, data + off, size - off);
        if (w <= 0) return NULL;
        off += (size_t)w;
    }
    snprintf(buf, cap, "/proc/self/fd/%d", g_fd);
    return buf;
}

void slm_fuzz_file_close(void) {
    if (g_fd >= 0) close(g_fd);
    g_fd = -1;
}
