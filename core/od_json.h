/*
 * od_json: strict JSON parsing on top of json-c.
 *
 * json-c alone accepts more than RFC 8259 (single-quoted strings, NaN/Infinity, duplicate keys
 * silently merged, keys truncated at an escaped NUL). orderd's contract is stricter: a request
 * that is not exactly one RFC 8259 JSON text is malformed. This module runs json-c with
 * JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 and then a linear lint pass over the raw
 * text that rejects what json-c let through.
 */
#ifndef OD_JSON_H
#define OD_JSON_H

#include <apr_pools.h>
#include <json-c/json.h>

/**
 * Parses @p len bytes at @p text as one strict JSON text (surrounding white space allowed).
 *
 * Returns APR_SUCCESS and the document in @p *out, or OD_EINVAL with @p *out NULL and a static or
 * @p p-allocated message in @p *why ("duplicate key 'sku'", "unexpected character at byte 7"...).
 * Rejected beyond json-c: duplicate keys in an object (also when spelt with different escapes),
 * single-quoted strings, bare words other than true/false/null, `\u0000` escapes, unpaired
 * UTF-16 surrogate escapes, invalid UTF-8, trailing content. Containers nest at most 16 deep
 * ("nesting too deep at byte N" beyond).
 *
 * The document is owned by @p p: a cleanup on @p p releases it (json_object_put); the caller
 * must not put it. Thread-safe (no shared state).
 */
apr_status_t od_json_parse(json_object **out, const char **why, const char *text, apr_size_t len,
                           apr_pool_t *p);

#endif
