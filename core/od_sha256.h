/*
 * od_sha256: OpenSSL's SHA-256, fetched once, and lower-case hex.
 *
 * EVP_sha256() makes every digest look the implementation up again in the provider tables (as
 * much work as hashing a small order); a handle fetched once skips that. Used on the HTTP
 * threads for idempotency keys (od_canon) and API keys (od_keys).
 */
#ifndef OD_SHA256_H
#define OD_SHA256_H

#include <apr_pools.h>

/** Bytes of a digest. */
#define OD_SHA256_LEN 32

typedef struct od_sha256_s od_sha256_t;

/**
 * Fetches SHA-256 for @p p's lifetime (released by a cleanup on @p p). Returns APR_SUCCESS and
 * @p *out, or APR_EGENERAL if OpenSSL has no SHA-256 (its error queue says why).
 */
apr_status_t od_sha256_create(od_sha256_t **out, apr_pool_t *p);

/**
 * Writes the SHA-256 of @p len bytes at @p data to @p out. Returns 1, or 0 if OpenSSL failed
 * (it can only run out of memory). Thread-safe (@p h is only read).
 */
int od_sha256_digest(const od_sha256_t *h, const void *data, apr_size_t len,
                     unsigned char out[OD_SHA256_LEN]);

/** Writes @p n bytes at @p in as 2 * @p n lower-case hex digits and a NUL to @p out. */
void od_sha256_hex(char *out, const unsigned char *in, apr_size_t n);

#endif
