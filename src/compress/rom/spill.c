/* The calibration activations X on disk for a while (rom_engine.h).
 *
 * At LLaMA-7B shapes X is 1 GiB of fp32 that nothing reads while gate and
 * up are factored, and factoring the two at once (one thread each) needs
 * about 1 GB more than one after the other: moving X to disk for that time
 * keeps the run within its memory goal (docs/rom.md). The file is made
 * with mkstemp in $TMPDIR (default /tmp) and unlinked at once, so it goes
 * away with the process whatever happens. X's pages are given back to the
 * system as soon as their bytes are written, so that the file's page cache
 * reuses them: on this VM, writing 1 GiB into fresh pages took 1.1-2.9 s,
 * into the pages just released 0.3-0.7 s. Should a write fail, the part
 * already written is read back, so X is intact; every byte is read back
 * before X is used again. Any failure is one error line naming the file.
 */
#define _DEFAULT_SOURCE /* madvise, MADV_DONTNEED */
#include "compress/rom/rom_engine.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Bytes per read/write call: Linux moves at most about 2 GiB per call, and
 * a bounded size keeps every call's count and errno about a known range. */
enum { IO_CHUNK = 64 << 20 };

/* Gives the whole pages of x [bytes] back to the system. Private anonymous
 * pages read as zeros afterwards, which is harmless: their bytes are in the
 * file and are read back over them. Where madvise is missing or refuses,
 * the pages simply stay. */
static void release_pages(char *x, size_t bytes) {
#ifdef MADV_DONTNEED
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0) return;
    uintptr_t lo = ((uintptr_t)x + (uintptr_t)ps - 1) & ~((uintptr_t)ps - 1);
    uintptr_t hi = ((uintptr_t)x + bytes) & ~((uintptr_t)ps - 1);
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
#else
    (void)x;
    (void)bytes;
#endif
}

/* Reads bytes [0, n) of the file into x; on failure *what gets why. */
static bool read_back(int fd, char *x, size_t n, char *what, size_t what_size) {
    for (size_t done = 0; done < n;) {
        size_t c = n - done < (size_t)IO_CHUNK ? n - done : (size_t)IO_CHUNK;
        ssize_t r = pread(fd, x + done, c, (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r < 0) snprintf(what, what_size, "failed after %zu of %zu bytes: %s", done, n, strerror(errno));
            else snprintf(what, what_size, "the file ends after %zu of %zu bytes", done, n);
            return false;
        }
        done += (size_t)r;
    }
    return true;
}

void slm_rom_spill_close(slm_rom_spill *sp) {
    if (sp->fd >= 0) close(sp->fd);
    free(sp->path);
    *sp = (slm_rom_spill){.fd = -1};
}

slm_status slm_rom_spill_out(slm_rom_spill *sp, float *x, size_t bytes) {
    *sp = (slm_rom_spill){.fd = -1};
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    size_t len = strlen(dir) + sizeof "/slimlm-rom-X-XXXXXX";
    sp->path = slm_malloc(len, "spill file name");
    if (!sp->path) return SLM_ERR_NOMEM;
    snprintf(sp->path, len, "%s/slimlm-rom-X-XXXXXX", dir);
    sp->fd = mkstemp(sp->path);
    if (sp->fd < 0) {
        slm_status st = slm_fail(SLM_ERR_IO, "%s: cannot create the file for the calibration activations: %s",
                                 sp->path, strerror(errno));
        slm_rom_spill_close(sp);
        return st;
    }
    /* unlinked at once: no file is left behind, even if the process dies */
    if (unlink(sp->path) != 0) {
        slm_status st = slm_fail(SLM_ERR_IO, "%s: cannot unlink the temporary file: %s", sp->path, strerror(errno));
        slm_rom_spill_close(sp);
        return st;
    }
    char *p = (char *)x;
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < (size_t)IO_CHUNK ? bytes - done : (size_t)IO_CHUNK;
        ssize_t w = write(sp->fd, p + done, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { /* put back what was released: X stays whole */
            int err = w < 0 ? errno : 0;
            char back[256];
            bool whole = read_back(sp->fd, p, done, back, sizeof back);
            slm_status st = slm_fail(SLM_ERR_IO, "%s: writing the calibration activations failed after %zu of %zu "
                                                 "bytes: %s%s%s", sp->path, done, bytes,
                                     err ? strerror(err) : "nothing written",
                                     whole ? "" : "; reading the part written back: ", whole ? "" : back);
            slm_rom_spill_close(sp);
            return st;
        }
        release_pages(p + done, (size_t)w); /* its page cache can take these pages */
        done += (size_t)w;
    }
    sp->x = x;
    sp->bytes = bytes;
    return SLM_OK;
}

slm_status slm_rom_spill_in(slm_rom_spill *sp) {
    char why[256];
    slm_status st = SLM_OK;
    if (!read_back(sp->fd, (char *)sp->x, sp->bytes, why, sizeof why))
        st = slm_fail(SLM_ERR_IO, "%s: reading the calibration activations back: %s", sp->path, why);
    slm_rom_spill_close(sp);
    return st;
}
