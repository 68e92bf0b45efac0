/*
 * od_conns: the client connections the HTTP front end holds, and the deadlines libmicrohttpd
 * does not enforce.
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client that trickles a byte now and
 * then (slowloris) keeps a connection, and a slot, for ever; and at max_connections it stops
 * accepting, so idle connections can lock every new client out until they time out. This module
 * knows each connection's state (waiting for a request head, busy with a request, idle between
 * keep-alive requests) and a sweep, run every OD_CONNS_SWEEP_MS by a thread of its own:
 *   - shuts down a connection whose first request head is not complete within header_timeout,
 *     or, on a keep-alive connection, within idle_timeout + header_timeout of the last answer;
 *   - when fewer than `reserve` slots are free, shuts down every idle connection: those idle
 *     between keep-alive requests first, then those that have not sent a complete head for
 *     half a second; a connection busy with a request is never touched. (An HTTP client
 *     reconnects when its idle keep-alive connection is closed.)
 * "Shut down" is shutdown(2) of the socket: libmicrohttpd then sees the end of the stream and
 * closes and forgets the connection itself, on its own thread. The socket is never closed here,
 * and od_conns_close (called by libmicrohttpd before it closes the socket) takes the same lock
 * as the sweep, so a descriptor the sweep shuts down is always the connection's own.
 */
#ifndef OD_CONNS_H
#define OD_CONNS_H

#include "od_log.h"

#include <apr_pools.h>
#include <apr_time.h>

#define OD_CONNS_SWEEP_MS 200

typedef struct od_conns_s od_conns_t;

/** One connection; owned by the tracker from od_conns_open to od_conns_close. */
typedef struct od_conns_entry_s od_conns_entry_t;

typedef struct od_conns_options_t {
    int max_connections;                /* libmicrohttpd's limit */
    int reserve;                        /* slots kept free by shutting idle connections down */
    apr_interval_time_t header_timeout; /* for a request head to be complete */
    apr_interval_time_t idle_timeout;   /* libmicrohttpd's (connection_timeout_s) */
} od_conns_options_t;

/** Counters; a snapshot. */
typedef struct od_conns_stats_t {
    unsigned int open;          /* connections held */
    unsigned int idle;          /* of which idle between requests */
    apr_uint64_t head_timeouts; /* shut down for a request head not complete in time */
    apr_uint64_t evicted;       /* shut down to free a slot */
} od_conns_stats_t;

/**
 * Creates the tracker (no thread yet). @p log must outlive @p p. Returns APR_SUCCESS and
 * @p *out, or the failed call's status (logged).
 */
apr_status_t od_conns_create(od_conns_t **out, const od_conns_options_t *opts, od_log_t *log,
                             apr_pool_t *p);

/**
 * Starts the sweeping thread. Returns APR_SUCCESS, or apr_thread_create's status (logged). It
 * is stopped by od_conns_stop or a cleanup on the pool given to create.
 */
apr_status_t od_conns_start(od_conns_t *c);

/** Stops the sweeping thread and waits for it. Idempotent. */
void od_conns_stop(od_conns_t *c);

/**
 * A new connection on socket @p fd, waiting for its first request head. Returns its entry, or
 * NULL when it cannot be tracked (out of memory is the pool abort function's; NULL only if
 * @p c is NULL). Thread-safe.
 */
od_conns_entry_t *od_conns_open(od_conns_t *c, int fd, apr_time_t now);

/** A request head on @p e is complete: the connection is busy until od_conns_idle. NULL is
 * ignored. Thread-safe. */
void od_conns_busy(od_conns_t *c, od_conns_entry_t *e);

/** The request on @p e is finished; the connection waits for the next one. NULL is ignored.
 * Thread-safe. */
void od_conns_idle(od_conns_t *c, od_conns_entry_t *e, apr_time_t now);

/** @p e is being closed (before its socket is): the entry is freed. NULL is ignored.
 * Thread-safe. */
void od_conns_close(od_conns_t *c, od_conns_entry_t *e);

/**
 * One sweep as described above, at time @p now. Returns the number of connections shut down.
 * The thread calls it every OD_CONNS_SWEEP_MS; tests call it directly. Thread-safe.
 */
int od_conns_sweep(od_conns_t *c, apr_time_t now);

/** Fills @p out. Thread-safe. */
void od_conns_stats(od_conns_t *c, od_conns_stats_t *out);

#endif
