/* Small helpers shared by the C tests: checks that print what was compared
 * and where, environment lookups, and golden-file reading. A failed check
 * marks the test failed but lets it continue so one run shows every problem. */
#ifndef SLM_TEST_UTIL_H
#define SLM_TEST_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Records a failure (with file:line and message) when cond is false. */
bool slm_test_check(bool cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define CHECK(cond, ...) slm_test_check((cond), __FILE__, __LINE__, __VA_ARGS__)

/* max |a-b| over n values; prints "name: max|d|=... (tol ...)" and checks it. */
bool slm_test_close(const char *name, const float *a, const float *b, size_t n,
                    double tol, const char *file, int line);
#define CHECK_CLOSE(name, a, b, n, tol) slm_test_close((name), (a), (b), (n), (tol), __FILE__, __LINE__)

/* Environment variable or a fallback; never NULL. */
const char *slm_test_env(const char *name, const char *fallback);
/* Joins dir + "/" + rel into a static rotating buffer (8 slots). */
const char *slm_test_path(const char *dir, const char *rel);
/* Reads a whole file; *len gets its size. Returns malloc'd, NUL-terminated, or NULL. */
char *slm_test_read_file(const char *path, size_t *len);
/* Number of failed checks so far; tests end with `return slm_test_finish();` */
int slm_test_finish(void);

/* xorshift64 random numbers for test operands: *state is the generator
 * (any non-zero seed); u32 takes bits 16..47, uniform is in [lo, hi). */
uint32_t slm_test_rand_u32(uint64_t *state);
float slm_test_uniform(uint64_t *state, float lo, float hi);

#endif
