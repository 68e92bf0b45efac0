/*
 * od_jsonw: writes a JSON document of a fixed layout left to right.
 *
 * Text goes into a json-c print buffer; every string is escaped by json-c itself (through one
 * string object of ours, reset for each string), with '/' left unescaped. For answers whose shape
 * is fixed (an order, a problem body), this replaces building a json-c tree only to serialise and
 * free it, which cost more than the rest of a 400 answer and a fifth of a new order's own work.
 *
 * Commas are placed by the writer: a key, or a value that is not right after a key, gets one
 * unless it is the first in its object or array.
 */
#ifndef OD_JSONW_H
#define OD_JSONW_H

#include <apr_pools.h>
#include <stdint.h>

typedef struct od_jsonw_s od_jsonw_t;

/**
 * Starts an empty document. Its buffers are released by od_jsonw_finish or, if that is never
 * called (an error path), by a cleanup on @p p. Never NULL (json-c's allocation failures abort,
 * as APR's do). One writer is used by one thread.
 */
od_jsonw_t *od_jsonw_create(apr_pool_t *p);

/** Opens an object ('{') or an array ('['), as a value. */
void od_jsonw_open(od_jsonw_t *w, char bracket);

/** Closes the innermost open object ('}') or array (']'). */
void od_jsonw_close(od_jsonw_t *w, char bracket);

/** Writes "name": for the value that follows; @p name is written as given (plain ASCII). */
void od_jsonw_key(od_jsonw_t *w, const char *name);

/** Writes "name": with @p name (@p n bytes) escaped by json-c, for names that come from input. */
void od_jsonw_key_escaped(od_jsonw_t *w, const char *name, apr_size_t n);

/** Writes a string value, escaped by json-c. */
void od_jsonw_string(od_jsonw_t *w, const char *s);

/** Writes a string value of @p n bytes, escaped by json-c. */
void od_jsonw_string_len(od_jsonw_t *w, const char *s, apr_size_t n);

/** Writes an integer value. */
void od_jsonw_int(od_jsonw_t *w, int64_t v);

/** Writes a value the caller has already spelled (a number, true, false, null) as given. */
void od_jsonw_raw(od_jsonw_t *w, const char *token);

/** Shorthands: od_jsonw_key then the value. */
void od_jsonw_member_string(od_jsonw_t *w, const char *name, const char *s);
void od_jsonw_member_int(od_jsonw_t *w, const char *name, int64_t v);

/**
 * Ends the document: returns it NUL-terminated, copied into the pool given to create, with its
 * length in @p *len when @p len is not NULL, and releases the writer (which must not be used
 * again). Brackets left open are the caller's bug; nothing is added.
 */
const char *od_jsonw_finish(od_jsonw_t *w, apr_size_t *len);

#endif
