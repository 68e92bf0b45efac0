/*
 * od_fuzz: what the libFuzzer targets in fuzz/ share (docs/fuzzing.md).
 *
 * A target is one fuzz_NAME.c that defines LLVMFuzzerTestOneInput and links this module, which
 * defines LLVMFuzzerInitialize (APR is initialised once per process). Each input gets a pool of
 * its own from od_fuzz_pool and destroys it before returning, so nothing outlives an input and
 * libFuzzer's leak check sees every block either freed or reachable.
 */
#ifndef OD_FUZZ_H
#define OD_FUZZ_H

#include <apr_pools.h>
#include <stddef.h>
#include <stdint.h>

/** libFuzzer's entry points (declared here for -Wmissing-prototypes). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/**
 * A new pool for one input, with an allocator of its own that the pool owns: destroying the pool
 * hands every block back to malloc, where ASan sees a later use and LeakSanitizer sees a block
 * kept past the input. The caller destroys it. Aborts if APR cannot allocate (as APR does).
 * Not thread-safe: libFuzzer runs one input at a time per process.
 */
apr_pool_t *od_fuzz_pool(void);

/**
 * Reports a broken invariant: prints "FILE:LINE: invariant COND failed: MESSAGE" to stderr and
 * aborts, which libFuzzer reports as a crash and saves the input for. Never returns.
 */
void od_fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

/** Checks an invariant of the code under test; the message says what the code promises. */
#define OD_FUZZ_CHECK(cond, ...)                                                                   \
    ((cond) ? (void) 0 : od_fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__))

#endif
