/*
 * od_event: the order.accepted event envelope (docs/events.md).
 *
 *   {"event_id":"<ULID>","event_type":"order.accepted","occurred_at":"<RFC 3339 ms>",
 *    "schema_version":1,"order":<the accepted-order document, verbatim>}
 *
 * event_id is generated once, when the order is accepted, and stored with it: every
 * re-publish of the same order carries the same event_id, which is what consumers deduplicate on.
 */
#ifndef OD_EVENT_H
#define OD_EVENT_H

#include <apr_pools.h>
#include <apr_time.h>

#define OD_EVENT_TYPE_ACCEPTED "order.accepted"
#define OD_EVENT_SCHEMA_VERSION 1

/**
 * Renders the envelope around @p order_document (a JSON object, embedded as is). Returns a
 * NUL-terminated string from @p p; its length goes to @p *len if not NULL. Thread-safe.
 */
const char *od_event_render(const char *event_id, const char *order_document,
                            apr_time_t occurred_at, apr_size_t *len, apr_pool_t *p);

#endif
