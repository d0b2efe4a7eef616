/* Fuzz targets hand their input to the readers as a file, because the
 * readers mmap paths; an in-memory file (memfd) keeps that cheap. */
#ifndef SLM_FUZZ_IO_H
#define SLM_FUZZ_IO_H
#include <stddef.h>
#include <stdint.h>
/* Writes data to a fresh in-memory file; returns its /proc path in buf
 * (valid until slm_fuzz_file_close) or NULL. */
const char *slm_fuzz_file_open(const uint8_t *data, size_t size, char *buf, size_t cap);
void slm_fuzz_file_close(void);
#endif
