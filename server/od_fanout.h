/*
 * od_fanout: bounded fan-out of independent calls.
 *
 * A fanout owns max_in_flight threads (an APR thread pool). od_fanout_run hands them the calls
 * fn(baton, 0) .. fn(baton, n - 1) and returns once every one has returned, so n calls that each
 * wait on a remote service take about n / max_in_flight of their latencies instead of n. Used for
 * the event sinks' batches (od_sink) and the DynamoDB store's per-event marks (od_dynamodb), both
 * bounded by events_max_in_flight.
 */
#ifndef OD_FANOUT_H
#define OD_FANOUT_H

#include "od_log.h"

#include <apr_pools.h>

typedef struct od_fanout_s od_fanout_t;

/** One call of a run: @p i is its index (0 .. n - 1), @p baton as given to od_fanout_run. */
typedef void od_fanout_fn(void *baton, int i);

/**
 * Creates a fanout running at most @p max_in_flight (>= 1) calls at once, on as many threads of
 * its own, started here. Returns APR_SUCCESS and @p *out (lives as long as @p p); or the failed
 * step's status (logged to @p log) with @p *out NULL and no thread left running. The threads stop
 * when @p p is cleared or destroyed, which must not happen while an od_fanout_run is in progress
 * (a caller's calls not yet started would never run, and it would wait forever).
 */
apr_status_t od_fanout_create(od_fanout_t **out, int max_in_flight, od_log_t *log, apr_pool_t *p);

/**
 * Runs fn(@p baton, i) for every i in 0 .. @p n - 1, each exactly once, on the fanout's threads,
 * and returns when all have returned (at once if @p n <= 0). At most max_in_flight calls of this
 * fanout run at the same time, over all its callers; concurrent callers' calls share the threads.
 * Should the thread pool refuse the work (logged), the calls not yet started run one after
 * another on the caller's thread instead: every call still runs exactly once, and then the bound
 * may be exceeded by that one call.
 *
 * The calls run concurrently with one another and with other callers' calls: fn may write only
 * what belongs to index i, and use only thread-safe objects otherwise. In particular it must not
 * allocate from a pool shared with other calls (APR pools are not thread-safe); a call that needs
 * memory creates a pool of its own. fn must not call od_fanout_run on the same fanout (all its
 * threads could end up waiting for themselves). Thread-safe.
 */
void od_fanout_run(od_fanout_t *fanout, int n, od_fanout_fn *fn, void *baton);

/** The bound given to od_fanout_create. Thread-safe. */
int od_fanout_max(const od_fanout_t *fanout);

#endif
