/*
 * od_outbox: publishing the events that the store keeps in its outbox, at least once.
 *
 * Every accepted order's event is stored with the order in one atomic write (od_store). Then:
 *   - prompt path: the API hands the new event to od_outbox_submit, which queues a copy in a
 *     bounded in-memory ring (never blocking; when full, the event simply waits for the relay);
 *     the publisher thread publishes it through the sink and marks it published in the store;
 *   - relay: the same thread asks the store about once a second for events still pending after
 *     their due time (created + events_retry_after_s), claims them (od_store_claim: other
 *     instances may relay the same table), publishes the ones it claimed and marks them
 *     published; a failed one is rescheduled with exponential backoff (capped at 5 minutes).
 * The lease: an event belongs to the instance that created it for events_retry_after_s (its
 * prompt path publishes it in the first half of that only), then to the relay that claims it,
 * for events_retry_after_s from the claim; an instance that dies leaves its events to be taken
 * over when their lease ends. So a crash between storing and publishing, or a sink outage, delays
 * events but never loses them, and never fails or slows an order; a duplicate takes a publish
 * and mark that outlast the lease (or a crash between them), a loss is not possible.
 * A thread of its own counts the backlog (od_store_backlog) every 5 s or more, for the stats.
 */
#ifndef OD_OUTBOX_H
#define OD_OUTBOX_H

#include "od_log.h"
#include "od_sink.h"
#include "od_store.h"

#include <apr_pools.h>
#include <apr_time.h>

typedef struct od_outbox_s od_outbox_t;

typedef struct od_outbox_options_t {
    apr_interval_time_t retry_after; /* events pending this long are re-published */
    int batch_max;                   /* events per publish round */
    int queue_slots;                 /* capacity of the prompt ring */
    int skip_prompt;                 /* fault injection (tests): never publish promptly */
} od_outbox_options_t;

/** Counters; a snapshot. */
typedef struct od_outbox_stats_t {
    apr_uint64_t published;
    apr_uint64_t failed;            /* publish attempts that failed (per event) */
    apr_uint64_t dropped;           /* prompt submissions left to the relay: the ring was full,
                                     * or they waited in it past half their lease */
    apr_size_t pending;             /* events not yet published, at the last backlog count */
    apr_interval_time_t oldest_age; /* age now of the oldest of those (0 if none) */
} od_outbox_stats_t;

/**
 * Starts the publisher thread and the backlog counter. @p store, @p sink and @p log must outlive
 * @p p. Returns APR_SUCCESS and @p *out, or the failed step's status (logged) with nothing left
 * running. A pre-cleanup on @p p stops it (as od_outbox_stop with no time to flush).
 */
apr_status_t od_outbox_create(od_outbox_t **out, od_store_t *store, od_sink_t *sink,
                              const od_outbox_options_t *opts, od_log_t *log, apr_pool_t *p);

/**
 * Queues a just-stored event for prompt publishing (copied; never blocks). An event that does
 * not fit (ring full, or larger than a ring slot) is left to the relay. Thread-safe.
 */
void od_outbox_submit(od_outbox_t *outbox, const od_store_event_t *event);

/**
 * Stops taking submissions, publishes what is queued (up to @p timeout), then stops the threads
 * (a backlog count under way ends at its next read). Whatever is not published stays pending in
 * the store for the next start. Idempotent.
 */
void od_outbox_stop(od_outbox_t *outbox, apr_interval_time_t timeout);

/** Copies the counters, with oldest_age as of now. Thread-safe. */
void od_outbox_stats(od_outbox_t *outbox, od_outbox_stats_t *out);

#endif
