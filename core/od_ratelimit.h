/*
 * od_ratelimit: a token bucket per caller.
 *
 * A caller may make `burst` requests at once and `rate` per second sustained; beyond that the
 * answer is 429 with Retry-After. The rate and burst are given with each call (from the caller's
 * keys-file entry or the configured default), so a reload changes them without losing buckets.
 */
#ifndef OD_RATELIMIT_H
#define OD_RATELIMIT_H

#include <apr_pools.h>
#include <apr_time.h>

typedef struct od_ratelimit_s od_ratelimit_t;

/**
 * Creates the limiter. Buckets are created on first use, one per caller name, in @p p (callers
 * come from the keys file, so they are bounded). Returns APR_SUCCESS and @p *out, or the mutex
 * creation's status. Thread-safe to use.
 */
apr_status_t od_ratelimit_create(od_ratelimit_t **out, apr_pool_t *p);

/**
 * Takes one token from @p caller's bucket at time @p now. @p rate <= 0 means unlimited.
 * Returns 1 if allowed; otherwise 0 and the wait until a token is available in @p *retry_after.
 * Thread-safe.
 */
int od_ratelimit_take(od_ratelimit_t *rl, const char *caller, double rate, int burst,
                      apr_time_t now, apr_interval_time_t *retry_after);

#endif
