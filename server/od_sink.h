/*
 * od_sink: where order.accepted events go (events_sink): sns, sqs, eventbridge, file, none.
 *
 * A sink publishes a batch of events and reports each event's own outcome, so one bad event
 * never holds back the others. Sinks do not retry beyond the AWS client's own retries: the
 * outbox relay re-publishes whatever is still pending later, so delivery is at least once.
 *
 * A backend that takes a bounded batch per call (the AWS services: 10 events) gets the batches of
 * one publish concurrently, up to max_in_flight calls at once (events_max_in_flight), so a round
 * of 1,000 events costs about 100 / max_in_flight call latencies rather than 100.
 */
#ifndef OD_SINK_H
#define OD_SINK_H

#include "od_log.h"

#include <apr_pools.h>

typedef struct od_sink_s od_sink_t;

/** One event to publish; strings borrowed for the duration of the call. */
typedef struct od_event_t {
    const char *event_id; /* ULID, fixed per order: a re-publish carries the same id */
    const char *order_id;
    const char *body; /* the envelope JSON (od_event_render) */
    apr_size_t body_len;
} od_event_t;

/**
 * What a sink implements; see od_sink_publish for the contract. A backend with max_batch > 0 must
 * take concurrent publish calls (each with a pool of its own); one with max_batch 0 gets every
 * publish in one call and only ever one call at a time per od_sink_publish caller.
 */
typedef struct od_sink_ops_t {
    const char *name;
    int max_batch; /* most events one publish call of the backend takes (SNS/SQS/EB: 10); 0: any */
    apr_status_t (*publish)(void *impl, const od_event_t *events, int n, apr_status_t *results,
                            apr_pool_t *p);
} od_sink_ops_t;

/**
 * Wraps a sink backend (owned by the backend, which cleans up on its own pool). A backend with
 * max_batch > 0 and @p max_in_flight > 1 gets its batches through a fanout (od_fanout) of
 * @p max_in_flight threads, owned by @p p; otherwise batches go one after another on the caller's
 * thread. Returns APR_SUCCESS and @p *out (lives as long as @p p), or the fanout's status (logged
 * to @p log) with @p *out NULL.
 */
apr_status_t od_sink_create(od_sink_t **out, const od_sink_ops_t *ops, void *impl,
                            int max_in_flight, od_log_t *log, apr_pool_t *p);

/**
 * Publishes @p n events (any number: split into the backend's batches, up to max_in_flight of them
 * in flight at once; returns when all are done). results[i] is APR_SUCCESS once event i is
 * accepted by the service (or written and fsynced, for the file sink), else the error
 * (OD_EUNAVAIL, OD_ETHROTTLED, OD_EAUTH, OD_EINVAL, APR_ENOMEM); a batch may fail in part. Returns
 * APR_SUCCESS if every event succeeded, else the first failed batch's error. Failures are logged
 * once, with the service's error code. @p events and @p results are used by the batches'
 * threads until it returns; @p p only on the caller's thread. Thread-safe.
 */
apr_status_t od_sink_publish(od_sink_t *sink, const od_event_t *events, int n,
                             apr_status_t *results, apr_pool_t *p);

const char *od_sink_name(const od_sink_t *sink);

/** The "none" sink: accepts and discards everything. */
apr_status_t od_sink_none_create(od_sink_t **out, apr_pool_t *p);

#endif
