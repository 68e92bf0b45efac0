/* od_fuzz: process set-up, per-input pools and invariant failures for the fuzz targets. */
#include "od_fuzz.h"

#include <apr_general.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* libFuzzer calls this once before the first input; APR wants apr_initialize before any pool,
 * and apr_terminate at exit releases the global pool so LeakSanitizer's exit check stays quiet. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (apr_initialize() != APR_SUCCESS) {
        fprintf(stderr, "od_fuzz: apr_initialize failed\n");
        abort();
    }
    atexit(apr_terminate);
    return 0;
}

/* Unmanaged (no parent): an input's pool never touches APR's global pool or its lock. */
apr_pool_t *od_fuzz_pool(void)
{
    apr_allocator_t *allocator = NULL;
    apr_pool_t *p = NULL;

    if (apr_allocator_create(&allocator) != APR_SUCCESS ||
        apr_pool_create_unmanaged_ex(&p, NULL, allocator) != APR_SUCCESS) {
        fprintf(stderr, "od_fuzz: cannot create a pool\n");
        abort();
    }
    apr_allocator_owner_set(allocator, p);
    return p;
}

void od_fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s:%d: invariant %s failed: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
