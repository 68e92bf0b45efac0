/*
 * od_canon: canonical JSON and the idempotency key.
 *
 * The canonical form of a JSON value: object members sorted by key (bytewise on the UTF-8 key),
 * arrays in order, no insignificant white space, strings escaped by one fixed rule (json-c's
 * plain escaping with '/' left unescaped), integers in plain decimal (-0 is 0), doubles in
 * shortest round-trip form. Two documents that differ only in member order, white space, or the
 * spelling of escapes and numbers have the same canonical form.
 */
#ifndef OD_CANON_H
#define OD_CANON_H

#include "od_sha256.h"

#include <apr_pools.h>
#include <json-c/json.h>

/** Length of an idempotency key in hex characters (SHA-256), without the NUL. */
#define OD_CANON_KEY_HEX_LEN 64

/**
 * Writes the canonical form of @p value into a NUL-terminated string allocated from @p p and
 * returns it; its length (without the NUL) goes to @p *len when @p len is not NULL.
 * Does not modify or take ownership of @p value. Thread-safe.
 */
const char *od_canon_serialize(json_object *value, apr_size_t *len, apr_pool_t *p);

/**
 * The idempotency key of a request: lower-case hex of SHA-256 over the caller's name, one NUL
 * byte, then the canonical request bytes. The NUL makes (caller, body) pairs unambiguous.
 * Returns a 64-character NUL-terminated string from @p p. Thread-safe (@p h is only read).
 */
const char *od_canon_idempotency_key(const od_sha256_t *h, const char *caller,
                                     const char *canonical, apr_size_t len, apr_pool_t *p);

#endif
