/* Memory-mapped input files, atomic output files, whole-file reads. */
#define _POSIX_C_SOURCE 200809L
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

slm_status slm_map_file(const char *path, slm_mapped_file *out) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return slm_fail(SLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return slm_fail(SLM_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return slm_fail(SLM_ERR_IO, "%s: is a directory", path);
    }
    out->size = (size_t)st.st_size;
    if (out->size > 0) {
        void *p = mmap(NULL, out->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return slm_fail(SLM_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
        }
        out->data = p;
    }
    close(fd);
    out->path = strdup(path);
    if (!out->path) {
        slm_unmap_file(out);
        return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
    }
    return SLM_OK;
}

void slm_unmap_file(slm_mapped_file *f) {
    if (f->data && f->size) munmap((void *)f->data, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

slm_status slm_atomic_open(const char *path, slm_atomic_file *out) {
    memset(out, 0, sizeof *out);
    size_t n = strlen(path) + 32;
    out->path = strdup(path);
    out->tmp_path = malloc(n);
    if (!out->path || !out->tmp_path) {
        slm_atomic_abort(out);
        return slm_fail(SLM_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(out->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    out->f = fopen(out->tmp_path, "wb");
    if (!out->f) {
        slm_status st = slm_fail(SLM_ERR_IO, "%s: cannot create: %s", out->tmp_path, strerror(errno));
        slm_atomic_abort(out);
        return st;
    }
    return SLM_OK;
}

slm_status slm_atomic_write(slm_atomic_file *af, const void *buf, size_t n) {
    if (n && fwrite(buf, 1, n, af->f) != n)
        return slm_fail(SLM_ERR_IO, "%s: write failed: %s", af->path, strerror(errno));
    return SLM_OK;
}

slm_status slm_atomic_commit(slm_atomic_file *af) {
    slm_status st = SLM_OK;
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0)
        st = slm_fail(SLM_ERR_IO, "%s: write failed: %s", af->path, strerror(errno));
    if (fclose(af->f) != 0 && st == SLM_OK)
        st = slm_fail(SLM_ERR_IO, "%s: close failed: %s", af->path, strerror(errno));
    af->f = NULL;
    if (st == SLM_OK && rename(af->tmp_path, af->path) != 0)
        st = slm_fail(SLM_ERR_IO, "%s: rename failed: %s", af->path, strerror(errno));
    if (st != SLM_OK) remove(af->tmp_path);
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
    return st;
}

void slm_atomic_abort(slm_atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp_path) remove(af->tmp_path);
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

slm_status slm_read_file(const char *path, char **out, size_t *len) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return slm_fail(SLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
        fclose(f);
        return slm_fail(SLM_ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    char *buf = slm_malloc(n + 1, path);
    if (!buf) {
        fclose(f);
        return SLM_ERR_NOMEM;
    }
    if (n && fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return slm_fail(SLM_ERR_IO, "%s: read failed", path);
    }
    fclose(f);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return SLM_OK;
}
