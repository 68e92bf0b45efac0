/*
 * od_order: the order model, its validation, and its JSON renderings.
 *
 * A request body becomes an od_order_t only if it passes every rule; otherwise every bad field
 * is reported at once. Rules (see the API section of README.md):
 *   customer_id  required string matching the configured POSIX ERE
 *   currency     required string of three upper-case ASCII letters
 *   items        required array of 1..max_items objects, each with exactly
 *                  sku               string matching ^[A-Z0-9][A-Z0-9-]{2,31}$
 *                  quantity          integer 1..max_quantity (json integer type only)
 *                  unit_price_cents  integer 0..1000000000
 *   note         optional string, valid UTF-8, at most 200 characters (code points)
 * No other members; the top level must be an object; duplicate keys are malformed (od_json).
 */
#ifndef OD_ORDER_H
#define OD_ORDER_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#define OD_ORDER_MAX_NOTE_CHARS 200
#define OD_ORDER_MAX_UNIT_PRICE_CENTS 1000000000LL

/** Compiled validation rules; immutable after creation, so shareable across threads. */
typedef struct od_order_rules_s od_order_rules_t;

/** A validated order. Lives in the pool it was parsed into. */
typedef struct od_order_s od_order_t;

/**
 * Compiles the rules. @p customer_id_pattern is a POSIX extended regular expression.
 * Returns APR_SUCCESS and @p *out, or OD_ECONFIG with @p *out NULL and a message in @p *errmsg
 * (from @p p) when the pattern does not compile or a limit is not positive.
 * The compiled regex is freed by a cleanup on @p p. The result is read-only and thread-safe.
 */
apr_status_t od_order_rules_create(od_order_rules_t **out, const char *customer_id_pattern,
                                   int max_quantity, int max_items, const char **errmsg,
                                   apr_pool_t *p);

/**
 * Parses and validates a request body of @p len bytes.
 *
 * Returns APR_SUCCESS with the order in @p *out and @p *errors NULL; or OD_EINVAL with @p *out
 * NULL and @p *errors an array of od_field_error_t (od_problem.h) naming every bad field
 * ("customer_id", "items[0].quantity", "note", "unknown_field"; "" for a body that is not JSON
 * or not an object). Everything is allocated from @p p (json-c objects are released by a cleanup
 * on @p p). Thread-safe given distinct pools.
 */
apr_status_t od_order_parse(od_order_t **out, apr_array_header_t **errors,
                            const od_order_rules_t *rules, const char *body, apr_size_t len,
                            apr_pool_t *p);

/** The canonical JSON of the validated request (od_canon); owned by the order's pool. */
const char *od_order_canonical(const od_order_t *order, apr_size_t *len);

/** Sum of quantity * unit_price_cents over the items. */
apr_int64_t od_order_total_cents(const od_order_t *order);

/**
 * The accepted-order document, which is both the 201 body and what GET and replays return:
 * {"order_id","status":"ACCEPTED","customer_id","currency","items":[{"sku","quantity",
 * "unit_price_cents"}...],"note"(only if given),"total_cents","created_at"}, members in exactly
 * that order, no white space. created_at is RFC 3339 UTC with milliseconds
 * ("2026-11-21T10:00:00.123Z"). Returns a NUL-terminated string from @p p.
 */
const char *od_order_render(const od_order_t *order, const char *order_id, apr_time_t created_at,
                            apr_pool_t *p);

/** Formats @p t as RFC 3339 UTC with milliseconds into @p buf (at least 25 bytes); returns buf. */
char *od_order_format_time(char *buf, apr_time_t t);

#endif
