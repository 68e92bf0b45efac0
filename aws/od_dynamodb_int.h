/*
 * od_dynamodb_int: what the DynamoDB store's files share (od_dynamodb.c: calls, get, outbox,
 * table set-up; od_dynamodb_put.c: the put; od_dynamodb_outbox.c: relay claims and the
 * backlog count). Private to them: nothing else includes it.
 */
#ifndef OD_DYNAMODB_INT_H
#define OD_DYNAMODB_INT_H

#include "od_dynamodb.h"
#include "od_fanout.h"

#include <json-c/json.h>

/* Pending events are spread over this many keys of the sparse outbox index, so a high order
 * rate never concentrates on one index partition. */
#define OD_DDB_OUTBOX_SHARDS 16
#define OD_DDB_OUTBOX_INDEX "outbox"

/** The store's state: the od_store_t's impl. */
typedef struct od_ddb_s {
    od_aws_t *aws;
    const char *endpoint;
    const char *table;
    od_log_t *log;
    od_fanout_t *marks; /* runs od_ddb_published's UpdateItems; NULL: one after another */
    const char *owner;  /* this instance in its claims' outbox_owner: "host:pid" */
} od_ddb_t;

/** Releases @p obj (a new json-c reference; NULL is ignored) with @p p. Returns @p obj. */
json_object *od_ddb_owned(json_object *obj, apr_pool_t *p);

/** A new DynamoDB attribute value {"S": value}; the caller owns the reference. */
json_object *od_ddb_s(const char *value);

/** A new DynamoDB attribute value {"N": "value"}; the caller owns the reference. */
json_object *od_ddb_n(apr_int64_t value);

/**
 * Attribute @p name of type @p type ("S" or "N") of the DynamoDB item @p item (may be NULL), or
 * NULL. Borrowed from @p item.
 */
const char *od_ddb_get(json_object *item, const char *name, const char *type);

/**
 * Makes one DynamoDB call of operation @p op with the body @p req; on success (and for
 * OD_ECONFLICT) parses the answer into @p *doc (released with @p p), else sets it to NULL.
 * Returns od_aws_call's status, OD_ENOTFOUND for the error @p expected (or NULL) that the caller
 * handles, or OD_EUNAVAIL for an answer that is not JSON. Sets @p *maybe_applied (unless NULL;
 * never clears it) when a write may have been applied without an answer saying so:
 * od_aws_response_t.maybe_applied, or a 2xx answer that cannot be read. Thread-safe.
 */
apr_status_t od_ddb_call_ex(od_ddb_t *d, const char *op, json_object *req, const char *expected,
                            json_object **doc, int *maybe_applied, apr_pool_t *p);

/** od_ddb_call_ex without an expected error or maybe_applied. */
apr_status_t od_ddb_call(od_ddb_t *d, const char *op, json_object *req, json_object **doc,
                         apr_pool_t *p);

/**
 * Fills @p res with @p outcome and copies (into @p p) of @p order_id and @p body; @p created_at is
 * an "N" attribute's text or NULL (0). Its event_seq is 0: events are marked by event_id here.
 */
void od_ddb_fill(od_store_result_t *res, od_store_outcome_e outcome, const char *order_id,
                 const char *body, const char *created_at, apr_pool_t *p);

/** The Key of order @p order_id's item: a new json-c reference, owned by the caller. */
json_object *od_ddb_order_key(const char *order_id, apr_pool_t *p);

/** "host:pid", naming this instance in its claims (from @p p). */
const char *od_ddb_owner_name(apr_pool_t *p);

/** od_store_ops_t.claim of the DynamoDB store (od_dynamodb_outbox.c). */
apr_status_t od_ddb_claim(void *impl, apr_array_header_t *events, apr_interval_time_t lease,
                          apr_pool_t *p);

/** od_store_ops_t.backlog of the DynamoDB store (od_dynamodb_outbox.c). */
apr_status_t od_ddb_backlog(void *impl, volatile apr_uint32_t *stop, apr_size_t *count,
                            apr_time_t *oldest, apr_pool_t *p);

/** od_store_ops_t.put of the DynamoDB store (the contract of od_store_put; see od_dynamodb.h). */
apr_status_t od_ddb_put(void *impl, const od_store_order_t *o, od_store_result_t *res,
                        apr_pool_t *p);

#endif
