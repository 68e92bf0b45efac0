/*
 * od_keys: the API keys file and caller authentication.
 *
 * File format: one caller a line, `NAME SHA256HEX [rate=R] [burst=B]`, where SHA256HEX is the
 * lower- or upper-case hex SHA-256 of the caller's key (the key itself is never stored), R the
 * caller's sustained requests per second (a number > 0) and B its burst (an integer >= 1); both
 * default to the configured rate_limit_per_s / rate_limit_burst. NAME is 1..64 characters of
 * [A-Za-z0-9_.-]. Blank lines and lines starting with '#' are ignored. A repeated name or hash,
 * a NUL byte anywhere, or a file with no caller at all is an error.
 */
#ifndef OD_KEYS_H
#define OD_KEYS_H

#include <apr_pools.h>

/** A loaded key set; read-only after parsing, so thread-safe. */
typedef struct od_keys_s od_keys_t;

/**
 * Parses @p len bytes of @p text named @p filename. Returns APR_SUCCESS and @p *out (at least one
 * caller), or OD_ECONFIG with @p *out NULL and @p *errmsg "FILE:LINE: problem", or "FILE: no
 * callers: ..." when no line names a caller. Everything lives in @p p.
 */
apr_status_t od_keys_parse(od_keys_t **out, const char *text, apr_size_t len, const char *filename,
                           const char **errmsg, apr_pool_t *p);

/**
 * Authenticates a presented key: hashes it with SHA-256 and compares with the known hashes in
 * constant time (CRYPTO_memcmp). Returns the caller's name (owned by the key set) or NULL when
 * @p presented is NULL or unknown. Thread-safe.
 */
const char *od_keys_lookup(const od_keys_t *keys, const char *presented);

/**
 * The rate limit of caller @p name: R and B from its line, or 0 for "use the default".
 * Returns 0 and leaves them alone if there is no such caller. Thread-safe.
 */
int od_keys_limits(const od_keys_t *keys, const char *name, double *rate, int *burst);

/**
 * Makes a new key for caller @p name: @p *key is "odk_" and 48 hex digits from OpenSSL's CSPRNG
 * (shown once, never stored), @p *line the keys-file line `NAME SHA256HEX` for it. Both from
 * @p p. Returns APR_SUCCESS, OD_EINVAL for a bad name, or APR_EGENERAL if the RNG fails.
 */
apr_status_t od_keys_generate(const char *name, const char **key, const char **line, apr_pool_t *p);

/** The number of callers. */
int od_keys_count(const od_keys_t *keys);

#endif
