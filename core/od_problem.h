/*
 * od_problem: RFC 9457 problem details (application/problem+json) bodies.
 */
#ifndef OD_PROBLEM_H
#define OD_PROBLEM_H

#include <apr_pools.h>
#include <apr_tables.h>

#define OD_PROBLEM_CONTENT_TYPE "application/problem+json"

/** One bad field: a path such as "items[0].quantity" ("" for the whole body) and a message. */
typedef struct od_field_error_t {
    const char *field;
    const char *message;
} od_field_error_t;

/**
 * Appends a field error to @p errors (an array of od_field_error_t). @p field and @p message
 * are copied into the array's pool. Not thread-safe on one array.
 */
void od_problem_add(apr_array_header_t *errors, const char *field, const char *message);

/**
 * Renders a problem body: {"type","title","status","detail"[,"errors":[{"field","message"}]]}.
 * @p type may be NULL ("about:blank"); @p detail may be NULL (omitted); @p errors may be NULL or
 * empty (omitted). Returns a NUL-terminated JSON string allocated from @p p. Thread-safe.
 */
const char *od_problem_render(int status, const char *type, const char *title, const char *detail,
                              const apr_array_header_t *errors, apr_pool_t *p);

#endif
