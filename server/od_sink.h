/*
 * od_sink: where order.accepted events go (events_sink): sns, sqs, eventbridge, file, none.
 *
 * A sink publishes a batch of events and reports each event's own outcome, so one bad event
 * never holds back the others. Sinks do not retry beyond the AWS client's own retries: the
 * outbox relay re-publishes whatever is still pending later, so delivery is at least once.
 */
#ifndef OD_SINK_H
#define OD_SINK_H

#include <apr_pools.h>

typedef struct od_sink_s od_sink_t;

/** One event to publish; strings borrowed for the duration of the call. */
typedef struct od_event_t {
    const char *event_id; /* ULID, fixed per order: a re-publish carries the same id */
    const char *order_id;
    const char *body; /* the envelope JSON (od_event_render) */
    apr_size_t body_len;
} od_event_t;

/** What a sink implements; see od_sink_publish for the contract. */
typedef struct od_sink_ops_t {
    const char *name;
    int max_batch; /* most events one publish call of the backend takes (SNS/SQS/EB: 10) */
    apr_status_t (*publish)(void *impl, const od_event_t *events, int n, apr_status_t *results,
                            apr_pool_t *p);
} od_sink_ops_t;

/** Wraps a sink backend (owned by the backend, which cleans up on its own pool). */
apr_status_t od_sink_create(od_sink_t **out, const od_sink_ops_t *ops, void *impl, apr_pool_t *p);

/**
 * Publishes @p n events (any number: split into the backend's batches). results[i] is
 * APR_SUCCESS once event i is accepted by the service (or written and fsynced, for the file
 * sink), else the error (OD_EUNAVAIL, OD_ETHROTTLED, OD_EAUTH, OD_EINVAL). Returns APR_SUCCESS
 * if every event succeeded, else the first error. Failures are logged once, with the service's
 * error code. Thread-safe.
 */
apr_status_t od_sink_publish(od_sink_t *sink, const od_event_t *events, int n,
                             apr_status_t *results, apr_pool_t *p);

const char *od_sink_name(const od_sink_t *sink);

/** The "none" sink: accepts and discards everything. */
apr_status_t od_sink_none_create(od_sink_t **out, apr_pool_t *p);

#endif
