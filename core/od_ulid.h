/*
 * od_ulid: ULIDs (https://github.com/ulid/spec) for order and event ids.
 *
 * 26 characters of Crockford base32: 48 bits of Unix time in milliseconds, then 80 random bits
 * from OpenSSL's RAND_bytes (a CSPRNG; thread-safe).
 */
#ifndef OD_ULID_H
#define OD_ULID_H

#include <apr_errno.h>
#include <apr_pools.h>
#include <apr_time.h>

#define OD_ULID_LEN 26

/**
 * Writes a new ULID for time @p now (NUL-terminated, upper case) into @p out.
 * Returns APR_SUCCESS, or APR_EGENERAL if the random generator fails (out is then "").
 * Thread-safe.
 */
apr_status_t od_ulid_generate(char out[OD_ULID_LEN + 1], apr_time_t now);

/** The most ids od_ulid_generate_many writes in one call. */
#define OD_ULID_MANY_MAX 8

/**
 * Writes @p n (1..OD_ULID_MANY_MAX) new ULIDs for time @p now into @p out[0..n-1], drawing the
 * randomness of all of them from one RAND_bytes call (each call costs OpenSSL a DRBG lock and
 * set-up, about as much as encoding the ids). Returns APR_SUCCESS, APR_EINVAL for a bad @p n, or
 * APR_EGENERAL if the random generator fails (every out[i] is then ""). Thread-safe.
 */
apr_status_t od_ulid_generate_many(char (*out)[OD_ULID_LEN + 1], int n, apr_time_t now);

/**
 * A buffered source of ULIDs for hot paths: one RAND_bytes call fills the randomness of
 * OD_ULID_SOURCE_IDS ids, where od_ulid_generate pays OpenSSL's per-call DRBG set-up (about 2 us,
 * more than the rest of a request's id work) every time. The ids are as unpredictable as
 * od_ulid_generate's; the unused randomness sits in memory until it is drawn.
 */
typedef struct od_ulid_source_s od_ulid_source_t;

/** Ids a source draws from one RAND_bytes call. */
#define OD_ULID_SOURCE_IDS 256

/**
 * Creates an empty source in @p p (filled on first use; lives and dies with @p p). A process
 * must not draw from a source it inherited across fork(). Returns APR_SUCCESS and @p *out, or
 * the status of apr_thread_mutex_create.
 */
apr_status_t od_ulid_source_create(od_ulid_source_t **out, apr_pool_t *p);

/**
 * As od_ulid_generate_many, drawing from @p src: @p n (1..OD_ULID_MANY_MAX) ids for time @p now.
 * Returns APR_SUCCESS, APR_EINVAL for a bad @p n, or APR_EGENERAL if the random generator fails
 * (every out[i] is then ""). Thread-safe: a mutex guards the buffer, held to copy from it and,
 * once per OD_ULID_SOURCE_IDS ids or so, to refill it with RAND_bytes.
 */
apr_status_t od_ulid_source_next(od_ulid_source_t *src, char (*out)[OD_ULID_LEN + 1], int n,
                                 apr_time_t now);

/**
 * Checks that @p text is a ULID: exactly 26 Crockford base32 characters (case-insensitive,
 * excluding I, L, O, U), the first at most '7' (the 48-bit time must not overflow).
 * On success writes the upper-case form into @p out and returns APR_SUCCESS; otherwise returns
 * OD_EINVAL and leaves @p out "". Thread-safe.
 */
apr_status_t od_ulid_parse(char out[OD_ULID_LEN + 1], const char *text);

/** The timestamp encoded in a valid upper-case ULID. */
apr_time_t od_ulid_time(const char *ulid);

#endif
