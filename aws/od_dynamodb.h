/*
 * od_dynamodb: the DynamoDB store (one table; see docs/dynamodb.md for the item layout).
 *
 * A put is ONE TransactWriteItems of two Puts:
 *   IDEM#<caller>#<key>  condition attribute_not_exists(pk) OR expires_at_us <= :now,
 *                        ReturnValuesOnConditionCheckFailure = ALL_OLD
 *   ORDER#<order_id>     condition attribute_not_exists(pk)
 * so the idempotency window is enforced by DynamoDB itself (TTL deletion lags by hours) and
 * correctness across many orderd instances never depends on in-process state. When the
 * idempotency condition fails, the old item (which carries the original order's document)
 * is the replay. A TransactionConflict (a concurrent identical order) is retried, after which
 * it resolves to a replay. ClientRequestToken makes a retried transaction idempotent.
 */
#ifndef OD_DYNAMODB_H
#define OD_DYNAMODB_H

#include "od_aws.h"
#include "od_log.h"
#include "od_store.h"

/**
 * Creates the store over the shared client @p aws for table @p table at @p endpoint. Does no I/O.
 * Marking events published takes one conditional UpdateItem per event; up to @p max_in_flight of
 * them run at once (events_max_in_flight), on threads of a fanout (od_fanout) owned by @p p when
 * @p max_in_flight > 1. Returns APR_SUCCESS and @p *out (lives as long as @p p); or the fanout's
 * status (logged) with @p *out NULL. Thread-safe to use.
 */
apr_status_t od_dynamodb_create(od_store_t **out, od_aws_t *aws, const char *endpoint,
                                const char *table, int max_in_flight, od_log_t *log, apr_pool_t *p);

/**
 * Creates the table if missing (on-demand billing, key pk), waits (bounded, 60 s) until it is
 * ACTIVE, and enables TTL on expires_at if it is not enabled. Idempotent. Returns APR_SUCCESS,
 * or the failing call's status (logged).
 */
apr_status_t od_dynamodb_init(od_aws_t *aws, const char *endpoint, const char *table, od_log_t *log,
                              apr_pool_t *p);

#endif
