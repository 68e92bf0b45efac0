/*
 * od_store: the durable order store, as one interface over its backends (SQLite here, DynamoDB
 * in aws/).
 *
 * The one write operation is atomic: "store this order unless a live idempotency record for its
 * key exists; if one exists, return the order it points to". A backend answers only after the
 * outcome is durable, so a 201 is never sent for an order that could still be lost.
 */
#ifndef OD_STORE_H
#define OD_STORE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

typedef struct od_store_s od_store_t;

/** An order to store. All strings are borrowed for the duration of the call. */
typedef struct od_store_order_t {
    const char *caller;   /* API-key name that placed it */
    const char *idem_key; /* 64-hex idempotency key (already scoped to the caller) */
    const char *order_id; /* new ULID */
    const char *body;     /* the accepted-order document, stored and replayed verbatim */
    apr_size_t body_len;
    apr_time_t created_at;
    apr_time_t expires_at; /* end of the idempotency window: created_at + ttl */
    /* The outbox: the order.accepted event, stored in the same atomic write as the order and
     * pending until marked published. */
    const char *event_id;
    const char *event; /* the envelope JSON */
    apr_size_t event_len;
    apr_time_t event_due; /* when the relay may first re-publish it if still pending */
} od_store_order_t;

/** A pending outbox event, as read back. Strings come from the pool given to the call. */
typedef struct od_store_event_t {
    const char *event_id;
    const char *order_id;
    const char *event;
    apr_size_t event_len;
    apr_time_t created_at; /* of the order */
    int attempts;          /* relay attempts so far */
    apr_time_t due;        /* when it is due, as read by od_store_pending (0 from a put) */
    /* The backend's own handle for the event (SQLite: the row of its order), to be passed back
     * with it to od_store_published and od_store_reschedule; 0 where the backend has none. */
    apr_int64_t seq;
} od_store_event_t;

typedef enum od_store_outcome_e {
    OD_STORE_CREATED, /* the order given was stored */
    OD_STORE_REPLAYED /* a live idempotency record existed: the result is that original order */
} od_store_outcome_e;

/** A stored order as read back. Strings are allocated from the pool given to the call. */
typedef struct od_store_result_t {
    od_store_outcome_e outcome;
    const char *order_id;
    const char *body;
    apr_size_t body_len;
    apr_time_t created_at;
    apr_int64_t event_seq; /* OD_STORE_CREATED with an event: its od_store_event_t.seq */
} od_store_result_t;

/**
 * The completion of od_store_put_async: @p status and the result given to the call are what
 * od_store_put would have returned. Called exactly once, on the caller's thread or a store
 * thread; it must not wait for the store.
 */
typedef void (*od_store_done_fn)(void *baton, apr_status_t status);

/** Gauges of a backend's in-process state; a snapshot. */
typedef struct od_store_stats_t {
    int has_index;             /* the backend keeps idempotency records in memory (SQLite) */
    apr_size_t index_entries;  /* records held (live, or expired and not yet dropped) */
    apr_size_t index_capacity; /* records it holds before it next grows */
} od_store_stats_t;

/** What a backend implements; each function has the contract of the od_store_ wrapper below. */
typedef struct od_store_ops_t {
    const char *name;
    apr_status_t (*put)(void *impl, const od_store_order_t *order, od_store_result_t *result,
                        apr_pool_t *p);
    apr_status_t (*get)(void *impl, const char *caller, const char *order_id,
                        od_store_result_t *result, apr_pool_t *p);
    apr_status_t (*pending)(void *impl, apr_time_t due_before, int max, apr_array_header_t **events,
                            apr_pool_t *p);
    apr_status_t (*published)(void *impl, const od_store_event_t *events, int n, apr_pool_t *p);
    apr_status_t (*reschedule)(void *impl, const od_store_event_t *event, apr_time_t due,
                               apr_pool_t *p);
    /* Optional (NULL: od_store_put_async runs put and completes on the caller's thread). */
    void (*put_async)(void *impl, const od_store_order_t *order, od_store_result_t *result,
                      od_store_done_fn done, void *baton, apr_pool_t *p);
    /* Optional (NULL: nothing to report). */
    void (*stats)(void *impl, od_store_stats_t *out);
    /* Optional (NULL: od_store_backlog answers APR_ENOTIMPL). */
    apr_status_t (*backlog)(void *impl, volatile apr_uint32_t *stop, apr_size_t *count,
                            apr_time_t *oldest, apr_pool_t *p);
    /* Optional (NULL: one instance per store, so every event is claimed as it is). */
    apr_status_t (*claim)(void *impl, apr_array_header_t *events, apr_interval_time_t lease,
                          apr_pool_t *p);
} od_store_ops_t;

/**
 * Wraps a backend. @p impl is the backend's state, owned by the backend (it registers its own
 * cleanup on @p p or a parent). Returns APR_SUCCESS and @p *out, alive as long as @p p.
 */
apr_status_t od_store_create(od_store_t **out, const od_store_ops_t *ops, void *impl,
                             apr_pool_t *p);

/**
 * Stores @p order unless a live idempotency record for (caller, idem_key) exists.
 * Returns APR_SUCCESS with result->outcome OD_STORE_CREATED (result describes @p order) or
 * OD_STORE_REPLAYED (result is the original order), durable in both cases. Otherwise
 * OD_EUNAVAIL / OD_ETHROTTLED (retry later; nothing was stored) or OD_ESHUTDOWN (nothing was
 * stored); or OD_EUNKNOWN: the write was sent but its outcome could not be learnt (the backend
 * got no answer and, where it can, read back without settling it), so @p order may be stored,
 * or become stored later, with its idempotency record: storing the same (caller, idem_key) again
 * before expires_at returns it if it was stored, and stores it once otherwise. The backend has
 * logged the cause. Result strings come from @p p. Thread-safe.
 */
apr_status_t od_store_put(od_store_t *store, const od_store_order_t *order,
                          od_store_result_t *result, apr_pool_t *p);

/**
 * od_store_put without waiting for the outcome: it is given to @p done (with @p baton), exactly
 * once, possibly before this call returns. @p order with its strings, @p result and @p p must
 * stay alive until @p done has been called. A backend with a writer thread (SQLite) completes on
 * that thread once the batch holding the order is committed, so no thread waits for the commit.
 * Thread-safe.
 */
void od_store_put_async(od_store_t *store, const od_store_order_t *order, od_store_result_t *result,
                        od_store_done_fn done, void *baton, apr_pool_t *p);

/**
 * 1 if od_store_put_async never waits (it queues for the store's own thread, under a lock held
 * only to queue), so it may be called from a thread that must not block; 0 if it runs the put on
 * the caller's thread (DynamoDB: a network call). Thread-safe.
 */
int od_store_put_never_blocks(const od_store_t *store);

/**
 * Fills @p out with the backend's gauges (all zero if it has none). Never blocks for long; for
 * SQLite the figures are those after the writer's last batch. Thread-safe.
 */
void od_store_stats(od_store_t *store, od_store_stats_t *out);

/**
 * Reads order @p order_id if it belongs to @p caller. Returns APR_SUCCESS with @p result
 * (outcome OD_STORE_CREATED), OD_ENOTFOUND if unknown or another caller's, or OD_EUNAVAIL.
 * Thread-safe.
 */
apr_status_t od_store_get(od_store_t *store, const char *caller, const char *order_id,
                          od_store_result_t *result, apr_pool_t *p);

/**
 * Reads up to @p max pending outbox events whose due time is at or before @p due_before, oldest
 * first, into @p *events (an array of od_store_event_t from @p p). Returns APR_SUCCESS (possibly
 * none) or OD_EUNAVAIL / OD_ETHROTTLED. Thread-safe.
 */
apr_status_t od_store_pending(od_store_t *store, apr_time_t due_before, int max,
                              apr_array_header_t **events, apr_pool_t *p);

/**
 * Marks @p n events published: they are no longer pending. Each event is one read back by
 * od_store_pending or made from the result of the put that stored it (its seq and event_id as
 * given there). Idempotent (another instance may have published them too). A backend may apply the
 * marks asynchronously (SQLite: in its next commit, normally within milliseconds), so APR_SUCCESS
 * can come before they are durable, and an event may still show as pending briefly afterwards; a
 * mark lost to a crash only means the event is published again. Otherwise OD_EUNAVAIL /
 * OD_ETHROTTLED (some may be marked; the rest stay pending and are published again: at least once).
 * Thread-safe.
 */
apr_status_t od_store_published(od_store_t *store, const od_store_event_t *events, int n,
                                apr_pool_t *p);

/**
 * Keeps an event pending but not due before @p due, and counts the attempt. @p event as for
 * od_store_published. Returns APR_SUCCESS or an error as above. Thread-safe.
 */
apr_status_t od_store_reschedule(od_store_t *store, const od_store_event_t *event, apr_time_t due,
                                 apr_pool_t *p);

/**
 * Claims events read by od_store_pending for this instance before it publishes them, so that no
 * other instance sharing the store publishes them too: each is claimed only if it is still
 * pending with the due time it was read with (no instance claimed, published or rescheduled it
 * since), and is then due again only @p lease after its claim (so taken over by another instance
 * if this one dies meanwhile). @p events (of od_store_event_t) keeps those claimed, in order;
 * the others are removed. An event whose claim failed or got no answer is not claimed (it comes
 * due again: at least once). Returns APR_SUCCESS, or the first error of a claim (logged; such
 * events are removed too). A backend that only one instance can use (SQLite: a lock file)
 * claims every event without a write. Thread-safe.
 */
apr_status_t od_store_claim(od_store_t *store, apr_array_header_t *events,
                            apr_interval_time_t lease, apr_pool_t *p);

/**
 * Counts the events not yet published, whatever their due time, and finds the oldest: @p *count,
 * and @p *oldest, its created_at (0 if there is none). Reads every pending event's index entry
 * (DynamoDB: Queries of every shard, paged, with read units in proportion to the backlog), so
 * call it every few seconds, not per request. @p stop (NULL: none) is read (apr_atomic_read32)
 * between reads: once it is not 0 the count ends early with APR_EINTR. Returns APR_SUCCESS,
 * APR_EINTR, OD_EUNAVAIL / OD_ETHROTTLED (logged), or APR_ENOTIMPL if the backend cannot count;
 * the figures are meaningful only with APR_SUCCESS. Thread-safe.
 */
apr_status_t od_store_backlog(od_store_t *store, volatile apr_uint32_t *stop, apr_size_t *count,
                              apr_time_t *oldest, apr_pool_t *p);

/** The backend's name ("sqlite", "dynamodb"). */
const char *od_store_name(const od_store_t *store);

#endif
